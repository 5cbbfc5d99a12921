// Structured logging: one JSON object per line (time, level, msg, fields)
// on stdout, written by pino. Call sites see only this small Logger type, so
// the library stays replaceable and tests can hand in a stream.
import { pino } from "pino";
import { activeTraceId } from "./tracing.ts";

export type LogLevel = "debug" | "info" | "warn" | "error";
export type LogFields = Record<string, unknown>;

export type Logger = {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  /** A logger that adds `fields` to every line (child fields win over parent's). */
  child(fields: LogFields): Logger;
};

const LEVELS: readonly LogLevel[] = ["debug", "info", "warn", "error"];

export function isLogLevel(v: unknown): v is LogLevel {
  return typeof v === "string" && (LEVELS as readonly string[]).includes(v);
}

const REDACTED = "[redacted]";

/**
 * Secrets never reach a log line, wherever a call site puts them: bearer
 * headers, API key secrets, the bootstrap key, and any field named like a
 * secret, at the top level or one object down.
 */
export const REDACT_PATHS = [
  "authorization",
  "headers.authorization",
  "req.headers.authorization",
  "request.headers.authorization",
  "bootstrapKey",
  "apiKey",
  "key.secret",
  ...["secret", "password", "token", "apiKeySecret", "bootstrapKey"].flatMap((k) => [k, `*.${k}`]),
];

/**
 * What JSON cannot say as is: bigints become decimal strings (sequences
 * exceed 2^53 in principle, and a number would silently round), and errors
 * under any key go through pino's error serializer (under `err` pino's
 * serializers do it).
 */
function plain(value: unknown, seen: WeakSet<object>, depth: number): unknown {
  if (typeof value === "bigint") return value.toString();
  if (value instanceof Error) return pino.stdSerializers.err(value);
  if (value === null || typeof value !== "object" || ArrayBuffer.isView(value)) return value;
  const proto = Object.getPrototypeOf(value);
  if (!Array.isArray(value) && proto !== Object.prototype && proto !== null) return value;
  if (seen.has(value)) return "[Circular]";
  if (depth >= 10) return "[Object]";
  seen.add(value);
  const out = Array.isArray(value)
    ? value.map((v) => plain(v, seen, depth + 1))
    : Object.fromEntries(Object.entries(value).map(([k, v]) => [k, plain(v, seen, depth + 1)]));
  seen.delete(value);
  return out;
}

function plainFields(fields: LogFields): LogFields {
  const seen = new WeakSet<object>();
  return Object.fromEntries(Object.entries(fields).map(([k, v]) => [k, k === "err" && v instanceof Error ? v : plain(v, seen, 1)]));
}

export function createLogger(opts: { level: LogLevel; stream?: NodeJS.WritableStream }): Logger {
  if (!isLogLevel(opts.level)) throw new Error(`unknown log level ${JSON.stringify(opts.level)}`);
  const root = pino(
    {
      level: opts.level,
      // No pid/hostname: the container and the log collector know them.
      base: null,
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: {
        level: (label) => ({ level: label }),
      },
      serializers: { err: pino.stdSerializers.err },
      redact: { paths: REDACT_PATHS, censor: REDACTED },
      // The trace of the request being served, when tracing is on (without a
      // registered provider there is never an active span: nothing is added).
      mixin: () => {
        const traceId = activeTraceId();
        return traceId === undefined ? {} : { traceId };
      },
    },
    // A stream we write to like any other (not pino's own fd writer), so
    // lines stay in order with whatever else goes to stdout.
    (opts.stream ?? process.stdout) as pino.DestinationStream,
  );

  function wrap(p: pino.Logger): Logger {
    return {
      debug: (msg, fields) => (fields ? p.debug(plainFields(fields), msg) : p.debug(msg)),
      info: (msg, fields) => (fields ? p.info(plainFields(fields), msg) : p.info(msg)),
      warn: (msg, fields) => (fields ? p.warn(plainFields(fields), msg) : p.warn(msg)),
      error: (msg, fields) => (fields ? p.error(plainFields(fields), msg) : p.error(msg)),
      child: (fields) => wrap(p.child(plainFields(fields))),
    };
  }
  return wrap(root);
}
