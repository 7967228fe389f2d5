// Group mode's torture (docs/scale-out.md): 3 daemons of test/kafka/group-job.ts on one
// topic while a producer writes; a random daemon is SIGKILLed and restarted on its
// checkpoint again and again; on the way a 4th daemon joins, one leaves with SIGTERM,
// partitions are added to the topic, and a daemon is frozen (SIGSTOP) past its session
// timeout and resumed (SIGCONT) once its partitions moved. Then the producer stops, the
// daemons drain and stop, and every sink must hold every produced record's output exactly
// once. Used by test/kafka/group-torture.test.ts and `npm run torture -- --daemons 3`.
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Kafka, logLevel, Partitioners } from 'kafkajs';
import { checkRangeFiles, events, startDaemon, until, type GroupRun } from '../support/group';
import { waitForLeaders } from '../support/kafka';
import type { Child } from '../support/processes';
import { prng } from '../support/prng';

export interface GroupTortureOptions {
  readonly kills: number;
  readonly daemons: number;
  readonly dir: string;
  readonly brokers: string;
  /** Partitions of the topic at the start; two are added on the way. */
  readonly partitions?: number;
  /** Pause between kills (ms, random in [min, max]). */
  readonly killEveryMs?: readonly [number, number];
  readonly sessionMs?: number;
  readonly seed?: number;
  /** Extra environment of every daemon (more sinks). */
  readonly env?: Record<string, string>;
  /** Checks of extra sinks after the drain: name → outputs missing and extra, against the produced values. */
  readonly sinkChecks?: ReadonlyArray<{ readonly name: string; check(produced: ReadonlyMap<number, readonly string[]>): Promise<SinkCheck> }>;
  readonly log?: (line: string) => void;
  /** How long the daemons may take to drain after the producer stopped (default 120 s). */
  readonly drainMs?: number;
  /**
   * Give up once this long has passed since the start, with the daemons' logs written: set it
   * below a test runner's timeout, which would otherwise end the run before it wrote any.
   */
  readonly deadlineMs?: number;
}

export interface SinkCheck {
  readonly found: number;
  readonly lost: number;
  readonly duplicated: number;
}

export interface GroupTortureReport {
  readonly daemons: number;
  readonly kills: number;
  readonly sigterms: number;
  readonly zombies: number;
  readonly partitionsAdded: number;
  readonly produced: number;
  readonly sinks: Record<string, SinkCheck & { readonly discontinuities?: number }>;
  /**
   * An owner's departure → the first commit of one of its partitions by the next owner, per
   * kind of departure: SIGKILL (the session timeout passes first), SIGTERM (LeaveGroup), SIGSTOP.
   */
  readonly handoffMs: Readonly<Record<Departure, { readonly median: number; readonly max: number; readonly measured: number }>>;
  /**
   * The zombie after SIGCONT: partitions it dropped (its group commits refused, its sink writes
   * fenced), and ranges the group accepted from it at an epoch it held before the freeze (must be 0).
   */
  readonly zombie: { readonly dropped: number; readonly staleCommits: number };
  readonly exitCodes: number[];
  readonly runSeconds: number;
  readonly seed: number;
}

type Departure = 'sigkill' | 'sigterm' | 'sigstop';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Writes 40 records every 20 ms round-robin over the topic's partitions (as many as `partitions()` says now). */
class Producer {
  readonly acked = new Map<number, string[]>();
  private seq = 0;
  private timer: NodeJS.Timeout | undefined;
  private pending: Promise<void> = Promise.resolve();
  private readonly kafka: Kafka;
  private producer;

  constructor(brokers: string, private readonly topic: string, private partitions: number) {
    this.kafka = new Kafka({ clientId: 'group-torture-producer', brokers: brokers.split(','), logLevel: logLevel.NOTHING });
    this.producer = this.newProducer();
  }

  private newProducer(): ReturnType<Kafka['producer']> {
    return this.kafka.producer({ idempotent: true, maxInFlightRequests: 1, createPartitioner: Partitioners.DefaultPartitioner });
  }

  async start(): Promise<void> {
    const admin = this.kafka.admin();
    await admin.connect();
    await admin.createTopics({ topics: [{ topic: this.topic, numPartitions: this.partitions, replicationFactor: 1 }] });
    await waitForLeaders(admin, this.topic, this.partitions);
    await admin.disconnect();
    await this.producer.connect();
    this.timer = setInterval(() => this.tick(), 20);
  }

  private tick(): void {
    this.pending = this.pending.then(async () => {
      const messages = Array.from({ length: 40 }, () => {
        const n = this.seq++;
        return { partition: n % this.partitions, value: `r${n}` };
      });
      await this.producer.send({ topic: this.topic, acks: -1, messages });
      for (const m of messages) this.acked.set(m.partition, [...(this.acked.get(m.partition) ?? []), m.value]);
    });
  }

  /** Adds partitions to the topic; the producer writes to them from then on. */
  async addPartitions(count: number): Promise<void> {
    const admin = this.kafka.admin();
    await admin.connect();
    await admin.createPartitions({ topicPartitions: [{ topic: this.topic, count: this.partitions + count }] });
    await waitForLeaders(admin, this.topic, this.partitions + count);
    await admin.disconnect();
    // A new producer, between two sends: kafkajs's keeps its metadata, and records sent to a partition it does not know there vanish (the send resolves).
    this.pending = this.pending.then(async () => {
      await this.producer.disconnect();
      this.producer = this.newProducer();
      await this.producer.connect();
      this.partitions += count;
    });
    await this.pending;
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.pending;
    await this.producer.disconnect();
  }

  get produced(): number {
    let n = 0;
    for (const list of this.acked.values()) n += list.length;
    return n;
  }
}

/** The partitions `child` owned when it died: assigned and not revoked or dropped since, in its own log. */
function ownedAtEnd(child: Child): Set<string> {
  const owned = new Set<string>();
  for (const e of events(child)) {
    const p = String(e.partition);
    if (e.event === 'assigned') owned.add(p);
    if (e.event === 'revoked' || e.event === 'dropped') owned.delete(p);
  }
  return owned;
}

function summary(xs: readonly number[]): { median: number; max: number; measured: number } {
  const s = [...xs].sort((a, b) => a - b);
  return { median: s[Math.floor(s.length / 2)] ?? 0, max: s[s.length - 1] ?? 0, measured: s.length };
}

export async function runGroupTorture(o: GroupTortureOptions): Promise<GroupTortureReport> {
  const started = Date.now();
  const seed = o.seed ?? (Date.now() % 1_000_000);
  const rand = prng(seed);
  const log = o.log ?? (() => {});
  rmSync(o.dir, { recursive: true, force: true });
  mkdirSync(o.dir, { recursive: true });
  const topic = `group-torture-${process.pid}-${Date.now().toString(36)}`;
  const run: GroupRun = {
    dir: o.dir, topic, brokers: o.brokers,
    env: { GROUP_SESSION_MS: String(o.sessionMs ?? 6_000), GROUP_BATCH: '200', ...o.env },
  };
  const producer = new Producer(o.brokers, topic, o.partitions ?? 4);
  await producer.start();

  /** Every process of every daemon slot, oldest first: the logs of the dead are read for the handoff times. */
  const lives: Child[][] = [];
  const live: Array<Child | undefined> = [];
  const exitCodes: number[] = [];
  const launch = (i: number): Child => {
    const c = startDaemon(run, i);
    (lives[i] ??= []).push(c);
    live[i] = c;
    return c;
  };
  for (let i = 0; i < o.daemons; i++) launch(i);
  /** When an owner went away, and the partitions it held then. */
  const departures: Array<{ kind: Departure; at: number; partitions: Set<string> }> = [];
  let sigterms = 0;
  let zombies = 0;
  let partitionsAdded = 0;
  let zombieChild: Child | undefined;
  let zombieResumedAt = 0;
  /** The newest generation the zombie knew when it froze. */
  let zombieEpoch = 0;

  const killable = (): number[] => live.flatMap((c, i) => (c && c !== zombieChild ? [i] : []));
  const [minMs, maxMs] = o.killEveryMs ?? [1_000, 3_000];
  const deadline = started + (o.deadlineMs ?? Infinity);
  /** A wait of at most `ms`, cut to the deadline. */
  const within = (ms: number): number => Math.max(1_000, Math.min(ms, deadline - Date.now()));
  const produced = producer.acked;
  try {
    for (let k = 0; k < o.kills; k++) {
      await sleep(minMs + rand() * (maxMs - minMs));
      const step = k + 1;
      if (Date.now() > deadline) throw new Error(`the torture ran past its deadline (${o.deadlineMs} ms) at kill ${step} of ${o.kills}; the daemons' logs are in ${join(o.dir, 'logs')}`);
      if (step === Math.floor(o.kills / 4)) {
        launch(o.daemons); // a daemon joins
        log(`kill ${step}: daemon ${o.daemons} joins`);
      }
      if (step === Math.floor(o.kills / 3)) {
        const i = killable()[0]!;
        const c = live[i]!;
        departures.push({ kind: 'sigterm', at: Date.now(), partitions: ownedAtEnd(c) });
        c.proc.kill('SIGTERM');
        const { code } = await c.exited;
        exitCodes.push(code ?? -1);
        live[i] = undefined;
        sigterms++;
        log(`kill ${step}: daemon ${i} stopped with SIGTERM (exit ${code})`);
        continue; // no SIGKILL in the same step: its session timeout would hold up this handoff
      }
      if (step === Math.floor(o.kills / 2)) {
        await producer.addPartitions(2);
        partitionsAdded += 2;
        log(`kill ${step}: 2 partitions added`);
      }
      if (step === Math.floor((2 * o.kills) / 3)) {
        // Freeze a daemon past its session; resume it once others hold what it had.
        const i = killable()[killable().length - 1]!;
        const z = live[i]!;
        const held = ownedAtEnd(z);
        zombieEpoch = Math.max(0, ...events(z).map((e) => Number(e.epoch ?? e.generation ?? 0)));
        z.proc.kill('SIGSTOP');
        zombieChild = z;
        const frozenAt = Date.now();
        departures.push({ kind: 'sigstop', at: frozenAt, partitions: held });
        const others = (): Child[] => live.filter((c): c is Child => c !== undefined && c !== z);
        await until(() => [...held].every((p) => others().some((c) => events(c, 'handoff').some((e) => e.partition === p && Number(e.at) > frozenAt))),
          within(120_000), `the partitions of frozen daemon ${i} (${[...held].join(', ')}) to move`);
        z.proc.kill('SIGCONT');
        zombieResumedAt = Date.now();
        zombies++;
        log(`kill ${step}: daemon ${i} frozen past its session, resumed after its partitions moved`);
        continue;
      }
      const candidates = killable();
      const i = candidates[Math.floor(rand() * candidates.length)]!;
      const c = live[i]!;
      departures.push({ kind: 'sigkill', at: Date.now(), partitions: ownedAtEnd(c) });
      c.proc.kill('SIGKILL');
      await c.exited;
      launch(i);
      log(`kill ${step}: daemon ${i} SIGKILLed and restarted`);
    }
    await producer.stop();
    await until(() => checkRangeFiles(o.dir, produced).found === producer.produced, within(o.drainMs ?? 120_000), 'the daemons to drain what was produced');
  } catch (err) {
    await producer.stop().catch(() => {});
    throw err;
  } finally {
    // Every daemon's log beside the outputs: what a failed run is read from.
    mkdirSync(join(o.dir, 'logs'), { recursive: true });
    lives.forEach((list, i) => list.forEach((c, j) => writeFileSync(join(o.dir, 'logs', `daemon-${i}-${j}.log`), c.stdout() + c.stderr())));
  }
  for (const c of live) c?.proc.kill('SIGTERM');
  for (const c of live) if (c) exitCodes.push((await c.exited).code ?? -1);

  const files = checkRangeFiles(o.dir, produced);
  const sinks: GroupTortureReport['sinks'] = { files: { found: files.found, lost: files.lost, duplicated: files.duplicated, discontinuities: files.discontinuities.length } };
  for (const s of o.sinkChecks ?? []) sinks[s.name] = await s.check(produced);

  // Handoff: from an owner's departure to the first commit of one of its partitions by another process.
  const handoffs: Record<Departure, number[]> = { sigkill: [], sigterm: [], sigstop: [] };
  const all = lives.flat();
  for (const d of departures) {
    const firsts = [...d.partitions].map((p) => {
      const ats = all.flatMap((c) => events(c, 'handoff').filter((e) => e.partition === p && Number(e.at) > d.at).map((e) => Number(e.at)));
      return ats.length > 0 ? Math.min(...ats) - d.at : undefined;
    }).filter((x): x is number => x !== undefined);
    if (firsts.length > 0) handoffs[d.kind].push(Math.min(...firsts));
  }
  const zombieEvents = zombieChild ? events(zombieChild).filter((e) => Date.parse(String(e.time)) >= zombieResumedAt) : [];
  const report: GroupTortureReport = {
    daemons: o.daemons, kills: o.kills - zombies - sigterms, sigterms, zombies, partitionsAdded, produced: producer.produced, sinks,
    handoffMs: {
      sigkill: summary(handoffs.sigkill), sigterm: summary(handoffs.sigterm), sigstop: summary(handoffs.sigstop),
    },
    zombie: {
      dropped: zombieEvents.filter((e) => e.event === 'dropped').length,
      staleCommits: zombieEvents.filter((e) => e.event === 'committed' && Number(e.epoch) <= zombieEpoch).length,
    },
    exitCodes, runSeconds: Math.round((Date.now() - started) / 1000), seed,
  };
  return report;
}

export function printGroupReport(report: GroupTortureReport, path: string): string {
  writeFileSync(path, `${JSON.stringify(report, null, 2)}\n`);
  const rows: Array<[string, unknown]> = [
    ['daemons', report.daemons], ['SIGKILLs (each restarted)', report.kills], ['SIGTERMs', report.sigterms], ['zombies (SIGSTOP past the session, SIGCONT)', report.zombies],
    ['partitions added', report.partitionsAdded], ['records produced', report.produced],
    ...Object.entries(report.sinks).map(([name, s]): [string, unknown] => [`sink ${name}`, `${s.found} found, ${s.lost} lost, ${s.duplicated} duplicated`]),
    ...Object.entries(report.handoffMs).map(([kind, h]): [string, unknown] => [`handoff after ${kind} (→ first commit by the next owner), ms`, `median ${h.median}, max ${h.max} (${h.measured} measured)`]), ['zombie: partitions dropped after SIGCONT', report.zombie.dropped],
    ['zombie: ranges the group took from it at its old epoch', report.zombie.staleCommits], ['exit codes of SIGTERMs', report.exitCodes.join(' ')], ['run seconds', report.runSeconds], ['seed', report.seed],
  ];
  return rows.map(([k, v]) => `${k.padEnd(60)} ${String(v)}`).join('\n');
}
