// `tidemark reset <dir> --to …`: the deliberate repair. Moves the committed positions,
// records the move in the checkpoint's history (meta.resets), and drops the batch in
// flight only when told to (--discard-in-flight). What it does is decided by
// recovery/reset.ts (decideReset, pure); this file parses, looks offsets up, asks, prints.
//
//   --to earliest | latest | timestamp:<ms|ISO date>   offsets from the job's source (--job)
//   --to offsets.json                                   explicit offsets, no job needed
//
// A file of offsets runs no job code unless --job is given on the command line (then its
// source checks partitions and ends): TIDEMARK_JOB, set for `run`, is not read for it.
// Partitions the checkpoint (or the job's source) does not know are refused unless
// --allow-new-partitions. With --job, an empty or new directory becomes the job's checkpoint
// at the positions given: the way on from a damaged checkpoint that cannot be reopened.
//
// It takes the checkpoint's lock, so it refuses while a daemon runs the checkpoint, and no
// daemon can start while it writes.
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import * as api from '../index';
import { BadConfigError, ExitCode } from '../../checkpoint/errors';
import { isWholeNumber, parsePartitionKey, partitionKey, type CheckpointMeta, type OffsetMap, type PartitionRef } from '../../checkpoint/model';
import { checkpointPlace } from '../../checkpoint/damage';
import { FORMAT_VERSION, openCheckpoint, requireCheckpoint } from '../../checkpoint/store';
import { describeRanges, firstMeta as newCheckpointMeta } from '../../recovery/decide';
import { checkReset, decideReset } from '../../recovery/reset';
import { bundleJob, loadJob } from '../bundle';
import type { Source } from '../contracts';
import { jobFingerprint, sinkNames } from '../engine';
import type { Job } from '../job';
import { parse, stringOption } from './args';

type Target =
  | { readonly kind: 'earliest' | 'latest' }
  | { readonly kind: 'timestamp'; readonly ms: number }
  | { readonly kind: 'file'; readonly path: string; readonly offsets: OffsetMap };

const isOffset = (v: unknown): v is number => isWholeNumber(v);

/** An offsets file: `{"topic/partition": offset, …}` (the shape `inspect --json` prints as positions) or `[{topic, partition, offset}, …]`. */
export function readOffsetsFile(path: string): OffsetMap {
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new BadConfigError(`--to ${path}: ${e.code ? `cannot read it (${e.code})` : `not JSON (${e.message})`}. ` +
      'Give earliest, latest, timestamp:<ms>, or a JSON file of offsets like {"clicks/0": 1200}.');
  }
  const offsets: Record<string, number> = {};
  if (Array.isArray(json)) {
    json.forEach((e: Partial<PartitionRef & { offset: number }>, i) => {
      if (typeof e !== 'object' || e === null || typeof e.topic !== 'string' || e.topic === '' || !isOffset(e.partition) || !isOffset(e.offset)) {
        throw new BadConfigError(`--to ${path}: entry ${i} must be {"topic": string, "partition": number, "offset": number}; got ${JSON.stringify(e)}.`);
      }
      offsets[partitionKey({ topic: e.topic, partition: e.partition })] = e.offset;
    });
  } else if (typeof json === 'object' && json !== null) {
    for (const [key, offset] of Object.entries(json)) {
      const p = parsePartitionKey(key);
      if (p.topic === '' || !isWholeNumber(p.partition) || key !== partitionKey(p)) {
        throw new BadConfigError(`--to ${path}: key ${JSON.stringify(key)} must be "<topic>/<partition>".`);
      }
      if (!isOffset(offset)) throw new BadConfigError(`--to ${path}: the offset of ${key} must be a whole number ≥ 0; got ${JSON.stringify(offset)}.`);
      offsets[key] = offset;
    }
  } else {
    throw new BadConfigError(`--to ${path} must hold a JSON object like {"clicks/0": 1200} or an array like [{"topic": "clicks", "partition": 0, "offset": 1200}].`);
  }
  if (Object.keys(offsets).length === 0) throw new BadConfigError(`--to ${path} names no partition.`);
  return offsets;
}

export function parseTarget(to: string): Target {
  if (to === 'earliest' || to === 'latest') return { kind: to };
  if (to.startsWith('timestamp:')) {
    const text = to.slice('timestamp:'.length);
    const ms = /^\d+$/.test(text) ? Number(text) : Date.parse(text);
    if (!isWholeNumber(ms)) throw new BadConfigError(`--to ${to}: give milliseconds since the epoch or an ISO date, like timestamp:1700000000000.`);
    return { kind: 'timestamp', ms };
  }
  return { kind: 'file', path: to, offsets: readOffsetsFile(to) };
}

const describeTarget = (t: Target): string => (t.kind === 'file' ? `file ${t.path}` : t.kind === 'timestamp' ? `timestamp:${t.ms}` : t.kind);

/** The first offset at or after `ms` per partition, by reading the partitions (for sources without `offsetsForTimestamp`). */
async function scanForTimestamp(source: Source, parts: readonly PartitionRef[], ms: number): Promise<OffsetMap> {
  const [earliest, latest] = await Promise.all([source.offsets(parts, 'earliest'), source.offsets(parts, 'latest')]);
  const found: Record<string, number> = {};
  for (const p of parts) {
    const key = partitionKey(p);
    const end = latest[key] ?? 0;
    found[key] = end;
    const controller = new AbortController();
    search: for await (const chunk of source.read([{ ...p, from: Math.min(earliest[key] ?? 0, end), until: end }], controller.signal)) {
      for (const r of chunk) {
        if (r.timestamp >= ms) {
          found[key] = r.offset;
          break search;
        }
      }
    }
    controller.abort();
  }
  return found;
}

async function offsetsFromSource(source: Source, target: Target): Promise<OffsetMap> {
  const parts = await source.partitions();
  if (target.kind === 'earliest' || target.kind === 'latest') return source.offsets(parts, target.kind);
  if (target.kind !== 'timestamp') throw new Error('unreachable');
  return source.offsetsForTimestamp ? source.offsetsForTimestamp(parts, target.ms) : scanForTimestamp(source, parts, target.ms);
}

async function confirm(question: string): Promise<boolean> {
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    const answer = await new Promise<string>((resolve) => rl.question(question, resolve));
    return /^y(es)?$/i.test(answer.trim());
  } finally {
    rl.close();
  }
}

export async function resetCommand(argv: string[], help: string): Promise<number> {
  const { values, positionals, help: wantsHelp } = parse(argv, {
    to: { type: 'string' }, job: { type: 'string' }, 'discard-in-flight': { type: 'boolean' }, 'allow-new-partitions': { type: 'boolean' },
    yes: { type: 'boolean', short: 'y' },
  }, 'tidemark reset');
  if (wantsHelp) {
    process.stdout.write(help);
    return 0;
  }
  const dir = positionals[0];
  if (!dir || positionals.length > 1) throw new BadConfigError('Which checkpoint? Usage: tidemark reset <dir> --to earliest|latest|timestamp:<ms>|<offsets.json> [--job job.ts] [--discard-in-flight] --yes.');
  const to = values.to as string | undefined;
  if (!to) throw new BadConfigError('Reset to what? Pass --to earliest, latest, timestamp:<ms> or an offsets file (see `tidemark reset --help`).');
  const target = parseTarget(to);
  // Offsets from a file need no job: TIDEMARK_JOB is ignored for them, and only --job runs job code.
  const jobFile = target.kind === 'file' ? (values.job as string | undefined) : stringOption(values, 'job')?.value;
  if (target.kind !== 'file' && !jobFile) {
    throw new BadConfigError(`--to ${to} looks offsets up in the job's source: add --job <job.ts> (or set TIDEMARK_JOB), or give the offsets in a file.`);
  }
  const discardInFlight = values['discard-in-flight'] === true;
  const yes = values.yes === true;
  const allowNewPartitions = values['allow-new-partitions'] === true;

  // Before the lock, which would create the directory: without a job there is nothing to start a checkpoint with.
  if (!jobFile) requireCheckpoint(dir);
  else checkpointPlace(dir);

  let job: Job<unknown> | undefined;
  let firstMeta: CheckpointMeta | undefined;
  if (jobFile) {
    const bundle = await bundleJob(jobFile);
    job = await loadJob(bundle, api);
    firstMeta = newCheckpointMeta({ name: job.name, sourceId: job.source.id, sinks: sinkNames(job) }, jobFingerprint(job, bundle.fingerprint), FORMAT_VERSION, Date.now(), randomUUID(), 'created by tidemark reset');
  }
  try {
    const store = await openCheckpoint(dir); // takes the lock: refuses while a daemon runs
    try {
      const view = await store.load();
      const check = {
        dir, view, format: FORMAT_VERSION, discardInFlight, ...(job ? { job: { name: job.name, sourceId: job.source.id } } : {}), ...(firstMeta ? { firstMeta } : {}),
      };
      checkReset(check); // refuse before looking offsets up
      const requested = target.kind === 'file' ? target.offsets : await offsetsFromSource(job!.source, target);
      // With the job, its source knows the partitions and their ends (offsets it looked up are within them).
      const parts = job ? await job.source.partitions() : [];
      const named = parts.filter((p) => partitionKey(p) in requested);
      const latest = target.kind === 'file' && named.length > 0 ? await job!.source.offsets(named, 'latest') : undefined;
      const decision = decideReset({
        ...check, requested, ...(latest ? { latest } : {}), ...(job ? { sourcePartitions: parts.map(partitionKey) } : {}), allowNewPartitions,
        to: describeTarget(target), now: Date.now(),
      });
      const { changes, discard } = decision;
      const width = Math.max(9, ...changes.map((c) => c.partition.length));
      const lines = [`checkpoint ${dir} (job ${decision.meta.job}): reset to ${describeTarget(target)}`, `  ${'partition'.padEnd(width)}  ${'before'.padStart(10)}  ${'after'.padStart(10)}`];
      for (const { partition, before: b, after: a } of changes) {
        const note = b === undefined ? 'new' : a < b ? `back ${b - a}: processed again` : a > b ? `ahead ${a - b}: skipped, never processed` : 'unchanged';
        lines.push(`  ${partition.padEnd(width)}  ${String(b ?? '-').padStart(10)}  ${String(a).padStart(10)}  (${note})`);
      }
      if (!job) lines.push('offsets not checked against the source (no --job): one past a partition\'s end stops the next run as if the source went backwards; add --job <job.ts> to check them.');
      for (const d of discard) {
        lines.push(`discarding batch ${d.id} (${d.state}, ranges ${describeRanges(d.ranges)}` +
          `${d.outputsOut ? `; counted outputs: ${Object.entries(d.outputsOut).map(([s, n]) => `${s} ${n}`).join(', ')}` : ''}): ` +
          `it is never committed, and id ${d.id} is not used again; a sink may already hold its outputs under batch id ${d.id}.`);
      }
      if (discard.length === 0 && discardInFlight) {
        lines.push('no batch is in flight: nothing to discard.');
      }
      process.stdout.write(`${lines.join('\n')}\n`);
      if (!decision.changed) {
        process.stdout.write('nothing to change.\n');
        return ExitCode.ok;
      }
      if (!yes) {
        if (!process.stdin.isTTY) throw new BadConfigError('reset changes the checkpoint: pass --yes to confirm (no terminal to ask on). Nothing was changed.');
        if (!(await confirm('Apply this reset? [y/N] '))) {
          process.stdout.write('not applied: nothing was changed.\n');
          return ExitCode.ok;
        }
      }
      await store.resetPositions(decision.after, decision.lastCommitted, discard, decision.meta);
      process.stdout.write(`done: positions reset${discard.length > 0 ? ` and batch ${discard.map((d) => d.id).join(', ')} discarded` : ''}; recorded in the checkpoint's history (tidemark inspect ${dir}).\n`);
      return ExitCode.ok;
    } finally {
      await store.close();
    }
  } finally {
    await job?.source.close();
  }
}
