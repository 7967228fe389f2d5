// Self time of a `node --cpu-prof` profile by area: each sample counts for the nearest frame,
// from the leaf up, that is kafkajs's or in one of the bundle's source files (esbuild marks
// each with a `// <path>.ts` line); GC, idle and the rest as V8 names them.
//
//   node --cpu-prof --cpu-prof-dir=D dist/bench/rows/node-row.js --row file … --once --stage true
//   node scripts/run-ts.js bench/profile-areas.ts D/CPU.….cpuprofile dist/bench/rows/node-row.js
//
// A worker thread writes its own profile; pass its bundle (dist/bench/rows/read-worker.js).
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';

interface Frame { functionName: string; url: string; lineNumber: number }
interface ProfileNode { id: number; callFrame: Frame; children?: number[] }
interface Profile { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[] }

const [profilePath, bundlePath] = process.argv.slice(2);
if (!profilePath || !bundlePath) throw new Error('usage: profile-areas.ts <profile.cpuprofile> <bundle.js>');
const profile = JSON.parse(readFileSync(profilePath, 'utf8')) as Profile;
const bundle = basename(bundlePath);
// [first line (0-based), source file] of each section of the bundle, in order.
const sections: [number, string][] = [];
readFileSync(bundlePath, 'utf8').split('\n').forEach((line, i) => {
  const m = /^\/\/ ((?:src|checkpoint|recovery|bench)\/.*\.ts)$/.exec(line);
  if (m) sections.push([i, m[1]!]);
});
const sectionOf = (line: number): string => {
  let name = '(bundle prelude)';
  for (const [at, file] of sections) if (at <= line) name = file; else break;
  return name;
};

const byId = new Map<number, ProfileNode>();
const parent = new Map<number, number>();
for (const n of profile.nodes) {
  byId.set(n.id, n);
  for (const c of n.children ?? []) parent.set(c, n.id);
}
const V8_NAMES = new Set(['(garbage collector)', '(idle)', '(program)']);

function area(id: number): string {
  const leaf = byId.get(id)!.callFrame;
  if (V8_NAMES.has(leaf.functionName)) return leaf.functionName;
  for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
    const f = byId.get(cur)!.callFrame;
    if (f.url.endsWith(bundle)) return sectionOf(f.lineNumber);
    if (f.url.includes('/kafkajs/')) return 'kafkajs';
    if (f.url.includes('-level/')) return 'LevelDB (JS side)';
  }
  return leaf.url.startsWith('node:internal/modules') ? 'module loading' : `other: ${leaf.functionName || '(anonymous)'} ${leaf.url}`;
}

const total = new Map<string, number>();
let all = 0;
profile.samples.forEach((id, i) => {
  const us = profile.timeDeltas[i] ?? 0;
  all += us;
  const a = area(id);
  total.set(a, (total.get(a) ?? 0) + us);
});
console.log(`| area | ms | share |\n| --- | ---: | ---: |`);
for (const [a, us] of [...total].sort((x, y) => y[1] - x[1]).slice(0, 30)) {
  console.log(`| ${a} | ${Math.round(us / 1000).toLocaleString('en')} | ${(100 * us / all).toFixed(1)} % |`);
}
console.log(`| (all samples) | ${Math.round(all / 1000).toLocaleString('en')} | |`);
