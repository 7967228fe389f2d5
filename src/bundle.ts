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
//
// A job is bundled as CommonJS, as it always was (so its fingerprint stays what it was),
// unless CommonJS cannot hold it: top-level `await`, or an import of a package that is an
// ES module. Then it is bundled as an ES module, hashed the same way, and run from a file
// beside the job (so its imports resolve as Node resolves the job's own), removed once loaded.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { builtinModules, createRequire } from 'node:module';
import { basename, dirname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
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
  /** `esm` only for a job CommonJS cannot hold (top-level await, an ES module package). */
  readonly format: 'cjs' | 'esm';
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

type Built = esbuild.BuildResult & { metafile: esbuild.Metafile; outputFiles: esbuild.OutputFile[] };

const TOP_LEVEL_AWAIT = /top-level await/i;

async function build(entry: string, entryFile: string, format: 'cjs' | 'esm'): Promise<Built | 'needs esm'> {
  try {
    return await esbuild.build({
      entryPoints: [entry], absWorkingDir: dirname(entry), bundle: true, platform: 'node', format, target: 'node20',
      packages: 'external', write: false, metafile: true, logLevel: 'silent', outdir: 'out',
    });
  } catch (err) {
    const messages = (err as { errors?: esbuild.Message[] }).errors ?? [];
    if (format === 'cjs' && messages.some((m) => TOP_LEVEL_AWAIT.test(m.text))) return 'needs esm';
    const first = messages[0];
    const at = first?.location ? `${first.location.file}:${first.location.line}: ` : '';
    throw new BadConfigError(`Job file ${entryFile} does not build: ${at}${first?.text ?? (err as Error).message}`);
  }
}

/** Third-party package specifiers a bundle imports (not tidemark, not Node's own). */
function externalImports(result: Built): string[] {
  const specifiers = new Set<string>();
  for (const output of Object.values(result.metafile.outputs)) {
    for (const imp of output.imports) {
      const name = imp.external ? packageName(imp.path) : undefined;
      if (name && name !== 'tidemark' && !BUILTINS.has(name)) specifiers.add(imp.path);
    }
  }
  return [...specifiers].sort();
}

/** Whether `specifier`, imported from `entry`, is an ES module: `require` cannot resolve it, or it resolves to one. */
function isEsModule(specifier: string, entry: string): boolean {
  let file: string;
  try {
    file = createRequire(entry).resolve(specifier);
  } catch {
    return true; // an exports map without a `require` condition; a missing package fails when loaded, as before
  }
  if (file.endsWith('.mjs')) return true;
  if (!file.endsWith('.js')) return false;
  for (let dir = dirname(file); ; dir = dirname(dir)) {
    const json = join(dir, 'package.json');
    if (existsSync(json)) return (JSON.parse(readFileSync(json, 'utf8')) as { type?: string }).type === 'module';
    if (dirname(dir) === dir) return false;
  }
}

export async function bundleJob(entryFile: string): Promise<JobBundle> {
  const entry = resolve(entryFile);
  if (!existsSync(entry)) throw new BadConfigError(`Job file ${entryFile} does not exist.`);
  let format: 'cjs' | 'esm' = 'cjs';
  let result = await build(entry, entryFile, format);
  if (result === 'needs esm' || externalImports(result).some((spec) => isEsModule(spec, entry))) {
    format = 'esm';
    result = await build(entry, entryFile, format);
    if (result === 'needs esm') throw new Error('unreachable: an ES module bundle takes top-level await');
  }
  const code = result.outputFiles[0]!.text;
  const names = [...new Set(externalImports(result).map((spec) => packageName(spec)!))].sort();
  const packages = dependencyClosure(names, dirname(entry));
  const hash = createHash('sha256').update(code).update('\0').update(packages.join('\n')).digest('hex');
  return { entry, code, fingerprint: `sha256:${hash.slice(0, 16)}`, packages, format };
}

/** The fingerprint a library user passes to `new Engine(job, { fingerprint })`. */
export async function fingerprintOf(entryFile: string): Promise<string> {
  return (await bundleJob(entryFile)).fingerprint;
}

/** Where an ES module job finds this process's tidemark (`import 'tidemark'` is pointed at it). */
const API_KEY = 'tidemark.job-api';

/** The source of a module exporting every name of `api`, read from the global set before the import. */
function apiModule(api: object): string {
  const names = Object.keys(api).filter((k) => /^[A-Za-z_$][\w$]*$/.test(k) && k !== 'default');
  return `const api = globalThis[Symbol.for(${JSON.stringify(API_KEY)})];\n` +
    `export const { ${names.join(', ')} } = api;\nexport default api;\n`;
}

/** Evaluates a CommonJS bundle; `require('tidemark')` gets `api`. */
function evaluateCjs(bundle: JobBundle, api: object): Record<string, unknown> {
  const req = createRequire(bundle.entry);
  const module = { exports: {} as Record<string, unknown> };
  const wrapped = runInThisContext(`(function (exports, require, module, __filename, __dirname) {${bundle.code}\n})`, { filename: bundle.entry }) as
    (e: object, r: (id: string) => unknown, m: object, f: string, d: string) => void;
  wrapped(module.exports, (id: string) => (id === 'tidemark' ? api : req(id)), module, bundle.entry, dirname(bundle.entry));
  return module.exports;
}

/**
 * Imports an ES module bundle from a file beside the job, so that its imports resolve from
 * the job's directory; its imports of 'tidemark' are pointed at `api`. The file is removed
 * once the module has loaded.
 */
async function evaluateEsm(bundle: JobBundle, api: object): Promise<Record<string, unknown>> {
  (globalThis as Record<symbol, unknown>)[Symbol.for(API_KEY)] = api;
  const apiUrl = `data:text/javascript,${encodeURIComponent(apiModule(api))}`;
  // esbuild prints every external import as `from "x"`, `import "x"` or `import("x")`.
  const code = bundle.code.replace(/\b(from|import)(\s*\(?\s*)"tidemark"/g, (_m, keyword: string, gap: string) => `${keyword}${gap}${JSON.stringify(apiUrl)}`);
  const file = join(dirname(bundle.entry), `.${basename(bundle.entry)}.tidemark-${bundle.fingerprint.slice(7)}.mjs`);
  try {
    writeFileSync(file, code);
  } catch (err) {
    throw new BadConfigError(`Job file ${bundle.entry} is an ES module (top-level await, or an ES module package), which tidemark runs from a file ` +
      `beside the job, and ${file} cannot be written (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}): make the job's directory writable, ` +
      'or write the job as CommonJS (no top-level await, no ES module-only imports).');
  }
  try {
    return await import(pathToFileURL(file).href) as Record<string, unknown>;
  } finally {
    rmSync(file, { force: true });
  }
}

/**
 * Runs a bundle and returns the job it exports (`export default defineJob(...)` or
 * `export const job`). `import 'tidemark'` inside it gets `api`, this process's tidemark.
 */
export async function loadJob(bundle: JobBundle, api: object): Promise<Job<unknown>> {
  let exports: Record<string, unknown>;
  try {
    exports = bundle.format === 'esm' ? await evaluateEsm(bundle, api) : evaluateCjs(bundle, api);
  } catch (err) {
    if (isTidemarkError(err)) throw err; // e.g. defineJob naming a field of the wrong type
    const message = err instanceof Error ? err.message : String(err);
    // An ES module has no __dirname, __filename or require: say what it has instead (Node's
    // own message varies: "__dirname is not defined", "Cannot determine intended module format").
    const hint = bundle.format === 'esm' && /\b(__dirname|__filename|require)\b/.test(message)
      ? ' (the job is an ES module, for its top-level await or an ES module package: use import.meta.dirname, import.meta.filename, import)' : '';
    const loadError = new BadConfigError(`Job file ${bundle.entry} failed while loading: ${message}${hint}`);
    (loadError as { cause?: unknown }).cause = err;
    throw loadError;
  }
  const exported = exports.default ?? exports.job;
  if (!isJob(exported)) {
    throw new BadConfigError(`Job file ${bundle.entry} does not export a job: write \`export default defineJob({ ... })\` (from 'tidemark').`);
  }
  return exported;
}
