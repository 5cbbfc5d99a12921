// Bounds on how much work one query may ask for. Every condition costs the
// backend something per candidate row (free text most: a scan of the event's
// open content), so these are checked here, in the query model both backends
// share, before anything runs. They sit far above what a person writes by
// hand; docs/QUERY_SYNTAX.md lists them.
import type { Condition } from "./event-query.ts";

export const QUERY_LIMITS = {
  /** Characters in `filter.query` (also the contract's max_len). */
  maxQueryLength: 2048,
  /** Terms in `filter.query`, field terms and free text together. */
  maxQueryTerms: 64,
  /** Free-text terms (words or "phrases", negated or not) in `filter.text` and `filter.query` together. */
  maxFreeTextTerms: 16,
  /** Words in one phrase. */
  maxPhraseWords: 32,
  /** Wildcards (`action:<prefix>.*`, `metadata.<key>:*`, actions ending in `.*`). */
  maxWildcards: 16,
  /** Values one field may take (repeated field:value terms, or a repeated filter field). */
  maxValuesPerField: 100,
  /** Conditions on metadata keys, from `filter.metadata` and `filter.query` together. */
  maxMetadataConditions: 20,
} as const;

/**
 * What is over a limit, as a sentence naming the limit, and which EventFilter
 * field it is about when that is one field (text, metadata); null when the
 * conditions are within every limit.
 */
export type LimitProblem = { field: "text" | "metadata" | null; message: string };

export function queryLimitProblem(conditions: readonly Condition[]): LimitProblem | null {
  const L = QUERY_LIMITS;
  let freeText = 0;
  let wildcards = 0;
  let metadata = 0;
  const values = new Map<string, number>();
  const addValues = (field: string, n: number) => values.set(field, (values.get(field) ?? 0) + n);
  for (const c of conditions) {
    switch (c.kind) {
      case "text":
        freeText++;
        if (c.words.length > L.maxPhraseWords) {
          return { field: "text", message: `a phrase of ${c.words.length} words; at most ${L.maxPhraseWords} words per phrase` };
        }
        break;
      case "action":
        wildcards += c.prefixes.length;
        addValues("action", c.exact.length + c.prefixes.length);
        break;
      case "metadata":
        metadata++;
        if (c.values.length === 0) wildcards++;
        addValues(`metadata.${c.path.join(".")}`, c.values.length);
        break;
      case "terms":
        addValues(c.field, c.values.length);
        break;
      case "time":
      case "none":
        break;
    }
  }
  if (freeText > L.maxFreeTextTerms) {
    const message = `${freeText} free-text terms; at most ${L.maxFreeTextTerms} free-text terms (words or "phrases", negated or not, in text and query together)`;
    return { field: "text", message };
  }
  if (wildcards > L.maxWildcards) {
    return { field: null, message: `${wildcards} wildcards; at most ${L.maxWildcards} wildcards (action prefixes and metadata.<key>:*)` };
  }
  if (metadata > L.maxMetadataConditions) {
    const message = `${metadata} metadata conditions; at most ${L.maxMetadataConditions} metadata conditions (in metadata and query together)`;
    return { field: "metadata", message };
  }
  for (const [field, n] of values) {
    if (n > L.maxValuesPerField)
      return { field: null, message: `${n} values for ${field}; at most ${L.maxValuesPerField} values per field` };
  }
  return null;
}
