/**
 * A small structured logger that is passed in, never imported as a global.
 *
 * Lines stay human-first (the original troubleshooting guide greps for them);
 * fields follow as `key=value` pairs.
 */

export type LogLevel = "debug" | "info" | "warn" | "error";
export type LogFields = Record<string, unknown>;

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

/** JSON text, with what JSON leaves raw (C1 controls, U+2028, bidirectional controls) escaped. */
const quote = (value: unknown) => escapeLogText(JSON.stringify(value) ?? String(value));

function format(value: unknown): string {
  if (value instanceof Error) return quote(value.message);
  if (typeof value === "string") {
    return /\s|"/.test(value) || escapeLogText(value) !== value ? quote(value) : value;
  }
  return quote(value);
}

// deno-lint-ignore no-console
const stderrSink: LogSink = (_level, line) => console.error(line);

/** Creates a logger writing `time level message key=value…` lines to `sink` (stderr by default). */
export function createLogger(
  options: { level?: LogLevel; sink?: LogSink; fields?: LogFields } = {},
): Logger {
  const min = RANK[options.level ?? "info"];
  const sink = options.sink ?? stderrSink;
  const base = options.fields ?? {};
  const log = (level: LogLevel, message: string, fields?: LogFields) => {
    if (RANK[level] < min) return;
    const all = { ...base, ...fields };
    const tail = Object.entries(all).map(([k, v]) => `${k}=${format(v)}`).join(" ");
    // Whatever a message or a field holds (a user id with a newline), one call is one line.
    const line = `${new Date().toISOString()} ${level.toUpperCase().padEnd(5)} ${
      escapeLogText(message)
    }${tail ? " " + tail : ""}`;
    sink(level, line);
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
export function memoryLogger(level: LogLevel = "debug"): Logger & { lines: string[] } {
  const lines: string[] = [];
  const logger = createLogger({ level, sink: (_l, line) => lines.push(line) });
  return Object.assign(logger, { lines });
}
