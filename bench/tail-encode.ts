// How a TailEvents batch is encoded for a binary client, per subscriber:
// encoding the TailEventBatch message vs concatenating the events' cached
// encodings (src/services/tail/tail-items.ts). CPU only, no service.
//
//   npx node bench/tail-encode.ts
import { create, toBinary } from "@bufbuild/protobuf";
import { TailEventBatchSchema, TailEventsResponseSchema } from "../gen/auditlog/v1/query_pb.js";
import { batchItem } from "../src/services/tail/tail-items.ts";
import { EventSchema } from "../gen/auditlog/v1/event_pb.js";
import { recordFromEvent, type StoredRecord, storedEventFromRecord } from "../src/domain/event-record.ts";

// Events of bench/tail.ts's shape; the chain fields only need to be present.
const recs: StoredRecord[] = Array.from({ length: 100 }, (_, i) => ({
  ...recordFromEvent(
    create(EventSchema, {
      id: `tail-${i}`,
      occurredAt: { seconds: 1_764_489_600n },
      action: "bench.tail",
      actor: { id: `user-${i}` },
      message: `benchmark event ${i}`,
      metadata: { sentAt: 1_764_489_600_000.5, n: i },
    }),
  ),
  tenantId: "bench-tail",
  sequence: BigInt(i + 1),
  receivedAt: 1_764_489_600_000_000n + BigInt(i),
  contentHash: "0".repeat(64),
  hash: "1".repeat(64),
  prevHash: "2".repeat(64),
}));
const events = recs.map(storedEventFromRecord);
const N = 2000;
batchItem(recs, true);
let t = performance.now();
for (let i = 0; i < N; i++)
  toBinary(
    TailEventsResponseSchema,
    create(TailEventsResponseSchema, { item: { case: "batch", value: create(TailEventBatchSchema, { events }) } }),
  );
const enc = (performance.now() - t) / N;
t = performance.now();
for (let i = 0; i < N; i++) toBinary(TailEventsResponseSchema, batchItem(recs, true));
const cat = (performance.now() - t) / N;
console.log(
  `100-event batch, per subscriber: toBinary of the batch ${(enc * 1000).toFixed(0)} us; concat of cached encodings + toBinary ${(cat * 1000).toFixed(0)} us; bytes ${toBinary(TailEventsResponseSchema, batchItem(recs, true)).length}`,
);
