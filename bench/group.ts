// `npm run bench:group [-- --records N --daemons 1,2,3 --partitions 6 --max-in-flight M]`: group mode's
// throughput with 1, 2 and 3 daemons of test/kafka/group-job.ts (each its own process and
// checkpoint, one consumer group per run) over one topic of N × 200 B records, produced once. A run is timed from the first daemon's start to the
// moment the sink holds every record's output (group joins and the first assignment
// included); `afterJoin` from the first commit on. On one machine the daemons share its
// cores: more daemons add processes, not CPUs. Prints one JSON line per run and a table;
// writes bench/results/group-<ISO time>.json.
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { events } from '../test/support/group';
import { randomBytes } from 'node:crypto';
import { admin, bootstrap, closeClients, createTopic, producer } from '../test/support/kafka';
import { start, type Child } from '../test/support/processes';

// Paths from this file: run-ts bundles it, so test/support's own __dirname-relative paths would point elsewhere.
const root = join(__dirname, '..');

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Records delivered per partition: the end of the contiguous range files from 0 (file names only, no reading). */
function delivered(out: string): number {
  const ranges = new Map<number, Map<number, number>>();
  let names: string[] = [];
  try {
    names = readdirSync(out);
  } catch {
    return 0;
  }
  for (const name of names) {
    const m = /-(\d+)-(\d+)-(\d+)\.jsonl$/.exec(name);
    if (!m) continue;
    const p = Number(m[1]);
    if (!ranges.has(p)) ranges.set(p, new Map());
    ranges.get(p)!.set(Number(m[2]), Number(m[3]));
  }
  let total = 0;
  for (const byFrom of ranges.values()) {
    let at = 0;
    for (let next = byFrom.get(at); next !== undefined && next > at; next = byFrom.get(at)) at = next;
    total += at;
  }
  return total;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { records: { type: 'string' }, daemons: { type: 'string' }, partitions: { type: 'string' }, 'max-in-flight': { type: 'string' } } });
  const records = Number(values.records ?? 600_000);
  const partitions = Number(values.partitions ?? 6);
  const counts = (values.daemons ?? '1,2,3').split(',').map(Number);
  const maxInFlight = values['max-in-flight']; // the job's default (2) when not given
  const topic = `bench-group-${records}x200-${partitions}p`;
  const a = await admin();
  const existing = await a.listTopics();
  if (!existing.includes(topic)) {
    await createTopic(topic, partitions);
    process.stderr.write(`producing ${records} × 200 B into ${topic}…\n`);
    const p = await producer();
    for (let sent = 0; sent < records; sent += 5_000) {
      const n = Math.min(5_000, records - sent);
      await p.send({ topic, acks: -1, messages: Array.from({ length: n }, (_, i) => ({ partition: (sent + i) % partitions, value: randomBytes(100).toString('hex') })) });
    }
  }
  const runs: Array<Record<string, unknown>> = [];
  for (const n of counts) {
    const dir = mkdtempSync(join(tmpdir(), `tidemark-bench-group-${n}-`));
    const group = `bench-group-${Date.now().toString(36)}-${n}`;
    const run = { dir, topic, brokers: bootstrap(), env: { GROUP_ID: group, GROUP_BATCH: '20000', GROUP_SESSION_MS: '10000', ...(maxInFlight ? { GROUP_MAX_IN_FLIGHT: maxInFlight } : {}) } };
    const started = Date.now();
    const daemons: Child[] = [];
    for (let i = 0; i < n; i++) {
      daemons.push(start(process.execPath, [join(root, 'bin', 'tidemark.js'), 'run', join(root, 'test', 'kafka', 'group-job.ts'), '--checkpoint', join(dir, `cp-${i}`), '--progress', 'never'], {
        cwd: root, env: { ...process.env, KAFKA_BROKERS: run.brokers, GROUP_TOPIC: topic, GROUP_OUT: join(dir, 'out'), ...run.env },
      }));
    }
    while (delivered(join(dir, 'out')) < records) {
      const dead = daemons.find((c) => c.proc.exitCode !== null);
      if (dead) throw new Error(`a daemon exited (${dead.proc.exitCode}): ${dead.stderr()}`);
      if (Date.now() - started > 600_000) throw new Error(`${n} daemons: not done after 600 s (${delivered(join(dir, 'out'))} of ${records})`);
      await sleep(100);
    }
    const seconds = (Date.now() - started) / 1000;
    const firstCommit = Math.min(...daemons.flatMap((c) => events(c, 'handoff').map((e) => Number(e.at))));
    const afterJoin = (Date.now() - firstCommit) / 1000;
    for (const c of daemons) c.proc.kill('SIGTERM');
    for (const c of daemons) await c.exited;
    const result = {
      daemons: n, maxInFlight: Number(maxInFlight ?? 2), records, partitions, seconds, recordsPerSecond: Math.round(records / seconds),
      secondsAfterFirstCommit: afterJoin, recordsPerSecondAfterFirstCommit: Math.round(records / afterJoin),
    };
    console.log(JSON.stringify(result));
    runs.push(result);
    rmSync(dir, { recursive: true, force: true });
  }
  await closeClients();
  console.log('\n| daemons | records/s (start → all delivered) | records/s (first commit → all delivered) |\n| --- | --- | --- |');
  for (const r of runs) console.log(`| ${r.daemons} | ${r.recordsPerSecond} | ${r.recordsPerSecondAfterFirstCommit} |`);
  mkdirSync(join(__dirname, 'results'), { recursive: true });
  writeFileSync(join(__dirname, 'results', `group-${new Date().toISOString()}.json`), `${JSON.stringify(runs, null, 2)}\n`);
}

void main();
