// The package as a user gets it (issue 16): `npm pack`, installed into a fresh project that
// holds nothing of this repository, a job in strict TypeScript type-checked against the
// shipped declarations WITHOUT skipLibCheck (so no module declaration of tidemark's
// internals may leak into them), then run with `npx tidemark run` on the embedded log.
// npm takes the dependencies from its cache, else from the registry (--prefer-offline).
import { execFile } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { childEnv, ROOT } from '../support/cli';
import { tempDir } from '../support/tmp';

const exec = promisify(execFile);

/**
 * The child's environment without the npm_* variables of an enclosing `npm test`, which
 * would point npm at this repository, and without NODE_V8_COVERAGE: the installed copy runs
 * from outside dist/, so scripts/coverage.js cannot count it, and measuring npm and tsc made
 * the test three times slower (87 s instead of 30 s on 2026-11-30).
 */
function env(): NodeJS.ProcessEnv {
  const keep = /^npm_config_(cache|registry|userconfig)$/i;
  return Object.fromEntries(Object.entries(childEnv()).filter(([k]) => (!/^npm_/i.test(k) || keep.test(k)) && k !== 'NODE_V8_COVERAGE'));
}

async function run(cwd: string, file: string, args: readonly string[]): Promise<{ stdout: string; stderr: string }> {
  try {
    return await exec(file, args, { cwd, env: env(), maxBuffer: 64 << 20 });
  } catch (err) {
    const e = err as Error & { stdout?: string; stderr?: string };
    throw new Error(`${file} ${args.join(' ')} failed in ${cwd}: ${e.message}\n${e.stdout ?? ''}\n${e.stderr ?? ''}`);
  }
}

const version = (pkg: string): string => (JSON.parse(readFileSync(join(ROOT, 'node_modules', pkg, 'package.json'), 'utf8')) as { version: string }).version;

const JOB = `import { defineJob, embeddedLogSource, fileSink, type SourceRecord } from 'tidemark';

interface Shout {
  readonly offset: number;
  readonly text: string;
}

const shout = (r: SourceRecord): Shout => ({ offset: r.offset, text: r.value!.toString().toUpperCase() });

export default defineJob<Shout>({
  name: 'shout',
  source: embeddedLogSource({ dir: 'data/log', topic: 'words', partitions: 1, seedIfEmpty: () => ['a', 'b', 'c'].map((value) => ({ value })) }),
  sinks: [fileSink({ dir: 'data/out' })],
  transform: (records) => records.map(shout),
});
`;

const CHECK = `import { memorySink } from 'tidemark';
import { checkIdempotentSink } from 'tidemark/testing';

async function main(): Promise<void> {
  const sink = memorySink<number>();
  const report = await checkIdempotentSink({ sink: () => sink, batches: [[1, 2], [3]], read: async () => sink.all() });
  console.log(JSON.stringify(report));
}
void main();
`;

describe('the packed tarball, installed into a fresh project', () => {
  const dir = tempDir('tidemark-package-');

  it('type-checks a strict job without skipLibCheck, and runs it with npx tidemark run', async () => {
    // The declarations (the esbuild part of dist/ is built by jest's global setup).
    await run(ROOT, process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json']);
    const packed = JSON.parse((await run(ROOT, 'npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir])).stdout) as Array<{ filename: string; files: Array<{ path: string }> }>;
    const tarball = join(dir, packed[0]!.filename);
    const files = packed[0]!.files.map((f) => f.path);
    expect(files).toEqual(expect.arrayContaining(['bin/tidemark.js', 'dist/cli.js', 'dist/index.js', 'dist/testing.js', 'dist/types/src/index.d.ts', 'dist/types/src/testing.d.ts']));
    expect(files.filter((f) => /^(src|test|checkpoint|recovery|scripts)\//.test(f) || f.endsWith('.map'))).toEqual([]);

    const app = join(dir, 'app');
    mkdirSync(app);
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true }));
    await run(app, 'npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', tarball, `typescript@${version('typescript')}`, `@types/node@${version('@types/node')}`]);
    expect(statSync(join(app, 'node_modules', 'tidemark')).isDirectory()).toBe(true); // a copy, not a link to this repository

    writeFileSync(join(app, 'job.ts'), JOB);
    writeFileSync(join(app, 'check.ts'), CHECK);
    const tsc = join(app, 'node_modules/typescript/bin/tsc');
    // Both module resolutions a user may have: Node's (the exports map) and the classic one (types, typesVersions).
    for (const [module, resolution] of [['nodenext', 'nodenext'], ['commonjs', 'node10']] as const) {
      await run(app, process.execPath, [tsc, '--strict', '--skipLibCheck', 'false', '--noEmit', '--module', module, '--moduleResolution', resolution,
        '--target', 'es2022', '--types', 'node', 'job.ts', 'check.ts']);
    }
    await run(app, process.execPath, [tsc, '--strict', '--module', 'commonjs', '--target', 'es2022', '--types', 'node', 'check.ts']);
    expect(JSON.parse((await run(app, process.execPath, ['check.js'])).stdout)).toMatchObject({ instances: 2, checks: expect.any(Number) });

    const first = await run(app, 'npx', ['--no-install', 'tidemark', 'run', 'job.ts', '--checkpoint', 'data/cp', '--once', '--log-level', 'warn']);
    expect(first.stderr).toBe('');
    await run(app, 'npx', ['--no-install', 'tidemark', 'log', 'append', 'data/log', '--topic', 'words', 'd']);
    await run(app, 'npx', ['--no-install', 'tidemark', 'run', 'job.ts', '--checkpoint', 'data/cp', '--once', '--log-level', 'warn']);
    const out = readdirSync(join(app, 'data/out/files')).filter((f) => f.startsWith('batch-')).sort();
    const lines = out.flatMap((f) => readFileSync(join(app, 'data/out/files', f), 'utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as unknown));
    expect(out).toEqual(['batch-1.jsonl', 'batch-2.jsonl']);
    expect(lines).toEqual([{ offset: 0, text: 'A' }, { offset: 1, text: 'B' }, { offset: 2, text: 'C' }, { offset: 3, text: 'D' }]);
  });
});
