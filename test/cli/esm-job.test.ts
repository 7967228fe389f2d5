// ES module jobs (issue 16): a job with top-level `await`, importing a package that is an
// ES module only (an exports map with just `import`, itself awaiting at top level), runs
// with the real CLI. Such a job is bundled as an ES module; every other job stays CommonJS,
// so its fingerprint is what it was.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { bundleJob } from '../../src/bundle';
import { allOutputs, generatorJob, report, tidemark, write } from '../support/cli';
import { tempDir } from '../support/tmp';

const root = tempDir('tidemark-esm-');
const quiet = ['--log-level', 'warn'];

/** A package that `require` cannot load: ESM only, with top-level await. */
function esmOnlyPackage(project: string): void {
  write(join(project, 'node_modules', 'shouter', 'package.json'), JSON.stringify({ name: 'shouter', version: '1.0.0', type: 'module', exports: { import: './index.js' } }));
  write(join(project, 'node_modules', 'shouter', 'index.js'), "const suffix = await Promise.resolve('!');\nexport const shout = (s) => s.toUpperCase() + suffix;\n");
}

const esmJob = (dir: string, body = ''): string => `import { join } from 'node:path';
import { defineJob, fileSink, generatorSource } from 'tidemark';
import { shout } from 'shouter';
const prefix: string = await Promise.resolve('p');
${body}
export default defineJob<string>({
  name: 'esm',
  source: generatorSource({ partitions: 1, size: 3 }),
  sinks: [fileSink({ dir: join(${JSON.stringify(dir)}, 'out') })],
  transform: (records) => records.map((r) => shout(prefix + r.offset)),
});
`;

describe('ES module jobs', () => {
  it('top-level await and an ESM-only package: runs with tidemark run, leaves nothing beside the job', async () => {
    const dir = join(root, 'tla');
    esmOnlyPackage(dir);
    const file = write(join(dir, 'job.ts'), esmJob(dir));
    const bundle = await bundleJob(file);
    expect(bundle.format).toBe('esm');
    expect(bundle.packages).toEqual(['shouter@1.0.0']);
    expect((await bundleJob(file)).fingerprint).toBe(bundle.fingerprint);

    const r = await tidemark(['run', file, '--checkpoint', join(dir, 'cp'), '--once', ...quiet]);
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    expect(allOutputs(dir)).toEqual(['P0!', 'P1!', 'P2!']);
    expect(report(await tidemark(['inspect', join(dir, 'cp'), '--json'])).fingerprint).toBe(bundle.fingerprint);
    expect(readdirSync(dir).sort()).toEqual(['cp', 'job.ts', 'node_modules', 'out']);
  });

  it('a job CommonJS can hold stays CommonJS (its fingerprint unchanged)', async () => {
    const dir = join(root, 'cjs');
    const bundle = await bundleJob(write(join(dir, 'job.ts'), generatorJob(dir)));
    expect(bundle.format).toBe('cjs');
    expect(bundle.code).toContain('module.exports');
  });

  it('CommonJS names in an ES module job: one message that says what to use instead, exit 2', async () => {
    const dir = join(root, 'dirname');
    esmOnlyPackage(dir);
    const file = write(join(dir, 'job.ts'), esmJob(dir, 'console.log(__dirname);'));
    const r = await tidemark(['run', file, '--checkpoint', join(dir, 'cp'), '--once', ...quiet]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^tidemark: Job file .*job\.ts failed while loading: .*\(the job is an ES module, .*: use import\.meta\.dirname, import\.meta\.filename, import\)$/m);
    expect(r.stderr.split('\n').filter((l) => l !== '')).toHaveLength(1);
    expect(readdirSync(dir).sort()).toEqual(['job.ts', 'node_modules']);
  });
});
