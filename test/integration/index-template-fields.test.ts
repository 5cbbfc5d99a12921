// A field added to the index template reaches indices that exist already
// (src/search/elasticsearch/index-setup.ts), against the shared
// Elasticsearch: an index made from a template without `salt` and `erased`
// refuses a document that has them (strict mappings) until the template is
// put again, then takes it, and the document reads back as the record.
import { randomBytes } from "node:crypto";
import { Client } from "@elastic/elasticsearch";
import { afterAll, describe, expect, inject, it } from "vitest";
import type { StoredRecord } from "../../src/domain/event-record.ts";
import { documentFromRecord, documentId, type EventDocument, recordFromDocument } from "../../src/search/elasticsearch/event-document.ts";
import { type IndexTemplateBody, indexNames } from "../../src/search/elasticsearch/index-names.ts";
import { ensureIndexTemplate } from "../../src/search/elasticsearch/index-setup.ts";
import { indexTemplate } from "../../src/search/elasticsearch/index-template.ts";
import { dropTestIndices } from "../support/lifecycle.ts";
import { chainRecords, fullEvent } from "../unit/fixtures.ts";

describe("index template fields on existing indices", () => {
  const client = new Client({ node: inject("elasticsearchUrl") });
  const prefix = `tfields-${randomBytes(3).toString("hex")}`;
  const names = indexNames(prefix);

  afterAll(async () => {
    await dropTestIndices(client, prefix);
    await client.close();
  });

  it("puts a field added to the template on an index made before it", async () => {
    const before = structuredClone(indexTemplate) as unknown as IndexTemplateBody & {
      template: { mappings: { properties: Record<string, unknown> } };
    };
    delete before.template.mappings.properties.salt;
    delete before.template.mappings.properties.erased;
    await ensureIndexTemplate(client, before, { prefix });

    const [plain, salted] = chainRecords([fullEvent({ id: "a" }), fullEvent({ id: "b" })], { tenantId: "t" });
    const index = names.indexFor("2024-05-06T07:08:20.000000Z");
    const put = (r: StoredRecord) =>
      client.index({ index, id: documentId(r.tenantId, r.id), routing: r.tenantId, document: documentFromRecord(r), refresh: "wait_for" });

    await put({ ...plain!, salt: undefined });
    await expect(put(salted!)).rejects.toThrow(/strict_dynamic_mapping_exception|not allowed/);

    await ensureIndexTemplate(client, indexTemplate, { prefix });
    await put(salted!);
    const erased = { ...salted!, id: "c", erased: true as const, salt: undefined };
    await put(erased);
    const got = await client.get<EventDocument>({ index, id: documentId("t", "b"), routing: "t" });
    expect(recordFromDocument(got._source!)).toEqual(salted);
    const gotErased = await client.get<EventDocument>({ index, id: documentId("t", "c"), routing: "t" });
    expect(recordFromDocument(gotErased._source!)).toMatchObject({ erased: true, contentHash: salted!.contentHash });
    expect(recordFromDocument(gotErased._source!).salt).toBeUndefined();

    // Putting it again changes nothing.
    await ensureIndexTemplate(client, indexTemplate, { prefix });
  });
});
