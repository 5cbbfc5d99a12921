// Accumulates the per-event outcomes of an Ingest stream or Append batch
// into the IngestSummary the caller gets back.
import { create } from "@bufbuild/protobuf";
import {
  type EventResult,
  EventResultSchema,
  EventStatus,
  type IngestSummary,
  IngestSummarySchema,
} from "../../gen/auditlog/v1/ingest_pb.js";
import type { WriteResult } from "../store/event-writer.ts";
import type { FieldViolation } from "../domain/event-validation.ts";
import { describeViolations } from "./request-context.ts";

export class SummaryBuilder {
  accepted = 0n;
  duplicates = 0n;
  rejected = 0n;
  conflicts = 0n;
  position = 0n;
  private results: EventResult[] = [];

  reject(index: number, id: string, violations: FieldViolation[]): void {
    this.rejected++;
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
