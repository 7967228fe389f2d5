// What a rolling file sink's directory holds, for tests: the lines of its finished part
// files (gunzipped, in name order) and then those of its in-progress frames. The frame
// layout is src/sinks/rolling-file.ts's: a 40-byte header with the body length as a
// double at byte 16.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';

/** Finished part files, in name order (the reader's rule: only `part-*`). */
export function finishedParts(dir: string): string[] {
  return existsSync(dir) ? readdirSync(dir).filter((f) => f.startsWith('part-')).sort() : [];
}

/** The bodies of an in-progress file's frames. */
export function frameBodies(path: string): string[] {
  if (!existsSync(path)) return [];
  const bytes = readFileSync(path);
  const out: string[] = [];
  for (let at = 0; at + 40 <= bytes.length;) {
    const length = bytes.readDoubleBE(at + 16);
    out.push(bytes.subarray(at + 40, at + 40 + length).toString());
    at += 40 + length;
  }
  return out;
}

/** Every line the sink holds: finished parts, then what is in progress. */
export function rollingLines(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const finished = finishedParts(dir).map((f) => {
    const raw = readFileSync(join(dir, f));
    return (f.endsWith('.gz') ? gunzipSync(raw) : raw).toString();
  });
  const inProgress = readdirSync(dir).filter((f) => f.startsWith('.inprogress-')).sort().flatMap((f) => frameBodies(join(dir, f)));
  return [...finished, ...inProgress].join('').split('\n').filter((l) => l !== '');
}
