#!/usr/bin/env node
'use strict';
// Runs a Node script on a supported Node: `npm start` and `npm test` go through here, so on
// a machine whose system node is older than 22 (Node 20 is end-of-life since 2026-04-30;
// Debian ships 18) they install Node 24 from the npm registry (scripts/node) and run on it.
// TIDEMARK_NODE=<major> asks for that major whatever the system node is (CI: .ci/run).
//   node scripts/supported-node.js <script.js> [args…]
const { execFileSync, spawn } = require('node:child_process');
const { constants } = require('node:os');
const path = require('node:path');

const OLDEST = 22;
const PREFERRED = 24;
const [script, ...args] = process.argv.slice(2);
const major = Number(process.versions.node.split('.')[0]);
const wanted = process.env.TIDEMARK_NODE ? Number(process.env.TIDEMARK_NODE) : major >= OLDEST ? major : PREFERRED;

if (wanted === major) {
  // In this process: the script sees the arguments it was given.
  process.argv = [process.argv[0], path.resolve(script), ...args];
  require(path.resolve(script));
} else {
  if (major < OLDEST) console.error(`supported-node: Node ${process.versions.node} is older than ${OLDEST}: running on Node ${wanted}`);
  const node = execFileSync('bash', [path.join(__dirname, 'node'), String(wanted)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim();
  const child = spawn(node, [script, ...args], { stdio: 'inherit' });
  // A terminal's Ctrl-C reaches the child by itself (passing it on would be a second signal,
  // which exits at once); a SIGTERM sent to this process alone is passed on.
  process.on('SIGINT', () => {});
  process.on('SIGTERM', () => child.kill('SIGTERM'));
  child.on('exit', (code, signal) => process.exit(code ?? 128 + (signal ? constants.signals[signal] : 0)));
}
