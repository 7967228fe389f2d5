// kafkajs 2.2.4 arms its request queue's throttle check with `throttledUntil - Date.now()`
// (network/requestQueue scheduleCheckPendingRequests) while `throttledUntil` is still its
// initial -1, or already past: a negative delay (minus the epoch in ms, at first), which
// Node ≥ 24 reports on stderr as a TimeoutNegativeWarning, per connection, in every process
// that embeds tidemark; Node then runs it after 1 ms. This module arms the same check with the
// delay clamped at 0. A real throttle (a future `throttledUntil`, from the broker's throttle
// time) keeps its delay. The method is rewritten rather than wrapped: moving `throttledUntil`
// up to now before calling kafkajs's left a delay of -1 whenever the clock ticked in between.
//
// kafkajs 2.2.4 is the last release of kafkajs; install() checks the shape it relies on.
import RequestQueue from 'kafkajs/src/network/requestQueue';

/** kafkajs's CHECK_PENDING_REQUESTS_INTERVAL (network/requestQueue), not exported by it. */
const CHECK_PENDING_REQUESTS_INTERVAL = 10;

interface QueueState {
  throttledUntil: number;
  throttleCheckTimeoutId: NodeJS.Timeout | null;
  readonly pending: readonly unknown[];
  checkPendingRequests(): void;
}

let installed = false;

export function installThrottleHook(): void {
  if (installed) return;
  const proto = RequestQueue.prototype as unknown as { scheduleCheckPendingRequests?: (this: QueueState) => void; checkPendingRequests?: unknown };
  if (typeof proto.scheduleCheckPendingRequests !== 'function' || typeof proto.checkPendingRequests !== 'function') {
    throw new Error('tidemark needs kafkajs 2.2.x: kafkajs/src/network/requestQueue has no scheduleCheckPendingRequests (a different kafkajs version is installed)');
  }
  proto.scheduleCheckPendingRequests = function scheduleCheckPendingRequests(this: QueueState): void {
    if (this.throttleCheckTimeoutId) return;
    const untilThrottleEnds = this.throttledUntil - Date.now();
    // As kafkajs: pending requests are checked when the throttle ends, or after its interval.
    const delay = this.pending.length > 0 && untilThrottleEnds <= 0 ? CHECK_PENDING_REQUESTS_INTERVAL : Math.max(0, untilThrottleEnds);
    this.throttleCheckTimeoutId = setTimeout(() => {
      this.throttleCheckTimeoutId = null;
      this.checkPendingRequests();
    }, delay);
  };
  installed = true;
}
