// How a TailEvents batch is encoded for a binary client, per subscriber:
// encoding the TailEventBatch message vs concatenating the events' cached
// encodings (src/services/tail/tail-items.ts). CPU only, no service.
//
//   npx node bench/tail-encode.ts
import { create, toBinary } from "@bufbuild/protobuf";
import { TailEventBatchSchema, TailEventsResponseSchema } from "../gen/auditlog/v1/query_pb.js";
import { storedEventFromRecord } from "../src/domain/event-record.ts";
import { batchItem } from "../src/services/tail/tail-items.ts";
import { chainRecords, minimalEvent } from "../test/unit/fixtures.ts";
const recs = chainRecords(
  Array.from({ length: 100 }, (_, i) => minimalEvent({ id: `e${i}`, message: `benchmark event ${i}`, actor: { id: `user-${i}` } })),
);
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
