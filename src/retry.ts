// One retry loop with exponential backoff, for every operation that may fail for a while
// (a sink's write, a Kafka admin call, a transactional request while the coordinator moves).
import { isTidemarkError } from '../checkpoint/errors';

export interface RetryOptions {
  /** The first wait; each later wait doubles, up to `maxMs`. */
  readonly baseMs: number;
  readonly maxMs: number;
  /** Give up after this many attempts (the first one included). */
  readonly attempts?: number;
  /** Give up once this long has passed since the first attempt; the last wait is cut to fit. */
  readonly budgetMs?: number;
  /** Failures worth another attempt; any other is thrown at once. Default: every failure. */
  readonly retryable?: (err: unknown) => boolean;
  /** Called before each wait (log it, renew a connection). */
  readonly onRetry?: (err: unknown, attempt: number, waitMs: number) => void | Promise<void>;
  /** What to throw when the attempts or the budget are used up. Default: the last failure. */
  readonly giveUp?: (err: unknown, attempt: number, elapsedMs: number) => unknown;
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** The wait before attempt `attempt + 1`. */
export function backoffMs(attempt: number, o: Pick<RetryOptions, 'baseMs' | 'maxMs'>): number {
  return Math.min(o.maxMs, o.baseMs * 2 ** Math.min(attempt - 1, 30));
}

export async function retry<R>(op: (attempt: number) => Promise<R>, o: RetryOptions): Promise<R> {
  const started = Date.now();
  for (let attempt = 1; ; attempt++) {
    try {
      return await op(attempt);
    } catch (err) {
      // A broken invariant is a bug: another attempt could only hide it.
      if (isTidemarkError(err) && err.code === 'TIDEMARK_INVARIANT_BROKEN') throw err;
      if (o.retryable && !o.retryable(err)) throw err;
      const elapsed = Date.now() - started;
      if ((o.attempts !== undefined && attempt >= o.attempts) || (o.budgetMs !== undefined && elapsed >= o.budgetMs)) {
        throw o.giveUp ? o.giveUp(err, attempt, elapsed) : err;
      }
      const wait = Math.min(backoffMs(attempt, o), o.budgetMs === undefined ? Infinity : Math.max(0, o.budgetMs - elapsed));
      await o.onRetry?.(err, attempt, wait);
      await sleep(wait);
    }
  }
}
