// `tidemark run <job>`: the daemon. Bundles the job (its fingerprint is the bundle's
// hash), runs the very bundle it hashed, logs (JSON lines, readable ones on a terminal), serves metrics, shows progress
// on a terminal, and stops cleanly on SIGTERM/SIGINT after the batch in flight.
import { readFileSync } from 'node:fs';
import { Writable } from 'node:stream';
import * as api from '../index';
import { BadConfigError, ExitCode } from '../../checkpoint/errors';
import type { Range } from '../../checkpoint/model';
import { bundleJob, loadJob } from '../bundle';
import { crashSeamFromEnv } from '../crash-seam';
import { Engine, type BatchStats } from '../engine';
import { GroupEngine } from '../group/engine';
import { createLogger, type LogLevel } from '../log';
import { Metrics } from '../metrics';
import { booleanOption, choiceOption, parse, stringOption, wholeNumberOption, type Values } from './args';
import { plural } from './format';
import { prettyStream } from './pretty-log';
import { Progress } from './progress';

export const RUN_OPTIONS = {
  checkpoint: { type: 'string' }, once: { type: 'boolean' }, ranges: { type: 'string' }, 'max-batches': { type: 'string' },
  'metrics-port': { type: 'string' }, 'metrics-host': { type: 'string' }, 'accept-code-change': { type: 'boolean' },
  'log-level': { type: 'string' }, 'log-format': { type: 'string' }, progress: { type: 'string' },
  'instance-id': { type: 'string' },
} as const;

const LEVELS: readonly LogLevel[] = ['debug', 'info', 'warn', 'error', 'silent'];

/** Reads a `--ranges` file: a JSON array of `{topic, partition, from, until}` (the engine checks each range). */
export function readRangesFile(file: string, from: string): Range[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new BadConfigError(`${from} ${file}: cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}).`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new BadConfigError(`${from} ${file} is not JSON: ${(err as Error).message}.`);
  }
  if (!Array.isArray(json) || json.length === 0) {
    throw new BadConfigError(`${from} ${file} must hold a non-empty JSON array of ranges, like [{"topic":"clicks","partition":0,"from":0,"until":1000}].`);
  }
  return json as Range[];
}

interface RunSettings {
  readonly jobFile: string;
  readonly checkpoint: string | undefined;
  readonly once: boolean;
  readonly ranges: Range[] | undefined;
  readonly maxBatches: number | undefined;
  readonly metricsPort: number | undefined;
  readonly metricsHost: string;
  readonly instanceId: string | undefined;
  readonly acceptCodeChange: boolean;
  readonly logLevel: LogLevel;
  readonly logFormat: 'auto' | 'json' | 'pretty';
  readonly progress: 'auto' | 'always' | 'never';
}

/** Every setting from flags and TIDEMARK_* variables, checked before anything runs. */
function settings(values: Values, positionals: string[]): RunSettings {
  if (positionals.length > 1) throw new BadConfigError(`run takes one job file; got ${positionals.length}: ${positionals.join(' ')}.`);
  const jobFile = positionals[0] ?? (process.env.TIDEMARK_JOB || undefined);
  if (!jobFile) throw new BadConfigError('Which job? Usage: tidemark run <job.ts> [--checkpoint DIR] (or set TIDEMARK_JOB). See `tidemark run --help`.');
  const rangesOption = stringOption(values, 'ranges');
  return {
    jobFile,
    checkpoint: stringOption(values, 'checkpoint')?.value,
    once: booleanOption(values, 'once'),
    ranges: rangesOption ? readRangesFile(rangesOption.value, rangesOption.from) : undefined,
    maxBatches: wholeNumberOption(values, 'max-batches', 1),
    metricsPort: (() => {
      const port = wholeNumberOption(values, 'metrics-port', 0);
      if (port !== undefined && port > 65535) throw new BadConfigError(`--metrics-port must be a port number (0 to 65535, 0 for any free port); got ${port}.`);
      return port;
    })(),
    metricsHost: stringOption(values, 'metrics-host')?.value ?? '0.0.0.0',
    instanceId: stringOption(values, 'instance-id')?.value,
    acceptCodeChange: booleanOption(values, 'accept-code-change'),
    logLevel: choiceOption(values, 'log-level', LEVELS, 'info'),
    logFormat: choiceOption(values, 'log-format', ['auto', 'json', 'pretty'] as const, 'auto'),
    progress: choiceOption(values, 'progress', ['auto', 'always', 'never'] as const, 'auto'),
  };
}

export async function runCommand(argv: string[], help: string): Promise<number> {
  const { values, positionals, help: wantsHelp } = parse(argv, RUN_OPTIONS, 'tidemark run');
  if (wantsHelp) {
    process.stdout.write(help);
    return 0;
  }
  const s = settings(values, positionals);

  const showProgress = s.progress === 'always' || (s.progress === 'auto' && process.stderr.isTTY === true);
  let progress: Progress | undefined;
  // With the display on, log lines for the same terminal clear it first and redraw it after.
  const destination = showProgress && process.stdout.isTTY
    ? new Writable({
      write(chunk: Buffer, _encoding, callback) {
        if (progress) progress.around(() => process.stdout.write(chunk));
        else process.stdout.write(chunk);
        callback();
      },
    })
    : process.stdout;
  const pretty = s.logFormat === 'pretty' || (s.logFormat === 'auto' && process.stdout.isTTY === true);
  const color = process.stdout.isTTY === true && !process.env.NO_COLOR;
  const logger = createLogger(s.logLevel, pretty ? prettyStream(destination, color) : destination);

  const bundle = await bundleJob(s.jobFile);
  const job = await loadJob(bundle, api);
  const checkpointDir = s.checkpoint ?? job.checkpointDir;
  if (!checkpointDir) throw new BadConfigError('No checkpoint directory: pass --checkpoint DIR, set TIDEMARK_CHECKPOINT, or set checkpoint.dir in the job.');

  let metrics: Metrics | undefined;
  const onBatch = (stats: BatchStats): void => {
    metrics?.observe(stats);
    progress?.onBatch(stats);
  };
  const engineOptions = {
    checkpointDir, fingerprint: bundle.fingerprint, logger, acceptCodeChange: s.acceptCodeChange,
    crashPoint: crashSeamFromEnv(), onBatch, ...(s.instanceId !== undefined ? { instanceId: s.instanceId } : {}),
  };
  const engine = job.scaleOut === 'group' ? new GroupEngine(job, engineOptions) : new Engine(job, engineOptions);
  logger.info({
    job: job.name, fingerprint: engine.fingerprint, codeHash: bundle.fingerprint, packages: bundle.packages, checkpoint: checkpointDir,
  }, `starting job ${job.name} (fingerprint ${engine.fingerprint})`);

  if (s.metricsPort !== undefined) {
    metrics = new Metrics({
      engine, checkpointDir, job: job.name,
      onError: (err, what) => logger.warn({ err: (err as Error).message }, `metrics server: ${what} failed; processing goes on`),
    });
    let port: number;
    try {
      port = await metrics.listen(s.metricsPort, s.metricsHost);
    } catch (err) {
      throw new BadConfigError(`Cannot serve metrics on ${s.metricsHost}:${s.metricsPort}: ${(err as Error).message}. Choose another --metrics-port.`);
    }
    logger.info({ metricsPort: port, metricsHost: s.metricsHost }, `metrics on http://${s.metricsHost}:${port}/metrics (also /healthz, /readyz; the status page on /)`);
  }
  if (showProgress) {
    progress = new Progress(() => engine.status());
    progress.start();
  }

  let signals = 0;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (++signals > 1) {
      progress?.clear();
      process.stderr.write(`tidemark: second ${signal}: exiting now (safe: the checkpoint survives any kill; the batch in flight is recovered on restart)\n`);
      process.exit(ExitCode.interrupted);
    }
    logger.info({ signal }, `${signal}: finishing the batch in flight, then stopping (again to exit at once)`);
    engine.stop();
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  try {
    const summary = await engine.run({
      once: s.once, ...(s.ranges ? { ranges: s.ranges } : {}), ...(s.maxBatches !== undefined ? { maxBatches: s.maxBatches } : {}),
    });
    progress?.stop();
    logger.info({ ...summary }, `stopped after ${plural(summary.batches, 'batch')}, ${plural(summary.records, 'record')}`);
    return ExitCode.ok;
  } catch (err) {
    metrics?.failed();
    progress?.stop();
    throw err;
  } finally {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
    await metrics?.close();
  }
}
