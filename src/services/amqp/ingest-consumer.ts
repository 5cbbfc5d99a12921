// Ingest from RabbitMQ (AMQP 0-9-1, amqplib): each message is one Event,
// taken through the API's own path (validation, group commit, idempotency
// by event id, hash chain: submitEvents of ingest-service.ts) and acked only
// after its PostgreSQL commit. Prefetch bounds the unacked messages in
// flight; when group commit's admission is full, submitEvents waits, no ack
// goes out, and the broker stops delivering: consumption pauses.
//
// A queue bound to a tenant takes messages without a key (whoever may
// publish to it, by the broker's permissions, writes that tenant's log); a
// message that carries a key there must carry a valid ingest key of that
// tenant, so a key of another tenant, a revoked one or one without the
// ingest scope is refused rather than ignored.
//
// A message that can never be stored (undecodable, invalid, no or a bad
// key, a key of another tenant than its queue's, an id already used by
// other content) goes to `<queue>.dead` with the reason in headers
// `x-auditlog-reason` and `x-auditlog-field`, then is acked. A storage
// failure is retried: the message is nacked back to the queue after a
// pause. The connection is re-established with backoff when the broker goes
// away; unacked messages are redelivered by the broker and idempotency
// makes the redelivery a DUPLICATE, acked like the original.
import { hostname } from "node:os";
import { Code, ConnectError } from "@connectrpc/connect";
import amqp, { type ChannelModel, type ConfirmChannel, type ConsumeMessage } from "amqplib";
import { EventStatus } from "../../../gen/auditlog/v1/ingest_pb.js";
import { authenticateRequest } from "../../auth/authenticate.ts";
import type { Authenticator } from "../../auth/authenticator.ts";
import type { TenantStatus } from "../../auth/tenant-status.ts";
import type { Logger } from "../../platform/log.ts";
import { type IngestDeps, submitEvents } from "../ingest-service.ts";
import { SummaryBuilder } from "../ingest-summary.ts";
import { authorizationOf, decodeEvent, type QueueBinding, type Refusal } from "./queue-message.ts";
import { sleepUntilAborted } from "../../platform/abortable-sleep.ts";

export type AmqpIngestOptions = {
  url: string;
  bindings: QueueBinding[];
  /** Unacked messages per channel (the in-flight bound). */
  prefetch: number;
  ingest: IngestDeps;
  auth: Authenticator;
  tenants?: TenantStatus;
  log: Logger;
};

const RETRY_PAUSE_MS = 1000;
const MAX_BACKOFF_MS = 10_000;

export const deadLetterQueue = (queue: string) => `${queue}.dead`;

export class AmqpIngestConsumer {
  private readonly o: AmqpIngestOptions;
  private readonly stopping = new AbortController();
  private connection: ChannelModel | null = null;
  private loop: Promise<void> | null = null;
  private readonly inFlight = new Set<Promise<void>>();
  /** Messages stored (accepted or duplicate) and dead-lettered since start. */
  readonly counts = { stored: 0, deadLettered: 0, retried: 0 };

  constructor(o: AmqpIngestOptions) {
    this.o = o;
  }

  start(): void {
    this.loop ??= this.run();
  }

  /** Stops consuming, lets the messages in flight commit and be acked, then closes the connection. */
  async close(): Promise<void> {
    this.stopping.abort();
    const c = this.connection;
    await Promise.allSettled([...this.inFlight]);
    await c?.close().catch(() => {});
    await this.loop;
  }

  private async run(): Promise<void> {
    let failures = 0;
    const { log } = this.o;
    while (!this.stopping.signal.aborted) {
      try {
        const closed = await this.connect();
        if (failures > 0) log.info("amqp ingest: connected again", { queues: this.o.bindings.map((b) => b.queue) });
        failures = 0;
        const why = await closed;
        if (this.stopping.signal.aborted) break;
        log.warn("amqp ingest: connection lost; reconnecting", { err: why });
      } catch (err) {
        log.warn("amqp ingest: cannot connect to the broker; retrying", { err: (err as Error).message });
      }
      this.connection = null;
      failures++;
      const delay = Math.min(200 * 2 ** Math.min(failures, 8), MAX_BACKOFF_MS);
      await sleepUntilAborted(delay, this.stopping.signal);
    }
  }

  /** Connects, declares the queues and starts consuming; resolves to a promise of the connection's end. */
  private async connect(): Promise<Promise<string>> {
    const conn = await amqp.connect(this.o.url, { clientProperties: { connection_name: `auditlog-ingest ${hostname()} ${process.pid}` } });
    this.connection = conn;
    const closed = new Promise<string>((resolve) => {
      conn.on("error", (err: Error) => resolve(err.message));
      conn.on("close", (err?: Error) => resolve(err?.message ?? "closed"));
    });
    try {
      const ch = await conn.createConfirmChannel();
      ch.on("error", () => {}); // reported by the connection's close
      await ch.prefetch(this.o.prefetch);
      for (const b of this.o.bindings) {
        await ch.assertQueue(b.queue, { durable: true });
        await ch.assertQueue(deadLetterQueue(b.queue), { durable: true });
      }
      for (const b of this.o.bindings) {
        await ch.consume(b.queue, (msg) => {
          if (!msg) return; // the broker cancelled the consumer (queue deleted): the connection loop recovers
          const p = this.handle(ch, b, msg)
            .catch((err: unknown) => this.o.log.error("amqp ingest: message handling failed", { err: String(err) }))
            .finally(() => this.inFlight.delete(p));
          this.inFlight.add(p);
        });
      }
    } catch (err) {
      await conn.close().catch(() => {});
      throw err;
    }
    this.o.log.info("amqp ingest: consuming", { queues: this.o.bindings.map((b) => b.queue), prefetch: this.o.prefetch });
    return closed;
  }

  private async handle(ch: ConfirmChannel, b: QueueBinding, msg: ConsumeMessage): Promise<void> {
    const decoded = decodeEvent(msg.properties.contentType as string | undefined, msg.content);
    if ("refusal" in decoded) return this.deadLetter(ch, b, msg, decoded.refusal);
    let tenantId = b.tenantId;
    const authorization = authorizationOf(msg.properties.headers);
    if (tenantId === null || authorization !== null) {
      try {
        const principal = await authenticateRequest(this.o.auth, { authorization }, "auditlog.v1.IngestService", "Ingest", this.o.tenants);
        if (principal.kind !== "key") throw new Error("only a tenant's API key with the ingest scope can publish events");
        // Names neither tenant: the dead-letter queue may be read by people of either.
        if (tenantId !== null && principal.tenantId !== tenantId) {
          throw new Error(`the message's API key belongs to another tenant than the one queue "${b.queue}" is bound to`);
        }
        tenantId = principal.tenantId;
      } catch (err) {
        if (isStorageTrouble(err)) return this.retry(ch, msg, err);
        return this.deadLetter(ch, b, msg, { reason: (err as Error).message, field: "authorization" });
      }
    }
    const summary = new SummaryBuilder();
    try {
      const { committed } = await submitEvents(this.o.ingest, tenantId, [decoded.event], 0, summary, this.stopping.signal);
      await committed;
    } catch (err) {
      return this.retry(ch, msg, err);
    }
    const r = summary.build().results[0];
    if (!r || r.status === EventStatus.DUPLICATE) {
      this.counts.stored++;
      settle(() => ch.ack(msg));
      return;
    }
    const field = r.status === EventStatus.CONFLICT ? "id" : r.field;
    return this.deadLetter(ch, b, msg, { reason: r.reason, field });
  }

  /** Storage trouble or shutting down: back to the queue after a pause (nothing was stored). */
  private async retry(ch: ConfirmChannel, msg: ConsumeMessage, err: unknown): Promise<void> {
    this.counts.retried++;
    if (!this.stopping.signal.aborted) {
      this.o.log.warn("amqp ingest: could not store a message; it goes back to the queue", { err: (err as Error).message });
      await sleepUntilAborted(RETRY_PAUSE_MS, this.stopping.signal);
    }
    settle(() => ch.nack(msg, false, true));
  }

  private async deadLetter(ch: ConfirmChannel, b: QueueBinding, msg: ConsumeMessage, r: Refusal): Promise<void> {
    const headers: Record<string, unknown> = {
      ...(msg.properties.headers ?? {}),
      "x-auditlog-reason": r.reason,
      "x-auditlog-field": r.field,
    };
    // The key does not travel on to the dead-letter queue, which other people may read.
    delete headers.authorization;
    delete headers.Authorization;
    delete headers["x-api-key"];
    try {
      await new Promise<void>((resolve, reject) => {
        ch.sendToQueue(
          deadLetterQueue(b.queue),
          msg.content,
          {
            headers,
            contentType: msg.properties.contentType as string | undefined,
            messageId: msg.properties.messageId as string | undefined,
            persistent: true,
          },
          (err) => (err ? reject(err) : resolve()),
        );
      });
      this.counts.deadLettered++;
      settle(() => ch.ack(msg));
    } catch (err) {
      // Not confirmed: the original stays unacked and is redelivered.
      this.o.log.warn("amqp ingest: dead-lettering failed", { queue: b.queue, err: (err as Error).message });
    }
  }
}

/**
 * Acks and nacks on a channel that closed meanwhile (the broker restarting)
 * throw; the broker redelivers those messages on the next connection, and
 * idempotency makes a committed one a DUPLICATE.
 */
function settle(fn: () => void): void {
  try {
    fn();
  } catch {
    // The channel is gone.
  }
}

function isStorageTrouble(err: unknown): boolean {
  // authenticateRequest answers UNAVAILABLE when the key store cannot be reached.
  return err instanceof ConnectError && err.code === Code.Unavailable;
}
