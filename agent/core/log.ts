import { escapeControl } from './escape.ts';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type LogFields = Record<string, string | number | boolean | undefined | null>;

export interface Logger {
  debug(event: string, fields?: LogFields): void;
  info(event: string, fields?: LogFields): void;
  warn(event: string, fields?: LogFields): void;
  error(event: string, fields?: LogFields): void;
  /** A logger whose every line carries these fields as well. */
  child(fields: LogFields): Logger;
}

export interface LoggerOptions {
  json: boolean;
  level?: LogLevel;
  write?: (line: string) => void;
  now?: () => Date;
}

const LEVELS: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/**
 * Field names whose values are never written, whatever the caller passes: a last line of
 * defence so that a token or key handed to a log call by mistake still does not leak. The
 * values written have their control characters escaped (escape.ts).
 */
const SECRET_FIELD = /token|secret|password|passwd|private|key$|payload|kubeconfig|^authorization$/i;

export function maskSecrets(fields: LogFields): LogFields {
  const out: LogFields = {};
  for (const [name, value] of Object.entries(fields)) {
    if (value === undefined) continue;
    out[name] =
      SECRET_FIELD.test(name) && value !== null && value !== '' ? '[redacted]' : typeof value === 'string' ? escapeControl(value) : value;
  }
  return out;
}

/** One line per event: `time level event key=value ...` on a terminal, one JSON object with --json. */
export function createLogger(options: LoggerOptions, bound: LogFields = {}): Logger {
  const threshold = LEVELS[options.level ?? 'info'];
  const write = options.write ?? ((line: string) => process.stderr.write(`${line}\n`));
  const now = options.now ?? (() => new Date());

  const emit = (level: LogLevel, event: string, fields: LogFields = {}) => {
    if (LEVELS[level] < threshold) return;
    const safe = maskSecrets({ ...bound, ...fields });
    const time = now().toISOString();
    event = escapeControl(event);
    if (options.json) {
      write(JSON.stringify({ time, level, event, ...safe }));
      return;
    }
    const pairs = Object.entries(safe).map(([k, v]) => `${k}=${formatValue(v)}`);
    write([time, level.padEnd(5), event, ...pairs].join(' '));
  };

  return {
    debug: (event, fields) => emit('debug', event, fields),
    info: (event, fields) => emit('info', event, fields),
    warn: (event, fields) => emit('warn', event, fields),
    error: (event, fields) => emit('error', event, fields),
    child: (fields) => createLogger(options, { ...bound, ...fields }),
  };
}

function formatValue(value: string | number | boolean | null | undefined): string {
  const text = String(value);
  return /[\s"=]/.test(text) || text === '' ? JSON.stringify(text) : text;
}

/** A logger that drops everything, for library callers and tests that do not read logs. */
export const silentLogger: Logger = createLogger({ json: false, write: () => {} });
