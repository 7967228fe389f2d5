// The `tidemark` command line: run, inspect, reset, log. Expected failures print one
// message and exit with their own code (checkpoint/errors.ts); `--log-level debug` (or
// TIDEMARK_LOG_LEVEL=debug) adds the stack trace.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { BadConfigError, ExitCode, exitCodeRows, isTidemarkError } from '../../checkpoint/errors';
import { wantsDebug } from './args';
import { inspectCommand } from './inspect';
import { logCommand, type LogHelp } from './log-command';
import { resetCommand } from './reset';
import { runCommand } from './run';

const RUN_HELP = `tidemark run <job.ts|job.js> [options]
  Runs a job as a daemon: plan → read → transform → stage → deliver → commit, batch after
  batch. The job file is bundled with esbuild; the bundle's sha256 is the job's fingerprint
  (docs/fingerprint.md), and the very bundle that was hashed is what runs.

  --checkpoint DIR        the checkpoint directory (default: the job's checkpoint.dir)   [TIDEMARK_CHECKPOINT]
  --once                  process what is available now, then stop (like Spark's available-now trigger)   [TIDEMARK_ONCE]
  --ranges FILE           process exactly these offset ranges, then stop (like Spark's createRDD); FILE is
                          a JSON array of {"topic","partition","from","until"}, one range per partition
                          (use a fresh checkpoint directory for a one-off job)                [TIDEMARK_RANGES]
  --max-batches N         stop after N batches                                            [TIDEMARK_MAX_BATCHES]
  --metrics-port P        serve Prometheus /metrics, /healthz, /readyz and the status page / on port P
                          (0: any free port; the port is logged)                          [TIDEMARK_METRICS_PORT]
  --metrics-host H        the address to serve them on (default 0.0.0.0)                  [TIDEMARK_METRICS_HOST]
  --instance-id ID        group mode: this daemon's group.instance.id (static membership), unique per
                          daemon and kept across its restarts: a restart in place keeps its partitions  [TIDEMARK_INSTANCE_ID]
  --accept-code-change    continue a batch in flight that other code wrote: staged outputs are delivered
                          as staged, planned ranges are recomputed by this code           [TIDEMARK_ACCEPT_CODE_CHANGE]
  --log-level LEVEL       debug|info|warn|error|silent (default info); log lines on stdout   [TIDEMARK_LOG_LEVEL]
  --log-format FORMAT     auto|json|pretty: JSON lines (pino), or lines for people (time, level, message,
                          key=value); auto: pretty on a terminal, JSON elsewhere         [TIDEMARK_LOG_FORMAT]
  --progress MODE         auto|always|never: the one-line progress display on stderr (auto: when stderr is
                          a terminal; always: off a terminal too, as plain lines)         [TIDEMARK_PROGRESS]
  The job file may also come from TIDEMARK_JOB. Boolean variables take 1/true/yes or 0/false/no.

  SIGTERM or SIGINT finishes the batch in flight, commits it and exits 0; a second signal
  exits at once with 130 (safe: the checkpoint survives any kill; the batch is recovered on restart).
`;

const INSPECT_HELP = `tidemark inspect <checkpoint-dir> [--json] [--last N]
  Shows the format, job, source and sinks, the fingerprint and its history, whether a daemon
  runs it, positions per partition, the batch in flight (state, ranges, staged output counts),
  the last N committed batches (default 10: ranges, counts, durations, times), lost ranges,
  resets, and the size on disk. Read-only: never takes the lock, so it works beside a running
  daemon. On a damaged checkpoint it says what is damaged and exits 7.
`;

const RESET_HELP = `tidemark reset <checkpoint-dir> --to TARGET [--job job.ts] [--allow-new-partitions] [--discard-in-flight] --yes
  The deliberate repair: moves the committed positions and records the move in the
  checkpoint's history. Refuses while a daemon holds the checkpoint (exit 3).
  TARGET:
    earliest | latest       the source's first or next offsets, for every partition (needs --job)
    timestamp:<ms|ISO date> per partition, the first offset whose record timestamp is ≥ it (needs --job)
    offsets.json            {"topic/partition": offset, ...} or [{"topic","partition","offset"}, ...];
                            partitions not named keep their positions (no job needed)
  --job FILE              the job whose source resolves earliest/latest/timestamp   [TIDEMARK_JOB]
                          (with an offsets file: only --job, never TIDEMARK_JOB; offsets beyond its
                          source's end are refused; an empty or new directory becomes its checkpoint)
  --allow-new-partitions  accept partitions the checkpoint (and the job's source) does not know
  --discard-in-flight     drop the batch in flight (required when there is one); its id is not reused,
                          and a sink may already hold its outputs
  --yes, -y               apply without asking (without it, reset asks on a terminal, or refuses)
  Before/after positions are printed either way.
`;

const LOG_ABOUT = '  The embedded log: a partitioned append-only log on local disk, so a job runs with no broker.\n';
const LOG_USAGE = {
  create: 'tidemark log create <dir> [--partitions N] [--topic NAME]\n',
  append: 'tidemark log append <dir> [--key K] [--partition P] [--topic NAME] [VALUE ...]    (no VALUE: one record per stdin line)\n',
  tail: 'tidemark log tail <dir> [--partition P] [--from OFFSET] [--limit N]\n',
};
const LOG_HELP = `${LOG_USAGE.create}${LOG_USAGE.append}${LOG_USAGE.tail}${LOG_ABOUT}`;
const LOG_HELPS: LogHelp = {
  log: LOG_HELP,
  create: `${LOG_USAGE.create}${LOG_ABOUT}  Creates the log in <dir> (default: 4 partitions, topic events).\n`,
  append: `${LOG_USAGE.append}${LOG_ABOUT}  Appends each VALUE as one record, with key K, to partition P (default: the key's hash, else round\n  robin); creates the log if there is none.\n`,
  tail: `${LOG_USAGE.tail}${LOG_ABOUT}  Prints up to N records (default 10) per partition from OFFSET (default: the last N), one per line:\n  topic/partition@offset, key and value, separated by tabs.\n`,
};

/** Printed from checkpoint/errors.ts's ERRORS table, so the list cannot drift from the codes. */
const EXIT_CODES = `Exit codes (code, error code, meaning):
${exitCodeRows().map((r) => `  ${String(r.exitCode).padEnd(4)}${(r.code ?? '').padEnd(34)}${r.summary}`).join('\n')}
`;

export const HELP = `tidemark — Kafka micro-batches with exactly-once effects

Usage:
  tidemark run <job.ts> [options]            run a job as a daemon
  tidemark inspect <checkpoint-dir> [--json] show what a checkpoint holds
  tidemark reset <checkpoint-dir> --to …     move a checkpoint's positions, deliberately
  tidemark log create|append|tail <dir> …    the embedded log
  tidemark <command> --help                  help on one command
  tidemark --version

${RUN_HELP}
${INSPECT_HELP}
${RESET_HELP}
${LOG_HELP}
${EXIT_CODES}
Examples:
  tidemark run examples/clickstream/job.ts --checkpoint data/cp
  tidemark run job.ts --once --log-level warn
  TIDEMARK_CHECKPOINT=/var/lib/tidemark TIDEMARK_METRICS_PORT=9464 tidemark run job.js
  tidemark inspect data/cp --json | jq .positions > offsets.json
  tidemark reset data/cp --to offsets.json --yes
`;

function version(): string {
  try {
    return (JSON.parse(readFileSync(join(__dirname, '..', 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

function printError(err: unknown, debug: boolean): number {
  if (isTidemarkError(err)) {
    process.stderr.write(`tidemark: ${err.message}\n`);
    if (debug) {
      process.stderr.write(`${err.stack}\n`);
      const cause = (err as { cause?: unknown }).cause;
      if (cause instanceof Error) process.stderr.write(`caused by: ${cause.stack}\n`);
    }
    return err.exitCode;
  }
  const e = err as Error;
  process.stderr.write(`tidemark: unexpected error: ${e?.message ?? String(err)}\n`);
  process.stderr.write(debug ? `${e?.stack}\n` : '(run with --log-level debug for the stack trace)\n');
  return ExitCode.unexpected;
}

/** A reader that goes away (`tidemark inspect | head`, a log collector that died) must not crash the process. */
function toleratePipeClosed(): void {
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code !== 'EPIPE' && err.code !== 'ERR_STREAM_DESTROYED') throw err;
    });
  }
}

export async function main(argv: string[]): Promise<void> {
  toleratePipeClosed();
  const [command, ...rest] = argv;
  try {
    let code: number;
    switch (command) {
      case 'run': code = await runCommand(rest, RUN_HELP); break;
      case 'inspect': code = await inspectCommand(rest, INSPECT_HELP); break;
      case 'reset': code = await resetCommand(rest, RESET_HELP); break;
      case 'log': code = await logCommand(rest, LOG_HELPS); break;
      case '--version': case '-v':
        process.stdout.write(`tidemark ${version()}\n`);
        code = 0;
        break;
      case undefined: case '-h': case '--help': case 'help':
        process.stdout.write(HELP);
        code = command === undefined ? ExitCode.badConfig : 0;
        break;
      default: throw new BadConfigError(`Unknown command ${JSON.stringify(command)}: use run, inspect, reset or log. See \`tidemark --help\`.`);
    }
    process.exitCode = code;
  } catch (err) {
    process.exitCode = printError(err, wantsDebug(argv));
  }
  // bin/tidemark.js exits when this resolves; into a pipe, stdout is written asynchronously,
  // so exiting earlier would cut a long `inspect --json` at the pipe's 64 KiB.
  await Promise.all([flushed(process.stdout), flushed(process.stderr)]);
}

/** Resolves once everything written so far has left the process (or the stream is gone). */
function flushed(stream: NodeJS.WriteStream): Promise<void> {
  return new Promise((resolve) => {
    if (stream.destroyed || stream.writableLength === 0) resolve();
    else stream.write('', () => resolve());
  });
}
