// Output for a person at a terminal and for machines elsewhere (issue 16): readable log
// lines on a terminal, JSON lines off it, `--log-format` to choose; the daemon says when it
// has caught up; the demo says what it does while it seeds. Terminals are pseudo-terminals
// from util-linux `script`.
import { join } from 'node:path';
import { generatorJob, onTerminal, ROOT, start, tidemark, write } from '../support/cli';
import { tempDir } from '../support/tmp';

const root = tempDir('tidemark-terminal-');
let n = 0;
function setup(): { dir: string; job: string; cp: string } {
  const dir = join(root, `t${++n}`);
  return { dir, job: write(join(dir, 'job.ts'), generatorJob(dir, { partitions: 1, size: 20, maxRecordsPerPartition: 10 })), cp: join(dir, 'cp') };
}

const ESC = '\x1b';
const plain = (s: string): string => s.split(`${ESC}[`).map((part, i) => (i === 0 ? part : part.replace(/^[0-9;]*[A-Za-z]/, ''))).join('').replace(/\r/g, '');
const PRETTY = /^\d\d:\d\d:\d\d\.\d{3} INFO {2}stopped after 2 batches, 20 records {2}batches=2 records=20 /m;

describe('log lines for people and for machines', () => {
  it('on a terminal: time, level and message by default, in colour; --log-format json keeps JSON', async () => {
    const { job, cp } = setup();
    const r = await onTerminal(['run', job, '--checkpoint', cp, '--once', '--progress', 'never'], '');
    expect(r.code).toBe(0);
    expect(r.stdout).not.toContain('{"level"');
    expect(r.stdout).toContain(`${ESC}[32mINFO ${ESC}[0m`);
    expect(plain(r.stdout)).toMatch(PRETTY);
    const json = await onTerminal(['run', job, '--checkpoint', cp, '--once', '--progress', 'never', '--log-format', 'json'], '');
    expect(plain(json.stdout).split('\n').filter((l) => l !== '').map((l) => (JSON.parse(l) as { msg: string }).msg)).toContain('stopped after 0 batches, 0 records');
  });

  it('off a terminal: JSON lines by default; --log-format pretty (or TIDEMARK_LOG_FORMAT) gives plain readable lines', async () => {
    const { job, cp } = setup();
    const r = await tidemark(['run', job, '--checkpoint', cp, '--once']);
    expect(r.code).toBe(0);
    for (const line of r.stdout.split('\n').filter((l) => l !== '')) expect(JSON.parse(line)).toHaveProperty('msg');
    const again = setup();
    const pretty = await tidemark(['run', again.job, '--checkpoint', again.cp, '--once'], { env: { TIDEMARK_LOG_FORMAT: 'pretty' } });
    expect(pretty.stdout).not.toContain(ESC);
    expect(pretty.stdout).toMatch(PRETTY);
    const bad = await tidemark(['run', job, '--log-format', 'yaml']);
    expect({ code: bad.code, stderr: bad.stderr }).toEqual({ code: 2, stderr: 'tidemark: --log-format must be one of auto, json, pretty; got "yaml".\n' });
  });
});

describe('saying what the daemon is doing', () => {
  it('says "caught up, waiting for data" once when it goes idle', async () => {
    const { job, cp } = setup();
    const daemon = start(['run', job, '--checkpoint', cp]);
    const line = await daemon.waitForLog(/^caught up, waiting for data$/);
    expect(line).toMatchObject({ lastCommitted: 2, positions: { 'generated/0': 20 } });
    await new Promise((resolve) => setTimeout(resolve, 300)); // idle polls meanwhile: said once
    daemon.kill('SIGTERM');
    const r = await daemon.exited;
    expect(r.code).toBe(0);
    expect(daemon.logs().filter((l) => l.msg === 'caught up, waiting for data')).toHaveLength(1);
  });

  it('does not say it has caught up while a batch fills up (minRecords, maxWaitMs)', async () => {
    const dir = join(root, 'filling');
    const job = write(join(dir, 'job.ts'), `import { defineJob, fileSink, generatorSource } from 'tidemark';
export default defineJob({
  name: 'filling', source: generatorSource({ partitions: 1, size: 25 }), sinks: [fileSink({ dir: ${JSON.stringify(join(dir, 'out'))} })],
  transform: (records) => records.map((r) => r.offset),
  batch: { maxRecordsPerPartition: 20, minRecords: 10, maxWaitMs: 1000, pollIntervalMs: 20 },
});
`);
    const daemon = start(['run', job, '--checkpoint', join(dir, 'cp')]);
    await daemon.waitForLog(/^caught up, waiting for data$/);
    daemon.kill('SIGTERM');
    expect((await daemon.exited).code).toBe(0);
    const messages = daemon.logs().map((l) => String(l.msg));
    // Batch 1 takes 20 records; the other 5 wait up to maxWaitMs for more: lag, not caught up.
    expect(messages.indexOf('batch 2 committed')).toBeGreaterThan(messages.indexOf('batch 1 committed'));
    expect(messages.indexOf('caught up, waiting for data')).toBeGreaterThan(messages.indexOf('batch 2 committed'));
  });

  it('on a terminal, the progress line says when it has caught up', async () => {
    const { job, cp } = setup();
    const r = await onTerminal(['run', job, '--checkpoint', cp, '--once', '--log-level', 'warn'], '');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`\r${ESC}[K`);
    const drawn = r.stdout.split(`\r${ESC}[K`).map((s) => s.trim()).filter((s) => s !== '');
    expect(drawn.at(-1)).toMatch(/^batch 2 · [\d,]+ records\/s · 20 records · lag generated 0 · caught up$/);
  });

  it('the demo says it is seeding, on its first run only', async () => {
    const data = join(root, 'demo');
    const env = { CLICKSTREAM_DATA: data, CLICKSTREAM_SEED: '1000' };
    const first = await tidemark(['run', join(ROOT, 'examples/clickstream/job.ts'), '--once', '--log-level', 'warn'], { env });
    expect({ code: first.code, stderr: first.stderr }).toEqual({
      code: 0, stderr: `clickstream: first run: seeding 1,000 click events into ${join(data, 'log')} (a few seconds); the first batch follows\n`,
    });
    const second = await tidemark(['run', join(ROOT, 'examples/clickstream/job.ts'), '--once', '--log-level', 'warn'], { env });
    expect({ code: second.code, stderr: second.stderr }).toEqual({ code: 0, stderr: '' });
  });
});
