// Accumulates the per-event outcomes of an Ingest stream or Append batch
// into the IngestSummary the caller gets back.
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  type EventResult,
  EventResultSchema,
  EventStatus,
  type IngestSummary,
  IngestSummarySchema,
} from "../../gen/auditlog/v1/ingest_pb.js";
import type { WriteResult } from "../store/event-writer.ts";
import type { FieldViolation } from "../domain/event-validation.ts";
import { badRequestDetail, type Detail, describeViolations, errorInfoDetail, type Violation } from "../platform/error-details.ts";

export class SummaryBuilder {
  accepted = 0n;
  duplicates = 0n;
  rejected = 0n;
  conflicts = 0n;
  position = 0n;
  private results: EventResult[] = [];
  /** Of rejected events, each violation with its path from the request (`events[i].<field>`). */
  private violations: Violation[] = [];

  reject(index: number, id: string, violations: FieldViolation[]): void {
    this.rejected++;
    for (const v of violations) this.violations.push({ field: `events[${index}]${v.field ? `.${v.field}` : ""}`, reason: v.reason });
    this.results.push(
      create(EventResultSchema, {
        index,
        id,
        status: EventStatus.REJECTED,
        field: violations[0]?.field ?? "",
        reason: describeViolations(violations),
      }),
    );
  }

  record(index: number, id: string, r: WriteResult): void {
    if (r.status === "accepted") {
      this.accepted++;
      if (r.sequence > this.position) this.position = r.sequence;
      return;
    }
    if (r.status === "duplicate") this.duplicates++;
    else this.conflicts++;
    this.results.push(
      create(EventResultSchema, {
        index,
        id,
        status: r.status === "duplicate" ? EventStatus.DUPLICATE : EventStatus.CONFLICT,
        reason:
          r.status === "duplicate"
            ? "already stored with the same content"
            : "id already used by an event with different content; the stored event is unchanged",
        sequence: r.sequence,
      }),
    );
  }

  /**
   * When no event of an Append was stored or already there: the error that
   * fails the call, saying in its message what was wrong with each event
   * (grpcurl and curl users see only that) and in details for programs:
   * INVALID_ARGUMENT with a google.rpc.BadRequest (one violation per bad
   * field of each rejected event), or ALREADY_EXISTS when every event
   * conflicts; a google.rpc.ErrorInfo EVENT_ID_CONFLICT (id, stored
   * sequence, index) per conflicting event in both cases.
   */
  refusedError(): ConnectError | null {
    if (this.accepted > 0n || this.duplicates > 0n) return null;
    const results = this.build().results;
    const message = results.map((r) => `events[${r.index}] (id "${r.id}"): ${r.reason}`).join("; ");
    const conflicts: Detail[] = results
      .filter((r) => r.status === EventStatus.CONFLICT)
      .map((r) => errorInfoDetail("EVENT_ID_CONFLICT", { id: r.id, sequence: String(r.sequence), index: String(r.index) }));
    if (this.rejected === 0n) return new ConnectError(message, Code.AlreadyExists, undefined, conflicts);
    return new ConnectError(message, Code.InvalidArgument, undefined, [badRequestDetail(this.violations), ...conflicts]);
  }

  build(): IngestSummary {
    return create(IngestSummarySchema, {
      accepted: this.accepted,
      duplicates: this.duplicates,
      rejected: this.rejected,
      conflicts: this.conflicts,
      results: this.results.sort((a, b) => a.index - b.index),
      position: this.position,
    });
  }
}
