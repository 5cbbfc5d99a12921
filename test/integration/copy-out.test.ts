// copyOut (src/search/postgres/copy-out.ts): a COPY TO STDOUT read into one
// buffer through node-pg's query objects, and the connection left usable
// after every outcome.
import pg from "pg";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { copyOut } from "../../src/search/postgres/copy-out.ts";

describe("copyOut", () => {
  let client: pg.Client;
  beforeAll(async () => {
    client = new pg.Client({ connectionString: inject("databaseUrl") });
    await client.connect();
  });
  afterAll(async () => {
    await client?.end();
  });

  it("reads the whole output, growing past the capacity it started with", async () => {
    const out = await copyOut(client, "COPY (SELECT i, repeat('x', i % 50) FROM generate_series(1, 20000) i) TO STDOUT", 10);
    const expected = Array.from({ length: 20000 }, (_, k) => `${k + 1}\t${"x".repeat((k + 1) % 50)}\n`).join("");
    expect(out.toString()).toBe(expected);
    expect((await copyOut(client, "COPY (SELECT 1 WHERE false) TO STDOUT")).length).toBe(0);
  });

  it("rejects with the server's error, and the connection goes on", async () => {
    await expect(copyOut(client, "COPY (SELECT 1 / (i - 500) FROM generate_series(1, 1000) i) TO STDOUT")).rejects.toThrow(
      /division by zero/,
    );
    await client.query("SET statement_timeout = 50");
    await expect(copyOut(client, "COPY (SELECT pg_sleep(1)) TO STDOUT")).rejects.toMatchObject({ code: "57014" });
    await client.query("RESET statement_timeout");
    await expect(copyOut(client, "COPY nowhere TO STDOUT")).rejects.toThrow(/nowhere/);
    expect((await client.query("SELECT 1 AS one")).rows).toEqual([{ one: 1 }]);
  });

  it("refuses a COPY FROM instead of waiting for data", async () => {
    await client.query("CREATE TEMP TABLE copy_in (x int)");
    await expect(copyOut(client, "COPY copy_in FROM STDIN")).rejects.toThrow(/reads COPY TO only/);
    expect((await client.query("SELECT count(*)::int AS n FROM copy_in")).rows).toEqual([{ n: 0 }]);
  });

  it("rejects when the connection ends under it", async () => {
    const other = new pg.Client({ connectionString: inject("databaseUrl") });
    await other.connect();
    other.on("error", () => {});
    const pid = (await other.query("SELECT pg_backend_pid() AS pid")).rows[0].pid;
    // Awaited as a rejection from the start: the backend's FATAL may arrive
    // before the answer to pg_terminate_backend, and a rejection without a
    // handler by then is reported as unhandled.
    const rejected = expect(copyOut(other, "COPY (SELECT pg_sleep(5)) TO STDOUT")).rejects.toThrow();
    await new Promise((r) => setTimeout(r, 200));
    await client.query("SELECT pg_terminate_backend($1)", [pid]);
    await rejected;
    await other.end().catch(() => {});
  });
});
