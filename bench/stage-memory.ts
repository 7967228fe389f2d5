// Memory and time of staging: one process stages and commits `batches` batches of 64 MiB of
// 200 B outputs (the benchmark's output shape) through the checkpoint store. It prints the
// peak RSS beside the RSS with the first batch's outputs built and nothing staged yet: the
// difference is the checkpoint's own share of row 3's peak (issue 14, "Staged-output memory").
//
//   node --expose-gc scripts/run-ts.js bench/stage-memory.ts [batches]
//
// Run it once per build to compare, alternating (a fresh process each: peak RSS never goes down).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openCheckpoint } from '../checkpoint/store';
import type { BatchRecord } from '../checkpoint/model';

const batches = Number(process.argv[2] ?? 3);
const perBatch = Math.round((64 << 20) / 200);

function benchOutputs(n: number, seed: number): unknown[] {
  const fetched = Buffer.alloc(200 * n, seed);
  return Array.from({ length: n }, (_, i) => ({ v: fetched.subarray(200 * i, 200 * (i + 1)), k: null, ts: 1_700_000_000_000 + i, suffix: `|${i % 8}:${i}` }));
}

const mb = (bytes: number): number => Math.round(bytes / 1048576);
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;

void (async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tidemark-stage-memory-'));
  const store = await openCheckpoint(dir);
  let base = 0;
  const stageMs: number[] = [];
  const commitMs: number[] = [];
  try {
    for (let id = 1; id <= batches; id++) {
      const outputs = benchOutputs(perBatch, id);
      (globalThis as { gc?: () => void }).gc?.();
      if (id === 1) base = process.memoryUsage.rss();
      const from = (id - 1) * perBatch;
      const planned: BatchRecord = { id, state: 'planned', ranges: [{ topic: 't', partition: 0, from, until: from + perBatch }], fingerprint: 'bench', plannedAt: Date.now() };
      await store.planBatch(planned);
      let t = performance.now();
      const staged = await store.stageBatch(planned, { outputs });
      stageMs.push(performance.now() - t);
      t = performance.now();
      await store.commitBatch(staged, { 't/0': from + perBatch });
      commitMs.push(performance.now() - t);
    }
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
  const peak = process.resourceUsage().maxRSS * 1024; // maxRSS is in KiB
  console.log(`${batches} batches of 64 MiB: peak RSS ${mb(peak)} MB, ${mb(base)} MB with the outputs alone (+${mb(peak - base)} MB); median stage ${median(stageMs).toFixed(0)} ms, commit ${median(commitMs).toFixed(0)} ms`);
})();
