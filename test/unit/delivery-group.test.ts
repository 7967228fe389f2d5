// Group mode's deliveries: every sink, the dead-letter sink included, gets a write for every
// range of the partition — an empty one too — so its per-partition ledger (recovery/handoff.ts
// judgeLedgerWrite) never sees a gap.
import { join } from 'node:path';
import { openCheckpoint } from '../../checkpoint/store';
import type { BatchRecord } from '../../checkpoint/model';
import { claimLedger, judgeLedgerWrite, type LedgerEntry } from '../../recovery/handoff';
import { defineJob, generatorSource, type Sink, type SinkBatch } from 'tidemark';
import { deliverBatch } from '../../src/delivery';
import { silentLogger } from '../../src/log';
import { tempDir } from '../support/tmp';

const root = tempDir('tidemark-delivery-group-');

/** A sink that keeps a per-partition ledger as the PostgreSQL sink does, and records its verdicts. */
function ledgerSink<T>(name: string): Sink<T> & { verdicts: string[] } {
  let entry: LedgerEntry | undefined;
  const verdicts: string[] = [];
  return {
    name, verdicts,
    async claim(c) {
      const next = claimLedger(entry, c.epoch);
      if (next !== 'fenced') entry = next;
    },
    async write(batch: SinkBatch<T>) {
      const r = batch.ranges[0]!;
      const verdict = judgeLedgerWrite(entry, { epoch: batch.owner!.epoch, from: r.from, until: r.until });
      verdicts.push(verdict);
      if (verdict === 'write') entry = { epoch: batch.owner!.epoch, until: r.until };
    },
  };
}

it('a range without dead letters still reaches the dead-letter sink (empty), so the next range with some is not a gap', async () => {
  const main = ledgerSink<string>('main');
  const dead = ledgerSink<never>('dead');
  const job = defineJob({ name: 'g', source: generatorSource({ partitions: 1, size: 20 }), sinks: [main], deadLetterSink: dead as Sink<never>, transform: () => [] as string[] });
  const store = await openCheckpoint(join(root, 'cp'));
  try {
    const owner = { topic: 'generated', partition: 0, epoch: 3 };
    for (const s of [main, dead]) await s.claim!({ job: 'g', ...owner });
    const ctx = { job, store, log: silentLogger, crash: () => {}, owner };
    const batch = (id: number, from: number, until: number): BatchRecord => ({ id, state: 'staged', ranges: [{ topic: 'generated', partition: 0, from, until }], fingerprint: 'f', plannedAt: 0 });
    const letter = { topic: 'generated', partition: 0, offset: 22, key: null, value: 'x', error: 'bad', batchId: 3 };
    await deliverBatch(ctx, batch(1, 0, 10), { outputs: ['a'], 'dead-letters': [{ ...letter, offset: 2, batchId: 1 }] });
    await deliverBatch(ctx, batch(2, 10, 20), { outputs: ['b'] });
    await deliverBatch(ctx, batch(3, 20, 30), { outputs: ['c'], 'dead-letters': [letter] });
    expect(main.verdicts).toEqual(['write', 'write', 'write']);
    expect(dead.verdicts).toEqual(['write', 'write', 'write']); // without the empty write of [10, 20): ['write', 'gap']
  } finally {
    await store.close();
  }
});
