// An Append over its tenant's ingest rate is refused from its headers,
// before its body is read (src/services/ingest-rate-gate.ts through the
// transport's request gate), by the real service over gRPC, gRPC-Web and
// Connect: the same RESOURCE_EXHAUSTED, message and RetryInfo as the
// handler's refusal, even for a body that is no message at all (so it was
// never parsed), counted in the metrics; once the bucket has refilled, an
// Append goes through. Authentication failures are still answered by the
// auth interceptor, as before.
import { durationMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { expect, it } from "vitest";
import { RetryInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { NOT_JSON, NOT_PROTOBUF, rawUnaryCall } from "../support/raw-rpc.ts";
import { forEachServiceTransport } from "../support/transports.ts";

const APPEND = "/auditlog.v1.IngestService/Append";

const event = (id: string) => ({ id, occurredAt: { seconds: 1_714_979_289n }, action: "customer.created", actor: { id: "user-1" } });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** auditlog_rpc_requests_total of Append answered resource_exhausted, from GET /metrics. */
async function refusedAppends(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const m = /^auditlog_rpc_requests_total\{service="auditlog\.v1\.IngestService",method="Append",code="resource_exhausted"\} (\d+)$/m.exec(
    text,
  );
  return m ? Number(m[1]) : 0;
}

async function outcome(p: Promise<unknown>): Promise<ConnectError | null> {
  return p.then(
    () => null,
    (e: unknown) => ConnectError.from(e),
  );
}

forEachServiceTransport(
  (s) => {
    const id = (name: string) => `gate-${s.t.protocol}-${name}`;

    it("refuses an Append over the rate before reading its body, and takes one once the bucket has refilled", async () => {
      const { ingest } = s.clients(s.tenant.ingest);
      // Burst 2 at 1 event/s: at most two calls of 2 events fit.
      let refused: ConnectError | null = null;
      for (let i = 0; i < 4 && !refused; i++) refused = await outcome(ingest.append({ events: [event(id(`${i}a`)), event(id(`${i}b`))] }));
      expect(refused?.code).toBe(Code.ResourceExhausted);

      const before = await refusedAppends(s.url);
      const body = s.t.protocol === "connect" ? NOT_JSON : NOT_PROTOBUF;
      const raw = await rawUnaryCall(s.t.protocol, s.url, APPEND, body, { authorization: `Bearer ${s.tenant.ingest}` });
      expect(raw.error?.code).toBe(Code.ResourceExhausted);
      expect(raw.error!.rawMessage).toMatch(
        /^this tenant is over its ingest rate \(1 events\/s per server, bursts of up to 2\); retry after \d\.\d s$/,
      );
      const delay = durationMs(raw.error!.findDetails(RetryInfoSchema)[0]!.retryDelay!);
      expect(delay).toBeGreaterThan(0);
      expect(delay).toBeLessThanOrEqual(2_000);
      expect(await refusedAppends(s.url)).toBe(before + 1);

      await sleep(delay + 20);
      const ok = await ingest.append({ events: [event(id("after"))] });
      expect(ok.summary?.accepted).toBe(1n);
    });

    it("leaves bad credentials to the auth interceptor: UNAUTHENTICATED and PERMISSION_DENIED as before", async () => {
      const bad = await outcome(s.clients("alk_nosuchkey_secret").ingest.append({ events: [event(id("bad"))] }));
      expect(bad?.code).toBe(Code.Unauthenticated);
      const operator = await outcome(s.clients(s.operatorKey).ingest.append({ events: [event(id("op"))] }));
      expect(operator?.code).toBe(Code.PermissionDenied);
      const wrongScope = await outcome(s.clients(s.tenant.query).ingest.append({ events: [event(id("scope"))] }));
      expect(wrongScope?.code).toBe(Code.PermissionDenied);
    });
  },
  { AUDITLOG_TENANT_INGEST_RATE: "1", AUDITLOG_TENANT_INGEST_BURST: "2" },
);
