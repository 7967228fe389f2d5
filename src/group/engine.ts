// Group mode's engine (docs/scale-out.md): one of N daemons of a job, each with its own
// checkpoint, sharing the topic's partitions through the job's Kafka consumer group.
//
// A batch holds one partition's range, so a partition can move without the others and the
// transform sees one partition's records per call. Per batch of partition p, range R:
//   (a) PLANNED in the own checkpoint;
//   (b) write-ahead to the group: commit offset R.from with the plan as metadata, as this
//       member of this generation — refused: p is no longer ours, dropped;
//   (c–f) read, transform, STAGE, deliver (every sink write names p and its epoch), COMMIT:
//       src/batch-run.ts, the single daemon's steps;
//   (g) commit offset R.until to the group — refused: p is dropped; its new owner re-runs R,
//       which every sink finds already delivered.
// At assignment, a partition is taken over from the group's commit (recovery/handoff.ts
// decideTakeover) after every sink claimed it for the new epoch: a planned range is run
// again exactly, first.
//
// Pipelined (docs/scale-out.md "Pipelining"): (a–d) of a batch run while the batches before
// it finish (e–g) in id order (src/finish-queue.ts); never two batches of one partition.
import { BadConfigError, isTidemarkError } from '../../checkpoint/errors';
import { GroupStateLostError, type LostPartition, type PartitionFencedError } from '../errors';
import { partitionKey, type BatchRecord, type OffsetMap, type PartitionRef, type Range } from '../../checkpoint/model';
import { describeRanges } from '../../recovery/decide';
import { decideTakeover, describeTakeover, formatPlan, parsePlan } from '../../recovery/handoff';
import { elapsedMs, lagAfterCommit, lagAtPlan, type BatchStats, type EngineStatus, type RunSummary } from '../batch-stats';
import { finishBatch, prepareBatch, type BatchRunContext, type PreparedBatch } from '../batch-run';
import type { PartitionOwner } from '../contracts';
import type { RunOptions } from '../engine';
import { EngineBase, type EngineOptions } from '../engine-base';
import type { Job } from '../job';
import { planRanges } from '../planner';
import type { Assignment, GroupMembership } from '../kafka/membership';
import type { KafkaSource } from '../sources/kafka';
import { changeOf, follows } from './ownership';
import { FinishQueue } from '../finish-queue';
import { StartFlight } from './start-flight';

/** As in the single daemon's engine: the record size assumed before any was read. */
const FIRST_BATCH_RECORD_BYTES = 64 * 1024;

/** A partition this daemon owns. */
interface Owned {
  readonly ref: PartitionRef;
  /** The generation it was taken at: every sink write for it names this epoch. */
  readonly epoch: number;
  /** When the join that gave it ended (ms since the epoch), for the handoff time. */
  readonly assignedAt: number;
  /** Set at its first group commit after the assignment (the handoff is logged then). */
  handedOver: boolean;
  /** When its last batch committed (ms), for the planner's maxWaitMs. */
  lastBatchAt: number;
}

/** What `status()` adds in group mode: the partitions owned now and their epochs, and the generation. */
export interface GroupStatus extends EngineStatus {
  readonly owned: Readonly<Record<string, number>>;
  readonly generation: number | undefined;
}

type GroupSource = Pick<KafkaSource, 'joinGroup' | 'groupCommits' | 'groupId'>;

export class GroupEngine<T> extends EngineBase<T> {
  private membership: GroupMembership | undefined;
  /** The assignment applied last (followGroup). */
  private assignment: Assignment | undefined;
  private readonly owned = new Map<string, Owned>();
  /** Ranges a takeover found planned and not committed: run exactly, first. */
  private readonly reruns = new Map<string, { from: number; until: number }>();
  /** The checkpoint's batches in flight at start, until the assignments say whether each is still ours. */
  private startFlight = new StartFlight([], this.log);
  /** The batches planned (or recovered) and not yet finished, group commit included, in id order (at most batch.maxInFlight). */
  private flight: BatchRecord[] = [];
  /** The second halves of the batches in flight, in id order (src/finish-queue.ts). */
  private readonly finishes = new FinishQueue();
  private checkpointId = '';
  private cursor = 0;
  private readonly source: GroupSource;

  constructor(job: Job<T>, options: EngineOptions = {}) {
    super(job, options);
    if (job.scaleOut !== 'group') throw new BadConfigError("GroupEngine runs jobs with scaleOut: 'group'.");
    this.source = job.source as unknown as GroupSource;
  }

  private get groupId(): string {
    return this.source.groupId;
  }

  override status(): GroupStatus {
    return {
      ...super.status(),
      owned: Object.fromEntries([...this.owned].map(([key, o]) => [key, o.epoch])), generation: this.assignment?.generation,
    };
  }

  async run(options: RunOptions = {}): Promise<RunSummary> {
    if (options.ranges) throw new BadConfigError("--ranges is not for group mode: the group decides which daemon reads which partition (run it with scaleOut 'single').");
    let batches = 0;
    let records = 0;
    const counted = (stats: BatchStats | undefined): void => {
      if (!stats) return;
      batches++;
      records += stats.records;
      this.progressAt = Date.now();
      this.options.onBatch?.(stats);
    };
    const finishes = this.finishes;
    const drained = (): Promise<boolean> => finishes.drained();
    try {
      await this.recover();
      this.membership = await this.source.joinGroup(this.log, this.options.instanceId);
      await this.membership.start();
      await this.followGroup();
      this.recovered = true;
      while (!this.stopping && !finishes.failed && (options.maxBatches === undefined || batches + this.flight.length < options.maxBatches)) {
        // A new assignment is applied with nothing in flight: its resets and discards never pass a batch in flight.
        if (this.membership.current() !== this.assignment && !await drained()) break;
        await this.followGroup();
        if (!await finishes.room(this.flight.length, this.job.maxInFlight)) continue;
        const batch = await this.planNext(drained);
        if (batch && finishes.failed) break; // the batch before failed while this one was planned: it stays PLANNED
        if (batch) {
          const prepared = await this.prepare(batch, drained);
          if (prepared) finishes.push(async () => counted(await this.finish(prepared)));
        } else if (this.flight.length > 0) {
          await finishes.drained(); // nothing more to plan now: the batches in flight finish before the loop decides it is idle or done
        } else if (options.once) {
          break;
        } else {
          this.progressAt = Date.now();
          await this.idle();
          this.store!.assertHeld();
        }
      }
      await finishes.settle();
      this.store?.assertHeld();
      return { batches, records, lastCommitted: this.lastCommitted, positions: this.positions };
    } catch (err) {
      throw await finishes.failureOr(err); // batches in flight end before the checkpoint closes
    } finally {
      await this.close();
    }
  }

  private async recover(): Promise<void> {
    const { store, decision, meta } = await this.openCheckpoint(false);
    this.checkpointId = meta?.checkpointId ?? '';
    const first = decision.redeliver ?? decision.rerun;
    const pending = first ? [first, ...decision.later] : [];
    this.startFlight = new StartFlight(pending, this.log);
    const several = pending.find((b) => b.ranges.length > 1);
    if (several) {
      throw new BadConfigError(`The checkpoint ${store.dir} has batch ${several.id} in flight over several partitions (${describeRanges(several.ranges)}), ` +
        "written by a single daemon: finish it with scaleOut 'single' first (SIGTERM drains it), then start group mode.");
    }
  }

  /** Applies the group's newest assignment: revoked partitions are forgotten, new ones taken over. */
  private async followGroup(): Promise<void> {
    const next = this.membership!.current();
    if (!next || next === this.assignment) return;
    const prev = this.assignment;
    const change = changeOf(prev, next, new Set(this.owned.keys()));
    this.assignment = next;
    for (const p of change.revoked) {
      const o = this.owned.get(partitionKey(p))!;
      this.log.info({ event: 'revoked', partition: partitionKey(p), epoch: o.epoch, generation: next.generation, heldMs: Date.now() - o.assignedAt },
        `revoked ${partitionKey(p)} (epoch ${o.epoch}) at generation ${next.generation}`);
    }
    const keep = new Set(change.kept.map(partitionKey));
    for (const key of [...this.owned.keys()]) {
      if (!keep.has(key)) {
        this.owned.delete(key);
        this.reruns.delete(key);
      }
    }
    const positions: Record<string, number> = {};
    for (const key of keep) if (this.positions[key] !== undefined) positions[key] = this.positions[key]!;
    // The source's metadata may predate partitions added to the topic, which the group's leader saw: it would read them as empty.
    if (change.added.length > 0) await this.job.source.partitions();
    const commits = change.added.length > 0 ? await this.source.groupCommits(change.added) : new Map<string, { offset: number; metadata: string | null }>();
    this.startFlight.reassess();
    const epoch = next.generation + this.job.groupEpochBase;
    // The sinks' claims of different partitions are independent (the Kafka sink's is an InitProducerId each): made at once.
    const claimed = await Promise.all(change.added.map((p) => this.claim(p, epoch)));
    // A ledger holds output of a partition the group has no offset for: the group lost its state (deleted, expired).
    const lost = change.added.map((p, i) => ({ partition: partitionKey(p), ledgers: claimed[i]!.delivered }))
      .filter((l) => !commits.has(l.partition) && l.ledgers.length > 0);
    if (lost.length > 0) throw new GroupStateLostError(this.groupId, lost, this.job.groupEpochBase);
    for (const [i, p] of change.added.entries()) {
      const key = partitionKey(p);
      const c = commits.get(key);
      const takeover = decideTakeover(c && { offset: c.offset, planned: parsePlan(c.metadata) }, this.checkpointId);
      if (!claimed[i]!.taken) continue;
      this.owned.set(key, { ref: p, epoch, assignedAt: next.at, handedOver: false, lastBatchAt: Date.now() });
      if (takeover.kind === 'resume') positions[key] = takeover.at;
      if (takeover.kind === 'rerun') {
        positions[key] = takeover.range.from;
        this.reruns.set(key, takeover.range);
        if (this.startFlight.keep(p, takeover)) this.reruns.delete(key); // the batch in flight at start is that rerun
      }
      this.log.info({ event: 'assigned', partition: key, epoch, takeover, memberId: next.memberId },
        `assigned ${key} at epoch ${epoch}: ${describeTakeover(takeover)}`);
    }
    const discard = this.startFlight.dropBeforeKept(); // any after the first kept one: in their turn (planNext)
    await this.store!.resetPositions(positions, this.lastCommitted, discard, undefined, 'handoff');
    if (discard.length > 0) this.lastCommitted = discard.at(-1)!.id;
    this.positions = positions;
    await this.store!.writeOwnership({
      group: this.groupId, generation: next.generation, memberId: next.memberId, at: Date.now(),
      partitions: Object.fromEntries([...this.owned].map(([key, o]) => [key, o.epoch])),
    });
  }

  /**
   * Every sink's claim of the partition for `epoch`: taken, or not when a newer epoch already has it;
   * and what the ledgers that answered hold delivered of it.
   */
  private async claim(p: PartitionRef, epoch: number): Promise<{ taken: boolean; delivered: LostPartition['ledgers'] }> {
    const sinks = [...this.job.sinks, ...(this.job.deadLetterSink ? [this.job.deadLetterSink] : [])];
    const delivered: Array<LostPartition['ledgers'][number]> = [];
    for (const sink of sinks) {
      try {
        const before = await sink.claim!({ job: this.job.name, topic: p.topic, partition: p.partition, epoch });
        if (before && before.until !== undefined) delivered.push({ sink: sink.name, until: before.until, epoch: before.epoch });
      } catch (err) {
        // By code, not class: a sink of one's own may throw another copy of tidemark's error.
        if (!isTidemarkError(err) || err.code !== 'TIDEMARK_PARTITION_FENCED') throw err;
        const fenced = err as Partial<PartitionFencedError>;
        if (fenced.delivered !== undefined) delivered.push({ sink: sink.name, until: fenced.delivered, epoch: fenced.newer ?? epoch });
        this.log.warn({ partition: partitionKey(p), epoch, err: err.message }, `not taking ${partitionKey(p)}: a newer owner has claimed it`);
        return { taken: false, delivered };
      }
    }
    return { taken: true, delivered };
  }

  /**
   * The next batch: one in flight at start, a range to run again, or a plan, over the owned
   * partitions without a batch in flight, in turn. `drained` waits for the flight to finish
   * (false after a failure).
   */
  private async planNext(drained: () => Promise<boolean>): Promise<BatchRecord | undefined> {
    const started = performance.now();
    while (!this.startFlight.empty) {
      // Not kept, after a kept one: dropped once it is the oldest in flight.
      if (!this.startFlight.peekKept() && !await drained()) return undefined;
      const { batch, kept } = this.startFlight.next()!;
      if (kept) {
        this.flight.push(batch);
        this.log.info({ batch: batch.id, state: batch.state, ranges: batch.ranges }, `recovering batch ${batch.id} (${batch.state}): ${describeRanges(batch.ranges)}`);
        return batch;
      }
      await this.store!.resetPositions(this.positions, this.lastCommitted, [batch], undefined, 'handoff');
      this.lastCommitted = batch.id;
    }
    const busy = new Set(this.flight.map((b) => partitionKey(b.ranges[0]!)));
    const owned = [...this.owned.values()].filter((o) => !busy.has(partitionKey(o.ref)));
    if (owned.length === 0) return undefined;
    const parts = owned.map((o) => o.ref);
    const fresh = parts.filter((p) => this.positions[partitionKey(p)] === undefined);
    const [latest, earliest, starting] = await Promise.all([
      this.job.source.offsets(parts, 'latest'),
      this.job.source.offsets(parts, 'earliest'),
      fresh.length > 0 ? this.job.source.startingOffsets(fresh) : Promise.resolve<OffsetMap>({}),
    ]);
    this.latestSeen = latest;
    this.lag = lagAtPlan(latest, this.positions, starting);
    for (let i = 0; i < owned.length; i++) {
      const o = owned[(this.cursor + i) % owned.length]!;
      const key = partitionKey(o.ref);
      const rerun = this.reruns.get(key);
      let ranges: Range[];
      let lost: Range[] = [];
      if (rerun) {
        this.reruns.delete(key);
        ranges = [{ ...o.ref, from: rerun.from, until: rerun.until }];
      } else {
        const only = (m: OffsetMap): OffsetMap => (m[key] === undefined ? {} : { [key]: m[key]! });
        const plan = planRanges({
          positions: only(this.positions), starting: only(starting), earliest: only(earliest), latest: only(latest), limits: this.job.limits,
          avgRecordBytes: this.sizes.average ?? FIRST_BATCH_RECORD_BYTES, waitedMs: Date.now() - o.lastBatchAt, onDataLoss: this.job.onDataLoss,
        });
        if (plan.kind === 'wait') continue;
        ranges = plan.ranges;
        lost = plan.lost;
      }
      this.cursor = (this.cursor + i + 1) % owned.length;
      const batch: BatchRecord = {
        id: (this.flight.at(-1)?.id ?? this.lastCommitted) + 1, state: 'planned', ranges, fingerprint: this.fingerprint, plannedAt: Date.now(), ...(lost.length > 0 ? { lost } : {}),
      };
      await this.store!.planBatch(batch);
      this.flight.push(batch);
      await this.crash('planned');
      return { ...batch, durations: { plan: elapsedMs(started) } };
    }
    return undefined;
  }

  private batchContext(owner: PartitionOwner): BatchRunContext<T> {
    return { job: this.job, store: this.store!, log: this.log, crash: this.crash, fingerprint: this.fingerprint, checkpointId: this.checkpointId, owner, sizes: this.sizes };
  }

  /**
   * The first half of a one-partition batch: the write-ahead to the group, read, transform,
   * STAGE, while the batches before it finish. Undefined when the partition was lost on
   * the way: the batch is dropped once the flight before it has drained.
   */
  private async prepare(batch: BatchRecord, drained: () => Promise<boolean>): Promise<Prepared | undefined> {
    const range = batch.ranges[0]!;
    const key = partitionKey(range);
    const o = this.owned.get(key);
    let why = 'not owned any more';
    if (o) {
      // (b) the write-ahead to the group, before any side effect.
      const plan = formatPlan({ from: range.from, until: range.until, epoch: o.epoch, owner: this.checkpointId, batch: batch.id });
      if (await this.groupCommit(range, range.from, plan)) {
        const owner: PartitionOwner = { topic: range.topic, partition: range.partition, epoch: o.epoch };
        return { owned: o, owner, prepared: await prepareBatch(this.batchContext(owner), batch) };
      }
      why = 'the group refused its plan';
    }
    if (await drained()) {
      await this.drop(key, batch, why);
      this.leave(batch);
    }
    return undefined;
  }

  /** The batch is out of the flight (finished or dropped): the loop may plan its partition again. */
  private leave(batch: BatchRecord): void {
    this.flight = this.flight.filter((b) => b.id !== batch.id);
    this.finishes.wake();
  }

  /** The second half: deliver, COMMIT, and the group commit of the range's end; run in id order, after the batch before it finished. */
  private async finish({ owned: o, owner, prepared }: Prepared): Promise<BatchStats | undefined> {
    const batch = prepared.batch;
    const range = batch.ranges[0]!;
    const key = partitionKey(range);
    try {
      return await this.finishOwned(o, owner, prepared);
    } catch (err) {
      if (!isTidemarkError(err) || err.code !== 'TIDEMARK_PARTITION_FENCED') throw err;
      // A newer owner claimed the partition: what this daemon staged for it is never delivered.
      return await this.drop(key, this.lastCommitted < batch.id ? batch : undefined, `fenced by a newer owner: ${err.message}`);
    } finally {
      this.leave(batch);
    }
  }

  private async finishOwned(o: Owned, owner: PartitionOwner, prepared: PreparedBatch): Promise<BatchStats> {
    const range = prepared.batch.ranges[0]!;
    const key = partitionKey(range);
    const done = await finishBatch(this.batchContext(owner), prepared, this.positions);
    this.positions = done.positions;
    this.lastCommitted = done.batch.id;
    o.lastBatchAt = Date.now();
    this.lag = lagAfterCommit(this.lag, this.latestSeen, done.batch.ranges);
    // (g) the range is done everywhere: tell the group.
    const told = await this.groupCommit(range, range.until, null);
    if (!told) {
      await this.drop(key, undefined, 'the group refused the commit of its range (its new owner finds it delivered)');
    } else if (!o.handedOver) {
      o.handedOver = true;
      const handoffMs = Date.now() - o.assignedAt;
      this.log.info({ event: 'handoff', partition: key, epoch: o.epoch, handoffMs, at: Date.now() },
        `first commit of ${key} at epoch ${o.epoch}, ${handoffMs} ms after its assignment`);
    }
    const stats: BatchStats = {
      id: done.batch.id, ranges: done.batch.ranges, records: done.records, bytesIn: done.bytesIn, bytesOut: done.batch.stagedBytes ?? 0,
      outputs: done.delivered.outputs, deadLetters: done.delivered.deadLetters, recovered: false, durations: done.durations, lag: this.lag,
    };
    // `event: 'committed'` only when the group took the range's end: what a zombie must never get.
    this.log.info({ ...(told ? { event: 'committed' } : {}), batch: stats.id, partition: key, epoch: o.epoch, records: stats.records, outputs: stats.outputs, ranges: stats.ranges, durations: stats.durations },
      `batch ${stats.id} committed`);
    return stats;
  }

  /**
   * Commits to the group as the member of the applied assignment — or of a newer one that
   * directly follows it and still assigns the partition (nobody else held it in between).
   */
  private async groupCommit(p: PartitionRef, offset: number, metadata: string | null): Promise<boolean> {
    let as = this.assignment!;
    const now = this.membership!.current();
    if (now && now !== as && follows(as, now) && now.partitions.some((q) => partitionKey(q) === partitionKey(p))) as = now;
    return this.membership!.commit(as, [{ topic: p.topic, partition: p.partition, offset, metadata }]);
  }

  /** Lets a partition go: its position is forgotten and `discard` (a batch of it in flight) dropped with its staged outputs. */
  private async drop(key: string, discard: BatchRecord | undefined, why: string): Promise<undefined> {
    const o = this.owned.get(key);
    this.owned.delete(key);
    this.reruns.delete(key);
    const positions: Record<string, number> = { ...this.positions };
    delete positions[key];
    const inFlight = discard && discard.id === this.lastCommitted + 1 ? discard : undefined;
    await this.store!.resetPositions(positions, this.lastCommitted, inFlight ? [inFlight] : [], undefined, 'handoff');
    if (inFlight) this.lastCommitted = inFlight.id;
    this.positions = positions;
    this.log.info({ event: 'dropped', partition: key, epoch: o?.epoch, batch: discard?.id }, `dropped ${key}: ${why}`);
    return undefined;
  }

  /** Waits for records, a new assignment, or pollIntervalMs. */
  private async idle(): Promise<void> {
    if (this.stopping) return;
    const ms = this.job.pollIntervalMs;
    await this.waitAtMost(ms, (signal) => [this.job.source.waitForData?.(ms, signal), this.membership?.waitForJoin(ms, signal)]);
  }

  private async close(): Promise<void> {
    await this.closeAll(async () => {
      await this.membership?.stop(); // LeaveGroup (not for a static member): the partitions move now, not after the session timeout
      await this.job.source.close();
    });
  }
}

/** A prepared batch with the ownership it was planned under. */
interface Prepared {
  readonly owned: Owned;
  readonly owner: PartitionOwner;
  readonly prepared: PreparedBatch;
}

