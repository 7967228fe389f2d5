// The write loops under every file tidemark writes: a write(2) that writes less than asked
// (a nearly full disk, a signal) is continued, and one that writes nothing is ENOSPC — never
// a silently shorter file. A fake file handle cuts every call short at random.
import type { FileHandle } from 'node:fs/promises';
import fc from 'fast-check';
import { writeAll, writevAll } from '../../checkpoint/fs-atomic';
import { propertyParams } from '../property/params';

/** A file that takes at most `cuts[i]` bytes on call i (cycling), and `capacity` bytes in all. */
function fakeFile(cuts: readonly number[], capacity: number): { handle: FileHandle; written: () => Buffer } {
  const chunks: Buffer[] = [];
  let size = 0;
  let call = 0;
  const take = (bytes: Buffer): number => {
    const n = Math.min(bytes.length, cuts[call++ % cuts.length]!, capacity - size);
    chunks.push(Buffer.from(bytes.subarray(0, n)));
    size += n;
    return n;
  };
  const handle = {
    write: async (buffer: Uint8Array, offset: number, length: number) => ({ bytesWritten: take(Buffer.from(buffer.subarray(offset, offset + length))), buffer }),
    writev: async (buffers: Uint8Array[]) => ({ bytesWritten: take(Buffer.concat(buffers)), buffers }),
  };
  return { handle: handle as unknown as FileHandle, written: () => Buffer.concat(chunks) };
}

const pieces = fc.array(fc.uint8Array({ maxLength: 64 }), { maxLength: 8 }).map((a) => a.map((b) => Buffer.from(b)));
const cuts = fc.array(fc.integer({ min: 1, max: 70 }), { minLength: 1, maxLength: 5 });

describe('writeAll and writevAll', () => {
  it('write everything, however short each call is, or throw ENOSPC having written what fitted', async () => {
    await fc.assert(fc.asyncProperty(pieces, cuts, fc.integer({ min: 0, max: 600 }), fc.boolean(), async (bufs, c, capacity, vectored) => {
      const { handle, written } = fakeFile(c, capacity);
      const whole = Buffer.concat(bufs);
      const write = vectored ? writevAll(handle, bufs, 'f') : (async () => {
        for (const b of bufs) await writeAll(handle, b, 'f');
      })();
      if (whole.length <= capacity) {
        await write;
        expect(written()).toEqual(whole);
      } else {
        await expect(write).rejects.toMatchObject({ code: 'ENOSPC', message: expect.stringMatching(/no space left on device, short write to f/) });
        expect(written()).toEqual(whole.subarray(0, capacity));
      }
    }), propertyParams(300));
  });

  it('writeAll takes a string as its UTF-8 bytes', async () => {
    const { handle, written } = fakeFile([3], 100);
    await writeAll(handle, 'héllo wörld', 'f');
    expect(written().toString('utf8')).toBe('héllo wörld');
  });
});
