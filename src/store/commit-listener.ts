// One LISTEN connection per replica on the commit channel: the writers of
// every replica NOTIFY after each commit (src/store/event-writer.ts), and
// this tells its callback which tenants' heads moved. The connection is not
// from a pool (it is held for the life of the replica); when it fails it is
// reopened with backoff, and the callback is told "any tenant" (null) once
// it listens again, since notifications sent meanwhile were lost.
import pg from "pg";
import { COMMIT_CHANNEL, parseCommitPayload } from "../platform/commit-channel.ts";
import type { Logger } from "../platform/log.ts";

export type CommitCallback = (heads: Map<string, bigint> | null) => void;

export class CommitListener {
  private readonly options: pg.ClientConfig;
  private readonly log: Logger;
  private readonly onCommit: CommitCallback;
  private client: pg.Client | null = null;
  private stopped = false;
  private started = false;
  private failures = 0;
  private timer: NodeJS.Timeout | null = null;

  constructor(options: pg.ClientConfig, log: Logger, onCommit: CommitCallback) {
    this.options = options;
    this.log = log;
    this.onCommit = onCommit;
  }

  /** Starts listening (idempotent); resolves after the first attempt. */
  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    await this.connect();
  }

  private async connect(): Promise<void> {
    if (this.stopped) return;
    const client = new pg.Client({ ...this.options, keepAlive: true, application_name: "auditlog-commit-listener" });
    const lost = (err?: Error) => {
      if (this.client !== client) return;
      this.client = null;
      client.end().catch(() => {});
      this.retry(err);
    };
    client.on("error", lost);
    client.on("end", () => lost());
    client.on("notification", (n) => {
      if (n.channel === COMMIT_CHANNEL) this.onCommit(parseCommitPayload(n.payload));
    });
    this.client = client;
    try {
      await client.connect();
      await client.query(`LISTEN ${COMMIT_CHANNEL}`);
      if (this.failures > 0) this.log.info("commit listener: listening again");
      this.failures = 0;
      this.onCommit(null);
    } catch (err) {
      if (this.client === client) {
        this.client = null;
        client.end().catch(() => {});
        this.retry(err as Error);
      }
    }
  }

  private retry(err?: Error): void {
    if (this.stopped) return;
    this.failures++;
    const delay = Math.min(100 * 2 ** Math.min(this.failures, 10), 5000);
    this.log.warn("commit listener: connection lost; reconnecting", { err: err?.message, retryInMs: delay });
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.connect();
    }, delay);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    const c = this.client;
    this.client = null;
    await c?.end().catch(() => {});
  }
}
