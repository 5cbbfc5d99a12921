"""A producer and reader in Python, with nothing but grpcio and the stubs that
Debian's protoc and grpc_python_plugin generate from the repository's protos
(see README, "Clients in other languages"). Run by
test/integration/python-client.test.ts; also a starting point for users.

Environment: AUDITLOG_TARGET (host:port, plaintext HTTP/2), AUDITLOG_KEY (an
API key with the ingest and query scopes, of a tenant of its own), RUN_ID
(a prefix for event ids).
The generated modules must be on PYTHONPATH. Prints one JSON object.
"""

import json
import os
import sys

import grpc
from google.protobuf import struct_pb2, timestamp_pb2

from auditlog.v1 import event_pb2, ingest_pb2, ingest_pb2_grpc, query_pb2, query_pb2_grpc
from google.rpc import error_details_pb2, status_pb2

TARGET = os.environ["AUDITLOG_TARGET"]
KEY = os.environ["AUDITLOG_KEY"]
RUN_ID = os.environ.get("RUN_ID", "py")
AUTH = (("authorization", f"Bearer {KEY}"),)


def event(i, action="customer.created"):
    metadata = struct_pb2.Struct()
    metadata.update({"plan": "pro", "seats": i})
    return event_pb2.Event(
        id=f"{RUN_ID}-{i}",
        occurred_at=timestamp_pb2.Timestamp(seconds=1_777_000_000 + i),
        action=action,
        actor=event_pb2.Actor(id=f"user-{i % 3}", type=event_pb2.ACTOR_TYPE_USER),
        metadata=metadata,
        message=f"event {i} from Python",
    )


def ingest(stub, batches, per_batch):
    """Client stream: several messages of events, one summary at the end."""

    def requests():
        for b in range(batches):
            yield ingest_pb2.IngestRequest(events=[event(b * per_batch + i) for i in range(per_batch)])

    return stub.Ingest(requests(), metadata=AUTH, timeout=30).summary


def search_all(stub, min_position, page_size):
    """Pages through SearchEvents with next_page_token."""
    ids, pages, token = [], 0, ""
    while True:
        res = stub.SearchEvents(
            query_pb2.SearchEventsRequest(
                filter=query_pb2.EventFilter(actions=["customer.created"]),
                order=query_pb2.SORT_ORDER_ASCENDING,
                page_size=page_size,
                page_token=token,
                min_position=min_position,
            ),
            metadata=AUTH,
            timeout=30,
        )
        pages += 1
        ids.extend(e.event.id for e in res.events)
        token = res.next_page_token
        if not token:
            return ids, pages


def field_violations(err):
    """The google.rpc.BadRequest of a failed call, from the grpc-status-details-bin trailer."""
    for key, value in err.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            status = status_pb2.Status.FromString(value)
            out = []
            for detail in status.details:
                if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                    bad = error_details_pb2.BadRequest()
                    detail.Unpack(bad)
                    out.extend({"field": v.field, "description": v.description} for v in bad.field_violations)
            return status.code, out
    return None, []


def main():
    with grpc.insecure_channel(TARGET) as channel:
        ingest_stub = ingest_pb2_grpc.IngestServiceStub(channel)
        query_stub = query_pb2_grpc.QueryServiceStub(channel)

        summary = ingest(ingest_stub, batches=3, per_batch=4)
        ids, pages = search_all(query_stub, summary.position, page_size=5)

        bad = event(99, action="Not An Action!")
        bad.actor.id = ""
        try:
            ingest_stub.Append(ingest_pb2.AppendRequest(events=[bad]), metadata=AUTH, timeout=30)
            rejected = None
        except grpc.RpcError as err:
            status_code, violations = field_violations(err)
            rejected = {"code": err.code().name, "status_code": status_code, "violations": violations}

    json.dump(
        {
            "ingested": {"accepted": summary.accepted, "duplicates": summary.duplicates, "position": summary.position},
            "searched": {"ids": ids, "pages": pages},
            "rejected": rejected,
        },
        sys.stdout,
    )


if __name__ == "__main__":
    main()
