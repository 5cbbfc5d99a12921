// Puts the composable index template. Indices are not created here: the
// first bulk write into a month creates its index, and Elasticsearch applies
// the template (settings, strict mappings, the read alias) at that moment.
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
 * own). Idempotent: putting the same template again changes nothing, and
 * existing indices keep their mappings (a template applies at creation).
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
}
