// The second halves of pipelined batches (deliver, COMMIT), one after the other in id order
// (DESIGN.md "Pipelining"). Both engines queue each prepared batch's finish here: a batch is
// finished only after every batch queued before it, none after one failed, and the first
// failure — the oldest batch's — is the one the run reports.
export class FinishQueue {
  private chain: Promise<void> = Promise.resolve();
  private failure: { readonly err: unknown } | undefined;
  private waiters: Array<() => void> = [];

  /** Whether a queued finish failed: the loop plans nothing more. */
  get failed(): boolean {
    return this.failure !== undefined;
  }

  /** Queues `finish` after every finish queued before it; it is skipped once one has failed. */
  push(finish: () => Promise<void>): void {
    this.chain = this.chain.then(() => (this.failure ? undefined : finish()))
      .catch((err: unknown) => void (this.failure ??= { err }))
      .finally(() => this.wake());
  }

  /** False, once a batch left the flight, when `inFlight` batches fill it (the loop looks again); true when one more may be planned. */
  async room(inFlight: number, max: number): Promise<boolean> {
    if (inFlight < max) return true;
    await this.next();
    return false;
  }

  /** Settles when a batch leaves the flight (a finish settles, or `wake()`), or when all are done. */
  next(): Promise<void> {
    return Promise.race([this.chain, new Promise<void>((resolve) => this.waiters.push(resolve))]);
  }

  /** Tells whoever waits in `next()` that a batch left the flight. */
  wake(): void {
    for (const wake of this.waiters.splice(0)) wake();
  }

  /** Waits for every queued finish; false when one failed. */
  async drained(): Promise<boolean> {
    await this.chain;
    return !this.failure;
  }

  /** Waits for every queued finish, then throws the first failure, if any. */
  async settle(): Promise<void> {
    await this.chain;
    if (this.failure) throw this.failure.err;
  }

  /** After `err` stopped the loop: waits for every queued finish (the checkpoint closes after them) and gives the error to report, the oldest batch's first. */
  async failureOr(err: unknown): Promise<unknown> {
    await this.chain;
    return this.failure ? this.failure.err : err;
  }
}
