// The code fingerprint end to end: a checkpoint with a batch in flight is refused by
// changed code (with the three ways on), continued with --accept-code-change exactly
// once, and continued freely once drained. Plus what the hash does and does not cover.
import { cpSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fingerprintOf } from 'tidemark';
import { batchFiles, generatorJob, offsets, report, tidemark, write } from '../support/cli';
import { tempDir } from '../support/tmp';

const root = tempDir('tidemark-fp-');
let n = 0;

/** Two versions of one job (outputs `v1:p:o` or `v2:p:o`), sharing a directory and a checkpoint. */
function versions(extra = ''): { dir: string; cp: string; v1: string; v2: string } {
  const dir = join(root, `t${++n}`);
  // One batch in flight: a crash point then leaves exactly one batch in flight, the one these tests name.
  const job = (v: string): string => generatorJob(dir, { partitions: 2, size: 40, maxRecordsPerPartition: 10, maxInFlight: 1, output: `\`${v}:\${r.partition}:\${r.offset}\``, extra });
  return { dir, cp: join(dir, 'cp'), v1: write(join(dir, 'v1', 'job.ts'), job('v1')), v2: write(join(dir, 'v2', 'job.ts'), job('v2')) };
}

/** Outputs per batch, and every offset with its version stripped. */
function outputs(dir: string): { perBatch: Record<number, string>; offsets: string[] } {
  const perBatch: Record<number, string> = {};
  const all: string[] = [];
  for (const [id, lines] of batchFiles(dir)) {
    const strings = lines as string[];
    perBatch[id] = [...new Set(strings.map((s) => s.split(':')[0]))].join(',');
    for (const s of strings) all.push(s.slice(s.indexOf(':') + 1));
  }
  return { perBatch, offsets: all.sort() };
}

const quiet = ['--log-level', 'warn'];

describe('code fingerprint', () => {
  it('a batch in flight is refused by new code; --accept-code-change delivers it as staged and goes on, exactly once', async () => {
    const { dir, cp, v1, v2 } = versions();
    const crashed = await tidemark(['run', v1, '--checkpoint', cp, ...quiet], { env: { TIDEMARK_CRASH_AT: 'staged:2' } });
    expect(crashed.signal).toBe('SIGKILL');
    const old = report(await tidemark(['inspect', cp, '--json'])).fingerprint!;
    const fresh = await fingerprintOf(v2);
    expect(fresh).not.toBe(old);

    const refused = await tidemark(['run', v2, '--checkpoint', cp, '--once']);
    expect(refused.code).toBe(4);
    expect(refused.stderr).toContain(`the checkpoint was written by ${old}, this code is ${fresh}`);
    expect(refused.stderr).toContain('Batch 2 is in flight (staged, ranges generated/0 [10, 20), generated/1 [10, 20))');
    expect(refused.stderr).toContain('finish it with the old code');
    expect(refused.stderr).toContain('SIGTERM');
    expect(refused.stderr).toContain('--accept-code-change');
    expect(refused.stderr).toContain(`tidemark reset ${cp} --discard-in-flight`);
    expect(refused.stderr).not.toMatch(/\n\s+at /);
    expect(outputs(dir).perBatch).toEqual({ 1: 'v1' });

    const accepted = await tidemark(['run', v2, '--checkpoint', cp, '--once', '--accept-code-change', ...quiet]);
    expect(accepted.code).toBe(0);
    const out = outputs(dir);
    expect(out.perBatch).toEqual({ 1: 'v1', 2: 'v1', 3: 'v2', 4: 'v2' });
    expect(out.offsets).toEqual(offsets(2, 0, 40).sort());
    const after = report(await tidemark(['inspect', cp, '--json']));
    expect(after.fingerprint).toBe(fresh);
    expect(after.fingerprints.map((f) => [f.fingerprint, f.note])).toEqual([[old, 'first run'], [fresh, 'accepted with --accept-code-change']]);
  });

  it('a planned batch accepted with --accept-code-change is computed by the new code from its recorded ranges', async () => {
    const { dir, cp, v1, v2 } = versions();
    expect((await tidemark(['run', v1, '--checkpoint', cp, ...quiet], { env: { TIDEMARK_CRASH_AT: 'planned:2' } })).signal).toBe('SIGKILL');
    expect((await tidemark(['run', v2, '--checkpoint', cp, '--once'])).code).toBe(4);
    expect((await tidemark(['run', v2, '--checkpoint', cp, '--once', '--accept-code-change', ...quiet])).code).toBe(0);
    const out = outputs(dir);
    expect(out.perBatch).toEqual({ 1: 'v1', 2: 'v2', 3: 'v2', 4: 'v2' });
    expect(batchFiles(dir).get(2)).toEqual(['v2:0:10', 'v2:0:11', 'v2:0:12', 'v2:0:13', 'v2:0:14', 'v2:0:15', 'v2:0:16', 'v2:0:17', 'v2:0:18', 'v2:0:19',
      'v2:1:10', 'v2:1:11', 'v2:1:12', 'v2:1:13', 'v2:1:14', 'v2:1:15', 'v2:1:16', 'v2:1:17', 'v2:1:18', 'v2:1:19']);
    expect(out.offsets).toEqual(offsets(2, 0, 40).sort());
  });

  it('drained by the old code, the checkpoint continues with the new code and records it', async () => {
    const { dir, cp, v1, v2 } = versions();
    expect((await tidemark(['run', v1, '--checkpoint', cp, ...quiet], { env: { TIDEMARK_CRASH_AT: 'staged:2' } })).signal).toBe('SIGKILL');
    // The old code finishes the batch in flight (a run that stops after one batch: the recovered one).
    const drained = await tidemark(['run', v1, '--checkpoint', cp, '--max-batches', '1']);
    expect(drained.code).toBe(0);
    expect(drained.stdout).toContain('recovering batch 2 (staged)');
    const next = await tidemark(['run', v2, '--checkpoint', cp, '--once']);
    expect(next.code).toBe(0);
    expect(next.stdout).toContain('Continuing: code change, nothing in flight.');
    const out = outputs(dir);
    expect(out.perBatch).toEqual({ 1: 'v1', 2: 'v1', 3: 'v2', 4: 'v2' });
    expect(out.offsets).toEqual(offsets(2, 0, 40).sort());
    expect(report(await tidemark(['inspect', cp, '--json'])).fingerprints.map((f) => f.note)).toEqual(['first run', 'code change, nothing in flight']);
  });

  it('strictCodeVersion refuses new code even with nothing in flight', async () => {
    const { dir, cp, v1, v2 } = versions('strictCodeVersion: true,');
    expect((await tidemark(['run', v1, '--checkpoint', cp, '--max-batches', '1', ...quiet])).code).toBe(0);
    const r = await tidemark(['run', v2, '--checkpoint', cp, '--once']);
    expect(r.code).toBe(4);
    expect(r.stderr).toContain('The job sets strictCodeVersion');
    expect(outputs(dir).perBatch).toEqual({ 1: 'v1' });
  });

  it('codeVersion declares versions compatible by hand: a batch in flight continues under changed code', async () => {
    const { dir, cp, v1, v2 } = versions("codeVersion: '2024-06',");
    expect((await tidemark(['run', v1, '--checkpoint', cp, ...quiet], { env: { TIDEMARK_CRASH_AT: 'staged:2' } })).signal).toBe('SIGKILL');
    expect((await tidemark(['run', v2, '--checkpoint', cp, '--once', ...quiet])).code).toBe(0);
    expect(outputs(dir).perBatch).toEqual({ 1: 'v1', 2: 'v1', 3: 'v2', 4: 'v2' });
    const r = report(await tidemark(['inspect', cp, '--json']));
    expect(r.fingerprint).toBe('codeVersion:2024-06');
    expect(r.fingerprints).toHaveLength(1);
  });

  describe('what the hash covers (fingerprintOf, the helper for library users)', () => {
    const project = join(root, 'project');
    const job = (body: string): string => write(join(project, 'job.ts'), `import { defineJob, fileSink, generatorSource } from 'tidemark';
import { shout } from './lib';
import { pad } from 'padder';
${body}
export default defineJob({
  name: 'fp', source: generatorSource({ partitions: 1, size: 1 }), sinks: [fileSink({ dir: 'out' })],
  transform: (records) => records.map((r) => pad(shout(String(r.offset)))),
});
`);
    const pkg = (dir: string, name: string, version: string, deps: Record<string, string> = {}, code = 'exports.x = 1;'): void => {
      mkdirSync(dir, { recursive: true });
      write(join(dir, 'package.json'), JSON.stringify({ name, version, main: 'index.js', dependencies: deps }));
      write(join(dir, 'index.js'), code);
    };
    beforeAll(() => {
      write(join(project, 'lib.ts'), 'export const shout = (s: string): string => s.toUpperCase();\n');
      pkg(join(project, 'node_modules', 'padder'), 'padder', '1.0.0', { 'left-pad': '^1.0.0' }, "exports.pad = (s) => require('left-pad')(s, 8);");
      pkg(join(project, 'node_modules', 'left-pad'), 'left-pad', '1.1.0', {}, 'module.exports = (s, n) => String(s).padStart(n);');
    });

    it('ignores comments, formatting and types; follows the code, imported files, and every dependency version', async () => {
      const base = await fingerprintOf(job(''));
      expect(base).toMatch(/^sha256:[0-9a-f]{16}$/);
      expect(await fingerprintOf(job('// a comment\n/* another */\ntype Unused = { a: number };'))).toBe(base);
      expect(await fingerprintOf(job("console.log('loaded');"))).not.toBe(base);
      job('');
      write(join(project, 'lib.ts'), 'export const shout = (s: string): string => s.toLowerCase();\n');
      const lib = await fingerprintOf(join(project, 'job.ts'));
      expect(lib).not.toBe(base);
      write(join(project, 'lib.ts'), 'export const shout = (s: string): string => s.toUpperCase();\n');
      expect(await fingerprintOf(join(project, 'job.ts'))).toBe(base);
      // A dependency's version, even a transitive one, is part of it; a reinstall of the same versions is not.
      pkg(join(project, 'node_modules', 'left-pad'), 'left-pad', '1.3.0', {}, 'module.exports = (s, n) => String(s).padStart(n);');
      const transitive = await fingerprintOf(join(project, 'job.ts'));
      expect(transitive).not.toBe(base);
      pkg(join(project, 'node_modules', 'padder'), 'padder', '2.0.0', { 'left-pad': '^1.0.0' }, "exports.pad = (s) => require('left-pad')(s, 8);");
      const direct = await fingerprintOf(join(project, 'job.ts'));
      expect(new Set([base, transitive, direct]).size).toBe(3);
      pkg(join(project, 'node_modules', 'padder'), 'padder', '2.0.0', { 'left-pad': '^1.0.0' }, "exports.pad = (s) => require('left-pad')(s, 8);");
      expect(await fingerprintOf(join(project, 'job.ts'))).toBe(direct);
      // Moving the whole project elsewhere does not change it.
      const moved = join(root, 'elsewhere', 'project');
      cpSync(project, moved, { recursive: true });
      expect(await fingerprintOf(join(moved, 'job.ts'))).toBe(direct);
    });

    it('is what `tidemark run` records in the checkpoint', async () => {
      const dir = join(root, 'same');
      const file = write(join(dir, 'job.ts'), generatorJob(dir, { size: 5 }));
      expect((await tidemark(['run', file, '--checkpoint', join(dir, 'cp'), '--once', ...quiet])).code).toBe(0);
      expect(report(await tidemark(['inspect', join(dir, 'cp'), '--json'])).fingerprint).toBe(await fingerprintOf(file));
    });
  });
});
