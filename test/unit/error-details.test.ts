// Which standard details each mapped error carries (src/services/errors.ts).
import { durationMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { errors as esErrors } from "@elastic/elasticsearch";
import { describe, expect, it } from "vitest";
import { BadRequestSchema, ErrorInfoSchema, RetryInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { PageTokenError } from "../../src/domain/page-token.ts";
import { QuerySyntaxError } from "../../src/domain/query-string.ts";
import { connectErrorOf, RETRY_DELAY_MS, withRetryInfo } from "../../src/services/errors.ts";
import { RateLimitError } from "../../src/services/rate-limiter.ts";
import { TenantBusyError } from "../../src/services/tenant-read-limiter.ts";

describe("connectErrorOf details", () => {
  it("a query syntax error: BadRequest on filter.query and ErrorInfo QUERY_SYNTAX with the position", () => {
    const err = connectErrorOf(new QuerySyntaxError("unexpected end of query", 11))!;
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.rawMessage).toBe("filter.query: unexpected end of query at position 11");
    expect(err.findDetails(BadRequestSchema)[0]!.fieldViolations[0]).toMatchObject({
      field: "filter.query",
      description: "unexpected end of query at position 11",
    });
    expect(err.findDetails(ErrorInfoSchema)[0]).toMatchObject({
      reason: "QUERY_SYNTAX",
      domain: "auditlog.v1",
      metadata: { position: "11" },
    });
  });

  it("a bad page token names page_token", () => {
    const err = connectErrorOf(new PageTokenError("not a token of this query"))!;
    expect(err.rawMessage).toBe("page_token: not a token of this query");
    expect(err.findDetails(BadRequestSchema)[0]!.fieldViolations.map((v) => v.field)).toEqual(["page_token"]);
  });

  it("over a rate: RetryInfo with the limiter's delay; larger than the burst: no RetryInfo, ErrorInfo BATCH_EXCEEDS_BURST", () => {
    const limit = { ratePerSecond: 10, burst: 20 };
    const late = connectErrorOf(new RateLimitError("ingest", "events", "tenant", 5, limit, 1234))!;
    expect(late.code).toBe(Code.ResourceExhausted);
    expect(durationMs(late.findDetails(RetryInfoSchema)[0]!.retryDelay!)).toBe(1234);

    const never = connectErrorOf(new RateLimitError("ingest", "events", "tenant", 50, limit, Number.POSITIVE_INFINITY))!;
    expect(never.findDetails(RetryInfoSchema)).toEqual([]);
    expect(never.findDetails(ErrorInfoSchema)[0]!.reason).toBe("BATCH_EXCEEDS_BURST");
  });

  it("a tenant's reads all taken: RetryInfo of RETRY_DELAY_MS.tenantBusy", () => {
    const err = connectErrorOf(new TenantBusyError(4))!;
    expect(durationMs(err.findDetails(RetryInfoSchema)[0]!.retryDelay!)).toBe(RETRY_DELAY_MS.tenantBusy);
  });

  // errors.ts recognises the client's timeout by shape, so that it need not load the client.
  it("Elasticsearch's request timeout is DEADLINE_EXCEEDED; another error named TimeoutError is not", () => {
    expect(connectErrorOf(new esErrors.TimeoutError("Request timed out"))!.code).toBe(Code.DeadlineExceeded);
    expect(connectErrorOf(new esErrors.ConnectionError("connect ECONNREFUSED"))).toBeNull();
    expect(connectErrorOf(new DOMException("The operation timed out.", "TimeoutError"))).toBeNull();
  });
});

describe("withRetryInfo", () => {
  it("adds a RetryInfo to UNAVAILABLE and RESOURCE_EXHAUSTED without details, and leaves the others alone", () => {
    const added = withRetryInfo(new ConnectError("server is busy", Code.Unavailable));
    expect(added.rawMessage).toBe("server is busy");
    expect(durationMs(added.findDetails(RetryInfoSchema)[0]!.retryDelay!)).toBe(RETRY_DELAY_MS.unavailable);
    const other = new ConnectError("nope", Code.NotFound);
    expect(withRetryInfo(other)).toBe(other);
  });
});
