// The messages of a TailEvents stream, built so that an event is encoded
// once per replica however many subscribers receive it.
//
// Every subscriber of a replica is handed the same record objects by the
// feed, so each event is built and encoded once, not once per subscriber:
// with 100 subscribers, encoding dominated the server's CPU. For the binary
// codecs a response carries already encoded bytes in protobuf-es's unknown
// fields, which toBinary writes out verbatim after the tag:
// - one event: the encoded StoredEvent, length-prefixed, as field 1, which
//   on the wire is exactly the `event` case of the oneof;
// - a batch: field 3 (`batch`), whose TailEventBatch body is the events'
//   field-1 entries one after another, so a batch is the concatenation of
//   its events' cached bytes (no encoding), built once for the subscribers
//   that take the same events at the same time.
// JSON clients get the message itself (JSON does not carry unknown fields).
import { create, toBinary } from "@bufbuild/protobuf";
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { type StoredEvent, StoredEventSchema } from "../../../gen/auditlog/v1/event_pb.js";
import {
  TailEventBatchSchema,
  type TailEventsResponse,
  TailEventsResponseSchema,
  TailHeartbeatSchema,
} from "../../../gen/auditlog/v1/query_pb.js";
import type { StoredRecord } from "../../domain/event-record.ts";
import { storedEventFromRecord } from "../../domain/event-record.ts";

const EVENT_FIELD = 1;
const BATCH_FIELD = 3;
// The tag of TailEventBatch.events (field 1, length-delimited): (1 << 3) | 2.
const EVENTS_TAG = 0x0a;

const events = new WeakMap<StoredRecord, StoredEvent>();
/** The encoded StoredEvent with its length prefix. */
const encoded = new WeakMap<StoredRecord, Uint8Array>();
const messages = new WeakMap<StoredRecord, TailEventsResponse>();
const binaryItems = new WeakMap<StoredRecord, TailEventsResponse>();

function storedEvent(r: StoredRecord): StoredEvent {
  let e = events.get(r);
  if (!e) {
    e = storedEventFromRecord(r);
    events.set(r, e);
  }
  return e;
}

function lengthPrefixed(r: StoredRecord): Uint8Array {
  let b = encoded.get(r);
  if (!b) {
    b = new BinaryWriter().bytes(toBinary(StoredEventSchema, storedEvent(r))).finish();
    encoded.set(r, b);
  }
  return b;
}

function withUnknown(no: number, data: Uint8Array): TailEventsResponse {
  const item = create(TailEventsResponseSchema);
  item.$unknown = [{ no, wireType: WireType.LengthDelimited, data }];
  return item;
}

/** One event in the `event` case (the same object for every subscriber). */
export function eventItem(r: StoredRecord, binary: boolean): TailEventsResponse {
  const cache = binary ? binaryItems : messages;
  let item = cache.get(r);
  if (!item) {
    item = binary
      ? withUnknown(EVENT_FIELD, lengthPrefixed(r))
      : create(TailEventsResponseSchema, { item: { case: "event", value: storedEvent(r) } });
    cache.set(r, item);
  }
  return item;
}

// The binary batches built last, by their first record: subscribers in step
// (the same filter, at the same position when the feed hands them the same
// events) take the same batch, which is then built once and shared. A few
// entries, bounded in events too, so that what they keep alive stays small.
const SHARED_BATCHES = 32;
const SHARED_BATCH_EVENTS = 4000;
const shared = new Map<StoredRecord, { records: readonly StoredRecord[]; item: TailEventsResponse }>();
let sharedEvents = 0;

function sameRecords(a: readonly StoredRecord[], b: readonly StoredRecord[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function share(records: readonly StoredRecord[], item: TailEventsResponse): void {
  const old = shared.get(records[0]!);
  if (old) {
    shared.delete(records[0]!);
    sharedEvents -= old.records.length;
  }
  shared.set(records[0]!, { records, item });
  sharedEvents += records.length;
  for (const [first, e] of shared) {
    if (shared.size <= SHARED_BATCHES && sharedEvents <= SHARED_BATCH_EVENTS) break;
    shared.delete(first);
    sharedEvents -= e.records.length;
  }
}

/** Events in sequence order in the `batch` case (`rs` is not changed afterwards: it may be kept). */
export function batchItem(rs: readonly StoredRecord[], binary: boolean): TailEventsResponse {
  if (!binary) {
    return create(TailEventsResponseSchema, {
      item: { case: "batch", value: create(TailEventBatchSchema, { events: rs.map(storedEvent) }) },
    });
  }
  const hit = shared.get(rs[0]!);
  if (hit && sameRecords(hit.records, rs)) return hit.item;
  const parts = rs.map(lengthPrefixed);
  let size = 0;
  for (const p of parts) size += 1 + p.length;
  const prefix = new BinaryWriter().uint32(size).finish();
  const data = new Uint8Array(prefix.length + size);
  data.set(prefix, 0);
  let at = prefix.length;
  for (const p of parts) {
    data[at++] = EVENTS_TAG;
    data.set(p, at);
    at += p.length;
  }
  const item = withUnknown(BATCH_FIELD, data);
  share(rs, item);
  return item;
}

export const heartbeatItem = (position: bigint): TailEventsResponse =>
  create(TailEventsResponseSchema, { item: { case: "heartbeat", value: create(TailHeartbeatSchema, { position }) } });
