// `tidemark log create|append|tail`: the embedded log from the command line.
import { BadConfigError } from '../../checkpoint/errors';
import { isWholeNumber } from '../../checkpoint/model';
import { EmbeddedLog, type AppendRecord } from '../sources/embedded-log';
import { parse, type Options } from './args';
import { plural } from './format';

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

function wholeNumber(v: unknown, what: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!isWholeNumber(n)) throw new BadConfigError(`${what} must be a whole number ≥ 0; got ${JSON.stringify(v)}.`);
  return n;
}

/** Each subcommand's flags, so that a flag of another one is named as unknown, with a suggestion. */
const OPTIONS = {
  create: { partitions: { type: 'string' }, topic: { type: 'string' } },
  append: { topic: { type: 'string' }, key: { type: 'string' }, partition: { type: 'string' } },
  tail: { partition: { type: 'string' }, from: { type: 'string' }, limit: { type: 'string' } },
} satisfies Record<string, Options>;

export type LogHelp = { readonly [sub in keyof typeof OPTIONS | 'log']: string };

export async function logCommand(argv: string[], help: LogHelp): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === '--help' || sub === '-h') {
    process.stdout.write(help.log);
    return 0;
  }
  if (sub === undefined || !Object.hasOwn(OPTIONS, sub)) {
    throw new BadConfigError(`${sub === undefined ? 'Which log command?' : `Unknown log command ${JSON.stringify(sub)}.`} Use create, append or tail. See \`tidemark log --help\`.`);
  }
  const name = sub as keyof typeof OPTIONS;
  const { values, positionals, help: wantsHelp } = parse(rest, OPTIONS[name], `tidemark log ${name}`);
  if (wantsHelp) {
    process.stdout.write(help[name]);
    return 0;
  }
  const dir = positionals[0];
  if (!dir) throw new BadConfigError(`Which log directory? Usage: tidemark log ${name} <dir> (tidemark log ${name} --help).`);
  const partition = wholeNumber(values.partition, '--partition');
  switch (name) {
    case 'create': {
      const partitions = wholeNumber(values.partitions, '--partitions');
      const log = await EmbeddedLog.open(dir, { ...(partitions ? { partitions } : {}), ...(values.topic ? { topic: values.topic as string } : {}) });
      process.stdout.write(`embedded log ${dir}: topic ${log.topic}, ${plural(log.partitions, 'partition')}\n`);
      return 0;
    }
    case 'append': {
      const log = await EmbeddedLog.open(dir, { ...(values.topic ? { topic: values.topic as string } : {}) });
      const texts = positionals.length > 1 ? positionals.slice(1) : (await readStdin()).split('\n').filter((l) => l !== '');
      const records: AppendRecord[] = texts.map((value) => ({ value, key: (values.key as string | undefined) ?? null, ...(partition !== undefined ? { partition } : {}) }));
      const placed = await log.append(records);
      process.stdout.write(`appended ${plural(placed.length, 'record')} to ${log.topic}\n`);
      return 0;
    }
    case 'tail': {
      const log = await EmbeddedLog.open(dir, { create: false });
      const limit = wholeNumber(values.limit, '--limit') ?? 10;
      const parts = partition !== undefined ? [partition] : Array.from({ length: log.partitions }, (_, p) => p);
      for (const p of parts) {
        const [start, end] = [await log.start(p), await log.end(p)];
        const from = wholeNumber(values.from, '--from') ?? Math.max(start, end - limit);
        if (from < start) {
          throw new BadConfigError(`--from ${from}: ${log.topic}/${p} starts at offset ${start} (earlier records were removed). Use --from ${start} or later.`);
        }
        if (from >= end) continue; // nothing there yet
        for await (const chunk of log.read(p, from, Math.min(end, from + limit))) {
          for (const r of chunk) process.stdout.write(`${r.topic}/${r.partition}@${r.offset}\t${r.key?.toString() ?? ''}\t${r.value?.toString() ?? ''}\n`);
        }
      }
      return 0;
    }
  }
}
