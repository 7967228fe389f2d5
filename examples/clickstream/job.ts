// The main example: click events on the embedded log (no broker needed), counted per
// page per batch into one file per batch. Kill it with `kill -9` at any moment and
// start it again: every batch file appears exactly once, with the same counts.
//
//   npm start                                 (seeds 1,000,000 clicks on first run)
//   node bin/tidemark.js log append data/clickstream/log '{"user":"u1","page":"/home"}'
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { defineJob, embeddedLogSource, fileSink, type AppendRecord } from 'tidemark';

const data = process.env.CLICKSTREAM_DATA ?? join(__dirname, '..', '..', 'data', 'clickstream');
const PAGES = ['/home', '/search', '/product', '/cart', '/checkout', '/help', '/about', '/blog'];
const SEED = Number(process.env.CLICKSTREAM_SEED ?? 1_000_000);

/** Synthetic clicks: deterministic, so every run of the demo counts the same. */
function clicks(): AppendRecord[] {
  const records: AppendRecord[] = [];
  for (let i = 0; i < SEED; i++) {
    const user = `u${(i * 7919) % 5000}`;
    const page = PAGES[(i * 31 + (i >> 3)) % PAGES.length]!;
    records.push({ key: user, value: JSON.stringify({ user, page }), timestamp: 1_700_000_000_000 + i });
  }
  return records;
}

// Said when the job is loaded, before the progress line starts: seeding takes a few seconds,
// during which no batch runs.
if (!existsSync(join(data, 'log', 'log.json'))) {
  process.stderr.write(`clickstream: first run: seeding ${SEED.toLocaleString('en-US')} click events into ${join(data, 'log')} (a few seconds); the first batch follows\n`);
}

export interface PageCount {
  readonly page: string;
  readonly clicks: number;
}

export default defineJob<PageCount>({
  name: 'clickstream',
  source: embeddedLogSource({ dir: join(data, 'log'), topic: 'clicks', partitions: 4, seedIfEmpty: clicks }),
  sinks: [fileSink({ dir: join(data, 'out'), name: 'page-counts' })],
  transform(records) {
    const counts = new Map<string, number>();
    for (const r of records) {
      const { page } = JSON.parse(r.value!.toString()) as { page: string };
      counts.set(page, (counts.get(page) ?? 0) + 1);
    }
    return [...counts].sort(([a], [b]) => a.localeCompare(b)).map(([page, n]) => ({ page, clicks: n }));
  },
  batch: { maxRecordsPerPartition: 10_000 },
  checkpoint: { dir: join(data, 'checkpoint') },
});
