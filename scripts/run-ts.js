#!/usr/bin/env node
'use strict';
// Runs a TypeScript entry (benchmarks, the torture driver) without a build step: esbuild
// bundles it in memory (packages stay external, `tidemark` resolves to src/) and Node runs it.
//   node scripts/run-ts.js bench/codec.ts [args...]
const path = require('node:path');
const Module = require('node:module');
const esbuild = require('esbuild');

const entry = process.argv[2];
if (!entry) {
  console.error('usage: node scripts/run-ts.js <file.ts> [args...]');
  process.exit(2);
}
const file = path.resolve(entry);
const root = path.join(__dirname, '..');
const out = esbuild.buildSync({
  entryPoints: [file], bundle: true, platform: 'node', target: 'node20', format: 'cjs', write: false,
  packages: 'external', sourcemap: 'inline', alias: { tidemark: path.join(root, 'src/index.ts') }, logLevel: 'warning',
});
process.argv.splice(1, 2, file);
const m = new Module(file, module);
m.filename = file;
m.paths = Module._nodeModulePaths(path.dirname(file));
m._compile(out.outputFiles[0].text, file);
