// The code fingerprint: `tidemark run` bundles the job with esbuild, hashes the bundle,
// and runs the very bundle it hashed.
//
// What the hash covers (docs/fingerprint.md):
//   - the job's own code and every file it imports by relative path, as bundled;
//   - each third-party package it imports, as `name@version` (resolved from its
//     package.json): upgrading a dependency changes the fingerprint, reinstalling it does not;
//   - not tidemark itself (the on-disk format version covers the engine), and not Node built-ins.
// The bundle is built relative to the job's directory, so moving a project does not change it.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { builtinModules, createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { runInThisContext } from 'node:vm';
import * as esbuild from 'esbuild';
import { BadConfigError } from '../checkpoint/errors';
import { isJob, type Job } from './job';

export interface JobBundle {
  readonly entry: string;
  readonly code: string;
  readonly fingerprint: string;
  /** Third-party packages, `name@version`, sorted. */
  readonly packages: readonly string[];
}

function packageName(specifier: string): string | undefined {
  if (specifier.startsWith('node:') || specifier.startsWith('.') || specifier.startsWith('/')) return undefined;
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0];
}

function packageVersion(name: string, fromDir: string): string {
  const req = createRequire(join(fromDir, 'noop.js'));
  let dir: string;
  try {
    dir = dirname(req.resolve(name));
  } catch {
    return 'unresolved';
  }
  for (; ;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg)) {
      const json = JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string; version?: string };
      if (json.name === name) return json.version ?? 'unknown';
    }
    const up = dirname(dir);
    if (up === dir) return 'unknown';
    dir = up;
  }
}

const BUILTINS = new Set(builtinModules);

export async function bundleJob(entryFile: string): Promise<JobBundle> {
  const entry = resolve(entryFile);
  if (!existsSync(entry)) throw new BadConfigError(`Job file ${entryFile} does not exist.`);
  const workDir = dirname(entry);
  let result: esbuild.BuildResult & { metafile: esbuild.Metafile; outputFiles: esbuild.OutputFile[] };
  try {
    result = await esbuild.build({
      entryPoints: [entry], absWorkingDir: workDir, bundle: true, platform: 'node', format: 'cjs', target: 'node20',
      packages: 'external', write: false, metafile: true, logLevel: 'silent', outdir: 'out',
    });
  } catch (err) {
    const messages = (err as { errors?: esbuild.Message[] }).errors ?? [];
    const first = messages[0];
    const at = first?.location ? `${first.location.file}:${first.location.line}: ` : '';
    throw new BadConfigError(`Job file ${entryFile} does not build: ${at}${first?.text ?? (err as Error).message}`);
  }
  const code = result.outputFiles[0]!.text;
  const names = new Set<string>();
  for (const output of Object.values(result.metafile.outputs)) {
    for (const imp of output.imports) {
      const name = imp.external ? packageName(imp.path) : undefined;
      if (name && name !== 'tidemark' && !BUILTINS.has(name)) names.add(name);
    }
  }
  const packages = [...names].sort().map((n) => `${n}@${packageVersion(n, workDir)}`);
  const hash = createHash('sha256').update(code).update('\0').update(packages.join('\n')).digest('hex');
  return { entry, code, fingerprint: `sha256:${hash.slice(0, 16)}`, packages };
}

/** The fingerprint a library user passes to `new Engine(job, { fingerprint })`. */
export async function fingerprintOf(entryFile: string): Promise<string> {
  return (await bundleJob(entryFile)).fingerprint;
}

/**
 * Runs a bundle and returns the job it exports (`export default defineJob(...)` or
 * `export const job`). `import 'tidemark'` inside it gets `api`, this process's tidemark.
 */
export function loadJob(bundle: JobBundle, api: object): Job<unknown> {
  const req = createRequire(bundle.entry);
  const module = { exports: {} as Record<string, unknown> };
  const wrapped = runInThisContext(`(function (exports, require, module, __filename, __dirname) {${bundle.code}\n})`, { filename: bundle.entry }) as
    (e: object, r: (id: string) => unknown, m: object, f: string, d: string) => void;
  wrapped(module.exports, (id: string) => (id === 'tidemark' ? api : req(id)), module, bundle.entry, dirname(bundle.entry));
  const exported = module.exports.default ?? module.exports.job;
  if (!isJob(exported)) {
    throw new BadConfigError(`Job file ${bundle.entry} does not export a job: write \`export default defineJob({ ... })\` (from 'tidemark').`);
  }
  return exported;
}
