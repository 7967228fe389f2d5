// Readable log lines for a person at a terminal (`--log-format pretty`, the default when
// stdout is a terminal): pino's JSON lines turned into
//
//   14:03:27.512 INFO  committed batch 42 (1,200 records)   batch=42 records=1200
//
// time, level, message, then the other fields as key=value (objects as JSON, cut at 80
// characters; `pid`, `time` and `level` left out). JSON stays the default off a terminal,
// for log collectors; a line that is not JSON passes through unchanged.
import { Writable } from 'node:stream';

const LEVELS: Record<number, { name: string; color: string }> = {
  10: { name: 'TRACE', color: '90' }, 20: { name: 'DEBUG', color: '90' }, 30: { name: 'INFO ', color: '32' },
  40: { name: 'WARN ', color: '33' }, 50: { name: 'ERROR', color: '31' }, 60: { name: 'FATAL', color: '31' },
};
const LEFT_OUT = new Set(['level', 'time', 'pid', 'msg', 'hostname']);
const MAX_VALUE = 80;

function value(v: unknown): string {
  const text = typeof v === 'string' ? (/[\s"=]/.test(v) || v === '' ? JSON.stringify(v) : v) : JSON.stringify(v) ?? String(v);
  return text.length > MAX_VALUE ? `${text.slice(0, MAX_VALUE - 1)}…` : text;
}

/** One JSON log line as a person reads it; `color` adds ANSI colours to the level and the fields. */
export function prettyLine(line: string, color: boolean): string {
  let entry: Record<string, unknown>;
  try {
    entry = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line;
  }
  if (typeof entry !== 'object' || entry === null) return line;
  const paint = (code: string, s: string): string => (color ? `\x1b[${code}m${s}\x1b[0m` : s);
  const time = typeof entry.time === 'string' ? entry.time.slice(11, 23) : new Date(Number(entry.time ?? Date.now())).toISOString().slice(11, 23);
  const level = LEVELS[Number(entry.level)] ?? { name: String(entry.level).padEnd(5), color: '0' };
  const fields = Object.entries(entry).filter(([k]) => !LEFT_OUT.has(k)).map(([k, v]) => `${k}=${value(v)}`);
  const msg = typeof entry.msg === 'string' ? entry.msg : '';
  return `${paint('90', time)} ${paint(level.color, level.name)} ${msg}${fields.length > 0 ? `  ${paint('90', fields.join(' '))}` : ''}`;
}

/** A stream for pino that writes each JSON line to `out` as prettyLine() makes it. */
export function prettyStream(out: NodeJS.WritableStream, color: boolean): Writable {
  let pending = '';
  return new Writable({
    write(chunk: Buffer | string, _encoding, callback) {
      const lines = (pending + chunk.toString()).split('\n');
      pending = lines.pop() ?? '';
      if (lines.length > 0) out.write(`${lines.map((l) => prettyLine(l, color)).join('\n')}\n`);
      callback();
    },
  });
}
