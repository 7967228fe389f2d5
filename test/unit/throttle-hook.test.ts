// kafkajs's request queue arms its throttle check with `throttledUntil - Date.now()` while
// `throttledUntil` is -1, a delay of minus the epoch, which Node ≥ 24 prints as a
// TimeoutNegativeWarning per connection (src/kafka/throttle-hook.ts): with the hook installed
// the delay is never negative, and a real throttle keeps its delay.
import RequestQueue from 'kafkajs/src/network/requestQueue';
import { installThrottleHook } from '../../src/kafka/throttle-hook';

installThrottleHook();

interface Queue {
  throttledUntil: number;
  throttleCheckTimeoutId: NodeJS.Timeout | null;
  pending: unknown[];
  scheduleCheckPendingRequests(): void;
}

const newQueue = (): Queue => {
  const Constructor = RequestQueue as unknown as new (options: Record<string, unknown>) => Queue;
  return new Constructor({ maxInFlightRequests: null, requestTimeout: 30_000, enforceRequestTimeout: true, clientId: 'test', broker: '127.0.0.1:9', logger: { debug() {}, warn() {}, error() {}, info() {} } });
};

/** The delay the queue armed its throttle check with. */
function armedDelay(queue: Queue): number {
  const spy = jest.spyOn(global, 'setTimeout');
  try {
    queue.scheduleCheckPendingRequests();
    expect(spy).toHaveBeenCalledTimes(1);
    return spy.mock.calls[0]![1] as number;
  } finally {
    spy.mockRestore();
    if (queue.throttleCheckTimeoutId) clearTimeout(queue.throttleCheckTimeoutId);
  }
}

it('a new queue (throttledUntil -1) arms its check with no negative delay', () => {
  const queue = newQueue();
  expect(queue.throttledUntil).toBe(-1); // kafkajs's initial value, which the hook is for
  expect(armedDelay(queue)).toBe(0);
});

it('a throttle that has just ended (throttledUntil a moment ago) arms its check with no negative delay', () => {
  const queue = newQueue();
  queue.throttledUntil = Date.now() - 1; // the -1 a first version of the hook left when the clock ticked
  expect(armedDelay(queue)).toBe(0);
});

it('a broker throttle (throttledUntil ahead) keeps its delay', () => {
  const queue = newQueue();
  queue.throttledUntil = Date.now() + 5_000;
  const delay = armedDelay(queue);
  expect(delay).toBeGreaterThan(4_000);
  expect(delay).toBeLessThanOrEqual(5_000);
});

it('with requests pending and no throttle, the check comes after kafkajs\'s own interval (10 ms), as before', () => {
  const queue = newQueue();
  queue.pending.push({});
  expect(armedDelay(queue)).toBe(10);
  queue.pending.length = 0;
});
