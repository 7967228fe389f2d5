// `tidemark run --metrics-port`: Prometheus metrics and health endpoints, scraped over
// HTTP from the running daemon (bound to 127.0.0.1 only).
import { connect, createServer, type Socket } from 'node:net';
import { existsSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { EmbeddedLog } from 'tidemark';
import { childEnv, generatorJob, start, tidemark, write, type Tidemark } from '../support/cli';
import { cliPath, killAll, start as startProcess } from '../support/processes';
import { tempDir } from '../support/tmp';

afterEach(killAll);

const root = tempDir('tidemark-metrics-');

/** A generator job whose source answers `partitions()` only once a file `go` exists in `dir`. */
function gatedJob(dir: string): string {
  return write(join(dir, 'job.ts'), `import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { defineJob, fileSink, generatorSource } from 'tidemark';
const dir = ${JSON.stringify(dir)};
const gen = generatorSource({ partitions: 2, size: 100 });
export default defineJob({
  name: 'metered',
  source: {
    ...gen,
    async partitions() {
      while (!existsSync(join(dir, 'go'))) await new Promise((resolve) => setTimeout(resolve, 10));
      return gen.partitions();
    },
  },
  sinks: [fileSink({ dir: join(dir, 'out') })],
  transform: (records) => records.map((r) => r.offset),
  batch: { maxRecordsPerPartition: 30, pollIntervalMs: 20 },
});
`);
}

interface Sample {
  readonly name: string;
  readonly labels: Record<string, string>;
  readonly value: number;
}

function parseMetrics(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)) labels[l[1]!] = l[2]!;
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return samples;
}

/** The value of the one sample with this name whose labels include `labels`. */
function value(samples: Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  const found = samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  if (found.length > 1) throw new Error(`${found.length} samples of ${name} ${JSON.stringify(labels)}`);
  return found[0]?.value;
}

async function get(port: number, path: string): Promise<{ status: number; body: string; type: string | null }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`);
  return { status: res.status, body: await res.text(), type: res.headers.get('content-type') };
}

async function metricsPort(daemon: Tidemark): Promise<number> {
  const line = await daemon.waitForLog(/^metrics on http:\/\/127\.0\.0\.1:\d+\/metrics/);
  return line.metricsPort as number;
}

/** Scrapes until `check` holds (the daemon works meanwhile); no timing involved. */
async function scrapeUntil(port: number, check: (s: Sample[]) => boolean): Promise<Sample[]> {
  for (;;) {
    const samples = parseMetrics((await get(port, '/metrics')).body);
    if (check(samples)) return samples;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

describe('tidemark run --metrics-port', () => {
  it('serves /healthz at once, /readyz once recovered and making progress, and the batch metrics', async () => {
    const dir = join(root, 'a');
    const job = gatedJob(dir);
    const daemon = start(['run', job, '--checkpoint', join(dir, 'cp'), '--metrics-port', '0', '--metrics-host', '127.0.0.1']);
    const port = await metricsPort(daemon);
    expect(await get(port, '/healthz')).toMatchObject({ status: 200, body: 'ok\n' });
    // Not ready while recovering, nor once recovered while the source has not answered yet.
    const early = await get(port, '/readyz');
    expect(early.status).toBe(503);
    expect(['recovering\n', 'no batch or poll finished yet\n']).toContain(early.body);
    for (let r = early; r.body !== 'no batch or poll finished yet\n'; r = await get(port, '/readyz')) expect(r).toMatchObject({ status: 503, body: 'recovering\n' });
    expect(value(parseMetrics((await get(port, '/metrics')).body), 'tidemark_ready')).toBe(0);
    write(join(dir, 'go'), '');
    // The checkpoint size is measured in the background, at most a second after a commit.
    const samples = await scrapeUntil(port, (s) => value(s, 'tidemark_batches_total', { outcome: 'committed' }) === 4 && value(s, 'tidemark_lag_records', { partition: '1' }) === 0
      && value(s, 'tidemark_checkpoint_size_bytes')! > 0);
    expect(await get(port, '/readyz')).toMatchObject({ status: 200, body: 'ok\n' });

    const metrics = await get(port, '/metrics');
    expect(metrics.type).toContain('text/plain');
    expect(value(samples, 'tidemark_batches_total', { outcome: 'recovered', job: 'metered' })).toBe(0);
    expect(value(samples, 'tidemark_batches_total', { outcome: 'failed' })).toBe(0);
    expect(value(samples, 'tidemark_records_in_total')).toBe(200);
    expect(value(samples, 'tidemark_records_out_total')).toBe(200);
    expect(value(samples, 'tidemark_bytes_in_total')).toBeGreaterThan(200);
    expect(value(samples, 'tidemark_bytes_out_total')).toBeGreaterThan(0);
    expect(value(samples, 'tidemark_recoveries_total')).toBe(0);
    for (const phase of ['plan', 'read', 'transform', 'stage', 'deliver']) {
      expect(value(samples, 'tidemark_batch_phase_duration_seconds_count', { phase })).toBe(4);
      expect(value(samples, 'tidemark_batch_phase_duration_seconds_bucket', { phase, le: '+Inf' })).toBe(4);
    }
    expect(value(samples, 'tidemark_batch_duration_seconds_count')).toBe(4);
    expect(value(samples, 'tidemark_lag_records', { topic: 'generated', partition: '0' })).toBe(0);
    expect(value(samples, 'tidemark_position', { topic: 'generated', partition: '0' })).toBe(100);
    expect(value(samples, 'tidemark_last_committed_batch')).toBe(4);
    expect(value(samples, 'tidemark_checkpoint_lock_held')).toBe(1);
    expect(value(samples, 'tidemark_checkpoint_size_bytes')).toBeGreaterThan(0);
    expect(value(samples, 'tidemark_ready')).toBe(1);
    expect(value(samples, 'process_resident_memory_bytes')).toBeGreaterThan(0);
    expect((await get(port, '/nope')).status).toBe(404);

    daemon.kill('SIGTERM');
    expect((await daemon.exited).code).toBe(0);
  });

  it('counts a batch recovered at start (port from TIDEMARK_METRICS_PORT)', async () => {
    const dir = join(root, 'b');
    // maxInFlight 1: the crash leaves exactly one batch in flight to recover.
    const job = write(join(dir, 'job.ts'), generatorJob(dir, { partitions: 1, size: 30, maxRecordsPerPartition: 10, maxInFlight: 1 }));
    const cp = join(dir, 'cp');
    expect((await tidemark(['run', job, '--checkpoint', cp, '--log-level', 'warn'], { env: { TIDEMARK_CRASH_AT: 'staged:2' } })).signal).toBe('SIGKILL');
    const daemon = start(['run', job, '--checkpoint', cp], { env: { TIDEMARK_METRICS_PORT: '0' } });
    const port = await metricsPort(daemon);
    const samples = await scrapeUntil(port, (s) => value(s, 'tidemark_last_committed_batch') === 3);
    expect(value(samples, 'tidemark_recoveries_total')).toBe(1);
    expect(value(samples, 'tidemark_batches_total', { outcome: 'recovered' })).toBe(1);
    expect(value(samples, 'tidemark_batches_total', { outcome: 'committed' })).toBe(1);
    daemon.kill('SIGTERM');
    expect((await daemon.exited).code).toBe(0);
    expect(existsSync(join(dir, 'out', 'files', 'batch-3.jsonl'))).toBe(true);
  });

  it('a port in use is bad configuration: exit 2, the checkpoint untouched', async () => {
    const dir = join(root, 'c');
    const job = write(join(dir, 'job.ts'), generatorJob(dir));
    const busy = createServer();
    await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
    try {
      const port = (busy.address() as AddressInfo).port;
      const r = await tidemark(['run', job, '--checkpoint', join(dir, 'cp'), '--metrics-port', String(port), '--metrics-host', '127.0.0.1']);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(`Cannot serve metrics on 127.0.0.1:${port}`);
      expect(existsSync(join(dir, 'cp'))).toBe(false);
    } finally {
      busy.close();
    }
    const bad = await tidemark(['run', job, '--checkpoint', join(dir, 'cp'), '--metrics-port', '70000']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--metrics-port must be a port number');
  });
});

describe('the metrics server under a flood', () => {
  it('2,000 idle connections and 50 scrapers neither stop nor stall the daemon, and /metrics answers afterwards', async () => {
    const dir = join(root, 'flood');
    const log = await EmbeddedLog.open(join(dir, 'log'), { partitions: 2 });
    await log.append(Array.from({ length: 300_000 }, (_, i) => ({ value: `event ${i}`, partition: i % 2 }))); // ~3,000 batches: more than 6 s can take
    const job = write(join(dir, 'job.ts'), `import { defineJob, embeddedLogSource, fileSink } from 'tidemark';
export default defineJob({
  name: 'flooded',
  source: embeddedLogSource({ dir: ${JSON.stringify(join(dir, 'log'))} }),
  sinks: [fileSink({ dir: ${JSON.stringify(join(dir, 'out'))} })],
  transform: (records) => records.map((r) => r.value!.toString()),
  batch: { maxRecordsPerPartition: 50 },
});
`);
    // 1,024 open files, as many containers have: 2,000 connections overrun it unless the
    // server caps them (the old server died of EMFILE, exit 1).
    const daemon = startProcess('prlimit', ['--nofile=1024', process.execPath, cliPath, 'run', job, '--checkpoint', join(dir, 'cp'),
      '--metrics-port', '0', '--metrics-host', '127.0.0.1'], { env: childEnv() });
    const port = (JSON.parse(await daemon.waitForLine(/metrics on http:\/\/127\.0\.0\.1/)) as { metricsPort: number }).metricsPort;
    await daemon.waitForLine(/"msg":"batch 1 committed"/);
    const committed = (): number => daemon.stdout().split('\n').filter((l) => /"msg":"batch \d+ committed"/.test(l)).length;

    // The pace without the flood, over as long, on this machine as loaded as it is now.
    const floodMs = 3_000;
    const quietStart = committed();
    await new Promise((resolve) => setTimeout(resolve, floodMs));
    const quiet = committed() - quietStart;

    const idle: Socket[] = [];
    const until = Date.now() + floodMs;
    const before = committed();
    let scrapes = 0;
    const scraper = async (): Promise<void> => {
      while (Date.now() < until) {
        try {
          const res = await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(2_000) });
          await res.text();
          if (res.status === 200) scrapes++;
        } catch {
          // refused past the cap, or cut off: the flood's own failures are not the point
        }
      }
    };
    const scrapers = Array.from({ length: 50 }, scraper);
    for (let i = 0; i < 2_000; i++) {
      const socket = connect(port, '127.0.0.1');
      socket.on('error', () => undefined);
      idle.push(socket);
      if (i % 100 === 99) await new Promise((resolve) => setImmediate(resolve));
    }
    await Promise.all(scrapers);
    for (const socket of idle) socket.destroy();
    const during = committed() - before;

    expect(daemon.proc.exitCode).toBeNull();
    // The old server held batches up behind every scrape (6 batches in 3 s against ~300 without
    // the flood, 1/50 of the pace); one that serves kept values keeps a fair part of it. The bar
    // is a twentieth, still above the old server's pace: 50 scrapers and 2,000 sockets share the
    // 2 cores with the daemon, and a loaded machine kept 153/642, then 46/532.
    expect({ quiet, during: Math.min(during, Math.ceil(quiet / 20)) }).toEqual({ quiet, during: Math.ceil(quiet / 20) });
    expect(scrapes).toBeGreaterThan(0);
    // Once the flood is gone (the server sees the closes a moment later), /metrics answers.
    let after: { status: number; body: string } | undefined;
    for (const deadline = Date.now() + 5_000; !after && Date.now() < deadline;) {
      after = await get(port, '/metrics').catch(() => undefined);
    }
    expect(after?.status).toBe(200);
    expect(value(parseMetrics(after!.body), 'tidemark_last_committed_batch')).toBeGreaterThan(before);
    expect(daemon.stdout()).not.toMatch(/EMFILE/);
    daemon.proc.kill('SIGTERM');
    expect(await daemon.exited).toEqual({ code: 0, signal: null });
  });
});
