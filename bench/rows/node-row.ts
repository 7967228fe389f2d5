// One Node row of the benchmark (bench/run.ts spawns this, one process per run), so CPU seconds
// and peak RSS are this process's own accounting. The last stdout line is a JSON summary:
//   {"records","seconds","cpuSeconds","cpuSecondsAfterStart","peakRssMB","bytes", ...}
//
//   --row raw            plain kafkajs eachBatch consumer that touches every record (row 2)
//   --row file           tidemark Kafka → file sink (rows 3/4; --stage true|false)
//   --row kafka          tidemark Kafka → Kafka sink, transactional (row 5; --output TOPIC)
//   --row embedded       tidemark embedded log → file sink (row 6; --log DIR)
//   --row prepare-embedded   fill --log DIR with --records × --size B on 8 partitions (not a row)
//
//   --bootstrap B --topic T --expect N      stop once N records are through (daemon mode) …
//   --once                                  … or process what is there now (tidemark --once); the time ends at the last commit (closeSeconds: closing after it)
//   --latency                               W3: per record, sink-visible time − record timestamp
//   --checkpoint DIR --out DIR              (defaults: a temp dir, removed at the end)
//   --max-per-partition N --max-wait-ms N   batch limits (default 100000, 0)
//   --max-in-flight N                       batch.maxInFlight (default: the job's default, 2)
//   --daemon                                run until killed (recovery test); never prints a summary
//   --fetch-max-bytes N --fetch-partition-bytes N --max-buffered-bytes N --read-ahead-bytes N
//                                           tidemark Kafka rows: the source's memory knobs (default: the source's defaults)
//   --read-worker                           tidemark Kafka rows: the source's reading in a worker thread (bench/rows/read-worker.ts, a prototype)
//   --secure                                the tidemark rows connect as the secured broker's super user (SASL_SSL,
//                                           SCRAM-SHA-512, its CA): the KAFKA_SECURE_* variables of
//                                           `scripts/kafka start --secure`, --bootstrap its KAFKA_SECURE_BROKERS (bench/secure.ts)
//
// The job is the peers' job (bench/peers/README.md): value + `|<partition>:<offset>`, key kept.
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Kafka, logLevel } from 'kafkajs';
import {
  defineJob, EmbeddedLog, embeddedLogSource, Engine, fileSink, kafkaSink, kafkaSource,
  type KafkaMessageOut, type Sink, type SinkBatch, type Source, type SourceRecord,
} from '../../src/index';
import { registerKafkaCodecs } from '../../src/kafka/codecs';
import { readInWorker } from './read-worker';

const cpu0 = process.cpuUsage();
const { values: a } = parseArgs({
  options: {
    row: { type: 'string' }, bootstrap: { type: 'string' }, topic: { type: 'string' }, output: { type: 'string' },
    expect: { type: 'string' }, once: { type: 'boolean' }, latency: { type: 'boolean' }, stage: { type: 'string' },
    checkpoint: { type: 'string' }, out: { type: 'string' }, log: { type: 'string' }, records: { type: 'string' },
    size: { type: 'string' }, 'max-per-partition': { type: 'string' }, 'max-wait-ms': { type: 'string' },
    'max-batch-bytes': { type: 'string' }, 'max-in-flight': { type: 'string' }, daemon: { type: 'boolean' }, group: { type: 'string' }, secure: { type: 'boolean' },
    'read-worker': { type: 'boolean' }, 'fetch-max-bytes': { type: 'string' }, 'fetch-partition-bytes': { type: 'string' },
    'max-buffered-bytes': { type: 'string' }, 'read-ahead-bytes': { type: 'string' },
  },
});
const row = a.row ?? 'file';
const expect = Number(a.expect ?? 0);
const brokers = a.bootstrap ? [a.bootstrap] : [];
const secure = a.secure ? {
  ssl: { ca: [readFileSync(process.env.KAFKA_SECURE_CA!)] },
  sasl: { mechanism: 'scram-sha-512' as const, username: 'admin', password: process.env.KAFKA_SECURE_ADMIN_PASSWORD! },
} : {};

function cpuSeconds(since = cpu0): number {
  const u = process.cpuUsage(since);
  return (u.user + u.system) / 1e6;
}
const peakRssMB = (): number => process.resourceUsage().maxRSS / 1024; // maxRSS is in KiB

function pct(sorted: number[], p: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? null;
}

function summary(extra: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify({ ...extra, cpuSeconds: +cpuSeconds().toFixed(3), peakRssMB: +peakRssMB().toFixed(1), row })}\n`);
}

// Latency samples: ms from the record's timestamp (producer CreateTime) to the moment the sink's
// write of its batch returned (file renamed into place / transaction committed).
const latencies: number[] = [];

async function raw(): Promise<void> {
  const kafka = new Kafka({ clientId: 'bench-raw', brokers, logLevel: logLevel.NOTHING });
  registerKafkaCodecs();
  const consumer = kafka.consumer({ groupId: a.group ?? `bench-raw-${process.pid}-${Date.now()}`, maxBytesPerPartition: 2 * 1024 * 1024, maxBytes: 50 * 1024 * 1024, maxWaitTimeInMs: 500 });
  const started = Date.now();
  const cpuStart = process.cpuUsage();
  await consumer.connect();
  await consumer.subscribe({ topics: [a.topic!], fromBeginning: true });
  let seen = 0;
  let bytes = 0;
  let check = 0;
  let first = 0;
  const done = new Promise<number>((resolve) => {
    void consumer.run({
      autoCommit: false,
      eachBatch: async ({ batch }) => {
        if (first === 0) first = Date.now();
        const now = Date.now();
        for (const m of batch.messages) {
          const v = m.value;
          if (v) { bytes += v.length; check ^= v[0] ?? 0; }
          if (a.latency) latencies.push(now - Number(m.timestamp));
        }
        seen += batch.messages.length;
        if (seen >= expect) resolve(Date.now());
      },
    });
  });
  const end = await done;
  const cpuAfter = cpuSeconds(cpuStart);
  await consumer.disconnect();
  latencies.sort((x, y) => x - y);
  summary({
    records: seen, bytes, seconds: (end - started) / 1000, secondsFirstBatchToEnd: (end - first) / 1000, joinSeconds: (first - started) / 1000,
    cpuSecondsAfterStart: +cpuAfter.toFixed(3), check,
    ...(a.latency ? { latencyP50Ms: pct(latencies, 50), latencyP99Ms: pct(latencies, 99), latencySamples: latencies.length } : {}),
  });
}

function measured<T>(inner: Sink<T>, tsOf: (o: T) => number): Sink<T> & { delivered: number } {
  const s = {
    name: inner.name,
    delivered: 0,
    async write(batch: SinkBatch<T>) {
      await inner.write(batch);
      const now = Date.now();
      s.delivered += batch.outputs.length;
      if (a.latency) for (const o of batch.outputs) latencies.push(now - tsOf(o));
    },
    ...(inner.close ? { close: () => inner.close!() } : {}),
  };
  return s as Sink<T> & { delivered: number };
}

interface Out { v: Buffer; k: Buffer | null; ts: number; suffix: string }

async function tidemark(): Promise<void> {
  const tmp = mkdtempSync(join(tmpdir(), 'tidemark-bench-row-'));
  const cpDir = a.checkpoint ?? join(tmp, 'cp');
  const outDir = a.out ?? join(tmp, 'out');
  mkdirSync(outDir, { recursive: true });
  let source: Source;
  if (row === 'embedded') {
    source = embeddedLogSource({ dir: a.log!, topic: 'bench' });
  } else {
    registerKafkaCodecs();
    const options = {
      brokers, ...secure, topics: [a.topic!], groupId: a.group ?? `bench-tidemark-${process.pid}-${Date.now()}`, startingOffsets: 'earliest' as const,
      // Memory knobs (bench/README.md, "Peak RSS"): the source's defaults unless given.
      consumer: {
        ...(a['fetch-max-bytes'] ? { maxBytes: Number(a['fetch-max-bytes']) } : {}),
        ...(a['fetch-partition-bytes'] ? { maxBytesPerPartition: Number(a['fetch-partition-bytes']) } : {}),
      },
      ...(a['max-buffered-bytes'] ? { maxBufferedBytes: Number(a['max-buffered-bytes']) } : {}),
      ...(a['read-ahead-bytes'] ? { readAheadBytes: Number(a['read-ahead-bytes']) } : {}),
    };
    source = kafkaSource(options);
    if (a['read-worker']) source = readInWorker(source, options, join(__dirname, 'read-worker.js'));
  }
  let inner: Sink<Out>;
  if (row === 'kafka') {
    inner = kafkaSink<Out>({
      brokers, ...secure, topic: a.output!, name: 'kafka', lineage: false,
      message: (o): KafkaMessageOut => ({ key: o.k, value: Buffer.concat([o.v, Buffer.from(o.suffix)]) }),
    });
  } else {
    // A line per record: the value, the |p:o suffix and the record's timestamp (so W3 latency is in the output).
    inner = fileSink<Out>({ dir: outDir, format: (o) => `${o.v.toString('latin1')}${o.suffix}|${o.ts}` });
  }
  const sink = measured(inner, (o) => o.ts);
  let bytes = 0;
  let first = 0;
  const job = defineJob<Out>({
    name: `bench-${row}`,
    source,
    sinks: [sink],
    transform: (records: SourceRecord[]) => {
      if (first === 0) first = Date.now();
      const out: Out[] = new Array(records.length);
      for (let i = 0; i < records.length; i++) {
        const r = records[i]!;
        const v = r.value ?? Buffer.alloc(0);
        bytes += v.length;
        out[i] = { v, k: r.key, ts: r.timestamp, suffix: `|${r.partition}:${r.offset}` };
      }
      return out;
    },
    stageOutputs: a.stage !== 'false',
    batch: {
      maxRecordsPerPartition: Number(a['max-per-partition'] ?? 100_000),
      maxWaitMs: Number(a['max-wait-ms'] ?? 0),
      ...(a['max-batch-bytes'] ? { maxBatchBytes: Number(a['max-batch-bytes']) } : {}),
      ...(a['max-in-flight'] ? { maxInFlight: Number(a['max-in-flight']) } : {}),
    },
  });
  let batches = 0;
  // --once: the measurement ends with the last batch's commit, not when the engine has closed
  // (closing the source deletes its reader group, up to 2 s): row 2 ends at its last record too.
  let lastBatchAt = 0;
  let cpuAtLastBatch = 0;
  // Daemon mode with --expect: the measurement ends when the sink has delivered N records; the
  // engine is then asked to stop (and given 10 s to close; stopTimedOut says when it did not).
  let reached: ((at: number) => void) | undefined;
  const reachedAt = new Promise<number>((r) => { reached = r; });
  let cpuAtReach: number | undefined;
  const engine: Engine<Out> = new Engine(job, {
    checkpointDir: cpDir, fingerprint: 'bench',
    onBatch: () => {
      batches++;
      lastBatchAt = Date.now();
      cpuAtLastBatch = cpuSeconds(cpuStart);
      if (!a.once && !a.daemon && expect > 0 && sink.delivered >= expect && cpuAtReach === undefined) {
        cpuAtReach = cpuSeconds(cpuStart);
        reached?.(Date.now());
        engine.stop();
      }
    },
  });
  const started = Date.now();
  const cpuStart = process.cpuUsage();
  process.stderr.write('ready\n');
  const running = engine.run(a.once ? { once: true } : {}).then(() => Date.now());
  // W3: if the sink stops making progress for 10 s (BENCH_STALL_MS) short of N (seen on this machine: the Kafka
  // source leaving records of a finished input unread), end the measurement with what was
  // delivered and say so (stalled, records < N) instead of hanging until the harness's timeout.
  const STALL_MS = Number(process.env.BENCH_STALL_MS ?? 10_000);
  let stalled = false;
  if (!a.once && !a.daemon && expect > 0) {
    let last = -1;
    let since = Date.now();
    const t = setInterval(() => {
      if (sink.delivered !== last) { last = sink.delivered; since = Date.now(); return; }
      if (sink.delivered > 0 && Date.now() - since > STALL_MS && cpuAtReach === undefined) {
        stalled = true;
        cpuAtReach = cpuSeconds(cpuStart);
        reached?.(since);
        engine.stop();
      }
    }, 1000);
    t.unref();
  }
  let end: number;
  let stopTimedOut = false;
  let closeSeconds: number | undefined;
  if (a.once && !a.daemon) {
    const closed = await running;
    end = lastBatchAt || closed;
    closeSeconds = (closed - end) / 1000;
    if (lastBatchAt) cpuAtReach = cpuAtLastBatch;
  } else if (a.daemon || expect <= 0) end = await running;
  else {
    end = await Promise.race([running, reachedAt]);
    const closed = await Promise.race([running.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 10_000))]);
    stopTimedOut = !closed;
  }
  const cpuAfter = cpuAtReach ?? cpuSeconds(cpuStart);
  if (!a.checkpoint || !a.out) rmSync(tmp, { recursive: true, force: true });
  latencies.sort((x, y) => x - y);
  summary({
    records: sink.delivered, bytes, seconds: (end - started) / 1000, firstRecordSeconds: first ? (first - started) / 1000 : null,
    cpuSecondsAfterStart: +cpuAfter.toFixed(3), batches, stopTimedOut, ...(closeSeconds !== undefined ? { closeSeconds } : {}), stalled, stageOutputs: a.stage !== 'false',
    maxBatchBytes: Number(a['max-batch-bytes'] ?? 64 * 1024 * 1024),
    ...(a.latency ? { latencyP50Ms: pct(latencies, 50), latencyP99Ms: pct(latencies, 99), latencySamples: latencies.length } : {}),
  });
}

async function prepareEmbedded(): Promise<void> {
  const n = Number(a.records);
  const size = Number(a.size);
  const log = await EmbeddedLog.open(a.log!, { topic: 'bench', partitions: 8 });
  let have = 0;
  for (let p = 0; p < 8; p++) have += await log.end(p);
  const value = Buffer.alloc(size);
  for (let i = 0; i < size; i++) value[i] = 65 + (i % 26);
  const chunk = Math.max(100, Math.floor((8 << 20) / size));
  for (let i = have; i < n; i += chunk) {
    const m = Math.min(chunk, n - i);
    await log.append(Array.from({ length: m }, (_, j) => ({ value, partition: (i + j) % 8, timestamp: Date.now() })));
  }
  summary({ records: n, prepared: n - have, seconds: 0 });
}

const main = row === 'raw' ? raw : row === 'prepare-embedded' ? prepareEmbedded : tidemark;
main().then(() => process.exit(0), (err: unknown) => {
  console.error(err);
  process.exit(1);
});
