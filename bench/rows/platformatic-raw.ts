// Row 9 of the benchmark (a measured note for issue 7, not a switch): the raw consumer of row 2
// (node-row.ts --row raw) written against @platformatic/kafka 1.x instead of kafkajs, to measure
// how far a faster Kafka client would move the ceiling that rows 3/4 are compared with. tidemark
// itself stays on kafkajs; @platformatic/kafka is a devDependency used only here.
//
// Same measurement as row 2: a fresh group reads --topic from the beginning, every record is
// touched (value lengths summed, first bytes xored), and the run ends at the --expect N-th record.
// Comparable settings: ≤ 50 MiB per fetch, 2 MiB per partition, maxWaitTime 500 ms, no autocommit,
// values stay Buffers (the default no-op deserialisers). The last stdout line is the JSON summary
// with node-row's fields: records, bytes, seconds (consume() — connect and group join — to the
// N-th record), secondsFirstBatchToEnd, joinSeconds, cpuSecondsAfterStart, cpuSeconds, peakRssMB.
//
//   node dist/bench/rows/platformatic-raw.js --bootstrap B --topic T --expect N [--group G]
//
// API difference: @platformatic/kafka has no eachBatch; consume() returns a Readable of single
// messages (object mode), so records are counted per 'data' event.
// Result (2026-11-23, W1-sized topic): ~0.52 × row 2's records/s at 1.7 × its CPU — see bench/README.md,
// "A faster client? @platformatic/kafka (measured note)".
import { parseArgs } from 'node:util';
import { Consumer, MessagesStreamModes } from '@platformatic/kafka';

const cpu0 = process.cpuUsage();
const { values: a } = parseArgs({
  options: {
    bootstrap: { type: 'string' }, topic: { type: 'string' }, expect: { type: 'string' }, group: { type: 'string' },
    row: { type: 'string' }, // accepted (and ignored) so that node-row's `--row raw` command line works unchanged
  },
});
const expect = Number(a.expect ?? 0);

function cpuSeconds(since = cpu0): number {
  const u = process.cpuUsage(since);
  return (u.user + u.system) / 1e6;
}

async function main(): Promise<void> {
  const consumer = new Consumer({
    clientId: 'bench-platformatic', bootstrapBrokers: a.bootstrap ? [a.bootstrap] : [],
    groupId: a.group ?? `bench-platformatic-${process.pid}-${Date.now()}`,
    maxBytes: 50 * 1024 * 1024, maxBytesPerPartition: 2 * 1024 * 1024, maxWaitTime: 500, autocommit: false,
  });
  const started = Date.now();
  const cpuStart = process.cpuUsage();
  const stream = await consumer.consume({ topics: [a.topic!], mode: MessagesStreamModes.EARLIEST, autocommit: false });
  let seen = 0;
  let bytes = 0;
  let check = 0;
  let first = 0;
  // 'data' keeps firing for the rest of the fetch response after the N-th record: the figures are taken at N.
  const at = await new Promise<{ end: number; records: number; bytes: number; check: number }>((resolve, reject) => {
    stream.on('error', reject);
    stream.on('data', (m) => {
      if (first === 0) first = Date.now();
      const v = m.value;
      if (v) { bytes += v.length; check ^= v[0] ?? 0; }
      if (++seen === Math.max(expect, 1)) resolve({ end: Date.now(), records: seen, bytes, check });
    });
  });
  const cpuAfter = cpuSeconds(cpuStart);
  await stream.close();
  await consumer.close();
  process.stdout.write(`${JSON.stringify({
    records: at.records, bytes: at.bytes, seconds: (at.end - started) / 1000, secondsFirstBatchToEnd: (at.end - first) / 1000, joinSeconds: (first - started) / 1000,
    cpuSecondsAfterStart: +cpuAfter.toFixed(3), check: at.check,
    cpuSeconds: +cpuSeconds().toFixed(3), peakRssMB: +(process.resourceUsage().maxRSS / 1024).toFixed(1), row: 'platformatic',
  })}\n`);
}

main().then(() => process.exit(0), (err: unknown) => {
  console.error(err);
  process.exit(1);
});
