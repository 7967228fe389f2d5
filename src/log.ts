// The logger the engine writes to: pino's shape, so the daemon passes pino itself.
import pino from 'pino';

type LogFn = (obj: object, msg?: string) => void;

export interface Logger {
  readonly debug: LogFn;
  readonly info: LogFn;
  readonly warn: LogFn;
  readonly error: LogFn;
}

const noop: LogFn = () => {};
export const silentLogger: Logger = { debug: noop, info: noop, warn: noop, error: noop };

export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';

/** Structured JSON lines on stdout (or the given destination). */
export function createLogger(level: LogLevel = 'info', destination: NodeJS.WritableStream = process.stdout): Logger {
  return pino({ level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime }, destination);
}
