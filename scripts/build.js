'use strict';
// Builds dist/ (the library and the CLI) with esbuild. Run by `npm ci` (prepare),
// `npm start`, and jest's global setup, so a fresh clone never runs stale code.
// `--types` (npm run build, prepare, and so `npm pack`) also emits the declarations of the
// public API into dist/types with tsc (tsconfig.build.json): a few seconds, which the
// test runs do not need.
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const esbuild = require('esbuild');

const root = path.join(__dirname, '..');
esbuild.buildSync({
  entryPoints: { index: path.join(root, 'src/index.ts'), testing: path.join(root, 'src/testing.ts'), cli: path.join(root, 'src/cli/main.ts') },
  outdir: path.join(root, 'dist'),
  bundle: true,
  platform: 'node',
  target: 'node22',
  format: 'cjs',
  packages: 'external',
  sourcemap: true,
  logLevel: 'warning',
});

// The status page the metrics port serves (src/status.ts): its script with uPlot, and their
// CSS, for the browser; no CDN, nothing fetched at run time.
const page = path.join(root, 'dist', 'status-page');
esbuild.buildSync({
  entryPoints: { main: path.join(root, 'src/status-page/main.ts') },
  outdir: page,
  bundle: true,
  platform: 'browser',
  target: 'es2020',
  format: 'iife',
  minify: true,
  logLevel: 'warning',
});
fs.copyFileSync(path.join(root, 'src/status-page/index.html'), path.join(page, 'index.html'));

if (require.main === module && process.argv.includes('--types')) {
  fs.rmSync(path.join(root, 'dist', 'types'), { recursive: true, force: true });
  execFileSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', path.join(root, 'tsconfig.build.json')], { stdio: 'inherit' });
}
