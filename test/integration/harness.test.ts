// Proves the test harness: the run's PostgreSQL database, the admin URL and
// freshDatabase(), and the Elasticsearch node, are reachable.
import { Client } from "@elastic/elasticsearch";
import pg from "pg";
import { describe, expect, inject, it } from "vitest";
import { freshDatabase } from "../support/db.ts";

describe("test harness", () => {
  it("connects to the run's PostgreSQL database", async () => {
    const client = new pg.Client({ connectionString: inject("databaseUrl") });
    await client.connect();
    try {
      const { rows } = await client.query<{ one: number; db: string }>("select 1 as one, current_database() as db");
      expect(rows[0].one).toBe(1);
      expect(rows[0].db).toMatch(/^auditlog_test_[0-9a-f]{8}$/);
    } finally {
      await client.end();
    }
  });

  it("creates and drops a fresh database through adminDatabaseUrl", async () => {
    const db = await freshDatabase();
    const name = decodeURIComponent(new URL(db.url).pathname.slice(1));
    const client = new pg.Client({ connectionString: db.url });
    await client.connect();
    expect((await client.query("select current_database() as db")).rows[0].db).toBe(name);
    await client.end();
    await db.drop();
    const admin = new pg.Client({ connectionString: inject("adminDatabaseUrl") });
    await admin.connect();
    try {
      expect((await admin.query("select 1 from pg_database where datname = $1", [name])).rowCount).toBe(0);
    } finally {
      await admin.end();
    }
  });

  it("reaches Elasticsearch 8.19.21", async () => {
    const client = new Client({ node: inject("elasticsearchUrl") });
    try {
      const health = await client.cluster.health({ wait_for_status: "yellow", timeout: "30s" });
      expect(["yellow", "green"]).toContain(health.status);
      // Not GET / (client.info()): the integ-test-zip distribution that
      // scripts/elasticsearch.ts runs has no rest-root module, so GET / answers
      // 405 there. The node's version is in nodes info on every distribution.
      const info = await client.nodes.info({ node_id: "_local", filter_path: "nodes.*.version" });
      const versions = Object.values(info.nodes).map((n) => n.version);
      expect(versions).toEqual(["8.19.21"]);
    } finally {
      await client.close();
    }
  });
});
