// Prometheus metrics and health endpoints of the daemon (`tidemark run --metrics-port`).
//
//   GET /metrics   the registry below, plus Node's process metrics
//   GET /healthz   200 while the process serves requests (liveness)
//   GET /readyz    200 once recovery is done and the loop keeps making progress (readiness)
//   GET /          the status page, and /status.json its data (src/status.ts)
//
// Counters and histograms are fed from the engine's `onBatch` statistics; gauges (lag,
// positions, lock, readiness) are read from `engine.status()` at scrape time, so they are
// fresh even while the job idles. The checkpoint size is kept up to date in the background
// (after a commit, at most once a second, and on a timer): walking the directory per scrape
// let 50 scrapers raise the median batch duration from ~10 ms to ~118 ms (2026-11).
//
// The server must never stop processing: it caps its connections and times out idle and
// slow ones (22,000 idle connections once ended the daemon with EMFILE), and a failure of
// its own (accept, a handler) is logged, at most once per kind every 10 s, and survived.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { parsePartitionKey } from '../checkpoint/model';
import { sizeOnDisk } from '../checkpoint/store';
import { PHASES, type BatchStats } from './batch-stats';
import { StatusPage, type StatusSource } from './status';

export type MetricsSource = StatusSource;

export interface MetricsOptions {
  /** The engine (or anything with its `status()` and `checkpoint()`). */
  readonly engine: MetricsSource;
  /** The checkpoint directory, for its size on disk. */
  readonly checkpointDir: string;
  readonly job: string;
  /** Not ready when the loop has made no step for this long (default 60 s). */
  readonly stallMs?: number;
  /** For tests: the clock. */
  readonly now?: () => number;
  /** Told about failures of the server, which never stop processing (default: ignored). */
  readonly onError?: (err: unknown, what: string) => void;
  /** Connections served at once; more are closed at once (default 64). */
  readonly maxConnections?: number;
  /** How often the checkpoint size is measured while no batch commits (default 10 s). */
  readonly sizeEveryMs?: number;
  /**
   * A library user's registry (the Engine's `registry` option): the same tidemark_* metrics
   * go there, without Node's process metrics or a default `job` label, which are the owner's.
   */
  readonly registry?: Registry;
}

export interface Readiness {
  readonly ready: boolean;
  readonly reason: string;
}

/** Timeouts of the server (ms): a scrape is one small request, so anything slower is stuck or hostile. */
const SERVER_TIMEOUTS_MS = { headers: 5_000, request: 10_000, keepAlive: 5_000, idleSocket: 10_000 } as const;
/** A scrape within this long of the last one gets the same text: concurrent scrapers cost one rendering. */
const RENDER_REUSE_MS = 200;
const ERROR_LOG_EVERY_MS = 10_000;

const SECONDS = [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

export class Metrics {
  readonly registry: Registry;
  private readonly batches: Counter<'outcome'>;
  private readonly recordsIn: Counter;
  private readonly recordsOut: Counter;
  private readonly deadLetters: Counter;
  private readonly bytesIn: Counter;
  private readonly bytesOut: Counter;
  private readonly recoveries: Counter;
  private readonly phaseSeconds: Histogram<'phase'>;
  private readonly batchSeconds: Histogram;
  private readonly stallMs: number;
  private readonly now: () => number;
  private server: Server | undefined;
  private checkpointBytes = 0;
  private sizedAt = -Infinity;
  private sizing: Promise<void> | undefined;
  private sizeTimer: NodeJS.Timeout | undefined;
  private sizeDue: NodeJS.Timeout | undefined;
  private rendered: { at: number; text: Promise<string> } | undefined;
  private readonly errorsLoggedAt = new Map<string, { at: number; suppressed: number }>();
  readonly page: StatusPage;

  constructor(private readonly options: MetricsOptions) {
    this.registry = options.registry ?? new Registry();
    const registers = [this.registry];
    this.stallMs = options.stallMs ?? 60_000;
    this.now = options.now ?? Date.now;
    this.page = new StatusPage({
      engine: options.engine, job: options.job, checkpointDir: options.checkpointDir, now: this.now,
      checkpointBytes: () => this.checkpointBytes, readiness: () => this.readiness(), onError: (err, what) => this.report(err, what),
    });
    if (!options.registry) {
      this.registry.setDefaultLabels({ job: options.job });
      collectDefaultMetrics({ register: this.registry });
    } else {
      // A new Engine on the same registry (a restart in the same process) replaces the last one's metrics.
      for (const m of this.registry.getMetricsAsArray()) if (m.name.startsWith('tidemark_')) this.registry.removeSingleMetric(m.name);
    }
    this.batches = new Counter({ name: 'tidemark_batches_total', help: 'Batches by outcome: committed, recovered (a batch in flight at start, committed), failed', labelNames: ['outcome'], registers });
    for (const outcome of ['committed', 'recovered', 'failed']) this.batches.inc({ outcome }, 0);
    this.recordsIn = new Counter({ name: 'tidemark_records_in_total', help: 'Records read from the source', registers });
    this.recordsOut = new Counter({ name: 'tidemark_records_out_total', help: 'Outputs delivered to the sinks', registers });
    this.deadLetters = new Counter({ name: 'tidemark_dead_letters_total', help: 'Records routed to the dead-letter sink', registers });
    this.bytesIn = new Counter({ name: 'tidemark_bytes_in_total', help: 'Key and value bytes read from the source', registers });
    this.bytesOut = new Counter({ name: 'tidemark_bytes_out_total', help: 'Bytes of outputs as staged in the checkpoint (0 for stageOutputs: false)', registers });
    this.recoveries = new Counter({ name: 'tidemark_recoveries_total', help: 'Batches found in flight at start and carried to commit (redelivered or re-run)', registers });
    this.phaseSeconds = new Histogram({ name: 'tidemark_batch_phase_duration_seconds', help: 'Duration of each phase of a batch', labelNames: ['phase'], buckets: SECONDS, registers });
    this.batchSeconds = new Histogram({ name: 'tidemark_batch_duration_seconds', help: 'Duration of a batch, plan to commit', buckets: SECONDS, registers });

    const engine = options.engine;
    /** A gauge per partition, read from the engine's status at each scrape. */
    const perPartition = (name: string, help: string, values: () => Readonly<Record<string, number>>): void => {
      new Gauge({
        name, help, labelNames: ['topic', 'partition'], registers,
        collect() {
          this.reset();
          for (const [key, value] of Object.entries(values())) {
            const { topic, partition } = parsePartitionKey(key);
            this.set({ topic, partition: String(partition) }, value);
          }
        },
      });
    };
    perPartition('tidemark_lag_records', 'Records not yet processed per partition, as of the last plan', () => engine.status().lag);
    perPartition('tidemark_position', 'Committed position (next offset to process) per partition', () => engine.status().positions);
    // Group mode: only the partitions this daemon owns now, so the label set stays bounded by the assignment.
    perPartition('tidemark_partition_epoch', 'Group mode: the epoch (group generation) each partition owned now was taken at', () => engine.status().owned ?? {});
    new Gauge({
      name: 'tidemark_last_committed_batch', help: 'Id of the last committed batch', registers,
      collect() {
        this.set(engine.status().lastCommitted);
      },
    });
    new Gauge({
      name: 'tidemark_checkpoint_lock_held', help: '1 while this process holds the checkpoint lock', registers,
      collect() {
        this.set(engine.status().lockHeld ? 1 : 0);
      },
    });
    const size = (): number => this.checkpointBytes;
    new Gauge({
      name: 'tidemark_checkpoint_size_bytes', help: 'Size of the checkpoint on disk (measured after commits, at most once a second, and every 10 s)', registers,
      collect() {
        this.set(size());
      },
    });
    const readiness = (): Readiness => this.readiness();
    new Gauge({
      name: 'tidemark_ready', help: '1 when recovered and making progress (as /readyz)', registers,
      collect() {
        this.set(readiness().ready ? 1 : 0);
      },
    });
  }

  /** Feeds one committed batch (pass as the engine's `onBatch`). */
  observe(stats: BatchStats): void {
    this.batches.inc({ outcome: stats.recovered ? 'recovered' : 'committed' });
    if (stats.recovered) this.recoveries.inc();
    this.recordsIn.inc(stats.records);
    this.recordsOut.inc(stats.outputs);
    this.deadLetters.inc(stats.deadLetters);
    this.bytesIn.inc(stats.bytesIn);
    this.bytesOut.inc(stats.bytesOut);
    let total = 0;
    for (const phase of PHASES) {
      const ms = stats.durations[phase];
      if (ms === undefined) continue;
      total += ms;
      this.phaseSeconds.observe({ phase }, ms / 1000);
    }
    this.batchSeconds.observe(total / 1000);
    this.page.observe(stats);
    this.sizeSoon();
  }

  /** Measures the checkpoint after a commit, at most once a second: the value is never more than a second behind. */
  private sizeSoon(): void {
    if (this.sizeDue) return;
    this.sizeDue = setTimeout(() => {
      this.sizeDue = undefined;
      this.refreshSize();
    }, Math.max(0, this.sizedAt + 1_000 - this.now())).unref();
  }

  /** Measures the checkpoint's size in the background; one walk at a time. */
  private refreshSize(): void {
    if (this.sizing) return;
    this.sizedAt = this.now();
    this.sizing = sizeOnDisk(this.options.checkpointDir).then(
      (bytes) => void (this.checkpointBytes = bytes),
      (err: unknown) => this.report(err, 'measuring the checkpoint size'),
    ).finally(() => void (this.sizing = undefined));
  }

  /** Logs a failure of the metrics server, at most once per kind every 10 s (an EMFILE storm is thousands a second). */
  private report(err: unknown, what: string): void {
    const key = `${what}: ${(err as NodeJS.ErrnoException).code ?? ''}`;
    const seen = this.errorsLoggedAt.get(key);
    const now = this.now();
    if (seen && now - seen.at < ERROR_LOG_EVERY_MS) {
      seen.suppressed++;
      return;
    }
    this.errorsLoggedAt.set(key, { at: now, suppressed: 0 });
    const again = seen && seen.suppressed > 0 ? ` (and ${seen.suppressed} more since the last report)` : '';
    try {
      this.options.onError?.(err, `${what}${again}`);
    } catch {
      // a logger that throws must not take the daemon down either
    }
  }

  /** The metrics text; scrapes that come together share one rendering. */
  private render(): Promise<string> {
    const now = this.now();
    if (this.rendered && now - this.rendered.at < RENDER_REUSE_MS) return this.rendered.text;
    const text = this.registry.metrics();
    this.rendered = { at: now, text };
    text.catch(() => void (this.rendered = undefined));
    return text;
  }

  /** Counts a batch that failed (the run stopped with an error). */
  failed(): void {
    this.batches.inc({ outcome: 'failed' });
  }

  readiness(): Readiness {
    const s = this.options.engine.status();
    if (!s.recovered) return { ready: false, reason: 'recovering' };
    if (s.stopping) return { ready: false, reason: 'stopping' };
    if (!s.lockHeld) return { ready: false, reason: 'checkpoint lock not held' };
    if (s.progressAt === undefined) return { ready: false, reason: 'no batch or poll finished yet' };
    const idle = this.now() - s.progressAt;
    if (idle > this.stallMs) return { ready: false, reason: `no progress for ${Math.round(idle / 1000)} s` };
    return { ready: true, reason: 'ok' };
  }

  /** Serves /metrics, /healthz, /readyz and the status page; resolves with the bound port (useful with port 0). */
  async listen(port: number, host: string): Promise<number> {
    const fail = (res: ServerResponse, err: unknown): void => {
      this.report(err, 'serving a request');
      try {
        if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
        res.end(`${(err as Error).message}\n`);
      } catch {
        res.destroy();
      }
    };
    const server = createServer({
      headersTimeout: SERVER_TIMEOUTS_MS.headers, requestTimeout: SERVER_TIMEOUTS_MS.request, keepAliveTimeout: SERVER_TIMEOUTS_MS.keepAlive,
      connectionsCheckingInterval: 1_000,
    }, (req, res) => {
      try {
        this.handle(req, res, fail);
      } catch (err) {
        fail(res, err);
      }
    });
    server.maxConnections = this.options.maxConnections ?? 64;
    server.setTimeout(SERVER_TIMEOUTS_MS.idleSocket); // with no 'timeout' listener, an idle socket is destroyed
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    // After the start, the server's failures (EMFILE on accept, …) are logged, never thrown.
    server.on('error', (err) => this.report(err, 'accepting a metrics connection'));
    server.on('clientError', (err, socket) => {
      // A client that goes away or is timed out is the server doing its job, not a failure.
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ECONNRESET' && code !== 'ERR_HTTP_REQUEST_TIMEOUT') this.report(err, 'reading a metrics request');
      socket.destroy();
    });
    this.server = server;
    this.watchSize();
    this.page.start();
    return (server.address() as AddressInfo).port;
  }

  /** Measures the checkpoint's size now and every `sizeEveryMs` until `close()` (listen does it; the Engine without a server). */
  watchSize(): void {
    this.refreshSize();
    clearInterval(this.sizeTimer);
    this.sizeTimer = setInterval(() => this.refreshSize(), this.options.sizeEveryMs ?? 10_000).unref();
  }

  private handle(req: IncomingMessage, res: ServerResponse, fail: (res: ServerResponse, err: unknown) => void): void {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
    } else if (path === '/metrics') {
      this.render().then((text) => res.writeHead(200, { 'content-type': this.registry.contentType }).end(text))
        .catch((err: unknown) => fail(res, err));
    } else if (path === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
    } else if (path === '/readyz') {
      const r = this.readiness();
      res.writeHead(r.ready ? 200 : 503, { 'content-type': 'text/plain' }).end(`${r.reason}\n`);
    } else if (this.page.serves(path)) {
      this.page.handle(path, res, fail);
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /, /status.json, /metrics, /healthz or /readyz\n');
    }
  }

  async close(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    clearInterval(this.sizeTimer);
    clearTimeout(this.sizeDue);
    this.page.stop();
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
