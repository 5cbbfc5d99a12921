// Turns the output of `COPY (<ndjsonLinesSql>) TO STDOUT WITH (FORMAT
// binary)` into finished NDJSON lines, in one pass, in place.
//
// The binary format carries each value's bytes as they are, behind a length
// (the text formats would scan them for characters to escape or quote): a
// signature and header, then per row a field count and each field's length
// and bytes, and a trailer. A line is the concatenation of its row's fields
// and "\n". Fields at even positions (0, 2, …) are copied as they are (one
// native copy each); fields at odd positions hold open content (metadata,
// changes.before, changes.after) as PostgreSQL writes jsonb, and are
// finished byte by byte:
//
// They are ndjsonLineOfRecord's text but that jsonb text has a space after
// every ':' and ',' (`{"a": [1, 2]}`) where the record path writes
// JSON.stringify(JSON.parse(...)), `{"a":[1,2]}`. Outside strings, those
// are the only spaces; removing them leaves jsonb's strings (escaped as
// JSON.stringify escapes), its key order (which JSON.parse keeps) and its
// numbers as written. The pass also finds where JavaScript would write the
// open content otherwise, and names those lines for the record path:
//   - a key of digits only: JavaScript lists array-index keys first, in
//     numeric order (every all-digit key is taken, whatever its value);
//   - a number that is not already JavaScript's form of itself: 16 digits
//     or more, a fraction ending in 0, or below 1e-6 ("0.000000" then
//     digits, which JavaScript writes with an exponent; from 1e21 on a
//     number has 22 digits). Any other number text, 15 digits or fewer and
//     no trailing 0 in a fraction, is the only decimal of at most 15 digits
//     that reads as its double, hence what JavaScript writes for it.
// The envelope that SQL wrote into those fields around the open content
// (`,"metadata":`) has no spaces, numbers or keys of digits outside
// strings, so the rules only ever meet the open content.

const SPACE = 0x20;
const NEWLINE = 0x0a;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COLON = 0x3a;
const MINUS = 0x2d;
const DOT = 0x2e;
const ZERO = 0x30;
const NINE = 0x39;

/** "PGCOPY\n\377\r\n\0": the start of every binary COPY. */
const SIGNATURE = [0x50, 0x47, 0x43, 0x4f, 0x50, 0x59, 0x0a, 0xff, 0x0d, 0x0a, 0x00];

export type FinishedLines = {
  /** The finished lines, each ending in "\n", are buf[0, length). */
  length: number;
  /** How many lines. */
  lines: number;
  /** [start, end) of each finished line (end after its "\n") that must be written from the record instead. */
  redo: [number, number][];
};

function isDigit(c: number): boolean {
  return c >= ZERO && c <= NINE;
}

function uint32(buf: Uint8Array, at: number): number {
  return ((buf[at]! << 24) | (buf[at + 1]! << 16) | (buf[at + 2]! << 8) | buf[at + 3]!) >>> 0;
}

/** Whether a number token, buf[start, end), is not JavaScript's form of itself (see the note at the top). */
function unusualNumber(buf: Uint8Array, start: number, end: number): boolean {
  let digits = 0;
  let dot = false;
  for (let k = start; k < end; k++) {
    const c = buf[k]!;
    if (isDigit(c)) digits++;
    else if (c === DOT) dot = true;
    else if (c !== MINUS) return true; // an exponent: jsonb never writes one
  }
  if (digits >= 16) return true;
  if (dot && buf[end - 1] === ZERO) return true;
  const p = buf[start] === MINUS ? start + 1 : start;
  // 0.000000…: below 1e-6.
  if (end - p > 8 && buf[p] === ZERO && buf[p + 1] === DOT) {
    for (let k = p + 2; k < p + 8; k++) if (buf[k] !== ZERO) return false;
    return true;
  }
  return false;
}

class CopyFormatError extends Error {
  constructor(what: string) {
    super(`unexpected binary COPY output: ${what}`);
    this.name = "CopyFormatError";
  }
}

/** Copies the finished open content buf[i, end) to w; returns the new w, or -1 - w when the line must be redone. */
function finishOpenContent(buf: Uint8Array, i: number, end: number, w: number): number {
  let redo = false;
  while (i < end) {
    const c = buf[i++]!;
    if (c === QUOTE) {
      buf[w++] = c;
      const start = i;
      for (;;) {
        if (i >= end) throw new CopyFormatError("a line that ends inside a string");
        const s = buf[i++]!;
        buf[w++] = s;
        if (s === QUOTE) break;
        if (s === BACKSLASH) {
          if (i >= end) throw new CopyFormatError("a line that ends inside a string");
          buf[w++] = buf[i++]!;
        }
      }
      // A key (a ':' follows, after jsonb's space) of digits only.
      if (i - 1 > start && i + 1 < end && buf[i + (buf[i] === SPACE ? 1 : 0)] === COLON) {
        let digits = true;
        for (let k = start; k < i - 1 && digits; k++) digits = isDigit(buf[k]!);
        if (digits) redo = true;
      }
    } else if (c === SPACE) {
      // jsonb's, after ':' or ','.
    } else if (isDigit(c) || c === MINUS) {
      const start = i - 1;
      while (i < end) {
        const d = buf[i]!;
        if (!(isDigit(d) || d === DOT || d === MINUS || d === 0x2b || d === 0x65 || d === 0x45)) break;
        i++;
      }
      if (unusualNumber(buf, start, i)) redo = true;
      for (let k = start; k < i; k++) buf[w++] = buf[k]!;
    } else {
      buf[w++] = c;
    }
  }
  return redo ? -1 - w : w;
}

/**
 * Finishes, in place, the lines of a whole binary COPY output (see the
 * note at the top). The finished text of a line named in `redo` is still
 * the same event in valid JSON.
 */
export function finishCopyLines(buf: Uint8Array): FinishedLines {
  for (let k = 0; k < SIGNATURE.length; k++) if (buf[k] !== SIGNATURE[k]) throw new CopyFormatError("no signature");
  if (buf.length < 21) throw new CopyFormatError("too short");
  let i = 19 + uint32(buf, 15); // after the flags and the header extension
  const redo: [number, number][] = [];
  let w = 0;
  let lines = 0;
  for (;;) {
    if (i + 2 > buf.length) throw new CopyFormatError("no trailer");
    const fields = (buf[i]! << 8) | buf[i + 1]!;
    i += 2;
    if (fields === 0xffff) break;
    const lineStart = w;
    let redoLine = false;
    for (let f = 0; f < fields; f++) {
      if (i + 4 > buf.length) throw new CopyFormatError("a row longer than the output");
      const length = uint32(buf, i);
      const end = i + 4 + length;
      if (length === 0xffffffff || end > buf.length)
        throw new CopyFormatError(length === 0xffffffff ? "a NULL" : "a row longer than the output");
      i += 4;
      if (f % 2 === 0) {
        if (w !== i) buf.copyWithin(w, i, end);
        w += length;
      } else {
        const done = finishOpenContent(buf, i, end, w);
        if (done < 0) redoLine = true;
        w = done < 0 ? -1 - done : done;
      }
      i = end;
    }
    buf[w++] = NEWLINE;
    lines++;
    if (redoLine) redo.push([lineStart, w]);
  }
  return { length: w, lines, redo };
}
