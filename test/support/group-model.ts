// The simulator of group mode's model-based test (test/property/group.property.test.ts): a
// Kafka group coordinator with generations that refuses a stale member's commits, a log whose
// partitions can be added, N owners each with its own checkpoint, and three sinks that decide
// as the real ones do — a PostgreSQL-like ledger (claimLedger, judgeLedgerWrite), file-like
// outputs named by range (claim markers, never replaced) and a Kafka-like sink fenced by a
// per-partition producer epoch with its own ledger of `until`. Owners walk the protocol points
// of docs/scale-out.md one step at a time, so a crash (kill, or power loss dropping the
// unsynced PLAN — harmless here by design: the group's metadata, not the local plan, decides
// a takeover) or a freeze falls between any two of them; invariants are checked after every
// command. Rebalances are eager, as kafkajs's: each partition is claimed again with the new
// generation at once, and a member's batch in flight goes on with its old epoch before any
// new work on its partition (design point 5) — and so meets its own new claim.
//
// Pipelined as src/group/engine.ts is: an owner has at most `maxInFlight` batches in flight
// (default 2), never two of one partition; (a–d) of any of them may run, but only the
// oldest (lowest batch id) delivers, commits and commits to the group, and a refused plan
// is dropped only once it is the oldest (the engine drains the flight first).
//
// `decisions` carries the pure functions under test, so a test can mutate one and see an
// invariant catch it.
import * as fc from 'fast-check';
import { claimLedger, decideTakeover, formatPlan, judgeLedgerWrite, parsePlan, type LedgerEntry } from '../../recovery/handoff';

export interface Decisions {
  readonly judge: typeof judgeLedgerWrite;
  readonly takeover: typeof decideTakeover;
}
export const REAL: Decisions = { judge: judgeLedgerWrite, takeover: decideTakeover };

/** A broken invariant (the test fails with its message and the command sequence). */
export class Violation extends Error {}
const violated = (message: string): never => {
  throw new Violation(message);
};

export const MAX_PARTITIONS = 4;
/** Records per planned range at most. */
const BATCH = 3;

interface SinkWrite {
  readonly partition: number;
  readonly epoch: number;
  readonly from: number;
  readonly until: number;
  readonly outputs: readonly string[];
}
type Verdict = 'write' | 'duplicate' | 'fenced';

/** A sink's contents per partition, in write order; a subclass decides each write. */
export abstract class SimSink {
  readonly held = new Map<number, string[]>();
  constructor(readonly name: string, protected readonly world: World) {}
  /** The claim at assignment: a token the owner passes with its writes, or `fenced`. */
  abstract claim(partition: number, epoch: number): number | 'fenced';
  protected abstract decide(w: SinkWrite, token: number): Verdict;
  write(w: SinkWrite, token: number): Verdict {
    const verdict = this.decide(w, token);
    if (verdict === 'write') {
      // A zombie's write after a newer epoch claimed the partition must change nothing.
      const newest = this.world.newestClaim.get(w.partition) ?? 0;
      if (w.epoch < newest) violated(`sink ${this.name} accepted ${w.partition} [${w.from}, ${w.until}) from epoch ${w.epoch} after epoch ${newest} claimed it`);
      const held = this.held.get(w.partition) ?? [];
      held.push(...w.outputs);
      this.held.set(w.partition, held);
    }
    return verdict;
  }
}

/** Like postgresSink: a ledger row per partition, judged in the rows' transaction. */
class LedgerSink extends SimSink {
  readonly ledger = new Map<number, LedgerEntry>();
  claim(partition: number, epoch: number): number | 'fenced' {
    const next = claimLedger(this.ledger.get(partition), epoch);
    if (next === 'fenced') return 'fenced';
    this.ledger.set(partition, next);
    return epoch;
  }
  protected decide(w: SinkWrite): Verdict {
    const verdict = this.world.decisions.judge(this.ledger.get(w.partition), w);
    if (verdict === 'gap') return violated(`sink ${this.name}: ${w.partition} [${w.from}, ${w.until}) does not continue its ledger (${JSON.stringify(this.ledger.get(w.partition))})`);
    if (verdict === 'write') this.ledger.set(w.partition, { epoch: w.epoch, until: w.until });
    return verdict;
  }
}

/** Like fileSink in group mode: claim markers per (partition, epoch); a file per range, never replaced. */
class FileLikeSink extends SimSink {
  readonly markers = new Map<number, number>();
  readonly files = new Set<string>();
  claim(partition: number, epoch: number): number | 'fenced' {
    if ((this.markers.get(partition) ?? -1) > epoch) return 'fenced';
    this.markers.set(partition, epoch);
    return epoch;
  }
  protected decide(w: SinkWrite): Verdict {
    if ((this.markers.get(w.partition) ?? -1) > w.epoch) return 'fenced';
    const name = `${w.partition}-${w.from}-${w.until}`;
    if (this.files.has(name)) return 'duplicate';
    this.files.add(name);
    return 'write';
  }
}

/** Like the Kafka sink: a transactional id per input partition (a claim bumps its producer epoch, fencing the older producer) and a ledger of `until`. */
class KafkaLikeSink extends SimSink {
  readonly producerEpoch = new Map<number, number>();
  readonly ledger = new Map<number, number>();
  claim(partition: number): number {
    const next = (this.producerEpoch.get(partition) ?? 0) + 1;
    this.producerEpoch.set(partition, next);
    return next;
  }
  protected decide(w: SinkWrite, token: number): Verdict {
    if (token !== this.producerEpoch.get(w.partition)) return 'fenced';
    const until = this.ledger.get(w.partition);
    const verdict = this.world.decisions.judge(until === undefined ? undefined : { epoch: 0, until }, { ...w, epoch: 0 });
    if (verdict === 'gap') return violated(`sink ${this.name}: ${w.partition} [${w.from}, ${w.until}) does not continue its ledger (until ${until})`);
    if (verdict === 'write') this.ledger.set(w.partition, w.until);
    return verdict;
  }
}

/** The group coordinator: generations, members, committed offsets with metadata. */
class Coordinator {
  generation = 0;
  members = new Set<number>();
  readonly commits = new Map<number, { offset: number; metadata: string }>();
  /** OffsetCommit as `member` of `generation`: refused (ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID) unless it is a member of the current one. */
  commit(member: number, generation: number, partition: number, offset: number, metadata: string): boolean {
    if (generation !== this.generation || !this.members.has(member)) return false;
    this.commits.set(partition, { offset, metadata });
    return true;
  }
}

type Phase = 'idle' | 'planned' | 'announced' | 'staged' | 'committed';

/** An owner's work on one assigned partition (volatile: gone with the process). */
interface Cursor {
  /** The generation it was assigned in: its writes and group commits carry it. */
  readonly epoch: number;
  next: number;
  rerun?: { readonly from: number; readonly until: number };
  redeliverStaged: boolean;
  readonly tokens: number[];
  phase: Phase;
  range?: { readonly from: number; readonly until: number };
  batch: number;
  outputs: readonly string[];
  delivered: number;
}

/** An owner's own checkpoint, per partition: the PLAN (unsynced, as in single-daemon mode), the STAGE and the COMMIT (synced). */
interface LocalPartition {
  plan?: { readonly from: number; readonly until: number; readonly batch: number };
  staged?: { readonly from: number; readonly until: number; readonly outputs: readonly string[] };
  committed?: number;
}

export class Owner {
  alive = true;
  frozen = false;
  cursors = new Map<number, Cursor>();
  /** Batches in flight when a rebalance came: finished (or dropped) before new work on the partition. */
  draining = new Map<number, Cursor>();
  readonly local = new Map<number, LocalPartition>();
  batches = 0;
  constructor(readonly index: number) {}
  get id(): string {
    return `cp${this.index}`;
  }
  /** Its batches in flight: planned and not yet finished (group commit included), draining or current. */
  inFlight(): Cursor[] {
    return [...this.draining.values(), ...this.cursors.values()].filter((c) => c.phase !== 'idle');
  }
  /** Whether `cur` is its oldest batch in flight: the one whose turn it is to finish. */
  isOldest(cur: Cursor): boolean {
    return this.inFlight().every((c) => c.batch >= cur.batch);
  }
  /** The partitions it has work for, current or draining. */
  partitions(): number[] {
    return [...new Set([...this.draining.keys(), ...this.cursors.keys()])].sort((a, b) => a - b);
  }
  localOf(p: number): LocalPartition {
    let l = this.local.get(p);
    if (!l) this.local.set(p, (l = {}));
    return l;
  }
}

export class World {
  readonly log: number[];
  readonly coordinator = new Coordinator();
  readonly owners: Owner[];
  readonly sinks: SimSink[];
  /** The newest epoch that claimed each partition (a write of an older one must change nothing). */
  readonly newestClaim = new Map<number, number>();
  executions = 0;
  /** Handoffs in which a partition was taken over with a planned range to rerun (for the printed counts). */
  reruns = 0;
  fencedWrites = 0;
  refusedCommits = 0;
  /** Protocol points taken while the owner had two batches or more in flight (for the printed counts). */
  pipelinedSteps = 0;
  constructor(partitions: number, owners: number, readonly deterministic: boolean, readonly decisions: Decisions = REAL, readonly maxInFlight = 2) {
    this.log = Array.from({ length: partitions }, () => 0);
    this.owners = Array.from({ length: owners }, (_, i) => new Owner(i));
    this.sinks = [new LedgerSink('postgres', this), new FileLikeSink('files', this), new KafkaLikeSink('kafka', this)];
  }

  /** The transform, per partition: deterministic, or stamped with a fresh execution number. */
  transform(partition: number, from: number, until: number): string[] {
    const execution = ++this.executions;
    return Array.from({ length: until - from }, (_, i) => `${partition}:${from + i}${this.deterministic ? '' : `@${execution}`}`);
  }

  /** A rebalance: the live, unfrozen owners form the new generation; each claims its partitions and decides where to start. */
  rebalance(rotate: number): void {
    const c = this.coordinator;
    c.generation++;
    const members = this.owners.filter((o) => o.alive && !o.frozen);
    c.members = new Set(members.map((o) => o.index));
    for (const o of members) {
      // eager: everything is revoked, then assigned; a batch in flight goes on with its old epoch
      for (const [p, cur] of o.cursors) if (cur.phase !== 'idle') o.draining.set(p, cur);
      o.cursors = new Map();
    }
    if (members.length === 0) return;
    for (let p = 0; p < this.log.length; p++) {
      const owner = members[(p + rotate) % members.length]!;
      const tokens: number[] = [];
      for (const sink of this.sinks) {
        const token = sink.claim(p, c.generation);
        tokens.push(token === 'fenced' ? violated(`the claim of ${p} by generation ${c.generation} was fenced by sink ${sink.name}`) : token);
      }
      this.newestClaim.set(p, c.generation);
      const found = c.commits.get(p);
      const takeover = this.decisions.takeover(found && { offset: found.offset, planned: parsePlan(found.metadata) }, owner.id);
      const cursor: Cursor = { epoch: c.generation, next: 0, redeliverStaged: false, tokens, phase: 'idle', batch: 0, outputs: [], delivered: 0 };
      if (takeover.kind === 'resume') cursor.next = takeover.at;
      if (takeover.kind === 'rerun') {
        cursor.rerun = takeover.range;
        cursor.redeliverStaged = takeover.redeliverStaged;
        cursor.next = takeover.range.until;
        this.reruns++;
      }
      owner.cursors.set(p, cursor);
    }
  }

  /** One protocol point of `owner` on partition `p`; false when there was nothing to do. */
  step(owner: Owner, p: number): boolean {
    // a batch in flight from before a rebalance comes first: the daemon has one batch at a time
    const draining = owner.draining.get(p);
    const cur = draining ?? owner.cursors.get(p);
    if (!owner.alive || owner.frozen || !cur) return false;
    const local = owner.localOf(p);
    const epoch = cur.epoch;
    const flying = owner.inFlight().length;
    if (cur.phase === 'idle' && flying >= this.maxInFlight) return false;
    // (e–g) in id order: the oldest batch in flight finishes first
    if ((cur.phase === 'staged' || cur.phase === 'committed') && !owner.isOldest(cur)) return false;
    if (flying >= 2) this.pipelinedSteps++;
    const drop = (): true => {
      (draining ? owner.draining : owner.cursors).delete(p); // the group or a sink says the partition is no longer ours
      return true;
    };
    switch (cur.phase) {
      case 'idle': {
        const range = cur.rerun ?? (cur.next < this.log[p]! ? { from: cur.next, until: Math.min(cur.next + BATCH, this.log[p]!) } : undefined);
        if (!range) return false;
        cur.range = range;
        cur.batch = ++owner.batches;
        local.plan = { ...range, batch: cur.batch }; // (a) PLANNED, not synced
        cur.phase = 'planned';
        return true;
      }
      case 'planned': { // (b) the write-ahead to the group, before any side effect
        const { from, until } = cur.range!;
        if (!this.coordinator.commit(owner.index, epoch, p, from, formatPlan({ from, until, epoch, owner: owner.id, batch: cur.batch }))) {
          if (!owner.isOldest(cur)) return false; // dropped once the batches before it finished
          this.refusedCommits++;
          return drop();
        }
        cur.phase = 'announced';
        return true;
      }
      case 'announced': { // (c, d) read, transform this partition's records, STAGE (synced)
        const { from, until } = cur.range!;
        const own = local.staged;
        cur.outputs = cur.redeliverStaged && own?.from === from && own.until === until ? own.outputs : this.transform(p, from, until);
        local.staged = { from, until, outputs: cur.outputs };
        cur.phase = 'staged';
        cur.delivered = 0;
        return true;
      }
      case 'staged': {
        if (cur.delivered < this.sinks.length) { // (e) deliver to sink k
          const k = cur.delivered;
          const verdict = this.sinks[k]!.write({ partition: p, epoch, ...cur.range!, outputs: cur.outputs }, cur.tokens[k]!);
          if (verdict === 'fenced') {
            this.fencedWrites++;
            return drop();
          }
          cur.delivered++;
          return true;
        }
        local.committed = cur.range!.until; // (f) COMMIT locally (synced)
        delete local.plan;
        delete local.staged;
        cur.phase = 'committed';
        return true;
      }
      case 'committed': { // (g) the group commit of `until`, no plan
        if (!this.coordinator.commit(owner.index, epoch, p, cur.range!.until, '')) {
          this.refusedCommits++;
          return drop();
        }
        if (draining) return drop(); // done: the new assignment's cursor goes on
        cur.next = cur.range!.until;
        delete cur.rerun;
        cur.redeliverStaged = false;
        cur.phase = 'idle';
        return true;
      }
    }
  }

  crash(owner: Owner, power: boolean): void {
    owner.alive = false;
    owner.frozen = false;
    owner.cursors = new Map();
    owner.draining = new Map();
    if (power) for (const l of owner.local.values()) delete l.plan; // the PLAN was never synced
  }

  /** Steps every owner's every partition until nothing moves. */
  settle(): void {
    for (let moved = true, rounds = 0; moved; rounds++) {
      if (rounds > 10_000) violated('the owners never settle');
      moved = false;
      for (const o of this.owners) for (const p of o.partitions()) moved = this.step(o, p) || moved;
      this.check();
    }
  }

  /** Runs everything to the end: frozen owners wake and go on as they were (zombies, if the group moved on), then every owner restarts, one rebalance, and all work is done. */
  drain(): void {
    for (const o of this.owners) o.frozen = false;
    this.settle();
    for (const o of this.owners) o.alive = true;
    this.rebalance(0);
    this.settle();
    for (let p = 0; p < this.log.length; p++) {
      for (const s of this.sinks) {
        const n = s.held.get(p)?.length ?? 0;
        if (n !== this.log[p]) violated(`after the drain sink ${s.name} holds ${n} outputs of partition ${p}, which has ${this.log[p]} records`);
      }
      if (this.log[p]! > 0 && this.coordinator.commits.get(p)?.offset !== this.log[p]) violated(`after the drain the group's offset of ${p} is ${JSON.stringify(this.coordinator.commits.get(p))}, not ${this.log[p]}`);
    }
    if (this.deterministic) {
      const first = JSON.stringify([...this.sinks[0]!.held.entries()].sort());
      for (const s of this.sinks) if (JSON.stringify([...s.held.entries()].sort()) !== first) violated(`after the drain sink ${s.name} disagrees with sink ${this.sinks[0]!.name}`);
    }
  }

  /** The invariants that hold after every command. */
  check(): void {
    for (let p = 0; p < this.log.length; p++) {
      let delivered = Infinity;
      for (const s of this.sinks) {
        const held = s.held.get(p) ?? [];
        held.forEach((output, i) => {
          const [part, offset] = output.split('@')[0]!.split(':').map(Number);
          if (part !== p) violated(`sink ${s.name} holds ${output} under partition ${p}`);
          // contiguous from the start: nothing skipped, nothing twice
          if (offset !== i) violated(`sink ${s.name} holds offset ${offset} of partition ${p} at position ${i} (${offset! < i ? 'twice' : `${i} skipped`}): ${held.join(' ')}`);
        });
        delivered = Math.min(delivered, held.length);
      }
      // the group's offset never passes what every sink holds: a new owner would skip records
      const offset = this.coordinator.commits.get(p)?.offset ?? 0;
      if (offset > delivered) violated(`the group's offset of ${p} is ${offset}, but a sink holds only ${delivered}`);
      if (this.deterministic) {
        const longest = this.sinks.map((s) => s.held.get(p) ?? []).reduce((a, b) => (b.length > a.length ? b : a));
        for (const s of this.sinks) if ((s.held.get(p) ?? []).some((o, i) => o !== longest[i])) violated(`sink ${s.name} disagrees on partition ${p}`);
      }
    }
  }
}

type Command = fc.Command<object, World>;
const command = (name: string, run: (w: World) => void): Command => ({
  check: () => true,
  run: (_m, w) => {
    run(w);
    w.check();
  },
  toString: () => name,
});

export const produce = (p: number, n: number): Command => command(`produce(${p}, ${n})`, (w) => {
  if (p < w.log.length) w.log[p]! += n;
});
export const addPartition = (): Command => command('addPartition', (w) => {
  if (w.log.length < MAX_PARTITIONS) w.log.push(0);
});
export const rebalance = (rotate: number): Command => command(`rebalance(${rotate})`, (w) => w.rebalance(rotate));
/** `times` protocol points of `owner` on its `pick`-th partition. */
export const step = (owner: number, pick: number, times: number): Command => command(`step(${owner}, ${pick}, ${times})`, (w) => {
  const o = w.owners[owner % w.owners.length]!;
  const parts = o.partitions();
  if (parts.length === 0) return;
  const p = parts[pick % parts.length]!;
  for (let i = 0; i < times; i++) {
    w.step(o, p);
    w.check();
  }
});
export const crash = (owner: number, power: boolean): Command => command(`crash(${owner}, ${power ? 'power loss' : 'kill -9'})`, (w) => w.crash(w.owners[owner % w.owners.length]!, power));
/** The process starts again with its checkpoint; it joins at the next rebalance. */
export const restart = (owner: number): Command => command(`restart(${owner})`, (w) => {
  w.owners[owner % w.owners.length]!.alive = true;
});
export const freeze = (owner: number): Command => command(`freeze(${owner})`, (w) => {
  const o = w.owners[owner % w.owners.length]!;
  if (o.alive) o.frozen = true;
});
/** A frozen owner resumes with what it believed: a zombie if the group moved on meanwhile. */
export const wake = (owner: number): Command => command(`wake(${owner})`, (w) => {
  w.owners[owner % w.owners.length]!.frozen = false;
});

/** An owner frozen past its session (SIGSTOP): the group moves on without it; it resumes as it was, a zombie. */
export const zombie = (owner: number, rotate: number): Command => command(`zombie(${owner}, ${rotate})`, (w) => {
  const o = w.owners[owner % w.owners.length]!;
  if (!o.alive) return;
  o.frozen = true;
  w.rebalance(rotate);
  w.check();
  o.frozen = false;
  // it goes on with its batches in flight at once, as a resumed process does (in id order: until nothing moves)
  for (let moved = true; moved;) {
    moved = false;
    for (const p of o.partitions()) {
      while (w.step(o, p)) {
        moved = true;
        w.check();
      }
    }
  }
});

const who = fc.nat(3);
export const commands = [
  fc.tuple(fc.nat(MAX_PARTITIONS - 1), fc.integer({ min: 1, max: 7 })).map(([p, n]) => produce(p, n)),
  fc.constant(addPartition()),
  fc.nat(3).map((r) => rebalance(r)),
  fc.tuple(who, fc.nat(3), fc.integer({ min: 1, max: 4 })).map(([o, p, t]) => step(o, p, t)),
  fc.tuple(who, fc.nat(3), fc.integer({ min: 1, max: 4 })).map(([o, p, t]) => step(o, p, t)),
  fc.tuple(who, fc.boolean()).map(([o, power]) => crash(o, power)),
  who.map((o) => restart(o)),
  who.map((o) => freeze(o)),
  who.map((o) => wake(o)),
  fc.tuple(who, fc.nat(3)).map(([o, r]) => zombie(o, r)),
  fc.nat(3).map((r) => rebalance(r)),
];

/** The property: random command sequences over 1–3 partitions and 2–3 owners, the invariants after every command, then a drain. */
export function groupProperty(deterministic: boolean, decisions: Decisions = REAL, seen?: (w: World) => void, maxInFlight = 2) {
  return fc.property(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 2, max: 3 }), fc.commands(commands, { maxCommands: 80, size: 'max' }), (partitions, owners, cmds) => {
    const world = new World(partitions, owners, deterministic, decisions, maxInFlight);
    fc.modelRun(() => ({ model: {}, real: world }), cmds);
    world.drain();
    seen?.(world);
  });
}
