// The code fingerprint: `tidemark run` bundles the job with esbuild, hashes the bundle,
// and runs the very bundle it hashed.
//
// What the hash covers (docs/fingerprint.md):
//   - the job's own code and every file it imports by relative path, as bundled (types and
//     comments are gone, formatting is esbuild's, file paths are relative to the job's directory);
//   - each third-party package it imports, and every package those depend on, as
//     `name@version` resolved from node_modules: upgrading a dependency, even a transitive
//     one, changes the fingerprint; reinstalling the same versions does not;
//   - not tidemark itself (the on-disk format version covers the engine), and not Node built-ins.
// So moving a project does not change it; renaming a job file does (a false alarm, on the safe side).
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, realpathSync } from 'node:fs';
import { builtinModules, createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { runInThisContext } from 'node:vm';
import * as esbuild from 'esbuild';
import { BadConfigError, isTidemarkError } from '../checkpoint/errors';
import { isJob, type Job } from './job';

export interface JobBundle {
  readonly entry: string;
  readonly code: string;
  readonly fingerprint: string;
  /** Third-party packages the job imports and everything they depend on, `name@version`, sorted. */
  readonly packages: readonly string[];
}

function packageName(specifier: string): string | undefined {
  if (specifier.startsWith('node:') || specifier.startsWith('.') || specifier.startsWith('/')) return undefined;
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0];
}

interface PackageJson {
  readonly version?: string;
  readonly dependencies?: Record<string, string>;
  readonly optionalDependencies?: Record<string, string>;
  readonly peerDependencies?: Record<string, string>;
}

/** The directory of package `name` as Node resolves it from `fromDir` (node_modules up the tree), real path. */
function packageDir(name: string, fromDir: string): string | undefined {
  for (let dir = fromDir; ; dir = dirname(dir)) {
    const candidate = join(dir, 'node_modules', name);
    if (existsSync(join(candidate, 'package.json'))) return realpathSync(candidate);
    if (dirname(dir) === dir) return undefined;
  }
}

/**
 * `name@version` of the given packages and, transitively, of every package they depend
 * on, each resolved from the directory of the package that needs it (as Node would).
 */
function dependencyClosure(names: readonly string[], fromDir: string): string[] {
  const found = new Set<string>();
  const seenDirs = new Set<string>();
  const visit = (name: string, from: string, required: boolean): void => {
    const dir = packageDir(name, from);
    if (dir === undefined) {
      if (required) found.add(`${name}@unresolved`);
      return;
    }
    if (seenDirs.has(dir)) return;
    seenDirs.add(dir);
    let json: PackageJson;
    try {
      json = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as PackageJson;
    } catch {
      found.add(`${name}@unreadable`);
      return;
    }
    found.add(`${name}@${json.version ?? 'unknown'}`);
    for (const dep of Object.keys(json.dependencies ?? {})) visit(dep, dir, true);
    // Optional and peer dependencies count when they are installed.
    for (const dep of [...Object.keys(json.optionalDependencies ?? {}), ...Object.keys(json.peerDependencies ?? {})]) visit(dep, dir, false);
  };
  for (const name of names) visit(name, fromDir, true);
  return [...found].sort();
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
  const packages = dependencyClosure([...names].sort(), workDir);
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
  try {
    wrapped(module.exports, (id: string) => (id === 'tidemark' ? api : req(id)), module, bundle.entry, dirname(bundle.entry));
  } catch (err) {
    if (isTidemarkError(err)) throw err; // e.g. defineJob naming a field of the wrong type
    const loadError = new BadConfigError(`Job file ${bundle.entry} failed while loading: ${err instanceof Error ? err.message : String(err)}`);
    (loadError as { cause?: unknown }).cause = err;
    throw loadError;
  }
  const exported = module.exports.default ?? module.exports.job;
  if (!isJob(exported)) {
    throw new BadConfigError(`Job file ${bundle.entry} does not export a job: write \`export default defineJob({ ... })\` (from 'tidemark').`);
  }
  return exported;
}
