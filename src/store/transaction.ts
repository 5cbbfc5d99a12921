import pg, { type Pool, type PoolClient, type QueryResult } from "pg";

/**
 * Runs `fn` on a connection of its own from the pool. A connection that
 * breaks while checked out (PostgreSQL restarting, a network cut) emits
 * 'error' on the client, which would crash the process without a listener:
 * the error is kept, the running query fails on its own, and the connection
 * is destroyed instead of returned to the pool.
 */
export async function withConnection<T>(pool: Pool, fn: (db: PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  let broken: Error | undefined;
  const onError = (err: Error) => {
    broken ??= err;
  };
  client.on("error", onError);
  try {
    return await fn(client);
  } catch (err) {
    // Only an error PostgreSQL answered with leaves the connection known to be
    // healthy; anything else (a broken socket, an aborted COPY) destroys it.
    if (!(err instanceof pg.DatabaseError)) broken ??= err as Error;
    throw err;
  } finally {
    client.off("error", onError);
    client.release(broken);
  }
}

/**
 * Runs `fn` in a transaction. On failure the transaction is rolled back and
 * the original error rethrown; a connection whose rollback also failed is
 * destroyed rather than returned to the pool. `begin` may be several
 * statements in one round trip (BEGIN and the transaction's settings): if
 * one after BEGIN fails, the rollback still leaves the connection clean.
 */
export function inTransaction<T>(pool: Pool, begin: string, fn: (db: PoolClient) => Promise<T>): Promise<T> {
  return withConnection(pool, (client) => inTransactionOn(client, begin, () => fn(client)));
}

/** inTransaction on a connection the caller holds. */
export function inTransactionOn<T>(client: PoolClient, begin: string, fn: () => Promise<T>): Promise<T> {
  return transactionOn(client, begin, async () => {
    const result = await fn();
    await client.query("COMMIT");
    return result;
  });
}

/**
 * inTransaction for a caller that saves round trips at both ends: `fn`
 * receives the results of `begin`'s statements (one per statement, so
 * `begin` may hold the transaction's first reads too), and commits itself,
 * COMMIT being the last statement of its last simple query. If `fn` fails,
 * the transaction is rolled back (which only warns when it had already
 * ended, e.g. its COMMIT failed).
 */
export function inTransactionCommitting<T>(
  pool: Pool,
  begin: string,
  fn: (db: PoolClient, began: QueryResult[]) => Promise<T>,
): Promise<T> {
  return withConnection(pool, (client) => transactionOn(client, begin, (began) => fn(client, began)));
}

/** inTransactionCommitting on a connection the caller holds. */
export async function transactionOn<T>(client: PoolClient, begin: string, fn: (began: QueryResult[]) => Promise<T>): Promise<T> {
  try {
    const began = (await client.query(begin)) as QueryResult | QueryResult[];
    return await fn(Array.isArray(began) ? began : [began]);
  } catch (err) {
    try {
      await client.query("ROLLBACK");
    } catch (rollbackErr) {
      throw new AggregateError([err, rollbackErr], `${(err as Error).message} (and the rollback failed)`, { cause: err });
    }
    throw err;
  }
}
