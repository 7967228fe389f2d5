// kafkajs 2.2.4 arms its request queue's throttle check with `throttledUntil - Date.now()`
// (network/requestQueue scheduleCheckPendingRequests) while `throttledUntil` is still its
// initial -1: a delay of minus the epoch in ms, which Node ≥ 24 reports on stderr as a
// TimeoutNegativeWarning per connection, in every process that embeds tidemark, and then runs
// after 1 ms. This module moves a `throttledUntil` in the past up to now before the check is
// armed: the delay is 0 instead, the same check at the same time; a real throttle (a future
// `throttledUntil`, set from the broker's throttle time) is left as it is.
//
// kafkajs 2.2.4 is the last release of kafkajs; install() checks the shape it relies on.
import RequestQueue from 'kafkajs/src/network/requestQueue';

let installed = false;

export function installThrottleHook(): void {
  if (installed) return;
  const proto = RequestQueue.prototype as unknown as { scheduleCheckPendingRequests?: (this: { throttledUntil: number }) => void };
  const schedule = proto.scheduleCheckPendingRequests;
  if (typeof schedule !== 'function') {
    throw new Error('tidemark needs kafkajs 2.2.x: kafkajs/src/network/requestQueue has no scheduleCheckPendingRequests (a different kafkajs version is installed)');
  }
  proto.scheduleCheckPendingRequests = function scheduleFromNow(this: { throttledUntil: number }): void {
    const now = Date.now();
    if (this.throttledUntil < now) this.throttledUntil = now;
    schedule.call(this);
  };
  installed = true;
}
