import type { Pool, PoolClient } from "pg";

/**
 * Runs `fn` in a transaction on its own connection. On failure the
 * transaction is rolled back and the original error rethrown; a connection
 * whose rollback also failed is destroyed rather than returned to the pool.
 */
export async function inTransaction<T>(pool: Pool, begin: string, fn: (db: PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  let broken: Error | undefined;
  try {
    await client.query(begin);
    try {
      const result = await fn(client);
      await client.query("COMMIT");
      return result;
    } catch (err) {
      await client.query("ROLLBACK").catch((rollbackErr: Error) => {
        broken = rollbackErr;
      });
      throw err;
    }
  } finally {
    client.release(broken);
  }
}
