// The `tidemark` command line: run, inspect, log. Expected failures print one message
// and exit with their own code (checkpoint/errors.ts); `--log-level debug` adds the stack.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import * as api from '../index';
import { BadConfigError, ExitCode, isTidemarkError } from '../../checkpoint/errors';
import { bundleJob, loadJob } from '../bundle';
import { crashSeamFromEnv } from '../crash-seam';
import { Engine, type BatchStats } from '../engine';
import { createLogger, type LogLevel } from '../log';
import { inspectCommand } from './inspect';
import { logCommand } from './log-command';

const HELP = `tidemark — Kafka micro-batches with exactly-once effects

Usage:
  tidemark run <job.ts|job.js> [options]   run a job as a daemon (SIGTERM drains and exits 0)
  tidemark inspect <checkpoint-dir> [--json]
  tidemark log create <dir> [--partitions N] [--topic NAME]
  tidemark log append <dir> [--key K] [--partition P] [VALUE ...]   (no VALUE: one record per stdin line)
  tidemark log tail <dir> [--partition P] [--from OFFSET] [--limit N]

Options of run (environment variable in brackets):
  --checkpoint DIR        checkpoint directory [TIDEMARK_CHECKPOINT] (default: the job's checkpoint.dir)
  --once                  process what is available now, then stop [TIDEMARK_ONCE=1]
  --max-batches N         stop after N batches [TIDEMARK_MAX_BATCHES]
  --accept-code-change    continue a checkpoint whose batch in flight was written by other code [TIDEMARK_ACCEPT_CODE_CHANGE=1]
  --log-level LEVEL       debug|info|warn|error|silent [TIDEMARK_LOG_LEVEL] (default info)
  -h, --help              this text

Exit codes:
  0 ok · 1 unexpected · 2 bad configuration · 3 checkpoint locked · 4 incompatible checkpoint
  5 data loss (onDataLoss 'fail') · 6 source unreachable · 7 corrupt checkpoint · 8 transform failed
  9 sink failed · 10 lock lost · 11 source went backwards · 130 interrupted twice
`;

export function parse(argv: string[], options: ParseArgsConfig['options']): ReturnType<typeof parseArgs> {
  try {
    return parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  } catch (err) {
    throw new BadConfigError(`${(err as Error).message}. See \`tidemark --help\`.`);
  }
}

const env = process.env;
const flag = (v: unknown, name: string): boolean => v === true || env[name] === '1' || env[name] === 'true';

function positiveInt(v: string | undefined, what: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 1) throw new BadConfigError(`${what} must be a positive whole number; got ${JSON.stringify(v)}.`);
  return n;
}

async function runCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, {
    checkpoint: { type: 'string' }, once: { type: 'boolean' }, 'max-batches': { type: 'string' },
    'accept-code-change': { type: 'boolean' }, 'log-level': { type: 'string' }, help: { type: 'boolean', short: 'h' },
  });
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const jobFile = positionals[0];
  if (!jobFile) throw new BadConfigError('Which job? Usage: tidemark run <job.ts> [--checkpoint DIR].');
  const level = ((values['log-level'] as string | undefined) ?? env.TIDEMARK_LOG_LEVEL ?? 'info') as LogLevel;
  if (!['debug', 'info', 'warn', 'error', 'silent'].includes(level)) throw new BadConfigError(`--log-level must be debug, info, warn, error or silent; got ${level}.`);
  const logger = createLogger(level);

  const bundle = await bundleJob(jobFile);
  const job = loadJob(bundle, api);
  const checkpointDir = (values.checkpoint as string | undefined) ?? env.TIDEMARK_CHECKPOINT ?? job.checkpointDir;
  if (!checkpointDir) throw new BadConfigError('No checkpoint directory: pass --checkpoint DIR, set TIDEMARK_CHECKPOINT, or set checkpoint.dir in the job.');

  const started = Date.now();
  let totalRecords = 0;
  const progress = process.stderr.isTTY ? (s: BatchStats) => {
    totalRecords += s.records;
    const lag = Object.values(s.lag).reduce((a, b) => a + b, 0);
    const rate = Math.round(totalRecords / Math.max(0.001, (Date.now() - started) / 1000));
    process.stderr.write(`\r\x1b[Kbatch ${s.id} · ${totalRecords} records · ${rate} records/s · lag ${lag}`);
  } : undefined;

  const engine = new Engine(job, {
    checkpointDir, fingerprint: bundle.fingerprint, logger,
    acceptCodeChange: flag(values['accept-code-change'], 'TIDEMARK_ACCEPT_CODE_CHANGE'),
    crashPoint: crashSeamFromEnv(), ...(progress ? { onBatch: progress } : {}),
  });
  logger.info({ job: job.name, fingerprint: engine.fingerprint, packages: bundle.packages, checkpoint: checkpointDir }, `starting job ${job.name}`);
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (++signals > 1) process.exit(ExitCode.interrupted); // safe: the checkpoint survives any kill
    logger.info({ signal }, `${signal}: finishing the batch in flight, then stopping (again to exit at once)`);
    engine.stop();
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  const maxBatches = positiveInt((values['max-batches'] as string | undefined) ?? env.TIDEMARK_MAX_BATCHES, '--max-batches');
  const summary = await engine.run({ once: flag(values.once, 'TIDEMARK_ONCE'), ...(maxBatches ? { maxBatches } : {}) });
  if (progress) process.stderr.write('\n');
  logger.info({ ...summary }, `stopped after ${summary.batches} batches, ${summary.records} records`);
  return 0;
}

export async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  const debug = argv.includes('debug') || env.TIDEMARK_LOG_LEVEL === 'debug';
  try {
    let code: number;
    switch (command) {
      case 'run': code = await runCommand(rest); break;
      case 'inspect': code = await inspectCommand(rest); break;
      case 'log': code = await logCommand(rest); break;
      case undefined: case '-h': case '--help': case 'help':
        process.stdout.write(HELP);
        code = command === undefined ? ExitCode.badConfig : 0;
        break;
      default: throw new BadConfigError(`Unknown command ${JSON.stringify(command)}. See \`tidemark --help\`.`);
    }
    process.exitCode = code;
  } catch (err) {
    if (isTidemarkError(err)) {
      process.stderr.write(`tidemark: ${err.message}\n`);
      if (debug) process.stderr.write(`${err.stack}\n`);
      process.exitCode = err.exitCode;
    } else {
      process.stderr.write(`tidemark: unexpected error: ${(err as Error).message ?? String(err)}\n`);
      process.stderr.write(debug ? `${(err as Error).stack}\n` : '(run with --log-level debug for the stack trace)\n');
      process.exitCode = ExitCode.unexpected;
    }
  }
}
