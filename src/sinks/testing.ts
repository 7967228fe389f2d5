// A check users run against their own sink: it delivers every batch twice, in each of the
// ways a crash makes the engine redeliver, and after every delivery compares what the
// destination holds with what a crash-free run would hold.
//
//   same instance   write(n), write(n)            the engine retried a write that had in fact succeeded
//   restart         write(n) on A, then a fresh   a crash between delivery and commit: the next process
//                   instance B: write(n), and B   redelivers the staged batch (A is abandoned, not closed,
//                   goes on with n+1, …           as after SIGKILL; it is closed at the end)
//   concurrent      A and B write(n) at once      (option) a zombie still delivering while its successor
//                                                 redelivers; only possible when two processes run one job
//
// Usage (any test runner; it throws an Error describing the difference):
//
//   await checkIdempotentSink({
//     sink: () => mySink({ url }),
//     batches: [[{ id: 1 }, { id: 2 }], [{ id: 3 }]],
//     read: async () => (await db.query('SELECT id FROM t')).rows,
//   });
import type { Range, Sink, SinkBatch } from '../contracts';

export interface SinkCheckOptions<T> {
  /** Makes a sink instance; called again to play a restarted process. */
  readonly sink: () => Sink<T> | Promise<Sink<T>>;
  /** The outputs of batches 1, 2, 3, … */
  readonly batches: ReadonlyArray<readonly T[]>;
  /** What the destination holds now (rows, records, lines), in any order unless `ordered`. */
  readonly read: () => Promise<readonly unknown[]>;
  /**
   * What the destination must hold once the given batches are delivered (default: each of
   * their outputs exactly once). Give it for sinks that aggregate, e.g. upserts of counts.
   */
  readonly expected?: (delivered: ReadonlyArray<readonly T[]>) => readonly unknown[];
  /** Compare in order (default: as a multiset, order ignored). */
  readonly ordered?: boolean;
  /** Also deliver some batches from two instances at the same time (default false). */
  readonly concurrent?: boolean;
  /** The job name passed with each batch (default `sink-check`). */
  readonly job?: string;
  /** The offset ranges of batch `id` (default: partition 0 of topic `sink-check`, 1,000 offsets per batch). */
  readonly ranges?: (id: number) => readonly Range[];
}

export interface SinkCheckReport {
  /** Calls to `write`. */
  readonly writes: number;
  /** Sink instances made (1 + simulated restarts). */
  readonly instances: number;
  /** Comparisons of the destination with the expected contents, one after every delivery. */
  readonly checks: number;
}

/** JSON with sorted object keys, so equal values compare equal whatever their key order. */
function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (v && typeof v === 'object' && !Array.isArray(v) && !Buffer.isBuffer(v)) {
      return Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
    }
    return typeof v === 'bigint' ? v.toString() : v;
  }) ?? 'undefined';
}

function difference(expected: readonly unknown[], actual: readonly unknown[], ordered: boolean): string | undefined {
  const e = expected.map(canonical);
  const a = actual.map(canonical);
  if (ordered) {
    const at = e.findIndex((v, i) => v !== a[i]);
    if (at === -1 && e.length === a.length) return undefined;
    const i = at === -1 ? e.length : at;
    return `at position ${i} expected ${e[i] ?? '(nothing)'} but found ${a[i] ?? '(nothing)'} (${a.length} items, expected ${e.length})`;
  }
  const counts = new Map<string, number>();
  for (const v of e) counts.set(v, (counts.get(v) ?? 0) + 1);
  for (const v of a) counts.set(v, (counts.get(v) ?? 0) - 1);
  const missing: string[] = [];
  const extra: string[] = [];
  for (const [v, n] of counts) {
    for (let i = 0; i < Math.abs(n); i++) (n > 0 ? missing : extra).push(v);
  }
  if (missing.length === 0 && extra.length === 0) return undefined;
  const show = (xs: string[]): string => `${xs.slice(0, 5).join(', ')}${xs.length > 5 ? `, … (${xs.length} in all)` : ''}`;
  return [
    missing.length > 0 ? `missing ${missing.length}: ${show(missing)}` : '',
    extra.length > 0 ? `${extra.length} too many (duplicates or strays): ${show(extra)}` : '',
  ].filter(Boolean).join('; ');
}

/** Delivers every batch twice, as crashes would, and checks the destination after every delivery. */
export async function checkIdempotentSink<T>(options: SinkCheckOptions<T>): Promise<SinkCheckReport> {
  const job = options.job ?? 'sink-check';
  const ranges = options.ranges ?? ((id: number) => [{ topic: 'sink-check', partition: 0, from: (id - 1) * 1000, until: id * 1000 }]);
  const expected = options.expected ?? ((delivered: ReadonlyArray<readonly T[]>) => delivered.flat());
  const instances: Array<Sink<T>> = [];
  const make = async (): Promise<Sink<T>> => {
    const s = await options.sink();
    instances.push(s);
    return s;
  };
  let writes = 0;
  let checks = 0;
  const write = async (sink: Sink<T>, batch: SinkBatch<T>): Promise<void> => {
    writes++;
    await sink.write(batch);
  };
  const check = async (upTo: number, after: string): Promise<void> => {
    checks++;
    const diff = difference(expected(options.batches.slice(0, upTo)), await options.read(), options.ordered === true);
    if (diff !== undefined) throw new Error(`Sink ${instances[0]?.name ?? '?'} is not idempotent: after ${after}, the destination ${diff}.`);
  };

  try {
    let current = await make();
    for (let i = 0; i < options.batches.length; i++) {
      const id = i + 1;
      const batch: SinkBatch<T> = { id, job, ranges: ranges(id), outputs: options.batches[i]! };
      const pattern = options.concurrent && i % 4 === 3 ? 'concurrent' : i % 2 === 0 ? 'same instance' : 'restart';
      if (pattern === 'concurrent') {
        const successor = await make();
        await Promise.all([write(current, batch), write(successor, batch)]);
        current = successor;
        await check(id, `batch ${id} was delivered by two instances at once`);
      } else {
        await write(current, batch);
        await check(id, `batch ${id} was delivered once`);
        if (pattern === 'restart') current = await make();
        await write(current, batch);
        await check(id, `batch ${id} was delivered again (${pattern === 'restart' ? 'by a new instance, as after a crash before commit' : 'by the same instance'})`);
      }
    }
    return { writes, instances: instances.length, checks };
  } finally {
    for (const s of instances) await s.close?.();
  }
}
