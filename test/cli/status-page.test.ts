// The status page (`/` and `/status.json` on the metrics port) in a real browser: Debian's
// chromium driven by playwright-core, pointed at the system binary (no browser download).
// Without chromium these tests fail, never skip: scripts/install-system-deps installs it.
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { EmbeddedLog } from 'tidemark';
import type { EngineCheckpoint, EngineStatus } from '../../src/engine';
import { Metrics } from '../../src/metrics';
import type { StatusJson } from '../../src/status';
import { ROOT, start, write } from '../support/cli';
import { tempDir } from '../support/tmp';

const root = tempDir('tidemark-status-page-');

/** The system chromium: $CHROMIUM, else `chromium` or `chromium-browser` on the PATH. */
function chromiumPath(): string {
  const candidates = [process.env.CHROMIUM, ...(process.env.PATH ?? '').split(delimiter).flatMap((dir) => [join(dir, 'chromium'), join(dir, 'chromium-browser')])];
  const found = candidates.find((p): p is string => p !== undefined && p !== '' && existsSync(p));
  if (!found) throw new Error('chromium is missing: the status page tests drive the system browser. Install it with `apt-get install -y chromium` (scripts/install-system-deps does), or set CHROMIUM to its path.');
  return found;
}

let browser: Browser;
beforeAll(async () => {
  browser = await chromium.launch({ executablePath: chromiumPath() });
});
afterAll(async () => {
  await browser?.close();
});

/** A page that fails the test on a script error in it. */
async function open(url: string): Promise<{ page: Page; errors: string[] }> {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const errors: string[] = [];
  page.on('pageerror', (err) => errors.push(err.message));
  page.on('dialog', (d) => {
    errors.push(`a dialog opened: ${d.message()}`);
    void d.dismiss();
  });
  await page.goto(url);
  return { page, errors };
}

/** Each plot's element says how many points and what largest value it was last given. */
const plotsNonZero = (): boolean => Array.from(document.querySelectorAll<HTMLElement>('.plot'))
  .every((e) => Number(e.dataset.points) >= 5 && Number(e.dataset.max) > 0 && e.querySelector('canvas') !== null);

const newestBatch = (page: Page): Promise<number> => page.$eval('#batches tbody tr', (tr) => Number((tr as HTMLElement).dataset.batch));

it('shows a running daemon: plots with data, a growing batch table, the job and its checkpoint', async () => {
  const dir = join(root, 'live');
  const logDir = join(dir, 'log');
  mkdirSync(dir, { recursive: true });
  const log = await EmbeddedLog.open(logDir, { topic: 'clicks', partitions: 3 });
  // A sink with a connection string in its options: the page shows sinks by name only.
  const job = write(join(dir, 'job.ts'), `import { defineJob, embeddedLogSource, fileSink } from 'tidemark';
const audit = { name: 'audit', connection: 'postgresql://audit:hunter2@db.internal/prod', async write() {} };
export default defineJob({
  name: 'status-page',
  source: embeddedLogSource({ dir: ${JSON.stringify(logDir)}, topic: 'clicks' }),
  sinks: [fileSink({ dir: ${JSON.stringify(join(dir, 'out'))} }), audit],
  transform: (records) => records.map((r) => r.value!.toString()),
  batch: { maxRecordsPerPartition: 5, pollIntervalMs: 20 },
});
`);
  const daemon = start(['run', job, '--checkpoint', join(dir, 'cp'), '--metrics-port', '0']);
  // The producer appends faster than batches of 5 records a partition drain: lag stays above 0.
  let appended = 0;
  let producing = true;
  const producer = (async () => {
    while (producing) {
      await log.append(Array.from({ length: 300 }, (_, i) => ({ value: JSON.stringify({ n: appended + i }) })));
      appended += 300;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  })();
  try {
    const port = await daemon.waitFor(() => /metrics on http:\/\/127\.0\.0\.1:(\d+)\//.exec(daemon.stdout)?.[1], 'the metrics port');
    const { page, errors } = await open(`http://127.0.0.1:${port}/`);
    await page.waitForFunction(plotsNonZero, undefined, { timeout: 60_000, polling: 200 });
    const first = await newestBatch(page);
    await page.waitForFunction((seen) => {
      const rows = document.querySelectorAll<HTMLElement>('#batches tbody tr');
      return rows.length >= 2 && Number(rows[0]!.dataset.batch) > seen;
    }, first, { timeout: 30_000, polling: 200 });
    expect(await page.textContent('#job')).toBe('status-page');
    expect(await page.textContent('#facts')).toContain(`pid ${daemon.pid}`);
    expect(await page.textContent('#fingerprints tbody')).toContain('first run');
    // The README's picture is renewed on request only, so that a test run leaves the tree clean.
    const shot = process.env.TIDEMARK_UPDATE_SCREENSHOT === '1' ? join(ROOT, 'docs', 'status-page.png') : join(root, 'status-page.png');
    await page.screenshot({ path: shot, fullPage: true });
    expect(statSync(shot).size).toBeGreaterThan(10_000);

    const res = await fetch(`http://127.0.0.1:${port}/status.json`);
    expect(res.headers.get('content-type')).toBe('application/json; charset=utf-8');
    const text = await res.text();
    expect(text).not.toContain('hunter2');
    const s = JSON.parse(text) as StatusJson;
    expect(s.job).toEqual({
      name: 'status-page', source: 'embedded:clicks', sinks: ['files', 'audit'], fingerprint: expect.stringMatching(/^sha256:/),
      fingerprints: [{ fingerprint: s.job.fingerprint, since: s.job.createdAt, note: 'first run' }], createdAt: expect.any(Number),
    });
    expect(s.ready).toEqual({ ready: true, reason: 'ok' });
    expect(s.lock).toEqual({ held: true, owner: { host: expect.any(String), pid: daemon.pid, since: expect.any(Number) } });
    expect(s.recoveries).toEqual({ count: 0, batches: [] });
    expect(s.lastCommitted).toBeGreaterThanOrEqual(2);
    expect(s.totals.batches).toBe(s.lastCommitted);
    const newest = s.batches[0]!;
    expect(newest).toEqual({
      id: s.lastCommitted, at: expect.any(Number), ranges: expect.any(Array), rangeCount: newest.ranges.length, records: expect.any(Number),
      outputs: newest.records, deadLetters: 0, recovered: false, durations: expect.objectContaining({ plan: expect.any(Number), commit: expect.any(Number) }),
    });
    expect(newest.ranges[0]).toEqual({ topic: 'clicks', partition: expect.any(Number), from: expect.any(Number), until: expect.any(Number) });
    expect(s.batches.map((b) => b.id)).toEqual(s.batches.map((_, i) => s.lastCommitted - i));
    if (s.inFlight) expect(s.inFlight).toMatchObject({ id: s.lastCommitted + 1, state: expect.stringMatching(/^(planned|staged)$/) });
    const n = s.series.t.length;
    expect(n).toBeGreaterThanOrEqual(5);
    for (const series of [s.series.recordsIn, s.series.recordsOut, s.series.checkpointBytes]) expect(series).toHaveLength(n);
    expect(Math.max(...s.series.recordsIn)).toBeGreaterThan(0);
    expect(s.series.lag.map((l) => l.partition).sort()).toEqual(['clicks/0', 'clicks/1', 'clicks/2']);
    for (const l of s.series.lag) expect(l.values).toHaveLength(n);
    expect(errors).toEqual([]);
    await page.close();
  } finally {
    producing = false;
    await producer;
    daemon.kill('SIGTERM');
  }
  expect((await daemon.exited).code).toBe(0);
});

it('shows every string from the daemon as text: a job named <script> injects nothing', async () => {
  const hostile = '<img src=x onerror=alert(1)>';
  const key = `${hostile}/0`;
  const range = { topic: hostile, partition: 0, from: 0, until: 10 };
  const status: EngineStatus = { recovered: true, stopping: false, lockHeld: true, lastCommitted: 1, positions: { [key]: 10 }, lag: { [key]: 7 }, progressAt: Date.now() };
  const checkpoint: EngineCheckpoint = {
    meta: {
      format: 2, job: '<script>alert(1)</script>', source: `embedded:${hostile}`, sinks: ['files'], fingerprint: 'codeVersion:<b>1</b>',
      fingerprints: [{ fingerprint: 'codeVersion:<b>1</b>', since: 1, note: '<i>first run</i>' }], resets: [], createdAt: 1,
    },
    inFlight: { id: 2, state: 'planned', ranges: [{ ...range, from: 10, until: 20 }], fingerprint: 'codeVersion:<b>1</b>', plannedAt: Date.now(), staged: null },
  };
  const metrics = new Metrics({ engine: { status: () => status, checkpoint: () => checkpoint }, checkpointDir: join(root, 'none'), job: '<script>alert(1)</script>' });
  metrics.observe({ id: 1, ranges: [range], records: 10, bytesIn: 100, outputs: 10, bytesOut: 100, deadLetters: 0, recovered: true, durations: { plan: 1, read: 2 }, lag: {} });
  const port = await metrics.listen(0, '127.0.0.1');
  try {
    const json = await (await fetch(`http://127.0.0.1:${port}/status.json`)).text();
    expect(json).not.toContain('<'); // escaped as \u003c: nothing in it reads as markup
    expect((JSON.parse(json) as StatusJson).job.name).toBe('<script>alert(1)</script>');

    const { page, errors } = await open(`http://127.0.0.1:${port}/`);
    await page.waitForSelector('#batches tbody tr');
    expect(await page.textContent('#job')).toBe('<script>alert(1)</script>');
    expect(await page.textContent('#batches tbody')).toContain(`${key} [0, 10)`);
    expect(await page.textContent('#in-flight')).toContain(`${key} [10, 20)`);
    expect(await page.textContent('#fingerprints tbody')).toContain('<i>first run</i>');
    expect(await page.textContent('#facts')).toContain('1: batch 1'); // the recovered batch
    // Only the page's own script; no element made from a string.
    expect(await page.$$eval('script', (s) => s.length)).toBe(1);
    expect(await page.$$eval('img, b, i', (e) => e.length)).toBe(0);
    expect(errors).toEqual([]);
    await page.close();
  } finally {
    await metrics.close();
  }
});
