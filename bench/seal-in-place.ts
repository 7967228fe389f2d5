// Staging 64 MiB as the store does (chunks of 1,024 outputs, each sealed under its key): the
// chunk encoded, then copied into its checksum envelope (before 2026-11-30), against encoded
// behind room left for the envelope and sealed in place (checkpoint/codec.ts sealedOutputs).
//
//   node --expose-gc scripts/run-ts.js bench/seal-in-place.ts [rounds]
//
// Alternating A B A B … in one process, so both see the same load; GC time is the sum of
// perf_hooks' 'gc' entries during a pass, each pass starting after a full collection.
import { PerformanceObserver } from 'node:perf_hooks';
import { chunk, encodeOutputs, seal, sealedOutputs } from '../checkpoint/codec';

let gcMs = 0;
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) gcMs += e.duration;
}).observe({ entryTypes: ['gc'] });

/** The benchmark's own output shape (bench/rows/node-row.ts), as in bench/codec.ts. */
function benchOutputs(n: number): unknown[] {
  const fetched = Buffer.alloc(200 * n, 7);
  return Array.from({ length: n }, (_, i) => ({ v: fetched.subarray(200 * i, 200 * (i + 1)), k: null, ts: 1_700_000_000_000 + i, suffix: `|${i % 8}:${i}` }));
}

const CHUNK = 1024;
const chunks = chunk(benchOutputs(Math.round((64 << 20) / 200)), CHUNK);
const paths: Array<[string, (key: string, items: readonly unknown[], first: number) => Uint8Array]> = [
  ['encode, then seal (a copy)', (key, items, first) => seal(key, encodeOutputs(items, first))],
  ['sealed in place', sealedOutputs],
];
const rounds = Number(process.argv[2] ?? 9);
const wall = paths.map(() => [] as number[]);
const gc = paths.map(() => [] as number[]);
/** A full collection (with --expose-gc), then a pause: the observer reports asynchronously. */
const settle = (): Promise<void> => {
  (globalThis as { gc?: () => void }).gc?.();
  return new Promise((resolve) => setTimeout(resolve, 50));
};
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;

void (async () => {
  for (let round = 0; round < rounds; round++) {
    for (const [k, [, stage]] of paths.entries()) {
      await settle();
      const gcBefore = gcMs;
      const start = process.hrtime.bigint();
      const staged = chunks.map((c, i) => stage(`out!${String(round).padStart(20, '0')}!sink!${i}`, c, i * CHUNK));
      wall[k]!.push(Number(process.hrtime.bigint() - start) / 1e6);
      if (staged.length !== chunks.length) throw new Error('a chunk went missing');
      await new Promise((resolve) => setTimeout(resolve, 50));
      gc[k]!.push(gcMs - gcBefore);
    }
  }
  console.log(`node ${process.version}; staging 64 MiB of 200 B outputs (${chunks.length} chunks of ${CHUNK}); median of ${rounds} alternating rounds`);
  console.log('| path | ms per 64 MiB | GC ms per 64 MiB |');
  console.log('| --- | ---: | ---: |');
  paths.forEach(([name], k) => console.log(`| ${name} | ${median(wall[k]!).toFixed(0)} | ${median(gc[k]!).toFixed(1)} |`));
  const ratios = wall[0]!.map((t, r) => t / wall[1]![r]!);
  console.log(`copy / in place, per round: median ${median(ratios).toFixed(2)}×, range ${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)}×`);
})();
