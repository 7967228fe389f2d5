// `tidemark inspect <dir>`: what a checkpoint holds, for people and (--json) for scripts.
// The report is built by checkpoint/inspect.ts (read-only, on a copy of the files, beside
// a running daemon); this file parses the flags and formats it. A damaged checkpoint exits 7.
import { join } from 'node:path';
import { BadConfigError, CorruptCheckpointError, ExitCode } from '../../checkpoint/errors';
import { inspectCheckpoint, type InspectReport } from '../../checkpoint/inspect';
import { describeOwner } from '../../checkpoint/lock';
import { RETAIN_HISTORY } from '../../checkpoint/model';
import { FORMAT_VERSION } from '../../checkpoint/store';
import { describeRanges } from '../../recovery/decide';
import { parse, wholeNumberOption } from './args';
import { formatBytes, formatMs, plural } from './format';

const iso = (ms: number | null | undefined): string => (ms === null || ms === undefined ? '?' : new Date(ms).toISOString());

function formatDurations(d: Readonly<Record<string, number>> | undefined): string {
  if (!d) return '';
  const total = Object.values(d).reduce((a, b) => a + b, 0);
  return `${formatMs(total)} (${Object.entries(d).map(([p, ms]) => `${p} ${formatMs(ms)}`).join(', ')})`;
}

function formatCounts(c: Readonly<Record<string, number>> | undefined | null): string {
  return c ? Object.entries(c).map(([k, n]) => `${k} ${n.toLocaleString('en-US')}`).join(', ') : '-';
}

/** Says that older history existed, so that a short list is not read as the whole story. */
const pruned = (n: number): string => (n > 0 ? `(${n} older pruned; only the newest ${RETAIN_HISTORY} are kept)` : '');

export function formatReport(r: InspectReport): string {
  const out: string[] = [];
  out.push(`checkpoint ${r.checkpoint}${r.ok ? '' : ' — DAMAGED'}`);
  if (!r.ok) {
    out.push('damaged:');
    for (const d of r.damaged) out.push(`  ${d.part}: ${d.detail}`);
    if (r.files) {
      out.push(`LevelDB files in ${join(r.checkpoint, 'db')}:`);
      for (const f of r.files) out.push(`  ${f.name.padEnd(20)} ${formatBytes(f.bytes)}`);
    }
    out.push('Nothing was changed, and tidemark never starts such a checkpoint from scratch silently.');
    out.push(CorruptCheckpointError.wayOn(r.checkpoint));
    if (r.job === null && r.positions === null) return `${out.join('\n')}\n`;
    out.push('');
    out.push('what could still be read:');
  }
  if (r.empty) {
    out.push('empty: no batch has run yet');
    out.push(`size on disk ${formatBytes(r.sizeOnDisk)}`);
    return `${out.join('\n')}\n`;
  }
  const format = r.format === null ? '?' : `${r.format}${r.formatSupported ? '' : ` (newer than this build, which reads format ${FORMAT_VERSION} and older)`}`;
  out.push(`  job      ${r.job ?? '?'} (format ${format}, created ${iso(r.createdAt)})`);
  out.push(`  source   ${r.source ?? '?'}`);
  out.push(`  sinks    ${r.sinks?.join(', ') ?? '?'}`);
  out.push(`  daemon   ${r.lock.held ? `running (${describeOwner(r.lock.owner ?? undefined)})`
    : r.lock.stale ? `not running (its last owner, ${describeOwner(r.lock.owner ?? undefined)}, is gone: the next run takes the lock over)`
      : 'not running (the lock is free)'}`);
  out.push(`  size     ${formatBytes(r.sizeOnDisk)} on disk`);
  out.push(`fingerprint ${r.fingerprint ?? '?'}`);
  for (const f of r.fingerprints) out.push(`  ${iso(f.since)}  ${f.fingerprint}  ${f.note}`);
  out.push(`positions (last committed batch ${r.lastCommitted ?? '?'}):`);
  const positions = Object.entries(r.positions ?? {});
  if (positions.length === 0) out.push('  none yet');
  for (const [p, o] of positions) out.push(`  ${p.padEnd(24)} ${o}`);
  if (!r.inFlight) out.push('in flight: nothing');
  for (const b of r.inFlight ? [r.inFlight, ...r.alsoInFlight] : []) {
    out.push(`in flight: batch ${b.id}, ${b.state} (planned ${iso(b.plannedAt)}${b.stagedAt ? `, staged ${iso(b.stagedAt)}` : ''}), fingerprint ${b.fingerprint}`);
    out.push(`  ranges   ${describeRanges(b.ranges)}`);
    if (b.state === 'staged') {
      out.push(`  records  ${b.recordsIn ?? '?'} read`);
      out.push(b.staged
        ? `  staged   ${formatCounts(b.staged)} (${formatBytes(b.stagedBytes ?? 0)}): redelivered as staged on restart`
        : `  staged   no outputs stored (stageOutputs: false; counted ${formatCounts(b.outputsOut)}): recomputed from its ranges on restart`);
    } else {
      out.push('  staged   nothing yet: re-run with exactly these ranges on restart');
    }
  }
  if (r.ownership) {
    const owned = Object.entries(r.ownership.partitions);
    out.push(`group ${r.ownership.group}: generation ${r.ownership.generation} (member ${r.ownership.memberId}, ${iso(r.ownership.at)}), owned ${owned.length === 0 ? 'nothing' : ''}`);
    for (const [p, epoch] of owned) out.push(`  ${p.padEnd(24)} epoch ${epoch}`);
  }
  out.push(`lost ranges: ${r.lost.length === 0 ? 'none' : ''}${pruned(r.lostPruned)}`);
  for (const l of r.lost) out.push(`  ${describeRanges([l])} in batch ${l.batchId}, ${iso(l.at)}`);
  out.push(`resets: ${r.resets.length === 0 ? 'none' : ''}${pruned(r.resetsPruned)}`);
  for (const x of r.resets) {
    const changed = Object.keys({ ...x.before, ...x.after }).filter((k) => x.before[k] !== x.after[k]);
    out.push(`  ${iso(x.at)}  to ${x.to ?? '?'}: ${changed.length === 0 ? 'no position changed' : changed.map((k) => `${k} ${x.before[k] ?? '-'} → ${x.after[k]}`).join(', ')}${x.discarded ? `; discarded batch ${x.discarded}` : ''}`);
  }
  out.push(`last ${plural(r.recentBatches.length, 'committed batch', 'committed batches')}:`);
  for (const c of r.recentBatches) {
    if (c.discarded) {
      out.push(`  ${String(c.id).padStart(6)}  ${iso(c.committedAt)}  discarded by ${c.discardedBy === 'handoff' ? 'a handoff (group mode: the partition had moved)' : 'reset'}  ${describeRanges(c.ranges)}`);
      continue;
    }
    out.push(`  ${String(c.id).padStart(6)}  ${iso(c.committedAt)}  ${plural(c.recordsIn ?? 0, 'record')} → ${formatCounts(c.outputsOut)}  ${formatDurations(c.durations)}  ${describeRanges(c.ranges)}`);
  }
  return `${out.join('\n')}\n`;
}

export async function inspectCommand(argv: string[], help: string): Promise<number> {
  const { values, positionals, help: wantsHelp } = parse(argv, { json: { type: 'boolean' }, last: { type: 'string' } }, 'tidemark inspect');
  if (wantsHelp) {
    process.stdout.write(help);
    return 0;
  }
  const dir = positionals[0];
  if (!dir || positionals.length > 1) throw new BadConfigError('Which checkpoint? Usage: tidemark inspect <dir> [--json] [--last N].');
  const last = wholeNumberOption(values, 'last', 1, {}) ?? 10;
  const report = await inspectCheckpoint(dir, last);
  process.stdout.write(values.json ? `${JSON.stringify(report, null, 2)}\n` : formatReport(report));
  return report.ok ? ExitCode.ok : ExitCode.corruptCheckpoint;
}
