// docs/OPERATIONS.md tells operators to put Elasticsearch credentials in
// ELASTICSEARCH_URL (https://user:password@host:9200, percent-encoded). This
// checks that the client the service builds from that URL (src/app.ts: the
// URL as `node`) really sends them, decoded, as HTTP Basic authentication.
import http from "node:http";
import { Client } from "@elastic/elasticsearch";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

describe("ELASTICSEARCH_URL with credentials", () => {
  let server: http.Server;
  let port: number;
  const seen: (string | undefined)[] = [];
  beforeAll(async () => {
    // Answers like an Elasticsearch node would to GET / (the client checks the product header).
    server = http.createServer((req, res) => {
      seen.push(req.headers.authorization);
      res.writeHead(200, { "content-type": "application/json", "x-elastic-product": "Elasticsearch" });
      res.end(JSON.stringify({ version: { number: "8.19.21" }, tagline: "You Know, for Search" }));
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    port = (server.address() as { port: number }).port;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it("are sent as Basic authentication, percent-decoded", async () => {
    const client = new Client({ node: `http://auditlog:p%40ss%3Aword@127.0.0.1:${port}`, requestTimeout: 5_000, maxRetries: 0 });
    try {
      await client.info();
    } finally {
      await client.close();
    }
    expect(seen).toEqual([`Basic ${Buffer.from("auditlog:p@ss:word").toString("base64")}`]);
  });
});
