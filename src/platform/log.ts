// Tiny structured logger: one JSON object per line (time, level, msg, fields).
// No dependencies; good enough for docker logs / jq.

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

const rank: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export function isLogLevel(v: unknown): v is LogLevel {
  return typeof v === "string" && Object.hasOwn(rank, v);
}

/** Errors do not serialize with JSON.stringify; turn them into plain objects. */
function replacer(_key: string, value: unknown): unknown {
  if (value instanceof Error) {
    const out: Record<string, unknown> = { name: value.name, message: value.message };
    const code = (value as { code?: unknown }).code;
    if (code !== undefined) out.code = code;
    if (value.stack !== undefined) out.stack = value.stack;
    if (value.cause !== undefined) out.cause = value.cause;
    return out;
  }
  if (typeof value === "bigint") return value.toString();
  return value;
}

export function createLogger(opts: { level: LogLevel; stream?: NodeJS.WritableStream }): Logger {
  const stream = opts.stream ?? process.stdout;
  const min = rank[opts.level];
  if (min === undefined) throw new Error(`unknown log level ${JSON.stringify(opts.level)}`);

  function make(base: LogFields): Logger {
    function write(level: LogLevel, msg: string, fields?: LogFields): void {
      if (rank[level] < min) return;
      const entry = { time: new Date().toISOString(), level, msg, ...base, ...fields };
      let line: string;
      try {
        line = JSON.stringify(entry, replacer);
      } catch (err) {
        // Circular structures and the like: never throw from a log call.
        line = JSON.stringify({
          time: entry.time,
          level,
          msg,
          logError: `unserializable fields: ${String(err)}`,
        });
      }
      stream.write(line + "\n");
    }
    return {
      debug: (msg, fields) => write("debug", msg, fields),
      info: (msg, fields) => write("info", msg, fields),
      warn: (msg, fields) => write("warn", msg, fields),
      error: (msg, fields) => write("error", msg, fields),
      child: (fields) => make({ ...base, ...fields }),
    };
  }
  return make({});
}
