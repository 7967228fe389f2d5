// The Kafka topic sink: a batch's outputs in one Kafka transaction, which also records the
// batch id, so a read_committed consumer of the output sees every output exactly once.
//
//   connect          initTransactions with transactionalId `tidemark.<job>.<sink>`: fences any
//                    older producer of the same job and sink (a zombie), and settles its open
//                    transaction (aborted) or its committing one (completed) before going on
//   read the ledger  the committed offset of the sink-side group `tidemark.<job>.<sink>.ledger`
//                    on partition 0 of the ledger topic: offset = the last batch id delivered,
//                    metadata = a hash of its ranges
//   write(batch)     id ≤ last delivered: a redelivery, nothing to do (same id: the ranges must
//                    match); otherwise one transaction: the outputs (in chunks of at most
//                    `maxRequestBytes`), then sendOffsets(group, ledger offset := id), then commit
//
// Batch ids only grow, and this sink's transactions are its only writer of that group, so
// "last delivered ≥ id" is exactly "delivered". The outputs and the ledger offset become
// visible together or not at all (the transaction), so a crash anywhere — before, during or
// after the commit — leaves a state the next write reads correctly.
//
// Group mode (docs/scale-out.md, a write with `owner`): one transactional producer per input
// partition, `tidemark.<job>.<sink>.<topic>.<partition>`, initialised by `claim` when the
// partition is assigned — InitProducerId fences the previous owner's producer and settles its
// transaction — and a ledger per input partition: in the same transaction as the outputs,
// sendOffsets of the range's `until` on the input partition itself, group
// `tidemark.<job>.<sink>.partitions`, metadata `{epoch, from}`. Read after InitProducerId it
// is exact; recovery/handoff.ts judgeLedgerWrite decides: a range it holds is a duplicate, an
// older epoch is fenced (PartitionFencedError), a range that does not continue it is a gap.
// The claim itself is a transaction too (metadata `{epoch, claim: true}`, offset unchanged), so
// a former owner whose claim comes late — its InitProducerId after the new owner's — reads
// the newer epoch and stands back. Its InitProducerId has fenced the new owner's producer all
// the same: a producer fenced while the ledger holds no newer epoch claims again and goes on.
//
// A producer fenced by a newer one (INVALID_PRODUCER_EPOCH / PRODUCER_FENCED) throws
// SinkFencedError and never re-initialises: a zombie stops instead of fencing its successor.
// Refused credentials, TLS and ACLs throw their typed errors (kafka/errors.ts accessFailure),
// which the engine does not retry: the batch stays staged and the run stops.
// Any other error aborts the transaction, drops the producer, and is thrown so the engine
// retries; the retry connects again and re-reads the ledger, since a commit whose answer
// was lost may have happened.
import { createHash } from 'node:crypto';
import { Kafka, logLevel, Partitioners, type Admin, type ICustomPartitioner, type PartitionMetadata, type Producer, type Transaction } from 'kafkajs';
import { BadConfigError } from '../../checkpoint/errors';
import { InvariantError } from '../../checkpoint/errors';
import { partitionKey } from '../../checkpoint/model';
import { judgeLedgerWrite, type LedgerEntry as PartitionLedgerEntry } from '../../recovery/handoff';
import { PartitionFencedError, SinkFencedError, SinkLedgerMismatchError } from '../errors';
import type { PartitionOwner, Range, Sink, SinkBatch } from '../contracts';
import { kafkaConfig, type KafkaConnectionOptions } from '../kafka/connection';
import { accessFailure, isCoordinatorNotReady, isFenced } from '../kafka/errors';
import { retry } from '../retry';
import { outputSender, type KafkaCompression, type KafkaMessageOut } from './kafka-records';

export { forwardRecord, type KafkaCompression, type KafkaMessageOut } from './kafka-records';

/** Connection (`brokers`, `ssl`, `sasl`, `clientId`, timeouts, `retry`: see KafkaConnectionOptions), then: */
export interface KafkaSinkOptions<T> extends KafkaConnectionOptions {
  /** The output topic (and, by default, the topic whose partition 0 carries the ledger offset). */
  readonly topic: string;
  /** Stable sink name (default `kafka`); part of the transactional id and the ledger group. */
  readonly name?: string;
  /** Output → record (default: the output if it has a `value`, else its JSON). */
  readonly message?: (output: T) => KafkaMessageOut;
  /** Headers `tidemark.source.topic|partition|offset` from a message's `source`, and `tidemark.batch` (default true). */
  readonly lineage?: boolean;
  /** `default` (Java-compatible murmur2 of the key, the default), `legacy` (kafkajs 1.x), or your own kafkajs partitioner. */
  readonly partitioner?: 'default' | 'legacy' | ICustomPartitioner;
  /** Default `none`. snappy, lz4 and zstd use the codecs of src/kafka/codecs.ts (writing zstd needs Node ≥ 22.15). */
  readonly compression?: KafkaCompression;
  /** Default `tidemark.<job>.<sink>`. One per job and sink: the older producer of the same id is fenced. */
  readonly transactionalId?: string;
  /** The sink-side group whose committed offset records the last delivered batch (default `tidemark.<job>.<sink>.ledger`). */
  readonly ledgerGroup?: string;
  /** The topic whose partition 0 carries the ledger offset (default: `topic`). It must exist. */
  readonly ledgerTopic?: string;
  /** Milliseconds the broker lets a transaction stay open (default 60000; at most the broker's transaction.max.timeout.ms). */
  readonly transactionTimeout?: number;
  /** Bytes of messages per produce request within the transaction (default 512 KiB; keep it under the broker's message.max.bytes). */
  readonly maxRequestBytes?: number;
  /** The job name (default: the name the engine passes with each batch). */
  readonly job?: string;
}

export interface KafkaSink<T> extends Sink<T> {
  close(): Promise<void>;
  /**
   * The last batch id delivered, for tests and tools: what the ledger group says now, or what
   * this instance committed if later. A plain read may lag a transaction that another producer
   * is still completing (kafkajs has no OffsetFetch requireStable); `write` reads the ledger only
   * after InitProducerId, which waits for that transaction to complete, so its read is exact.
   */
  lastDelivered(job?: string): Promise<number | undefined>;
}

/**
 * Sends `send` again while the group coordinator moves or loads (isCoordinatorNotReady: kafkajs
 * does not retry those itself). A resend looks up the coordinator again, and within a
 * transaction AddOffsetsToTxn is idempotent.
 */
function whenCoordinatorReady<R>(send: () => Promise<R>): Promise<R> {
  return retry(send, { baseMs: 100, maxMs: 1_000, attempts: 10, retryable: isCoordinatorNotReady });
}

/**
 * The transactional InitProducerId, now: kafkajs's `connect()` sends an idempotent one without
 * the transactional id, and the transactional one only at the first `transaction()` — so until
 * then the older producer of the id is not fenced, and its transaction not yet completed (found
 * 2026-11-30: a zombie's transaction committed after its successor had connected). An empty
 * transaction, begun and aborted, sends InitProducerId and no EndTxn.
 */
async function initTransactions(p: Producer): Promise<void> {
  const tx = await p.transaction();
  await tx.abort();
}

function rangesHash(ranges: readonly Range[]): string {
  const canonical = ranges.map((r) => JSON.stringify([r.topic, r.partition, r.from, r.until])).sort().join('\n');
  return createHash('sha256').update(canonical).digest('hex').slice(0, 16);
}

interface LedgerEntry { readonly batch: number; readonly ranges: string }

export function kafkaSink<T>(options: KafkaSinkOptions<T>): KafkaSink<T> {
  const name = options.name ?? 'kafka';
  const where = `kafkaSink ${name}`;
  if (!Array.isArray(options.brokers) || options.brokers.length === 0) throw new BadConfigError(`${where}: brokers must list at least one host:port.`);
  if (typeof options.topic !== 'string' || options.topic === '') throw new BadConfigError(`${where}: topic is required.`);
  const ledgerTopic = options.ledgerTopic ?? options.topic;
  const partitioner = options.partitioner === 'legacy' ? Partitioners.LegacyPartitioner
    : typeof options.partitioner === 'function' ? options.partitioner : Partitioners.DefaultPartitioner;
  const sendOutputs = outputSender(where, options, { partitioner, partitionsOf });

  const kafka = new Kafka(kafkaConfig(options, { logLevel: logLevel.NOTHING }));
  let admin: Admin | undefined;
  let producer: Producer | undefined;
  /** The ledger as of the last connect or commit; undefined until connected. */
  let last: LedgerEntry | null | undefined;
  /** The job `producer` and `last` belong to. */
  let connectedJob: string | undefined;
  let fenced: Error | undefined;

  const ids = (job: string) => ({
    transactionalId: options.transactionalId ?? `tidemark.${job}.${name}`,
    group: options.ledgerGroup ?? `tidemark.${job}.${name}.ledger`,
    /** Group mode: the ledger group whose offset on each input partition is the end of the last range delivered from it. */
    partitionGroup: `${options.ledgerGroup ?? `tidemark.${job}.${name}`}.partitions`,
  });

  /** Kafka's refusal (credentials, TLS, an ACL) as its typed error, naming every resource the sink's ACLs must cover. */
  function refused(err: unknown, job: string, doing: string): Error | undefined {
    const { transactionalId, group } = ids(job);
    return accessFailure(err, options.brokers, `${doing} (it needs Write on topic ${options.topic}, Read on ledger topic ${ledgerTopic}, ` +
      `Read on group ${group}, Write on transactional id ${transactionalId})`, [transactionalId, group]);
  }
  /** Group mode: per input partition, its producer (initialised by claim) and its ledger entry, whose epoch is the claim's. */
  const owned = new Map<string, { producer: Producer; entry: PartitionLedgerEntry }>();

  async function getAdmin(): Promise<Admin> {
    if (!admin) {
      const a = kafka.admin();
      await a.connect();
      admin = a;
    }
    return admin;
  }

  /** A topic's partitions, as the sink's partitioner takes them (asked once per write and topic). */
  async function partitionsOf(topic: string): Promise<PartitionMetadata[]> {
    const a = await getAdmin();
    const { topics } = await a.fetchTopicMetadata({ topics: [topic] });
    return topics.find((t) => t.name === topic)?.partitions ?? [];
  }

  async function readLedger(job: string): Promise<LedgerEntry | null> {
    const { group } = ids(job);
    const a = await getAdmin();
    const offsets = await whenCoordinatorReady(() => a.fetchOffsets({ groupId: group, topics: [ledgerTopic] }));
    const p0 = offsets.find((t) => t.topic === ledgerTopic)?.partitions.find((p) => p.partition === 0);
    if (!p0 || Number(p0.offset) < 0) return null;
    let entry: Partial<LedgerEntry> | undefined;
    try {
      entry = JSON.parse(p0.metadata ?? '') as Partial<LedgerEntry>;
    } catch {
      entry = undefined;
    }
    if (!entry || entry.batch !== Number(p0.offset) || typeof entry.ranges !== 'string') {
      throw new SinkLedgerMismatchError(name, Number(p0.offset),
        `the ledger group ${group} has an offset on ${ledgerTopic}/0 that tidemark did not write (metadata ${JSON.stringify(p0.metadata)}); choose another ledgerGroup`);
    }
    return { batch: entry.batch, ranges: entry.ranges };
  }

  async function connect(job: string): Promise<Producer> {
    if (producer) return producer;
    const p = kafka.producer({
      transactionalId: ids(job).transactionalId, idempotent: true, maxInFlightRequests: 1,
      transactionTimeout: options.transactionTimeout ?? 60_000, createPartitioner: partitioner,
    });
    try {
      await p.connect();
      await initTransactions(p); // fences older producers and settles their transactions, before the ledger is read
      last = await readLedger(job);
      connectedJob = job;
    } catch (err) {
      await p.disconnect().catch(() => {});
      throw err;
    }
    producer = p;
    return p;
  }

  async function drop(): Promise<void> {
    const p = producer;
    producer = undefined;
    last = undefined;
    await p?.disconnect().catch(() => {});
  }

  /** Group mode: an input partition's ledger entry ({epoch, until}), as the partition ledger group holds it now. */
  async function readPartitionLedger(job: string, o: PartitionOwner): Promise<PartitionLedgerEntry | undefined> {
    const a = await getAdmin();
    const offsets = await whenCoordinatorReady(() => a.fetchOffsets({ groupId: ids(job).partitionGroup, topics: [o.topic] }));
    const p = offsets.find((t) => t.topic === o.topic)?.partitions.find((q) => q.partition === o.partition);
    if (!p || Number(p.offset) < 0) return undefined;
    let written: { epoch?: unknown; delivered?: unknown } | undefined;
    try {
      written = JSON.parse(p.metadata ?? '') as { epoch?: unknown; delivered?: unknown };
    } catch {
      written = undefined;
    }
    if (typeof written?.epoch !== 'number') {
      throw new SinkLedgerMismatchError(name, 0, `the ledger group ${ids(job).partitionGroup} has an offset on ${partitionKey(o)} that tidemark did not write (metadata ${JSON.stringify(p.metadata)})`);
    }
    // A claim of a partition nothing was delivered from yet records its epoch at offset 0, `delivered: false`.
    return written.delivered === false ? { epoch: written.epoch } : { epoch: written.epoch, until: Number(p.offset) };
  }

  /** Group mode: the partition's ledger entry set to `offset` with `metadata`, in the transaction `tx`. */
  async function sendLedger(tx: Transaction, job: string, o: PartitionOwner, offset: number, metadata: object): Promise<void> {
    await whenCoordinatorReady(() => tx.sendOffsets({
      consumerGroupId: ids(job).partitionGroup,
      topics: [{ topic: o.topic, partitions: [{ partition: o.partition, offset: String(offset), metadata: JSON.stringify(metadata) } as { partition: number; offset: string }] }],
    }));
  }

  /**
   * Group mode: takes an input partition for `epoch` — a fresh producer of its transactional
   * id (InitProducerId fences the previous owner's and settles its transaction), then its
   * ledger, exact from then on, and the claim recorded in it. Returns the ledger's entry as it
   * was before. A claim made at the same moment by a former owner may fence this producer
   * before the claim is recorded: then, while the ledger holds no newer epoch, again.
   */
  async function claimPartition(job: string, o: PartitionOwner): Promise<PartitionLedgerEntry | undefined> {
    const key = partitionKey(o);
    const before = owned.get(key);
    owned.delete(key);
    await before?.producer.disconnect().catch(() => {});
    return retry(() => claimOnce(job, o), { baseMs: 50, maxMs: 1_000, attempts: 8, retryable: isFenced });
  }

  async function claimOnce(job: string, o: PartitionOwner): Promise<PartitionLedgerEntry | undefined> {
    // A newer owner's entry refuses this one before its producer could fence the newer owner's.
    const seen = await readPartitionLedger(job, o);
    if (seen && seen.epoch > o.epoch) throw new PartitionFencedError(where, o.topic, o.partition, o.epoch, seen.epoch, seen.until);
    const p = kafka.producer({
      transactionalId: `${ids(job).transactionalId}.${o.topic}.${o.partition}`, idempotent: true, maxInFlightRequests: 1,
      transactionTimeout: options.transactionTimeout ?? 60_000, createPartitioner: partitioner,
    });
    try {
      await p.connect();
      await initTransactions(p);
      const entry = await readPartitionLedger(job, o);
      if (entry && entry.epoch > o.epoch) throw new PartitionFencedError(where, o.topic, o.partition, o.epoch, entry.epoch, entry.until);
      if (entry?.epoch !== o.epoch) {
        const tx = await p.transaction();
        try {
          await sendLedger(tx, job, o, entry?.until ?? 0, { epoch: o.epoch, claim: true, ...(entry?.until === undefined ? { delivered: false } : {}) });
          await tx.commit();
        } catch (err) {
          if (tx.isActive()) await tx.abort().catch(() => {});
          throw err;
        }
      }
      owned.set(partitionKey(o), { producer: p, entry: { ...entry, epoch: o.epoch } });
      return entry;
    } catch (err) {
      await p.disconnect().catch(() => {});
      throw err;
    }
  }

  /** Group mode: one partition's range, in one transaction with its ledger entry. */
  async function writeOwned(job: string, batch: SinkBatch<T>, o: PartitionOwner): Promise<void> {
    const range = batch.ranges[0];
    if (batch.ranges.length !== 1 || !range || partitionKey(range) !== partitionKey(o)) {
      throw new InvariantError(undefined, `${where}: a group-mode write of batch ${batch.id} must hold exactly the range of ${partitionKey(o)}; it holds ${batch.ranges.length} ranges`);
    }
    const key = partitionKey(o);
    let state = owned.get(key);
    if (!state || state.entry.epoch !== o.epoch) {
      await claimPartition(job, o); // after a failed transaction dropped it: only as the same epoch, and never over a newer owner
      state = owned.get(key)!;
    }
    const verdict = judgeLedgerWrite(state.entry, { epoch: o.epoch, from: range.from, until: range.until });
    if (verdict === 'duplicate') return;
    if (verdict === 'fenced') throw new PartitionFencedError(where, o.topic, o.partition, o.epoch, state.entry.epoch);
    if (verdict === 'gap') {
      throw new InvariantError(undefined, `${where}: ${key} [${range.from}, ${range.until}) does not continue what the ledger ${ids(job).partitionGroup} holds (up to ${state.entry.until})`);
    }
    const tx = await state.producer.transaction();
    try {
      await sendOutputs(tx, batch.outputs, batch.id);
      await sendLedger(tx, job, o, range.until, { epoch: o.epoch, from: range.from });
      await tx.commit();
      state.entry = { epoch: o.epoch, until: range.until };
    } catch (err) {
      if (tx.isActive()) await tx.abort().catch(() => {});
      owned.delete(key);
      await state.producer.disconnect().catch(() => {});
      if (!isFenced(err)) throw err;
      // Fenced at the broker: by a newer owner, whose claim the ledger holds, or by a former
      // owner's late claim, which the ledger refused. The retry claims the partition again.
      const now = await readPartitionLedger(job, o);
      if (now && now.epoch > o.epoch) throw new PartitionFencedError(where, o.topic, o.partition, o.epoch, now.epoch, now.until);
      throw new Error(`${where}: the producer of ${key} was fenced by a claim no newer than epoch ${o.epoch} (a former owner's, made late); claiming the partition again`, { cause: err });
    }
  }

  return {
    name,
    async claim(c) {
      return claimPartition(options.job ?? c.job, c);
    },
    async write(batch: SinkBatch<T>) {
      if (fenced) throw fenced;
      const job = options.job ?? batch.job;
      if (!job) throw new BadConfigError(`${where}: no job name for the transactional id: set the sink's job option (the engine passes it with each batch).`);
      if (batch.owner) return writeOwned(job, batch, batch.owner);
      let p: Producer;
      try {
        p = await connect(job);
      } catch (err) {
        throw refused(err, job, `connecting the sink's producer for batch ${batch.id}`) ?? err;
      }
      const hash = rangesHash(batch.ranges);
      if (last && batch.id <= last.batch) {
        if (batch.id === last.batch && last.ranges === hash) return; // delivered before: nothing to do
        throw new SinkLedgerMismatchError(name, batch.id, batch.id === last.batch
          ? `the ledger group ${ids(job).group} records batch ${batch.id} with other offset ranges`
          : `the ledger group ${ids(job).group} records a later batch (${last.batch}) as delivered`);
      }
      const tx = await p.transaction().catch((err: unknown) => {
        throw refused(err, job, `writing batch ${batch.id}`) ?? err;
      });
      try {
        await sendOutputs(tx, batch.outputs, batch.id);
        const metadata = JSON.stringify({ batch: batch.id, ranges: hash } satisfies LedgerEntry);
        await whenCoordinatorReady(() => tx.sendOffsets({
          consumerGroupId: ids(job).group, topics: [{ topic: ledgerTopic, partitions: [{ partition: 0, offset: String(batch.id), metadata } as { partition: number; offset: string }] }],
        }));
        await tx.commit();
        last = { batch: batch.id, ranges: hash };
      } catch (err) {
        if (tx.isActive()) await tx.abort().catch(() => {});
        await drop();
        if (isFenced(err)) {
          fenced = new SinkFencedError(name, batch.id,
            `the producer with transactionalId ${ids(job).transactionalId} was fenced (${(err as Error).message}): a newer producer with this id started, or the transaction outlived transactionTimeout`, { cause: err });
          throw fenced;
        }
        throw refused(err, job, `writing batch ${batch.id}`) ?? err;
      }
    },
    async lastDelivered(job?: string) {
      const j = options.job ?? job; // as write() names it
      if (!j) throw new BadConfigError(`${where}: lastDelivered needs the job name.`);
      const recorded = (await readLedger(j).catch((err: unknown) => {
        throw refused(err, j, 'reading the ledger') ?? err;
      }))?.batch;
      // The broker shows a transaction's offsets only once its commit marker has been written,
      // shortly after the commit returns; what this instance itself committed is known already.
      const mine = j === connectedJob && last ? last.batch : undefined;
      return recorded === undefined ? mine : Math.max(recorded, mine ?? recorded);
    },
    async close() {
      await drop();
      const producers = [...owned.values()].map((o) => o.producer);
      owned.clear();
      await Promise.all(producers.map((p) => p.disconnect().catch(() => {})));
      const a = admin;
      admin = undefined;
      await a?.disconnect().catch(() => {});
    },
  };
}
