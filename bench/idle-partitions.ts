// The idle cost of a daemon over an embedded log with many partitions, and the size of a
// batch record when few of them have data (issue 13 item 8).
//
//   node scripts/run-ts.js bench/idle-partitions.ts [--partitions 10000] [--active 10] [--seconds 20]
//
// It creates a log with one record in every partition, runs `tidemark run` on it until it
// has caught up, samples the daemon's CPU time from /proc over `--seconds` of idling, then
// appends to `--active` partitions and reports the bytes of the batch record that reads them
// (as `inspect --json` shows it) and of the committed state record.
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { EmbeddedLog } from '../src/sources/embedded-log';

const arg = (name: string, fallback: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i < 0 ? fallback : Number(process.argv[i + 1]);
};
const partitions = arg('partitions', 10_000);
const active = arg('active', 10);
const seconds = arg('seconds', 20);
const root = resolve(__dirname, '..');
const bin = join(root, 'bin/tidemark.js');
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** User + system CPU seconds of a process, from /proc/<pid>/stat (clock ticks of 1/100 s). */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

function inspect(cp: string): { lastCommitted: number; recentBatches: Array<Record<string, unknown>>; positions: Record<string, number> } {
  // Into a file: the CLI exits before a pipe takes more than its first 64 KiB.
  const out = `${cp}.inspect.json`;
  const fd = openSync(out, 'w');
  spawnSync(process.execPath, [bin, 'inspect', cp, '--json'], { stdio: ['ignore', fd, 'inherit'] });
  closeSync(fd);
  return JSON.parse(readFileSync(out, 'utf8')) as ReturnType<typeof inspect>;
}

async function main(): Promise<void> {
  // Inside the project, so that the job's imports resolve to its node_modules.
  mkdirSync(join(root, 'dist'), { recursive: true });
  const dir = mkdtempSync(join(root, 'dist', 'bench-idle-'));
  const logDir = join(dir, 'log');
  const cp = join(dir, 'cp');
  const log = await EmbeddedLog.open(logDir, { partitions });
  await log.append(Array.from({ length: partitions }, (_, partition) => ({ partition, value: 'x' })));
  writeFileSync(join(dir, 'job.ts'), `
    import { defineJob, embeddedLogSource, type Sink } from ${JSON.stringify(join(root, 'src/index.ts'))};
    const none: Sink<unknown> = { name: 'none', async write() {} };
    export default defineJob({ name: 'idle', source: embeddedLogSource({ dir: ${JSON.stringify(logDir)} }), sinks: [none],
      transform: (records) => records.map((r) => r.offset), batch: { maxRecordsPerPartition: 100_000 } });
  `);
  const daemon = spawn(process.execPath, [bin, 'run', join(dir, 'job.ts'), '--checkpoint', cp, '--log-level', 'silent', '--progress', 'never'], { stdio: 'inherit' });
  let exited = false;
  daemon.once('exit', () => (exited = true));
  const alive = (): void => {
    if (exited) throw new Error('the daemon exited');
  };
  try {
    // Caught up: the first batch (every partition, one record each) is committed.
    for (;;) {
      await sleep(500);
      alive();
      try {
        if (inspect(cp).lastCommitted >= 1) break;
      } catch { /* not written yet */ }
    }
    await sleep(2000);
    const before = cpuSeconds(daemon.pid!);
    await sleep(seconds * 1000);
    const idle = cpuSeconds(daemon.pid!) - before;
    console.log(`idle: ${partitions} partitions, ${seconds} s: ${idle.toFixed(2)} CPU s = ${((100 * idle) / seconds).toFixed(1)} % of a core`);

    await log.append(Array.from({ length: active }, (_, i) => ({ partition: i * Math.floor(partitions / active), value: 'y' })));
    let report = inspect(cp);
    while (report.lastCommitted < 2) {
      await sleep(500);
      alive();
      report = inspect(cp);
    }
    const first = report.recentBatches.find((b) => b.id === 1);
    if (first) console.log(`batch 1 (every partition new): ${(first.ranges as unknown[]).length} ranges, ${JSON.stringify(first).length} bytes of JSON`);
    const batch = report.recentBatches[0]!;
    const ranges = (batch.ranges as unknown[]).length;
    console.log(`batch ${String(batch.id)} (${active} active of ${partitions}): ${ranges} ranges, ${JSON.stringify(batch).length} bytes of JSON`);
    console.log(`committed positions: ${JSON.stringify({ positions: report.positions, lastCommitted: report.lastCommitted }).length} bytes of JSON`);
  } finally {
    if (!exited) {
      daemon.kill('SIGTERM');
      await new Promise((r) => daemon.once('exit', r));
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

void main();
