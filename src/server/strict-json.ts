// Strict google.protobuf.Timestamp values in request JSON: impossible
// calendar dates (2026-02-30) are refused, not normalised by protobuf-es
// into another day (why, and the check: src/domain/strict-json.ts, shared
// with AMQP ingest). connect-es decodes a request body to text with
// `jsonOptions.textDecoder` right before protobuf-es parses it, for every
// protocol that carries JSON (Connect unary, Connect streaming envelopes,
// Connect GET `message=`, gRPC and gRPC-Web with +json); the server
// registers each method with a decoder made here for its input type. A
// violation is INVALID_ARGUMENT naming the field (`events[1].occurred_at`).
import type { DescMessage } from "@bufbuild/protobuf";
import { canHoldTimestamp, strictTimestampViolation } from "../domain/strict-json.ts";
import { fieldError } from "../platform/error-details.ts";

/**
 * A `jsonOptions.textDecoder` for requests of type `desc`: UTF-8 as connect-es
 * decodes it, then the strict Timestamp check. Messages without a Timestamp
 * anywhere in their type are not parsed a second time, nor are texts whose
 * time-like strings are all valid.
 */
export function strictJsonDecoder(desc: DescMessage): { decode(input?: Uint8Array): string } {
  const utf8 = new TextDecoder();
  const walk = canHoldTimestamp(desc);
  return {
    decode(input?: Uint8Array): string {
      const text = utf8.decode(input);
      const v = walk ? strictTimestampViolation(desc, text) : null;
      if (v) throw fieldError(v.field, v.reason);
      return text;
    },
  };
}
