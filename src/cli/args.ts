// Command-line parsing shared by the commands. Every flag of `run` also has an environment
// variable, TIDEMARK_<FLAG> (`--max-batches` → TIDEMARK_MAX_BATCHES); a flag wins over its
// variable. Values are checked here, so a wrong one names the flag or variable it came from.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { BadConfigError } from '../../checkpoint/errors';

export type Values = ReturnType<typeof parseArgs>['values'];
export type Options = NonNullable<ParseArgsConfig['options']>;

/** Optimal string alignment distance: insertions, deletions, substitutions and swaps of neighbours. */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
    }
  }
  return d[a.length]![b.length]!;
}

/** The known flags nearest to a mistyped one: within edit distance 2, else those it is a prefix of. */
export function nearestOptions(typed: string, known: readonly string[]): string[] {
  const scored = known.map((k) => ({ k, d: editDistance(typed, k) })).filter((x) => x.d <= 2);
  if (scored.length > 0) {
    const best = Math.min(...scored.map((x) => x.d));
    return scored.filter((x) => x.d === best).map((x) => x.k);
  }
  return typed.length >= 2 ? known.filter((k) => k.startsWith(typed)) : [];
}

/**
 * Parses a command's flags (every command takes --help/-h). An unknown flag is one line
 * naming the command and the nearest known flag; node's own message has unbalanced quotes.
 */
export function parse(argv: string[], options: Options, command: string): { values: Values; positionals: string[]; help: boolean } {
  const all: Options = { ...options, help: { type: 'boolean', short: 'h' } };
  const listed = `(${command} --help lists them)`;
  try {
    const { values, positionals } = parseArgs({ args: argv, options: all, allowPositionals: true, strict: true });
    return { values, positionals, help: values.help === true };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
      const { tokens } = parseArgs({ args: argv, options: all, allowPositionals: true, strict: false, tokens: true });
      const unknown = tokens.find((t) => t.kind === 'option' && !(t.name in all));
      const raw = unknown?.kind === 'option' ? unknown.rawName : '?';
      const near = raw.startsWith('--') ? nearestOptions(raw.slice(2), Object.keys(all)) : [];
      throw new BadConfigError(near.length > 0
        ? `Unknown option '${raw}' for ${command}: did you mean ${near.map((k) => `--${k}`).join(' or ')}? ${listed}`
        : `Unknown option '${raw}' for ${command} ${listed}.`);
    }
    throw new BadConfigError(`${(err as Error).message} for ${command}. See \`${command} --help\`.`);
  }
}

export const envName = (flag: string): string => `TIDEMARK_${flag.toUpperCase().replace(/-/g, '_')}`;

/** A string option: the flag, else its environment variable (empty counts as unset). */
export function stringOption(values: Values, flag: string, env: NodeJS.ProcessEnv = process.env): { value: string; from: string } | undefined {
  const v = values[flag];
  if (typeof v === 'string') return { value: v, from: `--${flag}` };
  const e = env[envName(flag)];
  return e === undefined || e === '' ? undefined : { value: e, from: envName(flag) };
}

/** A boolean option: the flag, else its environment variable (1/true/yes or 0/false/no). */
export function booleanOption(values: Values, flag: string, env: NodeJS.ProcessEnv = process.env): boolean {
  if (values[flag] === true) return true;
  const name = envName(flag);
  const e = env[name];
  if (e === undefined || e === '') return false;
  const v = e.toLowerCase();
  if (['1', 'true', 'yes'].includes(v)) return true;
  if (['0', 'false', 'no'].includes(v)) return false;
  throw new BadConfigError(`${name} must be 1, true, yes, 0, false or no; got ${JSON.stringify(e)}.`);
}

export function wholeNumberOption(values: Values, flag: string, min: number, env: NodeJS.ProcessEnv = process.env): number | undefined {
  const o = stringOption(values, flag, env);
  if (o === undefined) return undefined;
  const n = Number(o.value);
  if (o.value.trim() === '' || !Number.isSafeInteger(n) || n < min) {
    throw new BadConfigError(`${o.from} must be a whole number ≥ ${min}; got ${JSON.stringify(o.value)}.`);
  }
  return n;
}

export function choiceOption<V extends string>(values: Values, flag: string, allowed: readonly V[], fallback: V, env: NodeJS.ProcessEnv = process.env): V {
  const o = stringOption(values, flag, env);
  if (o === undefined) return fallback;
  if (!allowed.includes(o.value as V)) throw new BadConfigError(`${o.from} must be one of ${allowed.join(', ')}; got ${JSON.stringify(o.value)}.`);
  return o.value as V;
}

/** Whether the command line (or TIDEMARK_LOG_LEVEL) asks for debug output: then errors show their stack. */
export function wantsDebug(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): boolean {
  const i = argv.indexOf('--log-level');
  return (i >= 0 && argv[i + 1] === 'debug') || argv.includes('--log-level=debug') || env.TIDEMARK_LOG_LEVEL === 'debug';
}
