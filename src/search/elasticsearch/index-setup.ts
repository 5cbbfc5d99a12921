// Puts the composable index template. Indices are not created here: the
// first bulk write into a month creates its index, and Elasticsearch applies
// the template (settings, strict mappings, the read alias) at that moment.
// Indices that exist already get the template's fields too (put mapping), so
// a field added to the template (the salt, say) can be written into them.
import type { Client, TransportRequestOptions } from "@elastic/elasticsearch";
import { indexNames, type IndexTemplateBody, templateFor } from "./index-names.ts";
import { indexTemplate } from "./index-template.ts";

export type IndexSetupOptions = {
  /** Index name prefix (see index-names.ts); default "auditlog-events". */
  prefix?: string;
  /** Per-request transport options (e.g. { maxRetries: 0 } when the caller retries itself). */
  transport?: TransportRequestOptions;
};

/**
 * Creates or replaces the index template `indexNames(prefix).templateName`
 * with `template`'s settings and mappings and the prefix's index pattern and
 * alias (templateFor; for the default prefix these are index-template.ts's
 * own), and adds its fields to the existing indices of the prefix (a
 * template applies at creation only; under strict mappings a document with
 * a field its index lacks would be refused). Idempotent: putting the same
 * template again changes nothing, and a field's existing mapping is only
 * ever put again as it was (a change to one is refused by Elasticsearch:
 * that needs `npm run reindex`).
 */
export async function ensureIndexTemplate(
  client: Client,
  template: IndexTemplateBody = indexTemplate,
  opts: IndexSetupOptions = {},
): Promise<void> {
  const names = indexNames(opts.prefix);
  const body = templateFor(names, template);
  // The template body is plain JSON; the client's request type is stricter
  // (e.g. mutable arrays) than our `as const` template.
  await client.indices.putIndexTemplate({ name: names.templateName, ...(body as object) }, opts.transport);
  const properties = (body.template.mappings as { properties?: object } | undefined)?.properties;
  if (properties) {
    await client.indices.putMapping(
      { index: names.pattern, allow_no_indices: true, ignore_unavailable: true, properties: properties as never },
      opts.transport,
    );
  }
}
