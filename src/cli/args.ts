// Command-line parsing shared by the commands. Every flag of `run` also has an environment
// variable, TIDEMARK_<FLAG> (`--max-batches` → TIDEMARK_MAX_BATCHES); a flag wins over its
// variable. Values are checked here, so a wrong one names the flag or variable it came from.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { BadConfigError } from '../../checkpoint/errors';

export type Values = ReturnType<typeof parseArgs>['values'];

export function parse(argv: string[], options: ParseArgsConfig['options']): { values: Values; positionals: string[] } {
  try {
    return parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  } catch (err) {
    throw new BadConfigError(`${(err as Error).message}. See \`tidemark --help\`.`);
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
