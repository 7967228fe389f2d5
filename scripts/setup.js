#!/usr/bin/env node
'use strict';
// Makes `npm start` and `npm test` work on a fresh clone with nothing else typed:
// installs the npm dependencies when node_modules is missing or older than the lock file
// (`npm ci`), for `npm test` also the system packages the test servers need
// (scripts/install-system-deps: Java, Maven, PostgreSQL, chromium), then builds dist/.
//   node scripts/setup.js [--system]
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.join(__dirname, '..');
const installed = path.join(root, 'node_modules', '.package-lock.json');
const lock = path.join(root, 'package-lock.json');
const run = (cmd, args) => execFileSync(cmd, args, { cwd: root, stdio: 'inherit' });

if (process.argv.includes('--system')) run('bash', [path.join(__dirname, 'install-system-deps')]);
const linked = fs.lstatSync(path.join(root, 'node_modules'), { throwIfNoEntry: false })?.isSymbolicLink() === true;
// A node_modules that links to another checkout's (a git worktree) belongs to that checkout:
// `npm ci` here would empty it for every checkout that shares it (it did, on 2026-11-30).
if (linked) {
  require('./build.js');
} else if (!fs.existsSync(installed) || fs.statSync(installed).mtimeMs < fs.statSync(lock).mtimeMs) {
  console.error('setup: installing the npm dependencies (npm ci)');
  run('npm', ['ci', '--no-audit', '--no-fund']); // also builds dist/ (prepare)
} else {
  require('./build.js');
}
