// What kafkajs does not tell: why it found no coordinator. A FindCoordinator that Kafka
// refuses for want of an ACL (GROUP_AUTHORIZATION_FAILED for a group,
// TRANSACTIONAL_ID_AUTHORIZATION_FAILED for a transactional id) reaches kafkajs's cluster,
// whose broker pool swallows every broker's error and throws a bare, retriable
// KafkaJSGroupCoordinatorNotFound "Failed to find group coordinator": a missing ACL would
// look like an outage (exit 6 or 9 after retries). This module wraps Broker#findGroupCoordinator
// to keep, per group or transactional id, the refusal its last lookup met (a success
// forgets it); errors.ts's accessFailure asks for it when it meets that bare error.
import Broker from 'kafkajs/src/broker';

const refusals = new Map<string, Error>();
let installed = false;

export function installCoordinatorHook(): void {
  if (installed) return;
  const proto = Broker.prototype as unknown as { findGroupCoordinator: (this: unknown, request: { groupId: string }) => Promise<unknown> };
  const original = proto.findGroupCoordinator;
  if (typeof original !== 'function') {
    throw new Error('tidemark needs kafkajs 2.2.x: kafkajs/src/broker has no findGroupCoordinator (a different kafkajs version is installed)');
  }
  proto.findGroupCoordinator = async function findGroupCoordinatorKeepingRefusals(this: unknown, request: { groupId: string }): Promise<unknown> {
    try {
      const found = await original.call(this, request);
      refusals.delete(request.groupId);
      return found;
    } catch (err) {
      if (/_AUTHORIZATION_FAILED$/.test(String((err as { type?: unknown }).type))) refusals.set(request.groupId, err as Error);
      throw err;
    }
  };
  installed = true;
}

/** The refusal the last coordinator lookup for one of `keys` (groups, transactional ids) met, if it was refused. */
export function coordinatorRefusal(keys: readonly string[]): Error | undefined {
  for (const key of keys) {
    const refusal = refusals.get(key);
    if (refusal) return refusal;
  }
  return undefined;
}
