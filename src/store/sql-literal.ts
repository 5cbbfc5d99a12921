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
