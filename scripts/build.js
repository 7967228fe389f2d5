'use strict';
// Builds dist/ (the library and the CLI) with esbuild. Run by `npm ci` (prepare),
// `npm start`, and jest's global setup, so a fresh clone never runs stale code.
const path = require('node:path');
const esbuild = require('esbuild');

const root = path.join(__dirname, '..');
esbuild.buildSync({
  entryPoints: { index: path.join(root, 'src/index.ts'), testing: path.join(root, 'src/testing.ts'), cli: path.join(root, 'src/cli/main.ts') },
  outdir: path.join(root, 'dist'),
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  packages: 'external',
  sourcemap: true,
  logLevel: 'warning',
});
