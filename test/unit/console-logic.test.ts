// The console's pure logic (console/src): the search in the URL, the
// EventFilter and export parameters it stands for, the before/after diff,
// the error details it shows, and the in-app syntax help.
import { create, toBinary } from "@bufbuild/protobuf";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { diffChanges } from "../../console/src/diff.ts";
import { fillBuckets } from "../../console/src/histogram.ts";
import { decodeBadRequest, showError } from "../../console/src/errors.ts";
import { curlForEvent } from "../../console/src/event-format.ts";
import { HELP_FIELDS } from "../../console/src/query-help.ts";
import { EMPTY_QUERY, queryFromParams, queryToParams, toEventFilter, toExportParams } from "../../console/src/query-state.ts";
import { Outcome, Severity } from "../../gen/auditlog/v1/event_pb.js";
import { BadRequestSchema, ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { requestFromParams } from "../../src/services/export-params.ts";
import { KNOWN_FIELDS_TEXT } from "../../src/domain/query-string.ts";

const NOW = Date.UTC(2026, 0, 10, 12, 0, 0);

describe("the search in the URL", () => {
  it("round-trips every setting and leaves defaults out", () => {
    const s = {
      ...EMPTY_QUERY,
      q: 'action:customer.* "card declined"',
      actorId: "u-1, u-2",
      outcome: ["DENIED"],
      severity: ["ERROR", "CRITICAL"],
      range: "custom" as const,
      from: "2026-01-01T00:00",
      order: "asc" as const,
      pageSize: 25,
    };
    expect(queryFromParams(queryToParams(s))).toEqual(s);
    expect(queryToParams(EMPTY_QUERY).toString()).toBe("");
  });

  it("drops values it does not know instead of sending them", () => {
    const s = queryFromParams(new URLSearchParams("outcome=NOPE&outcome=SUCCESS&range=1y&size=7&order=sideways"));
    expect(s.outcome).toEqual(["SUCCESS"]);
    expect(s.range).toBe(EMPTY_QUERY.range);
    expect(s.pageSize).toBe(EMPTY_QUERY.pageSize);
    expect(s.order).toBe("desc");
  });
});

describe("the filter a search stands for", () => {
  it("splits lists, maps enums and turns a preset into a lower time bound", () => {
    const f = toEventFilter(
      { ...EMPTY_QUERY, q: " x ", action: "a.b, c.*,", outcome: ["DENIED"], severity: ["WARNING"], range: "1h" },
      NOW,
    );
    expect(f.query).toBe("x");
    expect(f.actions).toEqual(["a.b", "c.*"]);
    expect(f.outcomes).toEqual([Outcome.DENIED]);
    expect(f.severities).toEqual([Severity.WARNING]);
    expect(timestampDate(f.occurredAfter as never).getTime()).toBe(NOW - 3_600_000);
    expect(f.occurredBefore).toBeUndefined();
    expect(toEventFilter({ ...EMPTY_QUERY, range: "all" }, NOW).occurredAfter).toBeUndefined();
  });

  it("gives /v1/export parameters that the service reads as the same filter", () => {
    const s = { ...EMPTY_QUERY, q: "actor.id:ada", targetType: "invoice", outcome: ["FAILURE"], actorType: ["USER"], range: "7d" as const };
    const req = requestFromParams(toExportParams(s, "csv", NOW));
    const f = toEventFilter(s, NOW);
    expect(req.filter?.query).toBe(f.query);
    expect(req.filter?.targetTypes).toEqual(f.targetTypes);
    expect(req.filter?.outcomes).toEqual(f.outcomes);
    expect(req.filter?.actorTypes).toEqual(f.actorTypes);
    expect(timestampDate(req.filter?.occurredAfter as never).getTime()).toBe(NOW - 7 * 86_400_000);
  });
});

describe("the before/after diff", () => {
  it("lists added, removed, changed and unchanged key paths, nested ones dotted", () => {
    const rows = diffChanges(
      { plan: "free", seats: 3, billing: { cycle: "monthly" }, same: 1 },
      { plan: "pro", seats: 3, owner: "ada", same: 1 },
    );
    expect(rows).toEqual([
      { path: "billing.cycle", kind: "removed", before: "monthly" },
      { path: "owner", kind: "added", after: "ada" },
      { path: "plan", kind: "changed", before: "free", after: "pro" },
      { path: "same", kind: "same", before: 1, after: 1 },
      { path: "seats", kind: "same", before: 3, after: 3 },
    ]);
    expect(diffChanges({ tags: ["a"] }, { tags: ["a", "b"] })).toEqual([
      { path: "tags", kind: "changed", before: ["a"], after: ["a", "b"] },
    ]);
    expect(diffChanges(undefined, undefined)).toEqual([]);
  });
});

describe("errors as the service gave them", () => {
  it("shows the field violations of a google.rpc.BadRequest and the query position of an ErrorInfo", () => {
    const bad = create(BadRequestSchema, { fieldViolations: [{ field: "filter.query", description: "empty value at position 9" }] });
    const info = create(ErrorInfoSchema, { reason: "QUERY_SYNTAX", domain: "auditlog", metadata: { position: "9" } });
    // The details as they arrive in a browser: type name and bytes.
    const incoming = new ConnectError("filter.query: empty value at position 9", Code.InvalidArgument, undefined, [
      { type: "google.rpc.BadRequest", value: toBinary(BadRequestSchema, bad) },
      { type: "google.rpc.ErrorInfo", value: toBinary(ErrorInfoSchema, info) },
    ] as never);
    expect(showError(incoming)).toEqual({
      code: "INVALID_ARGUMENT",
      message: "filter.query: empty value at position 9",
      violations: [{ field: "filter.query", description: "empty value at position 9" }],
      queryPosition: 9,
    });
    expect(decodeBadRequest(toBinary(BadRequestSchema, bad))).toEqual([
      { field: "filter.query", description: "empty value at position 9" },
    ]);
  });

  it("finds the position in the message when there is no detail, and names codes as gRPC does", () => {
    expect(showError(new ConnectError('query: empty value for "actor.id" at position 27', Code.InvalidArgument)).queryPosition).toBe(27);
    expect(showError(new ConnectError("no", Code.PermissionDenied))).toEqual({ code: "PERMISSION_DENIED", message: "no", violations: [] });
  });
});

it("the curl command carries $KEY, never a credential, and quotes for the shell", () => {
  const c = curlForEvent("http://h:1", "it's", "acme");
  expect(c).toContain('"Authorization: Bearer $KEY"');
  expect(c).toContain(`-d '{"id":"it'\\''s"}'`);
  expect(c).toContain("x-auditlog-tenant: acme");
});

it("the in-app syntax help lists every field the parser knows", () => {
  const help = HELP_FIELDS.map(([f]) => f).join(" ");
  for (const field of KNOWN_FIELDS_TEXT.split(", ")) expect(help, field).toContain(field);
});

describe("the histogram's points", () => {
  it("fills the searched range with empty buckets aligned with the service's", () => {
    expect(fillBuckets([7200], [5], 3600, 0, 4 * 3600 + 10)).toEqual([
      [0, 3600, 7200, 10800, 14400],
      [0, 0, 5, 0, 0],
    ]);
    expect(fillBuckets([3600, 10800], [1, 2], 3600)).toEqual([
      [3600, 7200, 10800],
      [1, 0, 2],
    ]);
  });

  it("leaves buckets off the grid, unknown steps and huge ranges as they are", () => {
    expect(fillBuckets([0, 100], [1, 2], 60)).toEqual([
      [0, 100],
      [1, 2],
    ]);
    expect(fillBuckets([0], [1], 0, -100, 100)).toEqual([[0], [1]]);
    expect(fillBuckets([0], [1], 1, 0, 10_000)).toEqual([[0], [1]]);
  });
});
