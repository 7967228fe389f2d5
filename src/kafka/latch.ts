// A latch: notify() wakes whoever waits, or — when nobody does — lets the next wait()
// return at once, so a notification between two waits is not lost. Waits also end after
// a timeout or on abort. The Kafka reader waits on two: "something changed" (its read
// loop) and "records arrived" (an idle engine's waitForData).
export class Latch {
  private set = false;
  private readonly waiters = new Set<() => void>();

  notify(): void {
    this.set = this.waiters.size === 0;
    for (const done of [...this.waiters]) done();
  }

  /** Forgets a notification nobody has waited for yet. */
  reset(): void {
    this.set = false;
  }

  wait(ms: number, signal?: AbortSignal): Promise<void> {
    if (this.set) {
      this.set = false;
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', done);
        this.waiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal?.addEventListener('abort', done);
      this.waiters.add(done);
    });
  }
}
