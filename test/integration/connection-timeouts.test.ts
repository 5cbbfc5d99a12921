// Every connection ends: one that sends nothing parseable (nothing at all, a
// piece of the HTTP/2 preface, half a request head, a SETTINGS frame cut
// short) is closed within a bounded time, and so is one left idle between
// calls; a call in progress is never cut, however quiet.
import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Listener, listen, type NodeRequest, type NodeResponse } from "../../src/server/listener.ts";

const HEADERS_TIMEOUT_MS = 300;
const IDLE_TIMEOUT_MS = 400;
/** Headers: checked every timeout/4; idle: a timer; plus scheduling slack on a busy machine. */
const BOUND_MS = 3_000;
/** How long the slow handler keeps a call open without a byte: several idle timeouts. */
const QUIET_CALL_MS = 3 * IDLE_TIMEOUT_MS;

const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");

/** Opens a raw connection, writes bytes, resolves with what came back and how long until the server closed it. */
function rawConnection(port: number, bytes: Buffer): Promise<{ closedAfterMs: number; got: string }> {
  return new Promise((resolve, reject) => {
    const start = Date.now();
    const sock = net.connect(port, "127.0.0.1");
    let got = "";
    const guard = setTimeout(() => {
      sock.destroy();
      reject(new Error(`still open after ${BOUND_MS * 2} ms (got ${JSON.stringify(got.slice(0, 40))})`));
    }, BOUND_MS * 2);
    sock.on("data", (d: Buffer) => {
      got += d.toString("latin1");
    });
    sock.on("error", () => {});
    sock.on("close", () => {
      clearTimeout(guard);
      resolve({ closedAfterMs: Date.now() - start, got });
    });
    if (bytes.length) sock.write(bytes);
  });
}

describe("connection timeouts (one-port listener)", () => {
  let listener: Listener;
  let port: number;
  beforeAll(async () => {
    const handler = (req: NodeRequest, res: NodeResponse) => {
      const wait = req.url === "/slow" ? QUIET_CALL_MS : 0;
      setTimeout(() => {
        res.statusCode = 200;
        res.setHeader("content-type", "text/plain");
        res.end("done");
      }, wait);
    };
    listener = await listen({ host: "127.0.0.1", port: 0, handler, headersTimeoutMs: HEADERS_TIMEOUT_MS, idleTimeoutMs: IDLE_TIMEOUT_MS });
    port = listener.port;
  });
  afterAll(() => listener?.close(0));

  it.each([
    ["nothing at all", Buffer.alloc(0)],
    ["one byte of the HTTP/2 preface", PREFACE.subarray(0, 1)],
    ["most of the HTTP/2 preface", PREFACE.subarray(0, PREFACE.length - 1)],
    ["half an HTTP/1.1 request head", Buffer.from("GET /healthz HTTP/1.1\r\nHost: x\r\n", "latin1")],
    // A frame header announcing a 996-byte SETTINGS payload (166 settings) that never comes.
    ["the preface and a SETTINGS frame cut short", Buffer.concat([PREFACE, Buffer.from([0, 3, 0xe4, 4, 0, 0, 0, 0, 0])])],
  ])("closes a connection that sends %s", async (_name, bytes) => {
    const r = await rawConnection(port, bytes);
    expect(r.closedAfterMs).toBeLessThan(BOUND_MS);
  });

  it("closes an idle HTTP/1.1 keep-alive connection after a response", async () => {
    // A raw socket: Node's own client agent would close the socket itself on the server's Keep-Alive hint.
    const r = await rawConnection(port, Buffer.from("GET / HTTP/1.1\r\nHost: x\r\n\r\n", "latin1"));
    expect(r.got).toMatch(/^HTTP\/1\.1 200 /);
    expect(r.closedAfterMs).toBeGreaterThanOrEqual(IDLE_TIMEOUT_MS - 50);
    expect(r.closedAfterMs).toBeLessThan(BOUND_MS);
  });

  it("closes an HTTP/2 session with no open stream, after its last call too", async () => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    session.on("error", () => {});
    const start = Date.now();
    const body = await new Promise<string>((resolve, reject) => {
      const req = session.request({ ":path": "/" });
      let text = "";
      req.on("data", (d: Buffer) => {
        text += d.toString();
      });
      req.on("end", () => resolve(text));
      req.on("error", reject);
      req.end();
    });
    expect(body).toBe("done");
    const closedAfter = await new Promise<number>((resolve) => session.once("close", () => resolve(Date.now() - start)));
    expect(closedAfter).toBeGreaterThanOrEqual(IDLE_TIMEOUT_MS - 50);
    expect(closedAfter).toBeLessThan(BOUND_MS);
  });

  it("never cuts a quiet call in progress, on HTTP/2 or HTTP/1.1", async () => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    session.on("error", () => {});
    try {
      const h2 = new Promise<string>((resolve, reject) => {
        const req = session.request({ ":path": "/slow" });
        let text = "";
        req.on("data", (d: Buffer) => {
          text += d.toString();
        });
        req.on("end", () => resolve(text));
        req.on("error", reject);
        req.end();
      });
      const h1 = new Promise<string>((resolve, reject) => {
        http
          .get({ host: "127.0.0.1", port, path: "/slow", agent: false }, (res) => {
            let text = "";
            res.on("data", (d: Buffer) => {
              text += d.toString();
            });
            res.on("end", () => resolve(text));
          })
          .on("error", reject);
      });
      expect(await Promise.all([h2, h1])).toEqual(["done", "done"]);
    } finally {
      session.destroy();
    }
  });
});
