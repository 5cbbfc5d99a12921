// Names of the Elasticsearch objects that hold tenant events, for a given
// prefix. The default prefix gives exactly the names of index-template.ts
// (INDEX_PREFIX, READ_ALIAS, TEMPLATE_NAME, indexNameFor); other prefixes give
// a disjoint set (own template, own monthly indices, own alias), so tests and
// side-by-side rebuilds never touch the production objects.
//
// Indices are monthly by received_at, the server's clock, never by the
// producer's occurred_at: a producer choosing occurred_at must not choose
// how many indices (and shards) the cluster holds (ARCHITECTURE.md, Search).
import { indexTemplate, READ_ALIAS, RECEIVED_MONTH_INFIX } from "./index-template.ts";

export const DEFAULT_PREFIX = READ_ALIAS; // "auditlog-events"

export type IndexNames = {
  prefix: string;
  /** Wildcard over the monthly indices: `${prefix}-*`. */
  pattern: string;
  /** The read alias every monthly index joins. */
  alias: string;
  /** The composable index template's name. */
  templateName: string;
  /**
   * The monthly index an event belongs to, by its received_at (RFC 3339
   * text), which never changes: re-delivery lands in the same index.
   */
  indexFor(receivedAt: string): string;
};

export function indexNames(prefix: string = DEFAULT_PREFIX): IndexNames {
  if (!/^[a-z0-9][a-z0-9_.-]*$/.test(prefix) || prefix.includes("*")) {
    throw new Error(`invalid index prefix ${JSON.stringify(prefix)}: lowercase letters, digits, '-', '_', '.'`);
  }
  return {
    prefix,
    pattern: `${prefix}-*`,
    alias: prefix,
    templateName: prefix,
    indexFor: (receivedAt) => `${prefix}-${RECEIVED_MONTH_INFIX}${receivedAt.slice(0, 4)}.${receivedAt.slice(5, 7)}`,
  };
}

/** The body of a composable index template (what indices.putIndexTemplate takes besides the name). */
export type IndexTemplateBody = {
  index_patterns: readonly string[] | string[];
  template: {
    aliases?: Record<string, object>;
    settings?: object;
    mappings?: object;
  };
  priority?: number;
  [k: string]: unknown;
};

/** A deep copy of `base` whose index pattern and alias are those of `names`. */
export function templateFor(names: IndexNames, base: IndexTemplateBody = indexTemplate): IndexTemplateBody {
  const copy = structuredClone(base) as IndexTemplateBody;
  copy.index_patterns = [names.pattern];
  copy.template = { ...copy.template, aliases: { [names.alias]: {} } };
  return copy;
}
