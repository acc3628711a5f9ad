/**
 * A small structured logger: one JSON line per event on stderr, levels decided once at construction
 * (STYLE.md §5, after pino `lib/levels.js`): a disabled level is a shared no-op function, so a
 * `logger.debug(...)` on the request path costs one call when debug is off.
 *
 * Written by hand rather than adding pino because meshtel logs a handful of lifecycle events and
 * "log once" warnings; the hot path never logs per request.
 */

/** Log levels in increasing severity. */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';

const LEVEL_VALUE: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 };

/** A log call: message plus optional structured fields. */
export type LogFn = (msg: string, fields?: Record<string, unknown>) => void;

/** The logger interface every module receives through its options. */
export interface Logger {
  readonly level: LogLevel;
  debug: LogFn;
  info: LogFn;
  warn: LogFn;
  error: LogFn;
  /** Logs `msg` at warn level only the first time `key` is seen (bad peers, exporter failures). */
  warnOnce(key: string, msg: string, fields?: Record<string, unknown>): void;
  /** A logger that adds `bindings` to every line (pre-serialised once, as pino does). */
  child(bindings: Record<string, unknown>): Logger;
}

/** Options for {@link createLogger}. */
export interface LoggerOptions {
  /** Minimum level; defaults to `MESHTEL_LOG_LEVEL` or `info`. */
  level?: LogLevel;
  /** Where lines go; defaults to process.stderr. */
  stream?: { write(chunk: string): unknown };
  /** Fields added to every line. */
  bindings?: Record<string, unknown>;
}

const noop: LogFn = () => {};
const MAX_WARN_ONCE_KEYS = 1000;

function isLogLevel(value: string | undefined): value is LogLevel {
  return value !== undefined && value in LEVEL_VALUE;
}

/** Create a logger. Levels below the threshold become the shared no-op. */
export function createLogger(options: LoggerOptions = {}): Logger {
  const envLevel = process.env.MESHTEL_LOG_LEVEL;
  const level: LogLevel = options.level ?? (isLogLevel(envLevel) ? envLevel : 'info');
  const stream = options.stream ?? process.stderr;
  // Bindings are serialised once here, not per line.
  const bound = options.bindings ? JSON.stringify(options.bindings).slice(1, -1) : '';
  const seen = new Set<string>();

  const make = (name: Exclude<LogLevel, 'silent'>): LogFn => {
    if (LEVEL_VALUE[name] < LEVEL_VALUE[level]) return noop;
    return (msg, fields) => {
      let line = `{"level":"${name}","time":${Date.now()}`;
      if (bound) line += `,${bound}`;
      line += `,"msg":${JSON.stringify(msg)}`;
      if (fields) {
        const f = safeStringify(fields);
        if (f.length > 2) line += `,${f.slice(1, -1)}`;
      }
      stream.write(`${line}}\n`);
    };
  };

  const logger: Logger = {
    level,
    debug: make('debug'),
    info: make('info'),
    warn: make('warn'),
    error: make('error'),
    warnOnce(key, msg, fields) {
      if (seen.has(key)) return;
      // Bounded so a stream of distinct bad peers cannot grow this set without limit.
      if (seen.size >= MAX_WARN_ONCE_KEYS) seen.clear();
      seen.add(key);
      logger.warn(msg, fields);
    },
    child(bindings) {
      return createLogger({ level, stream, bindings: { ...options.bindings, ...bindings } });
    },
  };
  return logger;
}

function safeStringify(fields: Record<string, unknown>): string {
  try {
    return JSON.stringify(fields, (_k, v: unknown) => (v instanceof Error ? { message: v.message, code: (v as { code?: unknown }).code } : v));
  } catch {
    return '{"fields":"[unserialisable]"}';
  }
}

/** A logger that discards everything; the default for library use and tests. */
export const silentLogger: Logger = createLogger({ level: 'silent' });
