// The cost of being scraped: the median batch duration (plan to commit, from the daemon's
// "batch N committed" lines) and the wall time per batch of a real `tidemark run` on the
// embedded log, with no scraper and with 50 scrapers fetching /metrics back to back on loopback.
//   node scripts/build.js && node scripts/run-ts.js bench/scrapers.ts [--scrapers 50] [--seconds 5]
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { EmbeddedLog } from 'tidemark';

const { values } = parseArgs({ options: { scrapers: { type: 'string', default: '50' }, seconds: { type: 'string', default: '5' } } });
const SCRAPERS = Number(values.scrapers);
const WINDOW_MS = Number(values.seconds) * 1000;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? 0;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'tidemark-scrapers-'));
  try {
    const log = await EmbeddedLog.open(join(dir, 'log'), { partitions: 2 });
    await log.append(Array.from({ length: 400_000 }, (_, i) => ({ value: `event ${i}`, partition: i % 2 })));
    const job = join(dir, 'job.ts');
    writeFileSync(job, `import { defineJob, embeddedLogSource, fileSink } from 'tidemark';
export default defineJob({
  name: 'scraped',
  source: embeddedLogSource({ dir: ${JSON.stringify(join(dir, 'log'))} }),
  sinks: [fileSink({ dir: ${JSON.stringify(join(dir, 'out'))} })],
  transform: (records) => records.map((r) => r.value!.toString()),
  batch: { maxRecordsPerPartition: 50 },
});
`);
    const daemon = spawn(process.execPath, [join(__dirname, '..', 'bin', 'tidemark.js'), 'run', job, '--checkpoint', join(dir, 'cp'),
      '--metrics-port', '0', '--metrics-host', '127.0.0.1'], { stdio: ['ignore', 'pipe', 'inherit'] });
    const durations: Array<{ at: number; ms: number }> = [];
    let port: number | undefined;
    let rest = '';
    daemon.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      const lines = (rest + chunk).split('\n');
      rest = lines.pop()!;
      for (const line of lines) {
        if (!line.startsWith('{')) continue;
        const l = JSON.parse(line) as { msg: string; metricsPort?: number; durations?: Record<string, number> };
        if (l.metricsPort !== undefined) port = l.metricsPort;
        if (l.durations && /^batch \d+ committed$/.test(l.msg)) durations.push({ at: Date.now(), ms: Object.values(l.durations).reduce((a, b) => a + b, 0) });
      }
    });
    while (port === undefined || durations.length < 20) await new Promise((resolve) => setTimeout(resolve, 50));
    const window = async (scrapers: number): Promise<{ median: number; batches: number; wallMsPerBatch: number; scrapes: number }> => {
      const from = Date.now();
      const until = from + WINDOW_MS;
      let scrapes = 0;
      await Promise.all(Array.from({ length: scrapers }, async () => {
        while (Date.now() < until) {
          const res = await fetch(`http://127.0.0.1:${port}/metrics`).catch(() => undefined);
          if (res) {
            await res.text();
            scrapes++;
          }
        }
      }));
      while (Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 50));
      const mine = durations.filter((d) => d.at >= from && d.at < until).map((d) => d.ms);
      return { median: median(mine), batches: mine.length, wallMsPerBatch: Math.round((WINDOW_MS / mine.length) * 10) / 10, scrapes };
    };
    const quiet = await window(0);
    const scraped = await window(SCRAPERS);
    daemon.kill('SIGTERM');
    console.log(JSON.stringify({ windowMs: WINDOW_MS, scrapers: SCRAPERS, quiet, scraped }));
    await new Promise((resolve) => daemon.on('close', resolve));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

void main();
