// Tenant-facing reads run in a read-only transaction as the auditlog_reader
// role with auditlog.tenant_id set, so row-level security filters every
// statement to the caller's tenant even if a query forgot its condition.
//
// Reads are also bounded: each statement has a timeout (a ReadTimeoutError
// when it hits), and a caller's AbortSignal cancels the running statement
// (a cancel request on a connection of its own, so it works when every pool
// connection is busy) and destroys the connection rather than reusing it.
import { connect } from "node:net";
import pg, { type Pool, type PoolClient, type QueryResult } from "pg";
import { inTransactionOn, transactionOn, withConnection } from "./transaction.ts";
import { inlineParams, sqlString } from "./sql-literal.ts";

export type TenantReadOptions = {
  /** One snapshot for multi-statement reads (a chain walk in pages). */
  snapshot?: boolean;
  /** Aborting cancels the statement running on PostgreSQL. */
  signal?: AbortSignal;
  /** statement_timeout of every statement of the read; unset: the server's setting. */
  statementTimeoutMs?: number;
  /**
   * Only this actor's events are visible (a User's own activity): set as
   * `auditlog.actor_id`, which the `actor_isolation` policy on events
   * (0006_actor_isolation.sql) enforces. Never empty: that means no restriction.
   */
  actorId?: string;
};

/** A read statement ran past its statement_timeout and PostgreSQL stopped it. */
export class ReadTimeoutError extends Error {
  readonly timeoutMs: number;

  constructor(timeoutMs: number, options?: ErrorOptions) {
    super(
      `the read took longer than ${timeoutMs / 1000} s and was stopped; ` +
        "narrow the filter (a time range, fewer free-text terms) or retry later",
      options,
    );
    this.name = "ReadTimeoutError";
    this.timeoutMs = timeoutMs;
  }
}

export function withTenantRead<T>(
  pool: Pool,
  tenantId: string,
  fn: (db: PoolClient) => Promise<T>,
  opts: TenantReadOptions = {},
): Promise<T> {
  return tenantRead(pool, tenantId, opts, (db, setup) => inTransactionOn(db, setup, () => fn(db)));
}

/**
 * withTenantRead of statements that need nothing from each other: the
 * transaction's setup, the statements (their values written in as
 * literals) and COMMIT go as one simple query, one round trip in all.
 * Answers each statement's result, in order.
 */
export function tenantReadQueries(
  pool: Pool,
  tenantId: string,
  statements: readonly { text: string; values: readonly unknown[] }[],
  opts: TenantReadOptions = {},
): Promise<QueryResult[]> {
  const sql = [...statements.map(inlineParams), "COMMIT"].join(";\n");
  return tenantRead(pool, tenantId, opts, (db, setup) =>
    transactionOn(db, `${setup};\n${sql}`, async (began) => began.slice(-1 - statements.length, -1)),
  );
}

/**
 * A connection for a tenant read and the statements that begin its
 * transaction: read only (one snapshot if asked), the reading role, the
 * tenant, the timeout. A caller's abort cancels the statement running on it.
 */
function tenantRead<T>(
  pool: Pool,
  tenantId: string,
  opts: TenantReadOptions,
  run: (db: PoolClient, setup: string) => Promise<T>,
): Promise<T> {
  const { signal, statementTimeoutMs } = opts;
  signal?.throwIfAborted();
  const begin = opts.snapshot ? "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY" : "BEGIN READ ONLY";
  // JIT off: free-text conditions make expressions that LLVM takes minutes
  // and gigabytes to compile, and compilation does not react to a cancel or
  // a statement timeout; the interpreted plan is fast for these queries.
  const { actorId } = opts;
  if (actorId === "") throw new Error("withTenantRead: empty actor id");
  // The transaction, its role and its settings in one round trip (a simple
  // query of several statements, so the values are literals): each round
  // trip is a turn of the event loop that other callers' work can delay.
  let setup = `${begin}; SET LOCAL ROLE auditlog_reader; SELECT set_config('auditlog.tenant_id', ${sqlString(tenantId)}, true), set_config('jit', 'off', true)`;
  if (statementTimeoutMs !== undefined) setup += `, set_config('statement_timeout', ${sqlString(String(statementTimeoutMs))}, true)`;
  if (actorId !== undefined) setup += `, set_config('auditlog.actor_id', ${sqlString(actorId)}, true)`;
  let cancelled = false;
  return withConnection(pool, async (db) => {
    signal?.throwIfAborted(); // the caller left while this waited for a connection
    const onAbort = () => {
      cancelled = true;
      void sendCancelRequest(db);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
    try {
      return await run(db, setup);
    } finally {
      signal?.removeEventListener("abort", onAbort);
      // Not a DatabaseError, so the connection is destroyed: a cancel request
      // still on its way must never hit the next user of this connection.
      // biome-ignore lint/correctness/noUnsafeFinally: the abort must win over the read's outcome, whatever it was.
      if (cancelled) throw signal!.reason instanceof Error ? signal!.reason : new Error("read aborted by the caller");
    }
  }).catch((err: unknown) => {
    if (statementTimeoutMs !== undefined && isStatementTimeout(err)) throw new ReadTimeoutError(statementTimeoutMs, { cause: err });
    throw err;
  });
}

function isStatementTimeout(err: unknown): boolean {
  const e = err instanceof AggregateError ? err.errors[0] : err;
  return e instanceof pg.DatabaseError && e.code === "57014" && /statement timeout/.test(e.message);
}

/**
 * PostgreSQL's CancelRequest for the statement running on `db`: a separate
 * connection that sends the backend's key and closes. Never rejects.
 */
export function sendCancelRequest(db: PoolClient): Promise<void> {
  const c = db as unknown as { processID: number | null; secretKey: number | null; host: string; port: number };
  if (c.processID === null || c.secretKey === null) return Promise.resolve();
  return new Promise((resolve) => {
    const socket = c.host.startsWith("/") ? connect(`${c.host}/.s.PGSQL.${c.port}`) : connect(c.port, c.host);
    socket.setTimeout(5_000, () => socket.destroy());
    socket.on("error", () => resolve());
    socket.on("close", () => resolve());
    socket.on("connect", () => {
      const msg = Buffer.alloc(16);
      msg.writeUInt32BE(16, 0);
      msg.writeUInt32BE(80877102, 4); // the cancel request code
      msg.writeUInt32BE(c.processID! >>> 0, 8);
      msg.writeUInt32BE(c.secretKey! >>> 0, 12);
      socket.end(msg);
    });
  });
}
