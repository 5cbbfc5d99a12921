// Which bulk item errors may let the indexer skip an event (the document's
// own fault) and which must be retried (the cluster's): a wrong "document"
// silently drops a good event from search, so the cluster side wins ties.
import { describe, expect, it } from "vitest";
import { classifyItemFailure, MAX_REASON_CHARS, refusalReason } from "../../src/search/elasticsearch/index-failures.ts";

describe("classifyItemFailure", () => {
  it("content the mapping refuses is the document's fault", () => {
    for (const [type, reason] of [
      ["document_parsing_exception", "[1:52] failed to parse field [occurred_at] of type [date_nanos] in document with id 't/e'"],
      ["mapper_parsing_exception", "failed to parse field [sequence] of type [long]"],
      ["strict_dynamic_mapping_exception", "[1:2] mapping set to strict, dynamic introduction of [x] within [_doc] is not allowed"],
      ["illegal_argument_exception", 'Document contains at least one immense term in field="message.raw"'],
      ["x_content_parse_exception", "[1:10] unexpected character"],
      ["validation_exception", "Validation Failed: 1: id [t/xxxx] is too long, must be no longer than 512 bytes but was: 600;"],
    ]) {
      expect(classifyItemFailure({ status: 400, type: type!, reason: reason! }), type).toBe("document");
    }
  });

  it("index creation refused at the shard limit is the cluster's, although it comes as a 400", () => {
    expect(
      classifyItemFailure({
        status: 400,
        type: "validation_exception",
        reason:
          "Validation Failed: 1: this action would add [1] shards, but this cluster currently has [1000]/[1000] maximum normal shards open;",
      }),
    ).toBe("cluster");
  });

  it("blocks, missing or closed indices, security and conflicts are the cluster's whatever the status", () => {
    for (const [status, type] of [
      [400, "cluster_block_exception"],
      [403, "cluster_block_exception"],
      [404, "index_not_found_exception"],
      [400, "index_closed_exception"],
      [400, "invalid_index_name_exception"],
      [400, "resource_already_exists_exception"],
      [401, "security_exception"],
      [403, "security_exception"],
      [409, "version_conflict_engine_exception"],
    ] as const) {
      expect(classifyItemFailure({ status, type, reason: "index [auditlog-events-received-2026.05] blocked" }), `${status} ${type}`).toBe(
        "cluster",
      );
    }
  });

  it("overload, server errors and answers without a status are retried", () => {
    for (const [status, type] of [
      [429, "es_rejected_execution_exception"],
      [429, "circuit_breaking_exception"],
      [500, "illegal_state_exception"],
      [503, "unavailable_shards_exception"],
      [503, "no_shard_available_action_exception"],
      [0, "unknown"],
      [413, "illegal_argument_exception"],
    ] as const) {
      expect(classifyItemFailure({ status, type, reason: "x" }), `${status} ${type}`).toBe("cluster");
    }
  });

  it("keeps stored reasons bounded", () => {
    const r = refusalReason({ status: 400, type: "document_parsing_exception", reason: "v".repeat(5000) });
    expect(r.length).toBe(MAX_REASON_CHARS);
    expect(r.startsWith("document_parsing_exception: vvv")).toBe(true);
  });
});
