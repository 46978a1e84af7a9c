/**
 * Structured logging (pino). JSON in production, pretty in a terminal (when `pino-pretty` is
 * installed, i.e. not in the production image). Secrets are redacted by path wherever they appear.
 */
import pino, { type Logger } from 'pino';

export type { Logger } from 'pino';

/** Paths whose values never reach a log line. */
export const REDACT_PATHS = [
  'bearerToken',
  '*.bearerToken',
  '*.*.bearerToken',
  'apiKey',
  '*.apiKey',
  '*.*.apiKey',
  'authorization',
  '*.authorization',
  '*.headers.authorization',
  '*.*.headers.authorization',
  'credentials',
  '*.credentials',
  'private_key',
  '*.private_key',
  'token',
  '*.token',
];

export interface LoggerOptions {
  level?: string;
  format?: 'auto' | 'json' | 'pretty';
  name?: string;
  /** Destination stream (tests capture output here). */
  destination?: pino.DestinationStream;
}

function prettyAvailable(): boolean {
  try {
    require.resolve('pino-pretty');
    return true;
  } catch {
    return false;
  }
}

export function createLogger(opts: LoggerOptions = {}): Logger {
  const format = opts.format ?? 'auto';
  const pretty =
    opts.destination === undefined &&
    (format === 'pretty' || (format === 'auto' && process.stdout.isTTY === true)) &&
    prettyAvailable();
  const options: pino.LoggerOptions = {
    level: opts.level ?? 'info',
    name: opts.name,
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    base: { pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  if (pretty) {
    return pino({
      ...options,
      transport: { target: 'pino-pretty', options: { colorize: true, translateTime: 'SYS:HH:MM:ss.l' } },
    });
  }
  return opts.destination ? pino(options, opts.destination) : pino(options);
}
