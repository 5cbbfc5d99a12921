// Test events in the two wire shapes producers use: Connect/proto3 JSON and
// the plain objects @grpc/proto-loader expects (Struct spelled out).
import { type JsonValue, toStruct } from "../../scripts/lib/grpc-client.ts";

const ACTIONS = ["customer.created", "customer.updated", "invoice.billed", "account.deactivated", "user.login"];
const OUTCOMES = ["OUTCOME_SUCCESS", "OUTCOME_FAILURE", "OUTCOME_DENIED", "OUTCOME_UNKNOWN"];
const SEVERITIES = ["SEVERITY_INFO", "SEVERITY_WARNING", "SEVERITY_ERROR", "SEVERITY_CRITICAL"];

export type TestEvent = {
  id: string;
  occurredAt: Date;
  action: string;
  actor: { id: string; type: string; name: string; ip: string };
  target: { type: string; id: string; name: string };
  outcome: string;
  severity: string;
  context: { requestId: string; source: string };
  metadata: { [k: string]: JsonValue };
  message: string;
};

export function makeEvent(i: number, prefix = "ev", base = Date.UTC(2026, 10, 1)): TestEvent {
  return {
    id: `${prefix}-${i}`,
    occurredAt: new Date(base + i * 1000),
    action: ACTIONS[i % ACTIONS.length]!,
    actor: { id: `user-${i % 17}`, type: "ACTOR_TYPE_USER", name: `User ${i % 17}`, ip: `10.0.${i % 256}.${(i * 7) % 256}` },
    target: { type: i % 2 ? "customer" : "invoice", id: `t-${i % 101}`, name: `Target ${i % 101}` },
    outcome: OUTCOMES[i % OUTCOMES.length]!,
    severity: SEVERITIES[i % SEVERITIES.length]!,
    context: { requestId: `req-${i}`, source: "billing-api" },
    metadata: { plan: i % 3 ? "pro" : "free", seats: i % 50, nested: { region: `eu-${i % 4}`, flag: i % 2 === 0 } },
    message: `event number ${i} for user ${i % 17}`,
  };
}

export function toConnectJson(e: TestEvent): Record<string, unknown> {
  return { ...e, occurredAt: e.occurredAt.toISOString() };
}

export function toProtoLoader(e: TestEvent): Record<string, unknown> {
  const ms = e.occurredAt.getTime();
  return {
    ...e,
    occurredAt: { seconds: String(Math.floor(ms / 1000)), nanos: (ms % 1000) * 1_000_000 },
    metadata: toStruct(e.metadata),
  };
}
