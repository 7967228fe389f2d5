// The status page's own cost in the daemon (src/status.ts), over 10,000 partitions: the
// sample taken every second (rates, the 10 most lagging partitions) and building /status.json
// with a full history (300 samples, 120 batches of 10,000 ranges each).
//   node scripts/run-ts.js bench/status-cost.ts
import { StatusPage } from '../src/status';
const lag: Record<string, number> = {};
for (let p = 0; p < 10_000; p++) lag[`topic/${p}`] = (p * 7919) % 10_007;
let t = 0;
const page = new StatusPage({
  engine: { status: () => ({ recovered: true, stopping: false, lockHeld: true, lastCommitted: 1, positions: {}, lag, progressAt: 0 }), checkpoint: () => ({ meta: undefined, inFlight: undefined }) },
  job: 'j', checkpointDir: '/nonexistent', checkpointBytes: () => 1, readiness: () => ({ ready: true, reason: 'ok' }), now: () => t,
});
const ranges = Array.from({ length: 10_000 }, (_, p) => ({ topic: 'topic', partition: p, from: 0, until: 10 }));
for (let i = 0; i < 300; i++) { page.observe({ id: i + 1, ranges, records: 10, bytesIn: 0, outputs: 10, bytesOut: 0, deadLetters: 0, recovered: false, durations: { plan: 1, read: 1, transform: 1, stage: 1, deliver: 1, commit: 1 }, lag: {} }); t += 1000; page.sample(); }
let s = performance.now();
for (let i = 0; i < 100; i++) page.sample();
console.log('sample() over 10,000 partitions:', ((performance.now() - s) / 100).toFixed(2), 'ms');
s = performance.now();
let bytes = 0;
for (let i = 0; i < 100; i++) bytes = JSON.stringify(page.json()).length;
console.log('/status.json body:', bytes, 'bytes;', ((performance.now() - s) / 100).toFixed(2), 'ms to build');
