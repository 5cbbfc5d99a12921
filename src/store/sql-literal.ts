// A string as an SQL literal, for statements sent as simple queries (several
// statements in one round trip take no bind parameters). The same text as
// pg's escapeLiteral, which builds it a character at a time: for the rows of
// a batch that was most of the write path's garbage (about 40 KB per event).

const SPECIAL = /['\\]/;

/** `s` quoted, quotes doubled; with a backslash, an E'' literal with backslashes doubled (right whatever standard_conforming_strings says). */
export function sqlString(s: string): string {
  if (!SPECIAL.test(s)) return `'${s}'`;
  const quoted = `'${s.replaceAll("'", "''")}'`;
  return s.includes("\\") ? ` E${quoted.replaceAll("\\", "\\\\")}` : quoted;
}

/** A bind value as an SQL literal: NULL, a string as sqlString, a whole number, or an array of them. */
export function sqlLiteral(v: unknown): string {
  if (v === null) return "NULL";
  if (typeof v === "string") return sqlString(v);
  if ((typeof v === "number" && Number.isSafeInteger(v)) || typeof v === "bigint") return v.toString();
  if (Array.isArray(v)) return v.length ? `ARRAY[${v.map(sqlLiteral).join(", ")}]` : "'{}'";
  throw new Error(`no SQL literal for a ${typeof v}`);
}

/**
 * The statement with its values written in as literals, for COPY and for
 * simple queries of several statements, which take no bind parameters. Each
 * $n becomes its value once (what is put in is not read again); every `$n`
 * of the statement must be a parameter (none inside a quoted literal of the
 * statement's own text), which holds for the statements built in src/.
 */
export function inlineParams(s: { text: string; values: readonly unknown[] }): string {
  return s.text.replace(/\$(\d+)/g, (_m, n: string) => {
    const i = Number(n) - 1;
    if (i >= s.values.length) throw new Error(`no value for $${n}`);
    return sqlLiteral(s.values[i]);
  });
}
