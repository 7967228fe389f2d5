// The errors sources, the transform and sinks raise (their codes and exit codes:
// checkpoint/errors.ts).
import { CheckpointWriteError, TidemarkError } from '../checkpoint/errors';
import { parsePartitionKey } from '../checkpoint/model';

export class SourceWentBackwardsError extends TidemarkError {
  constructor(topic: string, partition: number, position: number, latest: number) {
    super('TIDEMARK_SOURCE_WENT_BACKWARDS',
      `${topic}/${partition} now ends at offset ${latest}, below the checkpoint's position ${position}: the topic was deleted or recreated. ` +
      'tidemark never resets silently: if this is intended, move the positions with `tidemark reset`.');
  }
}

export class SourceUnreachableError extends TidemarkError {
  constructor(what: string, options?: { cause?: unknown }) {
    super('TIDEMARK_SOURCE_UNREACHABLE',
      `${what}. Check that the source is running and reachable, then restart.`, options);
  }
}

export class SourceCorruptError extends TidemarkError {
  /** For kafkajs's retrier, which would otherwise fetch the same damaged batch again, and restart the consumer on it, for ever. */
  readonly retriable = false;

  constructor(readonly topic: string, readonly partition: number, readonly offset: string, stored: number, computed: number) {
    const hex = (n: number): string => `0x${n.toString(16).padStart(8, '0')}`;
    super('TIDEMARK_SOURCE_CORRUPT',
      `${topic}/${partition}: the record batch at offset ${offset} fails its CRC-32C check (stored ${hex(stored)}, computed ${hex(computed)}): ` +
      'the broker holds it damaged, or it was damaged on the way. None of its records was read, and tidemark does not skip it. ' +
      'Restart to fetch it again; if this repeats, the broker\'s copy is damaged: check the segment (kafka-dump-log.sh --deep-iteration shows where the batch ends) ' +
      'and restore it from a replica, or, if its records are lost for good, move the position past it: `tidemark reset <checkpoint> --to <offsets.json> --discard-in-flight` ' +
      '(in group mode, the group\'s offset: kafka-consumer-groups.sh --reset-offsets).');
  }
}

export class TransformError extends TidemarkError {
  constructor(batchId: number, where: string, cause: unknown) {
    super('TIDEMARK_TRANSFORM_FAILED',
      `The transform failed in batch ${batchId} at ${where}: ${cause instanceof Error ? cause.message : String(cause)}. ` +
      "Fix the transform (the batch will be re-run exactly), or set onTransformError: 'dead-letter' to route failing records to a sink.",
      { cause });
  }
}

export class SinkError extends TidemarkError {
  constructor(sink: string, batchId: number, cause: unknown) {
    super('TIDEMARK_SINK_FAILED',
      `Sink ${sink} failed to write batch ${batchId}: ${cause instanceof Error ? cause.message : String(cause)}. ` +
      'The batch stays staged and is delivered again on restart; nothing is lost.',
      { cause });
  }
}

/** One output a sink refuses permanently; `index` is its position in the outputs it was given. */
export interface RejectedRow {
  readonly index: number;
  readonly output: unknown;
  readonly reason: string;
}

function preview(value: unknown): string {
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    text = String(value);
  }
  return text.length > 200 ? `${text.slice(0, 200)}…` : text;
}

/**
 * Thrown by a sink for outputs it can never write (a constraint violation, a value the
 * destination refuses), having written nothing of the batch. Never retried: the job's
 * `onSinkError` decides (`fail`: stop with this message; `dead-letter`: route these
 * outputs to the dead-letter sink and write the rest).
 */
export class SinkRejectedError extends TidemarkError {
  constructor(readonly sink: string, readonly batchId: number, readonly rejected: readonly RejectedRow[], options?: { cause?: unknown }) {
    const first = rejected[0];
    const more = rejected.length > 1 ? ` (and ${rejected.length - 1} more)` : '';
    super('TIDEMARK_SINK_REJECTED',
      `Sink ${sink} rejected batch ${batchId}: output #${first?.index ?? '?'} ${preview(first?.output)}: ${first?.reason ?? 'no reason given'}${more}. ` +
      'Nothing of the batch was written; it stays staged and is delivered again on restart. Fix the destination (or the transform and reset), ' +
      "or set onSinkError: 'dead-letter' to route rejected outputs to the dead-letter sink and write the rest.",
      options);
  }
}

/** A sink's own record of delivered batches disagrees with the checkpoint (recreated, restored, or shared with another job). */
export class SinkLedgerMismatchError extends TidemarkError {
  constructor(sink: string, batchId: number, detail: string) {
    super('TIDEMARK_SINK_LEDGER_MISMATCH',
      `Sink ${sink} cannot take batch ${batchId}: ${detail}. The checkpoint does not match what the sink already holds ` +
      '(was the checkpoint deleted, restored from a backup, or is another job writing with the same job and sink names?). ' +
      'Nothing was written. Use the checkpoint that wrote the sink, or give the job or the sink a new name to start over.');
  }
}

/** Another process took over the sink (a Kafka producer with the same transactionalId): this one is a zombie and stops. */
export class SinkFencedError extends TidemarkError {
  constructor(sink: string, batchId: number, detail: string, options?: { cause?: unknown }) {
    super('TIDEMARK_SINK_FENCED',
      `Sink ${sink} was fenced while writing batch ${batchId}: ${detail}. Another process of this job has taken over the sink; ` +
      'nothing of this batch became visible from this process, which stops. Check that only one process runs the job.',
      options);
  }
}

/**
 * Group mode: a newer owner (a later group generation) has claimed the partition in a sink's
 * ledger or in the group, so this owner's write for it was refused and nothing of it was
 * written. The engine drops the partition's work in flight and goes on with the partitions it
 * still owns; the error reaches the CLI only if it escapes that (then: exit 10).
 */
export class PartitionFencedError extends TidemarkError {
  /** The newer epoch that owns the partition, when the refusing sink knows it. */
  readonly newer: number | undefined;
  /** The offset the refusing ledger holds the partition delivered up to, when it says. */
  readonly delivered: number | undefined;

  constructor(where: string, topic: string, partition: number, epoch: number, newer: number | undefined, delivered?: number) {
    super('TIDEMARK_PARTITION_FENCED',
      `${where} refused a write for ${topic}/${partition} by the owner of epoch ${epoch}: ` +
      `${newer !== undefined ? `epoch ${newer} owns it now` : 'a newer owner has claimed it'} (the group moved the partition). ` +
      'Nothing of this write was applied; the new owner continues the partition exactly. Nothing to do unless it repeats: then check the consumer group\'s session timeout.');
    this.newer = newer;
    this.delivered = delivered;
  }
}

/** A partition the group has no offset for, and what the sinks' ledgers hold of it. */
export interface LostPartition {
  readonly partition: string;
  /** Each ledger's end of the delivered ranges, and the newest epoch that claimed it. */
  readonly ledgers: ReadonlyArray<{ readonly sink: string; readonly until: number; readonly epoch: number }>;
}

/**
 * Group mode: the consumer group has no committed offset for partitions whose output the sinks
 * hold (docs/scale-out.md, "When the group's state is lost"). Starting them where the source
 * says would skip or repeat offsets, and the new group's generations sit below the ledgers' epochs.
 */
export class GroupStateLostError extends TidemarkError {
  constructor(group: string, lost: readonly LostPartition[], epochBase: number) {
    const ends = lost.map((l) => {
      const untils = [...new Set(l.ledgers.map((x) => x.until))];
      return `${l.partition} delivered up to ${untils.length === 1 ? untils[0] : l.ledgers.map((x) => `${x.until} (${x.sink})`).join(', ')}`;
    });
    const disagree = lost.filter((l) => new Set(l.ledgers.map((x) => x.until)).size > 1).map((l) => l.partition);
    const newest = Math.max(...lost.flatMap((l) => l.ledgers.map((x) => x.epoch)));
    const first = lost[0]!;
    const { topic, partition } = parsePartitionKey(first.partition);
    super('TIDEMARK_GROUP_STATE_LOST',
      `the consumer group ${group} has no committed offset for ${lost.map((l) => l.partition).join(', ')}, but the sinks hold their output: ${ends.join('; ')} ` +
      `(sinks ${[...new Set(lost.flatMap((l) => l.ledgers.map((x) => x.sink)))].join(', ')}). The group's offsets were deleted, or expired ` +
      '(Kafka drops an empty group\'s offsets after offsets.retention.minutes, 7 days by default). Nothing was read or written. ' +
      (disagree.length > 0
        ? `The sinks disagree on ${disagree.join(', ')}: a batch was delivered to some of them when the group lost its plan, so that partition cannot be continued exactly; ask for help with \`tidemark inspect\` output of each daemon's checkpoint. `
        : '') +
      `To go on exactly: stop every daemon of the job; commit each partition's end to the group (e.g. \`kafka-consumer-groups.sh --bootstrap-server <broker> --group ${group} ` +
      `--reset-offsets --topic ${topic}:${partition} --to-offset ${first.ledgers[0]!.until} --execute\`, for each partition named); set the job's \`groupEpochBase\` to ${Math.max(epochBase, newest)} or more ` +
      `(the ledgers' newest epoch is ${newest}: the new group's owners must outrank it); then start the daemons.`);
  }
}

const NOTHING_LOST = 'Nothing is lost: a batch in flight stays in the checkpoint and is delivered again on restart.';

/** A server refused tidemark's credentials. `server` names it without any secret (brokers, host:port). */
export class AuthenticationError extends TidemarkError {
  constructor(server: string, detail: string, options?: { cause?: unknown }) {
    super('TIDEMARK_AUTH_FAILED',
      `${server} refused tidemark's credentials: ${detail}. Check the user name and password (and the SASL mechanism) the job file passes ` +
      `(e.g. from KAFKA_SASL_USERNAME / KAFKA_SASL_PASSWORD), then restart. ${NOTHING_LOST}`, options);
  }
}

/** A TLS handshake that failed on identity, not on reachability: `detail` says what and the way on (src/tls-failure.ts). */
export class TlsError extends TidemarkError {
  constructor(server: string, detail: string, options?: { cause?: unknown }) {
    super('TIDEMARK_TLS_FAILED', `TLS connection to ${server} failed: ${detail}; then restart. ${NOTHING_LOST}`, options);
  }
}

/** A server refused an operation for want of an ACL or grant; `what` names the operation and its resources. */
export class NotAuthorizedError extends TidemarkError {
  constructor(server: string, what: string, detail: string, options?: { cause?: unknown }) {
    super('TIDEMARK_NOT_AUTHORIZED',
      `${server} did not authorize ${what}: ${detail}. Grant it (the minimal ACLs: docs/kafka-source.md and docs/sinks.md), then restart. ${NOTHING_LOST}`, options);
  }
}

/** An embedded-log append that could not be written whole. `appended` holds the offset of each record that was written durably (by its index in the append), `undefined` for the others, which are not in the log. */
export class LogWriteError extends TidemarkError {
  constructor(dir: string, cause: unknown, readonly appended: ReadonlyArray<{ partition: number; offset: number } | undefined>) {
    const reason = CheckpointWriteError.reason(cause);
    const written = appended.filter((a) => a !== undefined).length;
    super('TIDEMARK_LOG_WRITE_FAILED',
      `Could not append to the embedded log ${dir}: ${reason}. ${written} of ${appended.length} records were appended (whole partitions, in order); the rest were not written, and the log holds no part of them. ` +
      'Free space (or fix the disk), then append the rest again.', { cause });
  }
}
