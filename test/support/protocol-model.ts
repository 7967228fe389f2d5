// The simulator of the model-based tests (fc.commands): append records, trim the log,
// add partitions, change the code's fingerprint, run batches and crash at every named
// point of the protocol — as a process kill (every write kept) or as a power loss (every
// write no sync covered may be dropped) — restart, and check invariants after every
// command. `corruptions` adds damage: a stored value's bit flipped or value cut, or the
// newest writes dropped, synced ones too (a write log cut short with no report). Each invariant of DESIGN.md (1–6) is a named check here, so a property can
// run the simulator against one of them (test/property/invariants.property.test.ts) or
// all of them (test/property/model.property.test.ts).
//
// The real system: the engine over a PowerLossKV checkpoint, an in-memory log, and
// sinks that record every write. The transform is non-deterministic on purpose: each
// execution stamps its outputs with a fresh execution number, so "each batch's outputs
// come from one execution" is checkable.
import * as fc from 'fast-check';
import { CorruptCheckpointError } from '../../checkpoint/errors';
import { keys } from '../../checkpoint/keys';
import { CodeChangedError } from '../../recovery/errors';
import { partitionKey, type BatchRecord, type CheckpointView, type LostRange, type OffsetMap, type Range } from '../../checkpoint/model';
import { CheckpointStore } from '../../checkpoint/store';
import { defineJob, Engine, type Sink, type SinkBatch, type SourceRecord } from 'tidemark';
import { ReportingLog } from './memory-source';
import { PowerLossKV } from './power-loss-kv';

export const SINKS = ['a', 'b'];
export const PHASES = [
  'recovering', 'planned', 'read', 'transformed', 'staged',
  ...SINKS.flatMap((s) => [`delivering:${s}`, `delivered:${s}`]), 'committed', 'source-committed',
];
/** Batches not committed at any time: the job's batch.maxInFlight (DESIGN.md, "Pipelining"); the default, 2. */
export const MAX_IN_FLIGHT = 2;
/** How often a checkpoint was found with n batches in flight after a command (n → count), over every run of the file. */
export const flightsSeen = new Map<number, number>();
/** How often each crash (`kind:phase`) fired, over every run of the file. */
export const firedPhases = new Map<string, number>();

class Crash extends Error {}

interface Write {
  readonly id: number;
  readonly outputs: readonly string[];
}

/** A sink like any external system: it survives crashes, and is idempotent per batch id. */
export class RecordingSink implements Sink<string> {
  readonly batches = new Map<number, readonly string[]>();
  readonly writes: Write[] = [];
  constructor(readonly name: string) {}
  async write(batch: SinkBatch<string>): Promise<void> {
    this.writes.push({ id: batch.id, outputs: [...batch.outputs] });
    this.batches.set(batch.id, [...batch.outputs]);
  }
  /** Like the PostgreSQL and Kafka sinks' ledgers: the last batch id held. */
  async lastDelivered(): Promise<number | undefined> {
    return this.batches.size === 0 ? undefined : Math.max(...this.batches.keys());
  }
}

export interface World {
  readonly kv: PowerLossKV;
  readonly log: ReportingLog;
  readonly sinks: RecordingSink[];
  readonly stageOutputs: boolean;
  /** The invariants checked after every command. */
  readonly checks: readonly Check[];
  fingerprint: string;
  executions: number;
  /** Ranges of in-flight batches as they stood durable after a crash: a replay must use exactly these. */
  readonly planned: Map<number, readonly Range[]>;
  lastPositions: OffsetMap;
  lastCommitted: number;
}

export interface Model {
  readonly appended: number[];
}

/** What a check sees: the checkpoint as it is after a command, and the world around it. */
export interface Observed {
  readonly world: World;
  readonly model: Model;
  readonly view: CheckpointView;
  /** Every batch record, oldest first. */
  readonly batches: readonly BatchRecord[];
  readonly committed: readonly BatchRecord[];
  readonly lost: readonly LostRange[];
}

export type Check = (o: Observed) => void;

export function newWorld(partitions: number, stageOutputs: boolean, checks: readonly Check[]): { world: World; model: Model } {
  return {
    world: {
      kv: new PowerLossKV(), log: new ReportingLog('t', partitions), sinks: SINKS.map((s) => new RecordingSink(s)), stageOutputs, checks,
      fingerprint: 'v0', executions: 0, planned: new Map(), lastPositions: {}, lastCommitted: 0,
    },
    model: { appended: Array.from({ length: partitions }, () => 0) },
  };
}

export function job(world: World) {
  return defineJob<string>({
    name: 'model', source: world.log, sinks: world.sinks,
    transform: (records: SourceRecord[]) => {
      const execution = ++world.executions;
      // Deterministic jobs (stageOutputs: false) are replayed by recomputation, so only they must be deterministic.
      return records.map((r) => `${r.partition}:${r.offset}${world.stageOutputs ? `#${execution}` : ''}`);
    },
    batch: { maxRecordsPerPartition: 3, minRecords: 1, maxWaitMs: 0 },
    checkpoint: { retainBatches: 100_000 },
    stageOutputs: world.stageOutputs,
    onDataLoss: 'skip',
  });
}

const storeOf = (world: World): CheckpointStore => new CheckpointStore(world.kv, 'model', { retainBatches: 100_000 });

/** The offsets `[from, until)` of each range, as the transform names them (`partition:offset`). */
const offsetsOf = (ranges: readonly Range[]): string[] =>
  ranges.flatMap((r) => Array.from({ length: r.until - r.from }, (_, i) => `${r.partition}:${r.from + i}`));

/** Where a range must start: its partition's previous end, moved over the offsets its batch recorded lost. */
function expectedFrom(previous: number, key: string, lostOfBatch: readonly Range[]): number {
  let at = previous;
  for (const l of lostOfBatch) if (partitionKey(l) === key && l.from === at) at = l.until;
  return at;
}

/** 1. Continuity: per partition, committed ranges in batch order are contiguous from the starting offset (0), across recorded losses. */
export const continuity: Check = ({ committed, lost }) => {
  const ends = new Map<string, number>();
  for (const b of committed) {
    for (const r of b.ranges) {
      const key = partitionKey(r);
      const from = expectedFrom(ends.get(key) ?? 0, key, lost.filter((l) => l.batchId === b.id));
      expect({ batch: b.id, key, from: r.from }).toEqual({ batch: b.id, key, from });
      ends.set(key, r.until);
    }
  }
};

/** 2. Monotonic positions: positions equal the untils of each partition's last committed range, and never move back (not even by a power loss). */
export const monotonicPositions: Check = ({ world, model, view, committed }) => {
  const ends: Record<string, number> = {};
  for (const b of committed) for (const r of b.ranges) ends[partitionKey(r)] = r.until;
  expect(view.positions).toEqual(ends);
  for (const [key, before] of Object.entries(world.lastPositions)) expect({ key, at: view.positions[key] ?? -1 }).toEqual({ key, at: Math.max(before, view.positions[key] ?? -1) });
  expect(view.lastCommitted).toBeGreaterThanOrEqual(world.lastCommitted);
  for (const [key, pos] of Object.entries(view.positions)) expect(pos).toBeLessThanOrEqual(model.appended[Number(key.split('/')[1])]!);
};

/**
 * 3. Bounded, ordered flight: committed ids are 1..lastCommitted; at most MAX_IN_FLIGHT
 * others, following it without a gap, their ranges continuing the positions; no sink
 * ever got a batch beyond them.
 */
export const boundedOrderedFlight: Check = ({ world, view, batches, committed }) => {
  expect(committed.map((b) => b.id)).toEqual(Array.from({ length: view.lastCommitted }, (_, i) => i + 1));
  const open = batches.filter((b) => b.state !== 'committed');
  flightsSeen.set(open.length, (flightsSeen.get(open.length) ?? 0) + 1);
  expect(open.length).toBeLessThanOrEqual(MAX_IN_FLIGHT);
  expect(open.map((b) => b.id)).toEqual(open.map((_, i) => view.lastCommitted + 1 + i));
  const at: Record<string, number> = { ...view.positions };
  for (const b of open) {
    for (const r of b.ranges) {
      const key = partitionKey(r);
      if (at[key] !== undefined) expect({ batch: b.id, key, from: r.from }).toEqual({ batch: b.id, key, from: expectedFrom(at[key], key, b.lost ?? []) });
      at[key] = r.until;
    }
  }
  for (const sink of world.sinks) for (const id of sink.batches.keys()) expect(id).toBeLessThanOrEqual(view.lastCommitted + MAX_IN_FLIGHT);
  // Deliveries reach each sink in id order: a batch's first write comes after the first write of every lower id.
  for (const sink of world.sinks) {
    const firsts = [...new Set(sink.writes.map((w) => w.id))];
    expect({ sink: sink.name, firsts }).toEqual({ sink: sink.name, firsts: [...firsts].sort((a, b) => a - b) });
  }
};

/** 4. Replay is exact: a batch found in flight after a crash commits with exactly the ranges it had then. */
export const replayIsExact: Check = ({ world, committed }) => {
  for (const b of committed) {
    const planned = world.planned.get(b.id);
    if (planned) expect({ batch: b.id, ranges: b.ranges }).toEqual({ batch: b.id, ranges: planned });
  }
};

/**
 * 5. Exactly-once effect: every write of a batch id carries the same outputs (one
 * execution), and each sink holds, for every committed batch, exactly the outputs of its
 * ranges — what a crash-free run holds.
 */
export const exactlyOnceEffect: Check = ({ world, committed }) => {
  for (const sink of world.sinks) {
    const firstWrite = new Map<number, readonly string[]>();
    for (const w of sink.writes) {
      const first = firstWrite.get(w.id);
      if (first) expect({ sink: sink.name, batch: w.id, outputs: w.outputs }).toEqual({ sink: sink.name, batch: w.id, outputs: first });
      else firstWrite.set(w.id, w.outputs);
    }
    for (const b of committed) {
      const held = (sink.batches.get(b.id) ?? []).map((o) => o.split('#')[0]!);
      expect({ sink: sink.name, batch: b.id, outputs: held.sort() }).toEqual({ sink: sink.name, batch: b.id, outputs: offsetsOf(b.ranges).sort() });
    }
  }
};

/** 6. Nothing lost silently: every offset below a position is in every sink, or recorded as lost. */
export const nothingLostSilently: Check = ({ world, view, lost }) => {
  const recorded = new Set(offsetsOf(lost));
  for (const sink of world.sinks) {
    const held = new Set<string>();
    for (const [id, outputs] of sink.batches) if (id <= view.lastCommitted) for (const o of outputs) held.add(o.split('#')[0]!);
    const missing: string[] = [];
    for (const [key, pos] of Object.entries(view.positions)) {
      const p = Number(key.split('/')[1]);
      for (let o = 0; o < pos; o++) if (!held.has(`${p}:${o}`) && !recorded.has(`${p}:${o}`)) missing.push(`${p}:${o}`);
    }
    expect({ sink: sink.name, missing }).toEqual({ sink: sink.name, missing: [] });
  }
};

export const ALL_INVARIANTS: readonly Check[] = [continuity, monotonicPositions, boundedOrderedFlight, replayIsExact, exactlyOnceEffect, nothingLostSilently];

async function checkWorld(world: World, model: Model): Promise<void> {
  const store = storeOf(world);
  const view = await store.load();
  const batches = (await store.batches()).reverse();
  const observed: Observed = { world, model, view, batches, committed: batches.filter((b) => b.state === 'committed'), lost: await store.lostRanges() };
  for (const check of world.checks) check(observed);
  world.lastPositions = view.positions;
  world.lastCommitted = view.lastCommitted;
}

export class Append implements fc.AsyncCommand<Model, World> {
  constructor(readonly partition: number, readonly n: number) {}
  check = (): boolean => true;
  async run(model: Model, world: World): Promise<void> {
    const p = this.partition % world.log.partitionCount;
    world.log.append(p, this.n);
    model.appended[p]! += this.n;
    await checkWorld(world, model);
  }
  toString = (): string => `append(${this.partition}, ${this.n})`;
}

/**
 * Retention deletes the next `n` offsets to process of a partition the checkpoint has a
 * position for, when no batch is in flight: the next plan records them as lost
 * (onDataLoss 'skip'). Never under a batch in flight: a batch delivered already and cut
 * on replay is outside exactly-once by design (DESIGN.md, Recovery).
 */
export class Trim implements fc.AsyncCommand<Model, World> {
  constructor(readonly partition: number, readonly n: number) {}
  check = (): boolean => true;
  async run(model: Model, world: World): Promise<void> {
    const p = this.partition % world.log.partitionCount;
    const view = await storeOf(world).load();
    const position = view.positions[`t/${p}`];
    if (!view.inFlight && position !== undefined) world.log.trim(p, position + this.n);
    await checkWorld(world, model);
  }
  toString = (): string => `trim(${this.partition}, ${this.n})`;
}

export class AddPartition implements fc.AsyncCommand<Model, World> {
  check = (m: Readonly<Model>): boolean => m.appended.length < 4;
  async run(model: Model, world: World): Promise<void> {
    world.log.addPartition();
    model.appended.push(0);
    await checkWorld(world, model);
  }
  toString = (): string => 'addPartition';
}

export class ChangeCode implements fc.AsyncCommand<Model, World> {
  constructor(readonly version: number) {}
  check = (): boolean => true;
  async run(model: Model, world: World): Promise<void> {
    world.fingerprint = `v${this.version}`;
    await checkWorld(world, model);
  }
  toString = (): string => `changeCode(v${this.version})`;
}

export interface CrashSpec {
  readonly phase: string;
  readonly nth: number;
  readonly kind: 'kill' | 'power';
  /** Which unsynced writes a power loss keeps: bit n for the n-th (mod 30). */
  readonly keep: number;
}

export class Run implements fc.AsyncCommand<Model, World> {
  constructor(readonly batches: number, readonly crash: CrashSpec | null, readonly acceptCodeChange: boolean) {}
  check = (): boolean => true;
  /** Whether the crash fired. */
  crashed = false;
  async run(model: Model, world: World): Promise<void> {
    const before = await storeOf(world).load();
    let seen = 0;
    this.crashed = false; // fast-check replays command objects while shrinking
    const engine = new Engine(job(world), {
      store: new CheckpointStore(world.kv, 'model', { retainBatches: 100_000, chunkSize: 2 }),
      fingerprint: world.fingerprint,
      acceptCodeChange: this.acceptCodeChange,
      crashPoint: (phase) => {
        // A killed process does nothing more: with batches pipelined, the other batch in flight stops at its next point too.
        if (this.crashed) throw new Crash(phase);
        if (this.crash && phase === this.crash.phase && ++seen === this.crash.nth) {
          const key = `${this.crash.kind}:${phase}`;
          firedPhases.set(key, (firedPhases.get(key) ?? 0) + 1);
          this.crashed = true;
          throw new Crash(phase);
        }
      },
    });
    try {
      await engine.run({ once: true, maxBatches: this.batches });
    } catch (err) {
      if (err instanceof Crash) {
        if (this.crash!.kind === 'power') world.kv.powerLoss((n) => ((this.crash!.keep >>> (n % 30)) & 1) === 1);
      } else if (err instanceof CodeChangedError) {
        // Refused only for a changed fingerprint with work in flight, without --accept-code-change.
        expect(before.meta!.fingerprint).not.toBe(world.fingerprint);
        expect(before.inFlight).toBeDefined();
        expect(this.acceptCodeChange).toBe(false);
        expect(await storeOf(world).load()).toEqual(before); // nothing written
      } else {
        throw err;
      }
    }
    // A power loss drops PLAN writes that no sync covered: what was recorded in flight beyond
    // the durable state was never promised; what is in flight now is durable.
    await notePlanned(world, this.crash?.kind === 'power' && this.crashed);
    await checkWorld(world, model);
  }
  toString = (): string =>
    `run(${this.batches}${this.crash ? `, crash ${this.crash.kind} at ${this.crash.phase}#${this.crash.nth}${this.crash.kind === 'power' ? ` keeping unsynced writes ${this.crash.keep.toString(2)}` : ''}` : ''}${this.acceptCodeChange ? ', accept' : ''})`;
}

/** Records the batch in flight as it stands durable; `lost`: writes were dropped, so recorded ids past the committed ones may be gone. */
async function notePlanned(world: World, lost: boolean): Promise<void> {
  const view = await storeOf(world).load();
  if (lost) for (const id of [...world.planned.keys()]) if (id > view.lastCommitted) world.planned.delete(id);
  for (const b of view.flight) if (!world.planned.has(b.id)) world.planned.set(b.id, b.ranges);
  // A batch id may be re-planned only if its PLAN write was lost before anything depended on it.
  if (!view.inFlight) for (const id of [...world.planned.keys()]) if (id > view.lastCommitted) world.planned.delete(id);
}

/** How the runs after damage ended, over every run of the file: refused (exit 7) or continued exactly. */
export const damageOutcomes = { refused: 0, continued: 0 };

/**
 * A run over a damaged checkpoint must stop with CorruptCheckpointError (exit 7) before any
 * sink write, or be an exact continuation: the invariants after it are the proof. A refused
 * checkpoint is then restored as it was before the damage (a backup), and the model goes on.
 */
async function runDamaged(world: World, model: Model, restore: () => void): Promise<void> {
  const writes = world.sinks.map((s) => s.writes.length);
  try {
    // acceptCodeChange: a dropped meta write may bring back an older fingerprint under a batch in flight.
    await new Engine(job(world), { store: new CheckpointStore(world.kv, 'model', { retainBatches: 100_000, chunkSize: 2 }), fingerprint: world.fingerprint, acceptCodeChange: true })
      .run({ once: true });
  } catch (err) {
    if (!(err instanceof CorruptCheckpointError)) throw err;
    expect(err.exitCode).toBe(7);
    expect(world.sinks.map((s) => s.writes.length)).toEqual(writes);
    damageOutcomes.refused++;
    restore();
    await checkWorld(world, model);
    return;
  }
  damageOutcomes.continued++;
  await notePlanned(world, true);
  await checkWorld(world, model);
}

/** Drops the newest `n` writes, synced ones too, with no report: a write log cut short. */
export class LoseNewest implements fc.AsyncCommand<Model, World> {
  constructor(readonly n: number) {}
  check = (): boolean => true;
  async run(model: Model, world: World): Promise<void> {
    const restore = world.kv.snapshot();
    world.kv.dropNewest(this.n);
    // Outside the model, restored: retention deleted offsets since the dropped writes (as for
    // Trim; a partition whose position is gone starts at 0 here).
    const view = await storeOf(world).load();
    const earliest = await world.log.offsets(await world.log.partitions(), 'earliest');
    const from = [
      ...Object.keys(earliest).map((key) => [key, view.positions[key] ?? 0] as const),
      ...(view.inFlight?.ranges ?? []).map((r) => [partitionKey(r), r.from] as const),
    ];
    // A checkpoint whose meta write is gone looks new: openCheckpoint's marker file refuses it (test/crash/corrupt-checkpoint.test.ts).
    if (view.meta === undefined || from.some(([key, at]) => at < (earliest[key] ?? 0))) {
      restore();
      await checkWorld(world, model);
      return;
    }
    await notePlanned(world, true);
    await runDamaged(world, model, restore);
  }
  toString = (): string => `loseNewest(${this.n})`;
}

/**
 * Damages one stored value the next run reads (meta, the committed state, the batch in
 * flight and its staged outputs): a flipped bit or a value cut short.
 */
export class DamageValue implements fc.AsyncCommand<Model, World> {
  constructor(readonly pick: number, readonly how: 'flip' | 'truncate', readonly at: number) {}
  check = (): boolean => true;
  async run(model: Model, world: World): Promise<void> {
    const view = await storeOf(world).load();
    const next = keys.batch(view.lastCommitted + 1);
    const outputs = `out!${next.slice('batch!'.length)}!`;
    const candidates = world.kv.keys().filter((k) => k === keys.meta || k === keys.state || k === next || k.startsWith(outputs));
    if (candidates.length === 0) return;
    const restore = world.kv.snapshot();
    world.kv.damage(candidates[this.pick % candidates.length]!, this.how, this.at);
    await runDamaged(world, model, restore);
  }
  toString = (): string => `damage(${this.pick}, ${this.how} ${this.at})`;
}

export const corruptions = [
  fc.integer({ min: 1, max: 6 }).map((n) => new LoseNewest(n)),
  fc.tuple(fc.nat(), fc.constantFrom('flip' as const, 'truncate' as const), fc.nat(4_000)).map(([pick, how, at]) => new DamageValue(pick, how, at)),
];

const trim = fc.tuple(fc.nat(3), fc.integer({ min: 1, max: 4 })).map(([p, n]) => new Trim(p, n));

export const commands = [
  fc.tuple(fc.nat(3), fc.integer({ min: 1, max: 8 })).map(([p, n]) => new Append(p, n)),
  trim, trim, // twice as likely: a trim makes a loss only when a position exists and nothing is in flight
  fc.constant(new AddPartition()),
  fc.integer({ min: 1, max: 3 }).map((v) => new ChangeCode(v)),
  fc.tuple(
    fc.integer({ min: 1, max: 4 }),
    fc.option(fc.record({ phase: fc.constantFrom(...PHASES), nth: fc.integer({ min: 1, max: 2 }), kind: fc.constantFrom('kill' as const, 'power' as const), keep: fc.integer({ min: 0, max: 2 ** 30 - 1 }) }), { freq: 3 }),
    fc.boolean(),
  ).map(([b, crash, accept]) => new Run(b, crash, accept)),
];

/** A final clean run with --accept-code-change: everything appended is processed. */
export async function drain(world: World, model: Model): Promise<void> {
  await new Run(1_000, null, true).run(model, world);
  const view = await storeOf(world).load();
  expect(view.inFlight).toBeUndefined();
  model.appended.forEach((n, p) => expect(view.positions[`t/${p}`] ?? 0).toBe(n));
}

/** A property: random command sequences over 1–3 partitions, `checks` after every command, then a drain. `extra`: more commands (corruptions). */
export function protocolProperty(stageOutputs: boolean, checks: readonly Check[], extra: typeof commands = []) {
  return fc.asyncProperty(fc.integer({ min: 1, max: 3 }), fc.commands([...commands, ...extra], { maxCommands: 25, size: '+1' }), async (partitions, cmds) => {
    const { world, model } = newWorld(partitions, stageOutputs, checks);
    await fc.asyncModelRun(() => ({ model, real: world }), cmds);
    await drain(world, model);
  });
}
