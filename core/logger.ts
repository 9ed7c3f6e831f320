/**
 * A small structured logger that is passed in, never imported as a global.
 *
 * Two formats (`LOG_FORMAT`). `text`, the default, stays human-first (the original
 * troubleshooting guide greps for its lines): fields follow as `key=value` pairs. `json` writes one
 * object per line, `{"time","level","message","fields"}`, for log shippers; the fields have a key
 * of their own so that a field named `message` or `time` cannot overwrite the record's.
 */

export type LogLevel = "debug" | "info" | "warn" | "error";
export type LogFields = Record<string, unknown>;
export type LogFormat = "text" | "json";

export interface Logger {
  debug(message: string, fields?: LogFields): void;
  info(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  error(message: string, fields?: LogFields): void;
  /** A logger that adds `fields` to every line. */
  with(fields: LogFields): Logger;
}

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export type LogSink = (level: LogLevel, line: string) => void;

/**
 * Characters a log line must not hold raw: controls (a newline would start a forged line), line
 * separators, and bidirectional controls (which make a line read differently than it is).
 */
const UNSAFE =
  // deno-lint-ignore no-control-regex
  /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;
const ESCAPES: Record<string, string> = { "\n": "\\n", "\r": "\\r", "\t": "\\t" };

/** `text` with every unsafe character written as an escape (`\n`, `\u202e`): one line, as it reads. */
export function escapeLogText(text: string): string {
  return text.replace(
    UNSAFE,
    (c) => ESCAPES[c] ?? `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

/** JSON text of a field value: an error as its message, a bigint (a message sequence) as digits. */
const toJson = (value: unknown) =>
  JSON.stringify(value, (_key, v) => {
    if (v instanceof Error) return v.message;
    return typeof v === "bigint" ? v.toString() : v;
  }) ?? String(value);

/**
 * JSON text with what JSON leaves raw (C1 controls, U+2028, bidirectional controls) escaped too:
 * the escapes are JSON's own `\uXXXX`, so the text still parses to the same value.
 */
const quote = (value: unknown) => escapeLogText(toJson(value));

function format(value: unknown): string {
  if (typeof value === "string") {
    return /\s|"/.test(value) || escapeLogText(value) !== value ? quote(value) : value;
  }
  return quote(value);
}

type Render = (time: string, level: LogLevel, message: string, fields: LogFields) => string;

const RENDER: Record<LogFormat, Render> = {
  text: (time, level, message, fields) => {
    const tail = Object.entries(fields).map(([k, v]) => `${k}=${format(v)}`).join(" ");
    return `${time} ${level.toUpperCase().padEnd(5)} ${escapeLogText(message)}${
      tail ? " " + tail : ""
    }`;
  },
  json: (time, level, message, fields) => quote({ time, level, message, fields }),
};

// deno-lint-ignore no-console
const stderrSink: LogSink = (_level, line) => console.error(line);

/** Creates a logger writing lines in `format` (text by default) to `sink` (stderr by default). */
export function createLogger(
  options: { level?: LogLevel; format?: LogFormat; sink?: LogSink; fields?: LogFields } = {},
): Logger {
  const min = RANK[options.level ?? "info"];
  const render = RENDER[options.format ?? "text"];
  const sink = options.sink ?? stderrSink;
  const base = options.fields ?? {};
  const log = (level: LogLevel, message: string, fields?: LogFields) => {
    if (RANK[level] < min) return;
    // Whatever a message or a field holds (a user id with a newline), one call is one line.
    sink(level, render(new Date().toISOString(), level, message, { ...base, ...fields }));
  };
  return {
    debug: (m, f) => log("debug", m, f),
    info: (m, f) => log("info", m, f),
    warn: (m, f) => log("warn", m, f),
    error: (m, f) => log("error", m, f),
    with: (fields) => createLogger({ ...options, fields: { ...base, ...fields } }),
  };
}

/** A logger that drops everything, for tests that are not about logs. */
export const silentLogger: Logger = createLogger({ sink: () => {} });

/** A logger that keeps its lines in memory, for tests that are about logs. */
export function memoryLogger(
  level: LogLevel = "debug",
  format: LogFormat = "text",
): Logger & { lines: string[] } {
  const lines: string[] = [];
  const logger = createLogger({ level, format, sink: (_l, line) => lines.push(line) });
  return Object.assign(logger, { lines });
}
