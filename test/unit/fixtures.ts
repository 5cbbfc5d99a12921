// Shared builders for unit tests: valid events and chained stored records,
// made the way the service makes them (recordFromEvent, then chainHash as in
// src/store/event-writer.ts).
import { createHash } from "node:crypto";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { ActorType, type Event, EventSchema, Outcome, Severity } from "../../gen/auditlog/v1/event_pb.js";
import { recordFromEvent, type StoredRecord } from "../../src/domain/event-record.ts";
import { chainHash, GENESIS_HASH, sealContent } from "../../src/domain/hash-chain.ts";
import type { Micros } from "../../src/domain/timestamp.ts";

/** The plain-object form of an Event init (not a ready Event message). */
export type EventInit = Exclude<MessageInitShape<typeof EventSchema>, Event>;

/** A minimal valid event; `init` overrides its fields. */
export function minimalEvent(init: EventInit = {}): Event {
  return create(EventSchema, {
    occurredAt: { seconds: 1_714_979_289n, nanos: 123_456_789 },
    action: "customer.created",
    actor: { id: "user-1" },
    ...init,
  });
}

/** An event with every field set. */
export function fullEvent(init: EventInit = {}): Event {
  return create(EventSchema, {
    id: "01HZX3J5K6M7N8P9Q0R1S2T3U4",
    occurredAt: { seconds: 1_714_979_289n, nanos: 123_456_000 },
    action: "customer.address.changed",
    actor: {
      id: "user-42",
      type: ActorType.USER,
      name: "Ada Lovelace",
      ip: "2001:db8::1",
      userAgent: "Mozilla/5.0",
      sessionId: "sess-9",
    },
    target: { type: "customer", id: "cus_123", name: "ACME Ltd" },
    outcome: Outcome.DENIED,
    severity: Severity.WARNING,
    context: { requestId: "req-1", traceId: "4bf92f3577b34da6a3ce929d0e0e4736", source: "billing-api", location: "eu-west-1" },
    changes: {
      before: { street: "Old Road 1", tags: ["a", "b"], nested: { n: 1 } },
      after: { street: "New Road 2", tags: [], nested: { n: 2.5, ok: true, none: null } },
    },
    metadata: { plan: "pro", seats: 12, flags: { beta: true }, list: [1, "two", null, { three: 3 }], ü: "ñ" },
    message: "Address changed by Ada — ✓",
    ...init,
  });
}

/** A salt as the writer makes one (32 hex digits), but the same for the same tenant and sequence, so tests can rebuild a chain. */
export function fixedSalt(tenantId: string, sequence: bigint): string {
  return createHash("sha256").update(`${tenantId}/${sequence}`).digest("hex").slice(0, 32);
}

/**
 * Chains `events` for one tenant starting after `prev` (sequence 0 and the
 * genesis hash by default), exactly as the event writer does: each with a
 * salt (fixedSalt), or, with `unsalted`, as events were written before
 * salts (content hash version 1).
 */
export function chainRecords(
  events: Event[],
  opts: { tenantId?: string; receivedAt?: Micros; prevSequence?: bigint; prevHash?: string; unsalted?: boolean } = {},
): StoredRecord[] {
  const tenantId = opts.tenantId ?? "tenant-a";
  let sequence = opts.prevSequence ?? 0n;
  let prev = opts.prevHash ?? GENESIS_HASH;
  return events.map((e, i) => {
    const record = recordFromEvent(e);
    sequence += 1n;
    const sealed = sealContent(record, opts.unsalted ? "" : fixedSalt(tenantId, sequence));
    const link = {
      tenantId,
      sequence,
      receivedAt: (opts.receivedAt ?? 1_714_979_300_000_000n) + BigInt(i),
      contentHash: sealed.contentHash,
    };
    const hash = chainHash(prev, link);
    const stored: StoredRecord = { ...record, ...link, hash, prevHash: prev, ...(opts.unsalted ? {} : { salt: sealed.salt }) };
    prev = hash;
    return stored;
  });
}
