// What is delivered is what was staged (DESIGN.md): for any outputs a transform returns,
// either the stage step refuses them with a TransformError naming the batch and the first
// output v8 would not give back unchanged, or the first delivery (live values) and a
// redelivery after a crash at `delivered:<sink>` (values decoded from the checkpoint) hand
// the sink the same values, prototypes included. The oracle for "unchanged" is
// v8.deserialize(v8.serialize(x)) compared by shape, not the code under test.
import * as fc from 'fast-check';
import { deserialize, serialize } from 'node:v8';
import { CheckpointStore } from '../../checkpoint/store';
import { defineJob, Engine, type Sink, type SinkBatch } from 'tidemark';
import { MemoryLog } from '../support/memory-source';
import { PowerLossKV } from '../support/power-loss-kv';
import { propertyParams } from './params';

class Click {
  constructor(readonly page: string, readonly at: Date) {}
  toJSON(): unknown {
    return { page: this.page.toUpperCase(), day: this.at.toISOString().slice(0, 10) };
  }
}
class Point {
  constructor(readonly x: number, readonly y: number) {}
}

/**
 * A value as a tree: primitives by type and Object.is, objects by their prototype's name,
 * tag and own enumerable entries (Map and Set entries, array holes), cycles as references
 * to the ancestor (deep equality: an object shared by two outputs is not one object after
 * staging). Names, not identities: v8.deserialize builds objects in Node's realm, not jest's.
 */
function shape(v: unknown, ancestors: object[] = []): unknown {
  if (typeof v === 'number') return ['number', Object.is(v, -0) ? '-0' : String(v)];
  if (typeof v === 'bigint') return ['bigint', v.toString()];
  if (typeof v === 'function' || typeof v === 'symbol') return [typeof v, String(v)];
  if (typeof v !== 'object' || v === null) return [typeof v, v];
  if (ancestors.includes(v)) return ['ancestor', ancestors.length - ancestors.indexOf(v)];
  const seen = [...ancestors, v];
  const proto = Object.getPrototypeOf(v) as { constructor?: { name?: string } } | null;
  const kind = [proto === null ? 'null' : proto.constructor?.name ?? '?', Object.prototype.toString.call(v)];
  if (ArrayBuffer.isView(v)) return [...kind, Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('hex')];
  if (v instanceof Date || Object.prototype.toString.call(v) === '[object Date]') return [...kind, (v as Date).getTime()];
  const entries = kind[1] === '[object Map]' ? [...(v as Map<unknown, unknown>)].map(([k, x]) => [shape(k, seen), shape(x, seen)])
    : kind[1] === '[object Set]' ? [...(v as Set<unknown>)].map((x) => shape(x, seen))
      : [];
  const boxed = ['[object Number]', '[object String]', '[object Boolean]'].includes(kind[1]!) ? String((v as { valueOf(): unknown }).valueOf()) : '';
  return [...kind, boxed, entries, Object.entries(v).map(([k, x]) => [k, shape(x, seen)])];
}

/** Whether v8 gives `v` back unchanged (throwing: no). */
function roundTrips(v: unknown): boolean {
  try {
    return JSON.stringify(shape(deserialize(serialize(v)))) === JSON.stringify(shape(v));
  } catch {
    return false;
  }
}

const odd = fc.oneof(
  fc.constant(() => 1),
  fc.string({ maxLength: 3 }).map((s) => Symbol(s)),
  fc.tuple(fc.string({ maxLength: 4 }), fc.date({ noInvalidDate: true })).map(([p, d]) => new Click(p, d)),
  fc.tuple(fc.integer(), fc.integer()).map(([x, y]) => new Point(x, y)),
  fc.uint8Array({ maxLength: 8 }).map((a) => Buffer.from(a)),
  fc.bigInt(),
);
const leaf = fc.oneof({ weight: 4, arbitrary: fc.oneof(fc.string(), fc.double(), fc.integer(), fc.boolean(), fc.constant(null), fc.constant(undefined)) }, { weight: 1, arbitrary: odd });
const anything = fc.anything({
  maxDepth: 3, maxKeys: 4, values: [leaf],
  withBigInt: true, withDate: true, withMap: true, withSet: true, withTypedArray: true, withBoxedValues: true,
  withNullPrototype: true, withSparseArray: true,
});
/** With a cycle through the object, sometimes. */
const maybeCyclic = fc.tuple(anything, fc.boolean()).map(([v, cycle]) => {
  if (cycle && typeof v === 'object' && v !== null && Object.getPrototypeOf(v) === Object.prototype) (v as Record<string, unknown>).self = v;
  return v;
});
/** Flat records of one shape (the column layout) with, sometimes, one odd cell. */
const flat = fc.tuple(fc.integer({ min: 1, max: 20 }), fc.option(fc.tuple(fc.nat(19), odd), { freq: 2 })).map(([n, bad]) => {
  const rows: Array<Record<string, unknown>> = Array.from({ length: n }, (_, i) => ({ key: Buffer.from(`k${i}`), page: `/p${i % 3}`, n: i }));
  if (bad) rows[bad[0] % n]!.page = bad[1];
  return rows;
});
const outputsArb = fc.oneof(fc.array(maybeCyclic, { minLength: 1, maxLength: 6 }), flat);

class Recording implements Sink<unknown> {
  readonly name = 'rec';
  readonly shapes: string[] = [];
  async write(batch: SinkBatch<unknown>): Promise<void> {
    this.shapes.push(JSON.stringify(batch.outputs.map((o) => shape(o))));
  }
}

class Crash extends Error {}

test('a redelivery hands sinks the values of the first delivery, or the stage refuses the first unfaithful output', async () => {
  await fc.assert(fc.asyncProperty(outputsArb, async (outputs) => {
    const kv = new PowerLossKV();
    const log = new MemoryLog('t', 1);
    log.append(0, 1);
    const sink = new Recording();
    const job = defineJob({ name: 'staged', source: log, sinks: [sink], transform: () => outputs, checkpoint: { retainBatches: 10 } });
    const engine = (crashAt?: string): Engine<unknown> => new Engine(job, {
      store: new CheckpointStore(kv, 'prop', { retainBatches: 10, chunkSize: 4 }),
      crashPoint: (phase) => {
        if (phase === crashAt) throw new Crash(phase);
      },
    });
    const first = outputs.findIndex((o) => !roundTrips(o));
    const run = engine('delivered:rec').run({ once: true });
    if (first >= 0) {
      await expect(run).rejects.toMatchObject({ code: 'TIDEMARK_TRANSFORM_FAILED', message: expect.stringContaining(`batch 1 at output #${first} of ${outputs.length}:`) as unknown });
      expect(sink.shapes).toEqual([]);
      return;
    }
    await expect(run).rejects.toBeInstanceOf(Crash);
    await engine().run({ once: true });
    expect(sink.shapes).toHaveLength(2);
    expect(sink.shapes[1]).toBe(sink.shapes[0]);
  }), propertyParams(150));
});
