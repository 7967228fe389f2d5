// Group mode's membership (docs/scale-out.md): a kafkajs consumer in the job's consumer
// group that takes part in the group's rebalances and is given partitions by a real
// assignor (round-robin), but never fetches a record — the source's KafkaReader reads the
// planned ranges with its private consumer. What it tells the engine after each join is
// the assignment and the generation, which is the owners' epoch; what it does for the
// engine is commit group offsets *as that member of that generation*, so the coordinator
// refuses a member that was replaced (ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID, or
// REBALANCE_IN_PROGRESS while the next generation forms): the partition is no longer ours.
//
// kafkajs 2.2.4 tells neither the generation nor a revocation: its GROUP_JOIN event carries
// the member id and the assignment only. ConsumerGroup#joinAndSync is the one method every
// join passes through; a wrap of it (like fetch-hook.ts's of Runner#handleBatch) reads the
// generation, the member id and the assignment the moment the join ends, and pauses every
// subscribed topic before the runner's first fetch, so this consumer fetches nothing and
// only heartbeats. kafkajs rejoins by itself when a heartbeat says the group rebalances and
// when the cluster metadata shows partitions added to a subscribed topic
// (`metadataMaxAge`). With an instance id (`group.instance.id`, static-membership.ts) a
// restart in place within the session timeout takes the member's place and partitions
// back without a rebalance; without one it is a new member, and its partitions move after
// the session timeout.
import ConsumerGroup from 'kafkajs/src/consumer/consumerGroup';
import { AssignerProtocol, type Cluster, type Consumer, type Kafka, type PartitionAssigner } from 'kafkajs';
import { partitionKey, type PartitionRef } from '../../checkpoint/model';
import { BadConfigError } from '../../checkpoint/errors';
import { SourceUnreachableError } from '../errors';
import type { Logger } from '../log';
import { backoffMs, retry, sleep } from '../retry';
import { CONSUMER_RESTART_BACKOFF, isCoordinatorNotReady, isTransient, rootMessage } from './errors';
import { Latch } from './latch';
import { makeStatic } from './static-membership';

/** What one join of the group gave this member. */
export interface Assignment {
  /** The group generation: the epoch of every partition of this assignment. */
  readonly generation: number;
  readonly memberId: string;
  /** Sorted by topic, then partition. */
  readonly partitions: readonly PartitionRef[];
  /** When the join ended (ms since the epoch). */
  readonly at: number;
}

/** One group commit: the offset of a partition and the metadata beside it. */
export interface GroupOffset extends PartitionRef {
  readonly offset: number;
  readonly metadata: string | null;
}

export interface MembershipOptions {
  readonly kafka: Kafka;
  readonly groupId: string;
  readonly topics: readonly string[];
  /** Default 10 s: a member frozen this long loses its partitions. */
  readonly sessionTimeout?: number;
  readonly heartbeatInterval?: number;
  /** How soon partitions added to a topic are seen and trigger a rebalance (default 5 s). */
  readonly metadataMaxAge?: number;
  /** Static membership (`group.instance.id`): unique per daemon, kept across its restarts. */
  readonly instanceId?: string;
  /** How long a consumer that kafkajs stopped on a passing error is started again before the membership fails (the source's reconnect budget; default 15 s). */
  readonly unreachableAfterMs?: () => number;
  readonly log: Logger;
}

/** Errors by which the coordinator says this member of this generation no longer owns anything. */
const REFUSALS = new Set(['ILLEGAL_GENERATION', 'UNKNOWN_MEMBER_ID', 'REBALANCE_IN_PROGRESS', 'FENCED_INSTANCE_ID']);

function hasErrorType(err: unknown, types: ReadonlySet<string>): boolean {
  for (let e: unknown = err; e; e = (e as { cause?: unknown }).cause) {
    if (types.has((e as { type?: string }).type ?? '')) return true;
  }
  return false;
}

export function isGroupRefusal(err: unknown): boolean {
  return hasErrorType(err, REFUSALS);
}

/** Another process joined with this member's instance id: rejoining would take it back, and so on. */
const FENCED_INSTANCE = new Set(['FENCED_INSTANCE_ID']);

interface JoinedGroup {
  readonly generationId: number;
  readonly memberId: string;
  readonly topicsSubscribed: readonly string[];
  readonly cluster: object;
  assigned(): Array<{ topic: string; partitions: number[] }>;
  pause(topicPartitions: Array<{ topic: string }>): void;
}

type JoinListener = (group: JoinedGroup) => void;
const joinListeners = new WeakMap<object, JoinListener>();
let installed = false;

function installJoinHook(): void {
  if (installed) return;
  const proto = ConsumerGroup.prototype as unknown as { joinAndSync: (this: JoinedGroup) => Promise<void> };
  const original = proto.joinAndSync;
  if (typeof original !== 'function') throw new Error('tidemark needs kafkajs 2.2.x: kafkajs/src/consumer/consumerGroup has no joinAndSync (a different kafkajs version is installed)');
  proto.joinAndSync = async function joinAndSync(this: JoinedGroup): Promise<void> {
    await original.call(this);
    const listener = joinListeners.get(this.cluster);
    if (!listener) return;
    if (typeof this.generationId !== 'number' || typeof this.memberId !== 'string' || typeof this.assigned !== 'function') {
      throw new Error('tidemark needs kafkajs 2.2.x: its consumer group lacks generationId/memberId/assigned (a different kafkajs version is installed)');
    }
    this.pause(this.topicsSubscribed.map((topic) => ({ topic })));
    listener(this);
  };
  installed = true;
}

/** Round-robin over the sorted partitions of every subscribed topic, members sorted by instance id, else member id (kafkajs's own, plus the cluster it runs on). */
function roundRobin(onCluster: (cluster: object) => void): PartitionAssigner {
  return ({ cluster }) => {
    onCluster(cluster);
    return {
      name: 'TidemarkRoundRobin',
      version: 0,
      async assign({ members, topics }) {
        // Static members by instance id, so a member restarted in place (a new member id) keeps its place in the order.
        const order = (m: { memberId: string }): string => (m as { groupInstanceId?: string | null }).groupInstanceId ?? m.memberId;
        const ids = [...members].sort((x, y) => (order(x) < order(y) ? -1 : order(x) > order(y) ? 1 : 0)).map((m) => m.memberId);
        const out = new Map<string, Record<string, number[]>>(ids.map((id) => [id, {}]));
        let i = 0;
        for (const topic of [...topics].sort()) {
          let parts: number[] = [];
          try {
            parts = cluster.findTopicPartitionMetadata(topic).map((p) => p.partitionId).sort((a, b) => a - b);
          } catch {
            // no metadata (deleted meanwhile): nothing to assign
          }
          for (const partition of parts) {
            const a = out.get(ids[i++ % ids.length]!)!;
            (a[topic] ??= []).push(partition);
          }
        }
        return ids.map((memberId) => ({
          memberId,
          memberAssignment: AssignerProtocol.MemberAssignment.encode({ version: 0, assignment: out.get(memberId)!, userData: Buffer.alloc(0) }),
        }));
      },
      protocol({ topics }) {
        return { name: 'TidemarkRoundRobin', metadata: AssignerProtocol.MemberMetadata.encode({ version: 0, topics, userData: Buffer.alloc(0) }) };
      },
    };
  };
}

export class GroupMembership {
  private consumer: Consumer | undefined;
  private cluster: Cluster | undefined;
  private latest: Assignment | undefined;
  private failure: Error | undefined;
  private readonly joins = new Latch();
  private stopped = false;
  /** Since when the consumer is stopped on passing errors, with no join since. */
  private downSince: number | undefined;
  private relaunches = 0;

  constructor(private readonly o: MembershipOptions) {}

  /** Joins the group; resolves with the first assignment. */
  async start(): Promise<Assignment> {
    installJoinHook();
    await this.launch();
    return this.next(undefined, 120_000);
  }

  /** A new consumer in the group: connected, subscribed and running (it joins in the background). */
  private async launch(): Promise<void> {
    const sessionTimeout = this.o.sessionTimeout ?? 10_000;
    const consumer = this.o.kafka.consumer({
      groupId: this.o.groupId,
      partitionAssigners: [roundRobin((cluster) => {
        this.cluster = cluster as Cluster;
        if (this.o.instanceId !== undefined) makeStatic(this.cluster, this.o.instanceId);
        joinListeners.set(cluster, (g) => this.onJoin(g));
      })],
      sessionTimeout,
      rebalanceTimeout: Math.max(sessionTimeout, 30_000),
      heartbeatInterval: this.o.heartbeatInterval ?? Math.min(1_000, Math.floor(sessionTimeout / 3)),
      metadataMaxAge: this.o.metadataMaxAge ?? 5_000,
      maxWaitTimeInMs: 200,
      allowAutoTopicCreation: false,
      retry: { retries: 8, initialRetryTime: 300, maxRetryTime: 5_000, restartOnFailure: async (err) => !hasErrorType(err, FENCED_INSTANCE) },
    });
    this.consumer = consumer;
    consumer.on(consumer.events.CRASH, (e) => {
      if (hasErrorType(e.payload.error, FENCED_INSTANCE)) {
        this.fail(new BadConfigError(`Another daemon joined the Kafka consumer group ${this.o.groupId} with instance id ${this.o.instanceId ?? ''}: give each daemon its own --instance-id (TIDEMARK_INSTANCE_ID) and keep it across its restarts.`));
      } else if (!e.payload.restart) {
        void this.relaunch(consumer, e.payload.error);
      }
    });
    await consumer.connect();
    await consumer.subscribe({ topics: [...this.o.topics] });
    await consumer.run({ autoCommit: false, eachBatch: async () => { /* never called: every topic is paused at each join */ } });
  }

  /**
   * kafkajs stopped the consumer for good. On an error that passes (no group coordinator yet,
   * while a new cluster creates __consumer_offsets) a new consumer joins instead, within the
   * reconnect budget: its partitions come with the next generation, as after any rebalance.
   */
  private async relaunch(crashed: Consumer, error: Error): Promise<void> {
    const unreachable = (): SourceUnreachableError =>
      new SourceUnreachableError(`The group membership consumer (group ${this.o.groupId}) stopped: ${rootMessage(error)}`, { cause: error });
    if (this.stopped || crashed !== this.consumer) return;
    this.downSince ??= Date.now();
    if (!isTransient(error) || Date.now() - this.downSince > (this.o.unreachableAfterMs?.() ?? 15_000)) {
      this.fail(unreachable());
      return;
    }
    this.o.log.warn({ err: rootMessage(error) }, `the group membership consumer (group ${this.o.groupId}) stopped; starting it again`);
    await sleep(backoffMs(++this.relaunches, CONSUMER_RESTART_BACKOFF));
    if (this.stopped || crashed !== this.consumer) return;
    await crashed.disconnect().catch(() => {});
    try {
      await this.launch();
    } catch (err) {
      this.fail(isTransient(err) ? unreachable() : err as Error);
    }
  }

  private onJoin(g: JoinedGroup): void {
    const partitions = g.assigned()
      .flatMap(({ topic, partitions: ps }) => ps.map((partition) => ({ topic, partition })))
      .sort((a, b) => (a.topic < b.topic ? -1 : a.topic > b.topic ? 1 : a.partition - b.partition));
    this.latest = { generation: g.generationId, memberId: g.memberId, partitions, at: Date.now() };
    this.downSince = undefined;
    this.relaunches = 0;
    this.joins.notify();
  }

  private fail(err: Error): void {
    this.failure ??= err;
    this.joins.notify();
  }

  /** The assignment of the last join (undefined before the first). */
  current(): Assignment | undefined {
    if (this.failure) throw this.failure;
    return this.latest;
  }

  /** Resolves with an assignment newer than `than` (its generation), or the current one after `timeoutMs`/abort. */
  async next(than: Assignment | undefined, timeoutMs: number, signal?: AbortSignal): Promise<Assignment> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const now = this.current();
      if (now && (!than || now.generation !== than.generation || now.memberId !== than.memberId)) return now;
      const left = deadline - Date.now();
      if (left <= 0 || signal?.aborted || this.stopped) {
        if (now) return now;
        throw new SourceUnreachableError(`Could not join the Kafka consumer group ${this.o.groupId} within ${Math.round(timeoutMs / 1000)} s`);
      }
      await this.joins.wait(left, signal);
    }
  }

  /** Wakes at the next join (or failure); for an idle engine. */
  waitForJoin(ms: number, signal: AbortSignal): Promise<void> {
    return this.joins.wait(ms, signal);
  }

  /**
   * Commits `offsets` to the group as the member of `assignment`'s generation. False when
   * the coordinator refuses it: that generation is over, the partitions may be another's.
   */
  async commit(assignment: Assignment, offsets: readonly GroupOffset[]): Promise<boolean> {
    if (offsets.length === 0) return true;
    const cluster = this.cluster;
    if (!cluster) return false;
    const byTopic = new Map<string, Array<{ partition: number; offset: string; metadata: string | null }>>();
    for (const o of offsets) {
      const list = byTopic.get(o.topic) ?? [];
      list.push({ partition: o.partition, offset: String(o.offset), metadata: o.metadata });
      byTopic.set(o.topic, list);
    }
    try {
      await retry(async () => {
        const coordinator = await cluster.findGroupCoordinator({ groupId: this.o.groupId });
        await coordinator.offsetCommit({
          groupId: this.o.groupId, groupGenerationId: assignment.generation, memberId: assignment.memberId, retentionTime: -1,
          topics: [...byTopic].map(([topic, partitions]) => ({ topic, partitions })),
        });
      }, {
        baseMs: 200, maxMs: 2_000, budgetMs: 20_000,
        retryable: (err) => !isGroupRefusal(err) && (isTransient(err) || isCoordinatorNotReady(err)),
        onRetry: (err) => this.o.log.warn({ err: rootMessage(err) }, `group commit of ${offsets.map(partitionKey).join(', ')} failed; retrying`),
      });
      return true;
    } catch (err) {
      if (isGroupRefusal(err)) return false;
      throw err;
    }
  }

  /**
   * Leaves the group (LeaveGroup): its partitions move at once, not after the session
   * timeout — except a static member's, which stay its own until then (static-membership.ts).
   */
  async stop(): Promise<void> {
    this.stopped = true;
    this.joins.notify();
    const consumer = this.consumer;
    this.consumer = undefined;
    if (this.cluster) joinListeners.delete(this.cluster);
    await consumer?.disconnect();
  }
}
