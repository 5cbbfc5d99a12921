// The standard error details (google.rpc, proto/google/rpc/error_details.proto)
// that every protocol carries next to the status message: in the
// `grpc-status-details-bin` trailer over gRPC and gRPC-Web, in `details` of a
// Connect error. grpcio, grpc-js, connect-web and `buf curl` decode them, so
// clients read the bad field, the conflicting id or the retry delay without
// parsing message text. Neutral, so the transport (request checks before any
// handler) and the handlers build them alike; which error gets which details
// is decided in src/services/errors.ts.
import { create, type DescMessage, type MessageInitShape } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { BadRequestSchema, ErrorInfoSchema, RetryInfoSchema } from "../../gen/google/rpc/error_details_pb.js";

/** google.rpc.ErrorInfo.domain of our errors. */
export const ERROR_DOMAIN = "auditlog.v1";

/** A bad request element: its path (as protovalidate writes it; "" for the request as a whole) and why. */
export type Violation = { field: string; reason: string };

/** One detail as ConnectError takes it. */
export type Detail = { desc: DescMessage; value: MessageInitShape<DescMessage> };

function detail<Desc extends DescMessage>(desc: Desc, value: MessageInitShape<Desc>): Detail {
  return { desc, value: create(desc, value) as MessageInitShape<DescMessage> };
}

export function badRequestDetail(violations: readonly Violation[]): Detail {
  return detail(BadRequestSchema, { fieldViolations: violations.map((v) => ({ field: v.field, description: v.reason })) });
}

/** `reason`: UPPER_SNAKE_CASE, unique within ERROR_DOMAIN. */
export function errorInfoDetail(reason: string, metadata: Record<string, string>): Detail {
  return detail(ErrorInfoSchema, { reason, domain: ERROR_DOMAIN, metadata });
}

export function retryInfoDetail(delayMs: number): Detail {
  return detail(RetryInfoSchema, { retryDelay: durationFromMs(Math.max(0, Math.ceil(delayMs))) });
}

export function describeViolations(violations: readonly Violation[]): string {
  return violations.map((v) => (v.field ? `${v.field}: ${v.reason}` : v.reason)).join("; ");
}

/** INVALID_ARGUMENT naming each bad field in the message and in a google.rpc.BadRequest. */
export function invalidArgument(violations: readonly Violation[], more: readonly Detail[] = [], cause?: unknown): ConnectError {
  return new ConnectError(describeViolations(violations), Code.InvalidArgument, undefined, [badRequestDetail(violations), ...more], cause);
}

/** INVALID_ARGUMENT for one bad field. */
export function fieldError(field: string, reason: string, cause?: unknown): ConnectError {
  return invalidArgument([{ field, reason }], [], cause);
}

/** UNAVAILABLE or RESOURCE_EXHAUSTED telling the client when to retry. */
export function retryableError(message: string, code: Code, delayMs: number, cause?: unknown): ConnectError {
  return new ConnectError(message, code, undefined, [retryInfoDetail(delayMs)], cause);
}
