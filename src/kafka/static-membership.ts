// Static membership (KIP-345) for group mode's membership consumer (docs/scale-out.md,
// "Restarts in place"): kafkajs 2.2.4 has the request encoders with `group_instance_id`
// (JoinGroup v5, SyncGroup v3, Heartbeat v3, LeaveGroup v3) but its Broker methods never
// pass one. The coordinator brokers of the membership's own cluster get their JoinGroup,
// SyncGroup and Heartbeat built with the instance id (their request factory wrapped while
// kafkajs builds the request, which it does before its first await), and no LeaveGroup:
// a static member that leaves gives its partitions away at once and so gives up the fast
// restart in place, which is what it is for — Kafka's own consumer does not send it either.
// OffsetCommit has the field from v7 only (kafkajs stops at v5): a commit names the member
// id, which the coordinator replaces when another process joins with the same instance id,
// so the replaced one's commits are refused (UNKNOWN_MEMBER_ID) all the same.
import type { Cluster } from 'kafkajs';

type RequestFactory = (args: Record<string, unknown>) => { request: { apiVersion: number } };
interface CoordinatorBroker {
  lookupRequest(apiKey: number, definition: unknown): RequestFactory;
  joinGroup(args: object): Promise<unknown>;
  syncGroup(args: object): Promise<unknown>;
  heartbeat(args: object): Promise<unknown>;
  leaveGroup(args: object): Promise<unknown>;
}

/** The first version of each request with `group_instance_id` (KIP-345). */
const FIRST_STATIC: Readonly<Record<'joinGroup' | 'syncGroup' | 'heartbeat', number>> = { joinGroup: 5, syncGroup: 3, heartbeat: 3 };

const patched = new WeakSet<object>();

function shapeError(what: string): Error {
  return new Error(`tidemark needs kafkajs 2.2.x for static group membership: ${what} (a different kafkajs version is installed)`);
}

function patchBroker(broker: CoordinatorBroker, instanceId: string): void {
  if (patched.has(broker)) return;
  for (const method of ['joinGroup', 'syncGroup', 'heartbeat', 'leaveGroup', 'lookupRequest'] as const) {
    if (typeof broker[method] !== 'function') throw shapeError(`its Broker has no ${method}`);
  }
  for (const [method, minVersion] of Object.entries(FIRST_STATIC) as Array<[keyof typeof FIRST_STATIC, number]>) {
    const original = broker[method];
    broker[method] = function withInstanceId(this: CoordinatorBroker, args: object): Promise<unknown> {
      const lookup = this.lookupRequest;
      this.lookupRequest = (apiKey, definition) => {
        const make = lookup.call(this, apiKey, definition);
        return (a) => {
          const built = make({ ...a, groupInstanceId: instanceId });
          if (typeof built?.request?.apiVersion !== 'number') throw shapeError(`its ${method} request has no apiVersion`);
          if (built.request.apiVersion < minVersion) {
            throw new Error(`The Kafka broker speaks ${method} v${built.request.apiVersion}, which has no group.instance.id (v${minVersion}+, Kafka 2.3+): run without an instance id`);
          }
          return built;
        };
      };
      try {
        return original.call(this, args);
      } finally {
        this.lookupRequest = lookup;
      }
    };
  }
  broker.leaveGroup = async () => undefined;
  patched.add(broker);
}

/** Makes the consumer group of `cluster` (one consumer's own) a static member `instanceId`. */
export function makeStatic(cluster: Cluster, instanceId: string): void {
  const c = cluster as unknown as { findGroupCoordinator?: (args: { groupId: string }) => Promise<CoordinatorBroker> };
  const find = c.findGroupCoordinator;
  if (typeof find !== 'function') throw shapeError('its Cluster has no findGroupCoordinator');
  c.findGroupCoordinator = async function findStaticCoordinator(args) {
    const broker = await find.call(this, args);
    patchBroker(broker, instanceId);
    return broker;
  };
}
