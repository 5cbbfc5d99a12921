// One TailEvents subscriber of bench/tail.ts, behaving like a real client:
// it follows the stream, and when the stream ends (RESOURCE_EXHAUSTED with
// a resume position, or any other error) it reconnects after the last
// position it was told, counting resumes. It asks for every event of the
// benchmark's tenant (no filter: the service's access audit adds events of
// its own, one per stream opened), so sequences must arrive as 1, 2, 3, ...
// from where it started: anything else is a gap or a duplicate, counted in
// the phase under way.
//
// Per event it records, by the phase the producer tagged it with (its id is
// tail-<phase>-<n>-<send time in microseconds>):
// - send -> delivery: the producer's wall clock when it sent the event;
// - received_at -> delivery: received_at is taken by the server at the
//   start of the write transaction that commits the event, so this is
//   commit -> delivery plus at most that transaction (the commit's
//   duration is reported beside it from /metrics).
// Same machine, same clock (performance.timeOrigin + now()).
import { Code, ConnectError } from "@connectrpc/connect";
import type * as hdr from "hdr-histogram-js";
import type { StoredEvent } from "../gen/auditlog/v1/event_pb.js";
import { ErrorInfoSchema } from "../gen/google/rpc/error_details_pb.js";
import { newHistogram, wallMs } from "./producer.ts";
import type { TailClient } from "./tail-minimal-client.ts";

export type PhaseCounts = {
  /** Events of the phase delivered (first time). */
  delivered: number;
  /** Messages that carried events (an event or a batch), received while the phase was under way. */
  messages: number;
  /** Events skipped: a sequence that jumped, or a heartbeat past events never received. */
  gaps: number;
  /** Events received again (a sequence at or below the last one). */
  duplicates: number;
  /** Streams reopened after RESOURCE_EXHAUSTED with a resume position. */
  resumes: number;
  /** Streams reopened after another error. */
  reconnects: number;
  /** Of the resumes: the resume position differed from the last sequence received. */
  resumeMismatches: number;
};

export type PhaseStats = PhaseCounts & { send: hdr.Histogram; commit: hdr.Histogram };

export const newPhaseStats = (): PhaseStats => ({
  delivered: 0,
  messages: 0,
  gaps: 0,
  duplicates: 0,
  resumes: 0,
  reconnects: 0,
  resumeMismatches: 0,
  send: newHistogram(),
  commit: newHistogram(),
});

/** Statistics by phase, shared by the subscribers of one process. */
export class PhaseBook {
  readonly phases = new Map<number, PhaseStats>();
  /** The phase the producer is in (resumes and reconnects are counted there). */
  current = 0;

  of(phase: number): PhaseStats {
    let s = this.phases.get(phase);
    if (!s) {
      s = newPhaseStats();
      this.phases.set(phase, s);
    }
    return s;
  }
}

export type SubscriberOptions = {
  client: TailClient;
  authorization: string;
  maxBatch: number;
  book: PhaseBook;
  signal: AbortSignal;
  /** Called once, when the first heartbeat (the starting position) arrived. */
  onReady: () => void;
  /** A stream error, or a gap (what was received, for the report). */
  onError: (message: string) => void;
};

const micros = (ms: number) => Math.max(0, Math.round(ms * 1000));

/** The id bench/tail.ts gives event `n` of a phase, sent at wall-clock `sentMs`. */
export const producerEventId = (phase: number, n: number, sentMs: number) => `tail-${phase}-${n}-${Math.round(sentMs * 1000)}`;

function producerTag(id: string): { phase: number; sentMs: number } | null {
  const m = /^tail-(\d+)-\d+-(\d+)$/.exec(id);
  return m ? { phase: Number(m[1]), sentMs: Number(m[2]) / 1000 } : null;
}

function receivedAtMs(e: StoredEvent): number | null {
  const t = e.receivedAt;
  return t ? Number(t.seconds) * 1000 + t.nanos / 1e6 : null;
}

export class ResumingSubscriber {
  /** The last position received (an event's sequence or a heartbeat's position); null before the first message. */
  last: bigint | null = null;
  /** Events delivered, by phase. */
  readonly deliveredByPhase = new Map<number, number>();
  private readonly o: SubscriberOptions;
  private ready = false;

  constructor(o: SubscriberOptions) {
    this.o = o;
  }

  async run(): Promise<void> {
    const { book, signal } = this.o;
    while (!signal.aborted) {
      try {
        const req = { maxBatch: this.o.maxBatch, afterPosition: this.last ?? undefined };
        for await (const item of this.o.client.tailEvents(req, { headers: { authorization: this.o.authorization }, signal })) {
          const it = item.item;
          if (it.case === "heartbeat") this.heartbeat(it.value.position);
          else if (it.case === "event") this.events([it.value]);
          else if (it.case === "batch") this.events(it.value.events);
        }
        // The server ended the stream without an error (shutdown): reconnect.
        if (!signal.aborted) book.of(book.current).reconnects++;
      } catch (err) {
        if (signal.aborted) return;
        const e = ConnectError.from(err);
        const resume = e.code === Code.ResourceExhausted ? e.findDetails(ErrorInfoSchema)[0]?.metadata["resume_position"] : undefined;
        if (resume !== undefined) {
          const at = BigInt(resume);
          const s = book.of(book.current);
          s.resumes++;
          if (at !== this.last) s.resumeMismatches++;
          this.last = at;
        } else {
          book.of(book.current).reconnects++;
          this.o.onError(`${Code[e.code]}: ${e.rawMessage}`);
          await new Promise((r) => setTimeout(r, 500));
        }
      }
    }
  }

  private heartbeat(position: bigint): void {
    if (this.last !== null && position > this.last) {
      // Every event matches: a heartbeat past the last event received skipped some.
      this.o.book.of(this.o.book.current).gaps += Number(position - this.last);
      this.o.onError(`gap: heartbeat at ${position} after ${this.last}`);
    }
    if (this.last === null || position > this.last) this.last = position;
    if (!this.ready) {
      this.ready = true;
      this.o.onReady();
    }
  }

  private events(events: readonly StoredEvent[]): void {
    const now = wallMs();
    const current = this.o.book.of(this.o.book.current);
    current.messages++;
    for (const e of events) {
      if (this.last !== null && e.sequence <= this.last) {
        current.duplicates++;
        continue;
      }
      if (this.last !== null && e.sequence > this.last + 1n) {
        current.gaps += Number(e.sequence - this.last - 1n);
        this.o.onError(`gap: event ${e.sequence} after ${this.last}`);
      }
      this.last = e.sequence;
      // The producer's events carry their phase and send time; the service's own (access audit) do not.
      const tag = producerTag(e.event?.id ?? "");
      if (!tag) continue;
      const s = this.o.book.of(tag.phase);
      s.delivered++;
      this.deliveredByPhase.set(tag.phase, (this.deliveredByPhase.get(tag.phase) ?? 0) + 1);
      s.send.recordValue(micros(now - tag.sentMs));
      const received = receivedAtMs(e);
      if (received !== null) s.commit.recordValue(micros(now - received));
    }
  }
}
