// One cleartext TCP port for both HTTP/2 with prior knowledge (gRPC over h2c)
// and HTTP/1.1 (Connect, gRPC-Web, plain GET).
//
// Node's http2.createServer() without TLS only speaks HTTP/2, and
// http.createServer() only HTTP/1.1. So a net.Server accepts the connections,
// peeks at the first bytes for the HTTP/2 client connection preface, puts the
// bytes back (socket.unshift) and injects the socket into the matching server
// with emit("connection", socket) (both servers support injected sockets).
// h2c upgrade over HTTP/1.1 (Upgrade: h2c) is not supported; gRPC clients use
// prior knowledge anyway.
//
// With a certificate (ListenOptions.tls) the port speaks TLS only: a
// tls.Server terminates it, and the protocol the client negotiated through
// ALPN ("h2" or "http/1.1") picks the server the TLS socket is handed to, the
// same two servers as in cleartext, so timeouts and draining are shared. A
// client that offers no ALPN is served HTTP/1.1 (Node's secure HTTP/2 server
// does the same with allowHTTP1).

import * as http from "node:http";
import * as http2 from "node:http2";
import * as net from "node:net";
import * as tls from "node:tls";
import type { Logger } from "../platform/log.ts";

export type NodeRequest = http.IncomingMessage | http2.Http2ServerRequest;
export type NodeResponse = http.ServerResponse | http2.Http2ServerResponse;
/** A request handler that works for both http and http2 (compat API). */
export type NodeHandler = (req: NodeRequest, res: NodeResponse) => void;

export interface ListenOptions {
  host: string;
  /** 0 picks a free port; the chosen one is in the result. */
  port: number;
  handler: NodeHandler;
  log?: Logger;
  /**
   * Most time a connection may take to show what it is (the HTTP/2 preface or
   * an HTTP/1.1 request) and, on HTTP/1.1, to send a whole request head
   * (default 30 s; browsers preconnect).
   */
  headersTimeoutMs?: number;
  /**
   * Most time a connection may sit with no call in progress: an HTTP/1.1
   * keep-alive connection between requests, an HTTP/2 session with no open
   * stream (default 65 s, above common load balancers' idle timeouts). A call
   * in progress (an Ingest, Export or Watch stream) is never cut, however
   * quiet it is.
   */
  idleTimeoutMs?: number;
  /** PEM certificate chain and private key: the port speaks TLS only (HTTP/2 and HTTP/1.1 by ALPN). */
  tls?: { cert: string | Buffer; key: string | Buffer };
}

export const DEFAULT_HEADERS_TIMEOUT_MS = 30_000;
export const DEFAULT_IDLE_TIMEOUT_MS = 65_000;
/** HTTP/2: per-session memory cap for nghttp2 in MiB (Node's default is 10). */
const MAX_SESSION_MEMORY_MIB = 32;
/** HTTP/2: SETTINGS_MAX_CONCURRENT_STREAMS advertised to clients. */
const MAX_CONCURRENT_STREAMS = 1000;

export interface Listener {
  /** The bound port (useful with port 0). */
  readonly port: number;
  /** Resolves once every connection is gone (idempotent). */
  close(graceMs: number): Promise<void>;
}

/** "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", RFC 9113 section 3.4. */
const H2_PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");

type ConnState = {
  socket: net.Socket;
  kind: "sniffing" | "h1" | "h2";
  /** HTTP/1.1 requests whose response has not finished yet. */
  activeRequests: number;
  session?: http2.ServerHttp2Session;
};

export async function listen(opts: ListenOptions): Promise<Listener> {
  const log = opts.log;
  const headersTimeoutMs = opts.headersTimeoutMs ?? DEFAULT_HEADERS_TIMEOUT_MS;
  const idleTimeoutMs = opts.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
  /** By accepted socket. */
  const conns = new Map<net.Socket, ConnState>();
  /** By the socket handed to a server (the TLS socket, with TLS). */
  const served = new WeakMap<net.Socket, ConnState>();
  let closing = false;
  let closePromise: Promise<void> | undefined;

  // ---- HTTP/1.1 -----------------------------------------------------------
  const h1 = http.createServer({
    // No overall request deadline: Connect client streams may run for hours.
    requestTimeout: 0,
    headersTimeout: headersTimeoutMs,
    keepAliveTimeout: idleTimeoutMs,
    maxHeaderSize: 32 * 1024,
    // How often headersTimeout is checked (Node's default is 30 s): a
    // connection that stalls in its head is closed within 1.25 x the timeout.
    connectionsCheckingInterval: Math.max(100, Math.min(5_000, Math.floor(headersTimeoutMs / 4))),
    // Reject requests with both Content-Length and Transfer-Encoding etc.
    insecureHTTPParser: false,
  });
  // The headers timeout is enforced by a periodic check that http.Server
  // only sets up on its "listening" event, which an un-bound server never
  // emits. Emit it so the check runs for injected sockets too; the interval
  // is cleared by h1.close() below.
  h1.emit("listening");
  h1.on("request", (req: http.IncomingMessage, res: http.ServerResponse) => {
    const state = served.get(req.socket as net.Socket);
    if (state !== undefined) {
      state.activeRequests++;
      res.once("close", () => {
        state.activeRequests--;
        if (closing && state.activeRequests === 0) state.socket.end();
      });
    }
    // While draining, tell HTTP/1.1 clients not to reuse the connection.
    if (closing && !res.headersSent) res.setHeader("connection", "close");
    opts.handler(req, res);
  });
  // Malformed requests, header timeouts, oversized heads: Node answers
  // 400/408/431 and closes the socket (default "clientError" behaviour).

  // ---- HTTP/2 -------------------------------------------------------------
  const h2 = http2.createServer({
    maxSessionMemory: MAX_SESSION_MEMORY_MIB,
    maxHeaderListPairs: 256,
    peerMaxConcurrentStreams: 1000,
    settings: {
      maxConcurrentStreams: MAX_CONCURRENT_STREAMS,
      maxHeaderListSize: 64 * 1024,
      // 1 MiB per stream instead of 64 KiB: large ingest batches would
      // otherwise crawl through many WINDOW_UPDATE round trips.
      initialWindowSize: 1024 * 1024,
      enablePush: false,
    },
  });
  // No stream inactivity timeout: a Watch or a long client stream can be
  // legitimately silent for a long time. A session with no open stream is
  // closed after idleTimeoutMs (watchIdleSession), which also ends one that
  // sent the preface and then nothing usable (a SETTINGS frame cut short).
  // http2 creates the session synchronously inside emit("connection"), and
  // session.socket is a Proxy, so the state is handed over through this slot.
  let handingOver: ConnState | undefined;
  h2.on("session", (session: http2.ServerHttp2Session) => {
    if (handingOver !== undefined) handingOver.session = session;
    // Connection-level window, same reason as initialWindowSize.
    try {
      session.setLocalWindowSize(8 * 1024 * 1024);
    } catch {
      // Session may already be closing.
    }
    session.on("error", (err: Error) => log?.debug("http/2 session error", { err: err.message }));
    watchIdleSession(session);
    if (closing) session.close();
  });

  /** Closes the session once it has had no open stream for idleTimeoutMs. */
  function watchIdleSession(session: http2.ServerHttp2Session): void {
    let open = 0;
    let timer: NodeJS.Timeout | undefined;
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        log?.debug("closing idle http/2 session", { idleTimeoutMs });
        // GOAWAY, then the socket ends; a peer that never reads is destroyed.
        session.close();
        setTimeout(() => session.destroy(), 1_000).unref();
      }, idleTimeoutMs);
      timer.unref();
    };
    arm();
    session.on("stream", (stream: http2.ServerHttp2Stream) => {
      open++;
      clearTimeout(timer);
      stream.once("close", () => {
        open--;
        if (open === 0 && !session.closed && !session.destroyed) arm();
      });
    });
    session.once("close", () => clearTimeout(timer));
  }
  h2.on("request", (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => opts.handler(req, res));
  h2.on("sessionError", (err: Error) => log?.debug("http/2 session error", { err: err.message }));

  // ---- Accepting and sniffing ---------------------------------------------
  const socketOptions = { noDelay: true, keepAlive: true, keepAliveInitialDelay: 60_000 };
  const server = opts.tls === undefined ? net.createServer(socketOptions, accept) : tlsServer(opts.tls);

  function accept(socket: net.Socket): void {
    if (closing) {
      socket.destroy();
      return;
    }
    const state: ConnState = { socket, kind: "sniffing", activeRequests: 0 };
    conns.set(socket, state);
    socket.once("close", () => conns.delete(socket));
    sniff(state);
  }

  /**
   * TLS: a connection is "sniffing" until its handshake ends, then ALPN
   * decides. tls.Server, not a TLSSocket wrapped by hand: HTTP/2 sessions
   * only receive the client's first bytes from sockets it made.
   */
  function tlsServer(keyPair: { cert: string | Buffer; key: string | Buffer }): tls.Server {
    // The TLS socket is another object than the accepted one; the peer's address and port link them.
    const peer = (s: net.Socket) => `${s.remoteAddress}|${s.remotePort}`;
    const handshaking = new Map<string, ConnState>();
    const secure = tls.createServer(
      {
        ...socketOptions,
        ...keyPair,
        ALPNProtocols: ["h2", "http/1.1"],
        minVersion: "TLSv1.2",
        // A connection that never finishes its handshake holds a socket no
        // longer than one that never sends a request head.
        handshakeTimeout: headersTimeoutMs,
      },
      (socket: tls.TLSSocket) => {
        const state = handshaking.get(peer(socket));
        handshaking.delete(peer(socket));
        if (state === undefined || closing) {
          socket.destroy();
          return;
        }
        state.socket = socket;
        state.kind = socket.alpnProtocol === "h2" ? "h2" : "h1";
        hand(state);
      },
    );
    secure.on("connection", (raw: net.Socket) => {
      if (closing) {
        raw.destroy();
        return;
      }
      const key = peer(raw);
      const state: ConnState = { socket: raw, kind: "sniffing", activeRequests: 0 };
      conns.set(raw, state);
      handshaking.set(key, state);
      raw.once("close", () => {
        conns.delete(raw);
        if (handshaking.get(key) === state) handshaking.delete(key);
      });
    });
    // Failed handshakes (an unknown CA, cleartext on the TLS port) and the
    // handshake timeout: the socket is ours to end (a timeout leaves it open).
    secure.on("tlsClientError", (err: Error, socket: tls.TLSSocket) => {
      log?.debug("tls handshake failed", { err: err.message });
      socket.destroy();
    });
    return secure;
  }

  /** Gives a connection whose protocol is known to its server. */
  function hand(state: ConnState): void {
    const { socket } = state;
    served.set(socket, state);
    if (state.kind === "h2") {
      handingOver = state;
      try {
        h2.emit("connection", socket);
      } finally {
        handingOver = undefined;
      }
    } else {
      h1.emit("connection", socket);
    }
  }

  function sniff(state: ConnState): void {
    const { socket } = state;
    let head: Buffer = Buffer.alloc(0);
    // Also ends a connection that sent part of the HTTP/2 preface and then nothing.
    const timer = setTimeout(() => socket.destroy(), headersTimeoutMs);
    const onError = (err: Error) => log?.debug("connection error before first request", { err: err.message });
    const onClose = () => clearTimeout(timer);
    const onData = (chunk: Buffer) => {
      head = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
      const n = Math.min(head.length, H2_PREFACE.length);
      const isH2Prefix = head.subarray(0, n).equals(H2_PREFACE.subarray(0, n));
      if (isH2Prefix && head.length < H2_PREFACE.length) return; // need more bytes to decide
      // Stop the flow before removing our listener, else bytes would be lost.
      socket.pause();
      socket.off("data", onData);
      socket.off("error", onError);
      socket.off("close", onClose);
      clearTimeout(timer);
      socket.unshift(head);
      state.kind = isH2Prefix ? "h2" : "h1";
      hand(state);
      // The servers attach their own readers; make sure the socket flows again.
      process.nextTick(() => {
        if (!socket.destroyed) socket.resume();
      });
    };
    socket.on("data", onData);
    socket.on("error", onError);
    socket.on("close", onClose);
  }

  try {
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen({ host: opts.host, port: opts.port }, () => {
        server.off("error", reject);
        resolve();
      });
    });
  } catch (err) {
    h1.close();
    h2.close();
    throw err;
  }
  server.on("error", (err) => log?.error("listener error", { err }));
  const address = server.address() as net.AddressInfo;

  function drainStep(): void {
    for (const state of conns.values()) {
      if (state.kind === "sniffing") {
        state.socket.destroy();
      } else if (state.kind === "h1") {
        if (state.activeRequests === 0) state.socket.end();
      } else if (state.session !== undefined && !state.session.closed) {
        // Sends GOAWAY; in-flight streams may finish, no new ones are accepted.
        state.session.close();
      }
    }
  }

  async function close(graceMs: number): Promise<void> {
    closing = true;
    const allClosed = new Promise<void>((resolve) => server.close(() => resolve()));
    drainStep();
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([
      allClosed.then(() => false),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(true), Math.max(0, graceMs));
      }),
    ]);
    clearTimeout(timer);
    if (timedOut) {
      log?.warn("shutdown grace period over, closing remaining connections", {
        connections: conns.size,
        graceMs,
      });
      for (const state of conns.values()) {
        state.session?.destroy();
        state.socket.destroy();
      }
      await allClosed;
    }
    // h1/h2 were never bound: close() only stops their internal timers.
    await new Promise<void>((resolve) => h1.close(() => resolve()));
    await new Promise<void>((resolve) => h2.close(() => resolve()));
  }

  return {
    port: address.port,
    close(graceMs: number) {
      closePromise ??= close(graceMs);
      return closePromise;
    },
  };
}
