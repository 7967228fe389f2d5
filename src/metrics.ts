// Prometheus metrics and health endpoints of the daemon (`tidemark run --metrics-port`).
//
//   GET /metrics   the registry below, plus Node's process metrics
//   GET /healthz   200 while the process serves requests (liveness)
//   GET /readyz    200 once recovery is done and the loop keeps making progress (readiness)
//
// Counters and histograms are fed from the engine's `onBatch` statistics; gauges (lag,
// positions, lock, checkpoint size, readiness) are read from `engine.status()` at scrape
// time, so they are fresh even while the job idles.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { parsePartitionKey } from '../checkpoint/model';
import { sizeOnDisk } from '../checkpoint/store';
import type { BatchStats, EngineStatus } from './engine';

export interface MetricsSource {
  status(): EngineStatus;
}

export interface MetricsOptions {
  /** The engine (or anything with its `status()`). */
  readonly engine: MetricsSource;
  /** The checkpoint directory, for its size on disk. */
  readonly checkpointDir: string;
  readonly job: string;
  /** Not ready when the loop has made no step for this long (default 60 s). */
  readonly stallMs?: number;
  /** For tests: the clock. */
  readonly now?: () => number;
}

export interface Readiness {
  readonly ready: boolean;
  readonly reason: string;
}

const PHASES = ['plan', 'read', 'transform', 'stage', 'deliver', 'commit'] as const;
const SECONDS = [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

export class Metrics {
  readonly registry = new Registry();
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

  constructor(private readonly options: MetricsOptions) {
    const registers = [this.registry];
    this.stallMs = options.stallMs ?? 60_000;
    this.now = options.now ?? Date.now;
    this.registry.setDefaultLabels({ job: options.job });
    collectDefaultMetrics({ register: this.registry });
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
    new Gauge({
      name: 'tidemark_lag_records', help: 'Records not yet processed per partition, as of the last plan', labelNames: ['topic', 'partition'], registers,
      collect() {
        this.reset();
        for (const [key, lag] of Object.entries(engine.status().lag)) {
          const { topic, partition } = parsePartitionKey(key);
          this.set({ topic, partition: String(partition) }, lag);
        }
      },
    });
    new Gauge({
      name: 'tidemark_position', help: 'Committed position (next offset to process) per partition', labelNames: ['topic', 'partition'], registers,
      collect() {
        this.reset();
        for (const [key, position] of Object.entries(engine.status().positions)) {
          const { topic, partition } = parsePartitionKey(key);
          this.set({ topic, partition: String(partition) }, position);
        }
      },
    });
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
    const dir = options.checkpointDir;
    new Gauge({
      name: 'tidemark_checkpoint_size_bytes', help: 'Size of the checkpoint on disk', registers,
      async collect() {
        this.set(await sizeOnDisk(dir));
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

  /** Serves /metrics, /healthz and /readyz; resolves with the bound port (useful with port 0). */
  async listen(port: number, host: string): Promise<number> {
    const server = createServer((req, res) => {
      const path = (req.url ?? '/').split('?')[0];
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.writeHead(405, { allow: 'GET, HEAD' }).end();
      } else if (path === '/metrics') {
        this.registry.metrics().then(
          (text) => res.writeHead(200, { 'content-type': this.registry.contentType }).end(text),
          (err: Error) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${err.message}\n`),
        );
      } else if (path === '/healthz') {
        res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
      } else if (path === '/readyz') {
        const r = this.readiness();
        res.writeHead(r.ready ? 200 : 503, { 'content-type': 'text/plain' }).end(`${r.reason}\n`);
      } else {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /metrics, /healthz or /readyz\n');
      }
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.server = server;
    return (server.address() as AddressInfo).port;
  }

  async close(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
