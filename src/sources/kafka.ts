// kafkaSource: Apache Kafka topics as a tidemark source (docs/kafka-source.md).
//
//   - what to read: topics by name, by pattern (new topics and added partitions are picked
//     up at the next plan), or explicit partitions (Spark's `assign`);
//   - where a partition new to the checkpoint starts: earliest, latest, explicit offsets,
//     a timestamp, or the consumer group's committed offsets;
//   - reading: src/kafka/reader.ts (one consumer kept across batches, exact ranges), its
//     decisions in src/kafka/partition-buffer.ts;
//   - metadata and offsets: src/kafka/admin.ts ("latest" is the last stable offset);
//   - codecs: src/kafka/codecs.ts (gzip, snappy, lz4, zstd);
//   - after each committed batch the positions go to the job's consumer group, so
//     `kafka-consumer-groups --describe` shows progress and lag. The checkpoint stays the
//     source of truth.
import { Kafka, logLevel as KafkaLogLevel, type KafkaConfig, type LogEntry } from 'kafkajs';
import { BadConfigError } from '../../checkpoint/errors';
import { isWholeNumber, parsePartitionKey, partitionKey } from '../../checkpoint/model';
import type { OffsetMap, PartitionRef, Range, Source, SourceChunk } from '../contracts';
import { SourceUnreachableError } from '../errors';
import { KafkaAdmin, type ReconnectBudget } from '../kafka/admin';
import { registerKafkaCodecs } from '../kafka/codecs';
import { kafkaConfig, type KafkaConnectionOptions } from '../kafka/connection';
import { isUnknownTopic, rootMessage } from '../kafka/errors';
import { GroupMembership } from '../kafka/membership';
import { KafkaReader, type ConsumerTuning, type KafkaReadStats } from '../kafka/reader';
import { silentLogger, type Logger } from '../log';

/** Where partitions new to the checkpoint start. */
export type KafkaStartingOffsets =
  | 'earliest'
  | 'latest'
  /** The committed offsets of `groupId`; partitions without one start at `startingFallback`. */
  | 'group'
  /** Per partition, the first offset whose record timestamp is ≥ `timestamp` (ms), or the end when none is. */
  | { readonly timestamp: number }
  /** Explicit offsets by partition key (`'orders/0': 1200`); other partitions start at `startingFallback`. */
  | { readonly offsets: Readonly<Record<string, number>> };

/** Connection (`brokers`, `ssl`, `sasl`, `clientId`, timeouts, `retry`: see KafkaConnectionOptions; connection timeout 3 s by default), then: */
export interface KafkaSourceOptions extends KafkaConnectionOptions {
  /** Topics by name. Exactly one of `topics`, `pattern` and `assign`. */
  readonly topics?: readonly string[];
  /** Every topic whose name matches (internal topics, `__…`, excluded); new ones join at the next plan. */
  readonly pattern?: RegExp;
  /** Explicit partitions: `['orders/0', 'orders/1']` or `[{ topic, partition }]`. */
  readonly assign?: ReadonlyArray<string | PartitionRef>;
  /**
   * The job's consumer group: positions are committed to it after every batch (for
   * `kafka-consumer-groups` and lag tools), `startingOffsets: 'group'` reads it, and the
   * source's consumer is its member while the job runs. One group per job.
   */
  readonly groupId: string;
  /** Default `earliest`. Used only for partitions the checkpoint has no position for. */
  readonly startingOffsets?: KafkaStartingOffsets;
  /** Where partitions not covered by `group` or explicit offsets start (default `earliest`). */
  readonly startingFallback?: 'earliest' | 'latest';
  /** Default `read_committed`: aborted records and transaction markers are skipped (their offsets stay in the ranges). */
  readonly isolation?: 'read_committed' | 'read_uncommitted';
  /** How long an unreachable cluster is retried before SourceUnreachableError (exit code 6). */
  readonly reconnect?: Partial<ReconnectBudget>;
  /** Tuning of the consumer (session timeout, fetch sizes). */
  readonly consumer?: ConsumerTuning;
  /** Bound on records buffered ahead of delivery (default 64 MiB); the consumer pauses past it. */
  readonly maxBufferedBytes?: number;
  /**
   * Records fetched ahead of the next batch while this one is staged and delivered (default
   * 32 MiB, at most half of maxBufferedBytes; 0 turns read-ahead off). The read-ahead fetch
   * is also what wakes an idle daemon when records arrive; without it the engine polls every
   * `batch.pollIntervalMs`.
   */
  readonly readAheadBytes?: number;
  /** Commit positions to `groupId` after every batch (default true). */
  readonly commitOffsets?: boolean;
  /** The source id stored in the checkpoint (default `kafka:<topics|pattern|partitions>`). */
  readonly id?: string;
  /** Where kafkajs's own log lines go (default: nowhere), and from which level (default `warn`). */
  readonly logger?: Logger;
  readonly logLevel?: 'error' | 'warn' | 'info' | 'debug';
}

export interface KafkaSourceStats extends KafkaReadStats {
  readonly groupId: string;
}

export interface KafkaSource extends Source {
  readonly groupId: string;
  /**
   * Group mode (docs/scale-out.md): joins the job's consumer group as a member that is
   * assigned partitions but reads nothing (src/kafka/membership.ts). Its session timeout is
   * `consumer.sessionTimeout`; with `instanceId` it is a static member (`group.instance.id`).
   */
  joinGroup(log: Logger, instanceId?: string): Promise<GroupMembership>;
  /** The group's commits (offset and metadata) of these partitions; those without one are absent. */
  groupCommits(parts: readonly PartitionRef[]): Promise<Map<string, { offset: number; metadata: string | null }>>;
  /** Counters of the reader (seeks, group joins, buffered bytes …), for tests and metrics. */
  stats(): KafkaSourceStats;
  offsetsForTimestamp(parts: readonly PartitionRef[], timestamp: number): Promise<OffsetMap>;
}

type Subscription =
  | { readonly kind: 'topics'; readonly topics: readonly string[] }
  | { readonly kind: 'pattern'; readonly pattern: RegExp }
  | { readonly kind: 'assign'; readonly parts: readonly PartitionRef[] };

function fail(field: string, expected: string, got: unknown): never {
  const shown = typeof got === 'string' ? JSON.stringify(got) : Array.isArray(got) ? 'an array' : got === null ? 'null' : typeof got === 'object' ? 'an object' : String(got);
  throw new BadConfigError(`kafkaSource option \`${field}\` must be ${expected}; got ${shown}.`);
}

function parseAssign(entry: string | PartitionRef, i: number): PartitionRef {
  const ref = typeof entry === 'string' ? parsePartitionKey(entry) : entry;
  if (typeof ref !== 'object' || ref === null || typeof ref.topic !== 'string' || ref.topic === '' || !isWholeNumber(ref.partition)) {
    fail(`assign[${i}]`, "a partition, as 'topic/0' or { topic, partition }", entry);
  }
  return { topic: ref.topic, partition: ref.partition };
}

function subscriptionOf(o: KafkaSourceOptions): Subscription {
  const given = (['topics', 'pattern', 'assign'] as const).filter((k) => o[k] !== undefined);
  if (given.length !== 1) {
    throw new BadConfigError(`kafkaSource needs exactly one of \`topics\`, \`pattern\` and \`assign\`; got ${given.length === 0 ? 'none' : given.join(' and ')}.`);
  }
  if (o.topics !== undefined) {
    if (!Array.isArray(o.topics) || o.topics.length === 0 || o.topics.some((t) => typeof t !== 'string' || t === '')) fail('topics', 'a non-empty array of topic names', o.topics);
    return { kind: 'topics', topics: [...new Set(o.topics)].sort() };
  }
  if (o.pattern !== undefined) {
    if (!(o.pattern instanceof RegExp)) fail('pattern', 'a RegExp', o.pattern);
    return { kind: 'pattern', pattern: new RegExp(o.pattern.source, o.pattern.flags.replace(/[gy]/g, '')) };
  }
  if (!Array.isArray(o.assign) || o.assign.length === 0) fail('assign', 'a non-empty array of partitions', o.assign);
  const parts = o.assign.map(parseAssign);
  const keys = parts.map(partitionKey);
  const dup = keys.find((k, i) => keys.indexOf(k) !== i);
  if (dup !== undefined) fail('assign', 'distinct partitions', `${dup} twice`);
  return { kind: 'assign', parts: [...parts].sort((a, b) => (a.topic < b.topic ? -1 : a.topic > b.topic ? 1 : a.partition - b.partition)) };
}

function defaultId(s: Subscription): string {
  switch (s.kind) {
    case 'topics': return `kafka:${s.topics.join(',')}`;
    case 'pattern': return `kafka:/${s.pattern.source}/${s.pattern.flags}`;
    case 'assign': return `kafka:${s.parts.map(partitionKey).join(',')}`;
  }
}

function checkStarting(o: KafkaSourceOptions): void {
  const s = o.startingOffsets;
  if (s === undefined || s === 'earliest' || s === 'latest' || s === 'group') return;
  if (typeof s === 'object' && s !== null && 'timestamp' in s) {
    if (!isWholeNumber(s.timestamp)) fail('startingOffsets.timestamp', 'milliseconds since the epoch', s.timestamp);
    return;
  }
  if (typeof s === 'object' && s !== null && 'offsets' in s && typeof s.offsets === 'object' && s.offsets !== null) {
    for (const [key, offset] of Object.entries(s.offsets)) {
      if (!key.includes('/')) fail(`startingOffsets.offsets['${key}']`, "keyed by partition, as 'topic/0'", key);
      if (!isWholeNumber(offset)) fail(`startingOffsets.offsets['${key}']`, 'a whole number ≥ 0', offset);
    }
    return;
  }
  fail('startingOffsets', "'earliest', 'latest', 'group', { timestamp } or { offsets }", s);
}

function kafkaLogCreator(logger: Logger): KafkaConfig['logCreator'] {
  return () => ({ namespace, level, log }: LogEntry) => {
    const { message, ...extra } = log;
    const fields = { kafkajs: namespace, ...extra };
    // kafkajs logs connection failures it is about to retry as errors: warnings here.
    if (level === KafkaLogLevel.ERROR || level === KafkaLogLevel.WARN) logger.warn(fields, message);
    else if (level === KafkaLogLevel.INFO) logger.info(fields, message);
    else logger.debug(fields, message);
  };
}

const LOG_LEVELS = { error: KafkaLogLevel.ERROR, warn: KafkaLogLevel.WARN, info: KafkaLogLevel.INFO, debug: KafkaLogLevel.DEBUG } as const;

export function kafkaSource(options: KafkaSourceOptions): KafkaSource {
  const o = options as Partial<KafkaSourceOptions> | undefined;
  if (typeof o !== 'object' || o === null) fail('(options)', 'an object', o);
  if (!Array.isArray(o.brokers) || o.brokers.length === 0 || o.brokers.some((b) => typeof b !== 'string' || !/^[^\s:]+:\d+$/.test(b))) {
    fail('brokers', "a non-empty array of 'host:port'", o.brokers);
  }
  if (typeof o.groupId !== 'string' || o.groupId === '') fail('groupId', "the job's consumer group (a non-empty string)", o.groupId);
  if (o.isolation !== undefined && o.isolation !== 'read_committed' && o.isolation !== 'read_uncommitted') fail('isolation', "'read_committed' or 'read_uncommitted'", o.isolation);
  if (o.startingFallback !== undefined && o.startingFallback !== 'earliest' && o.startingFallback !== 'latest') fail('startingFallback', "'earliest' or 'latest'", o.startingFallback);
  if (o.maxBufferedBytes !== undefined && !isWholeNumber(o.maxBufferedBytes, 1)) fail('maxBufferedBytes', 'a positive whole number', o.maxBufferedBytes);
  if (o.readAheadBytes !== undefined && !isWholeNumber(o.readAheadBytes)) fail('readAheadBytes', 'a whole number ≥ 0', o.readAheadBytes);
  const subscription = subscriptionOf(options);
  checkStarting(options);
  registerKafkaCodecs();

  const brokers = [...options.brokers];
  const groupId = options.groupId;
  const logger = options.logger ?? silentLogger;
  const kafka = new Kafka(kafkaConfig(options, {
    connectionTimeout: 3_000,
    // Short per-request retries: tidemark retries around them for as long as `reconnect` allows.
    retry: { retries: 2, initialRetryTime: 250, maxRetryTime: 2_000 },
    logLevel: options.logger ? LOG_LEVELS[options.logLevel ?? 'warn'] : KafkaLogLevel.NOTHING,
    logCreator: kafkaLogCreator(logger),
  }));
  const admin = new KafkaAdmin(kafka, brokers, {
    atStartMs: options.reconnect?.atStartMs ?? 15_000,
    whileRunningMs: options.reconnect?.whileRunningMs ?? 120_000,
  }, logger);
  const reader = new KafkaReader({
    kafka, admin, groupId, readUncommitted: options.isolation === 'read_uncommitted', tuning: options.consumer ?? {},
    maxBufferedBytes: options.maxBufferedBytes ?? 64 * 1024 * 1024, readAheadBytes: options.readAheadBytes ?? 32 * 1024 * 1024, stallCheckMs: 3_000, log: logger,
  });

  /** Partitions handed out so far, per topic: a topic that vanishes keeps them, so its positions are checked. */
  const seen = new Map<string, number[]>();
  /** Topics that do not exist now (deleted, or never created). */
  let missing = new Set<string>();

  const partitions = async (): Promise<PartitionRef[]> => {
    const names = await admin.topicNames();
    let wanted: string[];
    if (subscription.kind === 'pattern') {
      wanted = [...names].filter((t) => !t.startsWith('__') && subscription.pattern.test(t));
      for (const t of seen.keys()) if (!names.has(t) && !wanted.includes(t)) wanted.push(t);
    } else {
      wanted = subscription.kind === 'topics' ? [...subscription.topics] : [...new Set(subscription.parts.map((p) => p.topic))];
    }
    // Kafka lists only the topics this principal may describe: one missing from the listing may
    // be hidden by a missing ACL (NotAuthorizedError), not absent.
    await admin.checkDescribable(wanted.filter((t) => !names.has(t)));
    // A topic listed but deleted before its metadata was read is gone as well.
    const ids = await admin.partitionIds(wanted.filter((t) => names.has(t)));
    const gone = wanted.filter((t) => !ids.has(t));
    if (gone.some((t) => seen.has(t) && !missing.has(t))) {
      // A topic deleted under a running source: fresh clients, so kafkajs stops asking for it.
      await admin.renew();
      await reader.reset();
    }
    missing = new Set(gone);
    const out: PartitionRef[] = [];
    for (const topic of wanted.sort()) {
      // A missing topic keeps the partitions it had (or a stand-in partition 0): its offsets read as 0,
      // so the plan stops with SourceWentBackwardsError when the checkpoint has read from it, and
      // startingOffsets() says it does not exist when the checkpoint has not.
      const list = ids.get(topic) ?? seen.get(topic) ?? [0];
      if (ids.has(topic)) seen.set(topic, list);
      const chosen = subscription.kind === 'assign' ? subscription.parts.filter((p) => p.topic === topic).map((p) => p.partition) : list;
      for (const partition of chosen) out.push({ topic, partition });
    }
    if (subscription.kind === 'assign') {
      for (const p of subscription.parts) {
        const known = ids.get(p.topic);
        if (known && !known.includes(p.partition)) {
          throw new BadConfigError(`kafkaSource assign: ${partitionKey(p)} does not exist (topic ${p.topic} has partitions ${known.join(', ')}).`);
        }
      }
    }
    return out;
  };

  const bothOffsets = async (parts: readonly PartitionRef[]): Promise<Map<string, { earliest: number; latest: number }>> => {
    const topics = [...new Set(parts.map((p) => p.topic))].filter((t) => !missing.has(t));
    const perTopic = await Promise.all(topics.map(async (t) => [t, await admin.topicOffsets(t).catch((err: unknown) => {
      if (isUnknownTopic(err)) {
        missing.add(t);
        return new Map<number, { earliest: number; latest: number }>();
      }
      throw err;
    })] as const));
    const byTopic = new Map(perTopic);
    const out = new Map<string, { earliest: number; latest: number }>();
    for (const p of parts) out.set(partitionKey(p), byTopic.get(p.topic)?.get(p.partition) ?? { earliest: 0, latest: 0 });
    return out;
  };

  const offsets = async (parts: readonly PartitionRef[], which: 'earliest' | 'latest'): Promise<OffsetMap> => {
    const both = await bothOffsets(parts);
    return Object.fromEntries(parts.map((p) => [partitionKey(p), both.get(partitionKey(p))![which]]));
  };

  const checkExists = (parts: readonly PartitionRef[]): void => {
    const absent = [...new Set(parts.map((p) => p.topic))].filter((t) => missing.has(t));
    if (absent.length > 0) {
      throw new BadConfigError(`Kafka topic${absent.length > 1 ? 's' : ''} ${absent.join(', ')} ${absent.length > 1 ? 'do' : 'does'} not exist on ${brokers.join(',')}. ` +
        'tidemark never creates topics: create it, or fix the name.');
    }
  };

  /**
   * Runs `lookup` of partitions that must exist. A topic deleted meanwhile (the broker says
   * unknown) is named by checkExists' BadConfigError, never passed on as kafkajs's error; a
   * topic that was unknown but exists again (recreated) is looked up once more.
   */
  const ofExisting = async (parts: readonly PartitionRef[], lookup: () => Promise<OffsetMap>, again = true): Promise<OffsetMap> => {
    checkExists(parts);
    try {
      return await lookup();
    } catch (err) {
      if (!isUnknownTopic(err)) throw err;
      const topics = [...new Set(parts.map((p) => p.topic))];
      for (const t of await admin.unknownTopics(topics)) missing.add(t);
      checkExists(parts);
      if (again) return ofExisting(parts, lookup, false);
      throw new SourceUnreachableError(`Kafka answered, twice, that a topic of ${topics.join(', ')} is unknown, then that it exists (deleted and recreated meanwhile?): ${rootMessage(err)}`, { cause: err });
    }
  };

  const offsetsForTimestamp = (parts: readonly PartitionRef[], timestamp: number): Promise<OffsetMap> => ofExisting(parts, async () => {
    const topics = [...new Set(parts.map((p) => p.topic))];
    const perTopic = new Map(await Promise.all(topics.map(async (t) => [t, await admin.offsetsForTimestamp(t, timestamp)] as const)));
    return Object.fromEntries(parts.map((p) => [partitionKey(p), perTopic.get(p.topic)?.get(p.partition) ?? 0]));
  });

  const startingOffsets = (parts: readonly PartitionRef[]): Promise<OffsetMap> => ofExisting(parts, async () => {
    if (parts.length === 0) return {};
    const s = options.startingOffsets ?? 'earliest';
    const fallback = options.startingFallback ?? 'earliest';
    if (s === 'earliest' || s === 'latest') return offsets(parts, s);
    if (typeof s === 'object' && 'timestamp' in s) return offsetsForTimestamp(parts, s.timestamp);
    const given: Map<string, number> = s === 'group'
      ? await admin.groupOffsets(groupId, [...new Set(parts.map((p) => p.topic))])
      : new Map(Object.entries(s.offsets));
    const rest = parts.filter((p) => !given.has(partitionKey(p)));
    const others = rest.length > 0 ? await offsets(rest, fallback) : {};
    return Object.fromEntries(parts.map((p) => [partitionKey(p), given.get(partitionKey(p)) ?? others[partitionKey(p)]!]));
  });

  return {
    id: options.id ?? defaultId(subscription),
    groupId,
    partitions,
    offsets,
    startingOffsets,
    offsetsForTimestamp,
    read(ranges: readonly Range[], signal: AbortSignal): AsyncIterable<SourceChunk> {
      return reader.read(ranges, signal);
    },
    waitForData: (timeoutMs: number, signal: AbortSignal) => reader.waitForData(timeoutMs, signal),
    async committed(positions: OffsetMap, mark?: string) {
      if (options.commitOffsets === false) return;
      const list = Object.entries(positions)
        .map(([key, offset]) => ({ ...parsePartitionKey(key), offset }))
        .filter((p) => seen.has(p.topic) && !missing.has(p.topic));
      await reader.commit(list, mark);
    },
    async reportedPositions(parts: readonly PartitionRef[]) {
      const where = `Kafka group ${groupId}`;
      if (options.commitOffsets === false) return { where, positions: [] };
      const commits = await admin.groupCommits(groupId, [...new Set(parts.map((p) => p.topic))]);
      return { where, positions: [...commits].map(([partition, c]) => ({ partition, ...c })) };
    },
    async joinGroup(log: Logger, instanceId?: string) {
      if (subscription.kind === 'assign') throw new BadConfigError("scaleOut 'group' needs kafkaSource `topics` or `pattern`: with `assign`, the partitions are chosen by hand, not by the group.");
      const topics = [...new Set((await partitions()).map((p) => p.topic))];
      const membership = new GroupMembership({
        kafka, groupId, topics, log, instanceId, unreachableAfterMs: () => admin.unreachableAfterMs,
        ...(options.consumer?.sessionTimeout !== undefined ? { sessionTimeout: options.consumer.sessionTimeout } : {}),
        ...(options.consumer?.heartbeatInterval !== undefined ? { heartbeatInterval: options.consumer.heartbeatInterval } : {}),
      });
      return membership;
    },
    groupCommits: async (parts: readonly PartitionRef[]) => admin.groupCommits(groupId, [...new Set(parts.map((p) => p.topic))]),
    stats: () => ({ ...reader.stats(), groupId }),
    async close() {
      try {
        await reader.close();
        // The reader's own group holds no offsets: delete it now rather than leave it listed
        // until the broker's cleanup (best effort, and at most 2 s of a shutdown).
        if (reader.stats().consumerStarts > 0) {
          const forget = admin.call('delete the reader group', (a) => a.deleteGroups([reader.group])).catch(() => {});
          await Promise.race([forget, new Promise((resolve) => setTimeout(resolve, 2_000).unref())]);
        }
      } finally {
        await admin.close();
      }
    },
  };
}
