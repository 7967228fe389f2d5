// The daemon's status page, served on the metrics port (src/metrics.ts routes to it):
//
//   GET /              the page (dist/status-page/, built from src/status-page/ by scripts/build.js)
//   GET /status.json   what the page shows, polled by it every second
//
// Everything comes from memory: the engine's status and its view of the checkpoint (meta,
// batch in flight), the committed batches' stats, and a sample taken every second (rates,
// lag, checkpoint size). A request never reads the checkpoint, so it cannot hold a batch up.
//
// What is kept and sent is bounded whatever the job (KEEP): seconds of history, the newest
// batches, the most lagging partitions, ranges per batch. Sources and sinks appear by id and
// name only, never their options (connection strings hold passwords); the lock owner
// without its nonce.
import { readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { ServerResponse } from 'node:http';
import type { InFlightReport } from '../checkpoint/inspect';
import { readLockOwner } from '../checkpoint/lock';
import type { FingerprintEntry, Range } from '../checkpoint/model';
import type { BatchStats, EngineCheckpoint, EngineStatus } from './batch-stats';

export interface StatusSource {
  status(): EngineStatus;
  checkpoint(): EngineCheckpoint;
}

export interface StatusOptions {
  readonly engine: StatusSource;
  readonly job: string;
  readonly checkpointDir: string;
  /** The checkpoint's size on disk as last measured (the metrics measure it in the background). */
  readonly checkpointBytes: () => number;
  /** As /readyz says it. */
  readonly readiness: () => { readonly ready: boolean; readonly reason: string };
  /** For tests: the clock. */
  readonly now?: () => number;
  /** Told about a failed sample, which never stops the daemon (the metrics server's log). */
  readonly onError?: (err: unknown, what: string) => void;
}

/** The bounds of what is kept and sent: seconds of samples, batches, partitions plotted, ranges per batch, fingerprints. */
const KEEP = { samples: 300, batches: 120, topPartitions: 10, ranges: 5, fingerprints: 20 } as const;
/** The lock owner's record is read again this often (ms): a takeover shows within that. */
const OWNER_EVERY_MS = 5_000;

/** A batch as the page's table and duration plot show it. */
export interface StatusBatch {
  readonly id: number;
  /** When it committed (ms since the epoch). */
  readonly at: number;
  /** The first KEEP.ranges of its ranges. */
  readonly ranges: readonly Range[];
  readonly rangeCount: number;
  readonly records: number;
  readonly outputs: number;
  readonly deadLetters: number;
  readonly recovered: boolean;
  /** Milliseconds per phase. */
  readonly durations: Readonly<Record<string, number>>;
}

export interface StatusJson {
  readonly now: number;
  readonly job: {
    readonly name: string;
    readonly source: string | null;
    readonly sinks: readonly string[];
    readonly fingerprint: string | null;
    /** The newest KEEP.fingerprints, oldest first. */
    readonly fingerprints: readonly FingerprintEntry[];
    readonly createdAt: number | null;
  };
  readonly ready: { readonly ready: boolean; readonly reason: string };
  readonly lock: { readonly held: boolean; readonly owner: { readonly host: string; readonly pid: number; readonly since: number } | null };
  readonly lastCommitted: number;
  readonly totals: { readonly batches: number; readonly records: number; readonly outputs: number };
  /** Batches found in flight at start and carried to commit, in this run. */
  readonly recoveries: { readonly count: number; readonly batches: readonly number[] };
  /** The batch between PLANNED and COMMITTED, as `tidemark inspect` shows it (ranges cut to KEEP.ranges). */
  readonly inFlight: (InFlightReport & { readonly rangeCount: number }) | null;
  /** Newest first. */
  readonly batches: readonly StatusBatch[];
  /** One sample a second, oldest first; `t` in seconds since the epoch. */
  readonly series: {
    readonly t: readonly number[];
    readonly recordsIn: readonly number[];
    readonly recordsOut: readonly number[];
    readonly checkpointBytes: readonly number[];
    /** The KEEP.topPartitions partitions lagging most now, with their lag in each sample (null: not known then). */
    readonly lag: ReadonlyArray<{ readonly partition: string; readonly values: ReadonlyArray<number | null> }>;
  };
}

interface Sample {
  readonly t: number;
  readonly recordsIn: number;
  readonly recordsOut: number;
  readonly checkpointBytes: number;
  /** The most lagging partitions then (at most KEEP.topPartitions). */
  readonly lag: ReadonlyMap<string, number>;
}

/**
 * The partitions with the most lag, at most `n`, most first (ties by key). One pass keeping
 * the n best, without building the entries: sorting them all each second cost several ms over
 * 10,000 partitions (2026-11-30, bench/status-cost.ts).
 */
export function topLag(lag: Readonly<Record<string, number>>, n: number): Map<string, number> {
  const top: Array<readonly [string, number]> = [];
  const before = (a: readonly [string, number], b: readonly [string, number]): boolean => a[1] > b[1] || (a[1] === b[1] && a[0] < b[0]);
  for (const key in lag) {
    const entry = [key, lag[key]!] as const;
    if (top.length === n && (n === 0 || !before(entry, top[n - 1]!))) continue;
    let i = top.length;
    while (i > 0 && before(entry, top[i - 1]!)) i--;
    top.splice(i, 0, entry);
    if (top.length > n) top.pop();
  }
  return new Map(top);
}

/** The built page: found by walking up from this module to the package's dist/ (src/ in tests, dist/ when built). */
function pageDir(): string | undefined {
  for (let dir = __dirname; ; dir = dirname(dir)) {
    const candidate = join(dir, 'dist', 'status-page');
    if (existsSync(join(candidate, 'index.html'))) return candidate;
    if (dirname(dir) === dir) return undefined;
  }
}

const ASSETS: Readonly<Record<string, { readonly file: string; readonly type: string }>> = {
  '/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/status-page.js': { file: 'main.js', type: 'text/javascript; charset=utf-8' },
  '/status-page.css': { file: 'main.css', type: 'text/css; charset=utf-8' },
};

/** The page runs only its own script: an injected `<script>` would not execute even if a string were not escaped. */
const PAGE_HEADERS = {
  'content-security-policy': "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'",
  'x-content-type-options': 'nosniff',
  'cache-control': 'no-cache',
};

export class StatusPage {
  private readonly now: () => number;
  private readonly samples: Sample[] = [];
  private readonly batches: StatusBatch[] = [];
  private readonly recovered: number[] = [];
  private recoveries = 0;
  private totals = { batches: 0, records: 0, outputs: 0 };
  private sampled = { records: 0, outputs: 0 };
  private owner: StatusJson['lock']['owner'] = null;
  private ownerAt = -Infinity;
  private timer: NodeJS.Timeout | undefined;
  private assets: Promise<Map<string, Buffer>> | undefined;

  constructor(private readonly options: StatusOptions) {
    this.now = options.now ?? Date.now;
  }

  /** Feeds one committed batch. */
  observe(stats: BatchStats): void {
    this.totals = { batches: this.totals.batches + 1, records: this.totals.records + stats.records, outputs: this.totals.outputs + stats.outputs };
    if (stats.recovered) {
      this.recoveries++;
      this.recovered.push(stats.id);
      if (this.recovered.length > KEEP.batches) this.recovered.shift();
    }
    this.batches.unshift({
      id: stats.id, at: this.now(), ranges: stats.ranges.slice(0, KEEP.ranges), rangeCount: stats.ranges.length, records: stats.records,
      outputs: stats.outputs, deadLetters: stats.deadLetters, recovered: stats.recovered, durations: stats.durations,
    });
    if (this.batches.length > KEEP.batches) this.batches.pop();
  }

  /** Takes a sample now and then one every second, until `stop()`. */
  start(): void {
    const sample = (): void => {
      try {
        this.sample();
      } catch (err) {
        this.options.onError?.(err, 'sampling the status page');
      }
    };
    sample();
    this.timer = setInterval(sample, 1_000).unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** Records/s since the last sample, lag, size; reads the lock owner's record now and then (a small file, not the checkpoint). */
  sample(): void {
    const now = this.now();
    const last = this.samples.at(-1);
    const seconds = last ? Math.max(0.001, (now - last.t * 1000) / 1000) : 1;
    this.samples.push({
      t: now / 1000,
      recordsIn: last ? (this.totals.records - this.sampled.records) / seconds : 0,
      recordsOut: last ? (this.totals.outputs - this.sampled.outputs) / seconds : 0,
      checkpointBytes: this.options.checkpointBytes(),
      lag: topLag(this.options.engine.status().lag, KEEP.topPartitions),
    });
    this.sampled = { records: this.totals.records, outputs: this.totals.outputs };
    if (this.samples.length > KEEP.samples) this.samples.shift();
    if (now - this.ownerAt >= OWNER_EVERY_MS) {
      this.ownerAt = now;
      readLockOwner(this.options.checkpointDir).then(
        (o) => void (this.owner = o ? { host: o.host, pid: o.pid, since: o.since } : null),
        () => void (this.owner = null),
      );
    }
  }

  json(): StatusJson {
    const status = this.options.engine.status();
    const { meta, inFlight } = this.options.engine.checkpoint();
    const current = this.samples.at(-1)?.lag ?? new Map<string, number>();
    return {
      now: this.now(),
      job: {
        name: this.options.job, source: meta?.source ?? null, sinks: meta?.sinks ?? [], fingerprint: meta?.fingerprint ?? null,
        fingerprints: (meta?.fingerprints ?? []).slice(-KEEP.fingerprints), createdAt: meta?.createdAt ?? null,
      },
      ready: this.options.readiness(),
      lock: { held: status.lockHeld, owner: this.owner },
      lastCommitted: status.lastCommitted,
      totals: this.totals,
      recoveries: { count: this.recoveries, batches: [...this.recovered] },
      inFlight: inFlight ? { ...inFlight, ranges: inFlight.ranges.slice(0, KEEP.ranges), rangeCount: inFlight.ranges.length } : null,
      batches: [...this.batches],
      series: {
        t: this.samples.map((s) => s.t),
        recordsIn: this.samples.map((s) => s.recordsIn),
        recordsOut: this.samples.map((s) => s.recordsOut),
        checkpointBytes: this.samples.map((s) => s.checkpointBytes),
        lag: [...current.keys()].map((partition) => ({ partition, values: this.samples.map((s) => s.lag.get(partition) ?? null) })),
      },
    };
  }

  /** Whether `path` is the page's: `/`, its assets, `/status.json`. */
  serves(path: string | undefined): path is string {
    return path === '/status.json' || (path !== undefined && Object.hasOwn(ASSETS, path));
  }

  handle(path: string, res: ServerResponse, fail: (res: ServerResponse, err: unknown) => void): void {
    if (path === '/status.json') {
      // `<` escaped too: no browser can take the JSON for markup, whatever a name holds.
      const body = JSON.stringify(this.json()).replace(/</g, '\\u003c');
      res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'x-content-type-options': 'nosniff', 'cache-control': 'no-store' }).end(body);
      return;
    }
    const asset = ASSETS[path]!;
    this.load().then((files) => {
      const body = files.get(asset.file);
      if (!body) {
        res.writeHead(503, { 'content-type': 'text/plain' }).end('The status page is not built: run `node scripts/build.js` (/status.json works without it).\n');
        return;
      }
      res.writeHead(200, { 'content-type': asset.type, ...PAGE_HEADERS }).end(body);
    }).catch((err: unknown) => fail(res, err));
  }

  /** The built page's files, read once. */
  private load(): Promise<Map<string, Buffer>> {
    this.assets ??= (async () => {
      const dir = pageDir();
      const files = new Map<string, Buffer>();
      if (dir) for (const { file } of Object.values(ASSETS)) files.set(file, await readFile(join(dir, file)));
      return files;
    })();
    this.assets.catch(() => void (this.assets = undefined));
    return this.assets;
  }
}
