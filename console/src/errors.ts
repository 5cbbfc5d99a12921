// What the service said, for the person: its code, message and field
// violations (google.rpc.BadRequest in the error details), and where the
// query string's syntax error is (the message ends "at position N").
import { BinaryReader } from "@bufbuild/protobuf/wire";
import { Code, ConnectError } from "@connectrpc/connect";

export type FieldViolation = { field: string; description: string };
export type ShownError = { code: string; message: string; violations: FieldViolation[]; queryPosition?: number };

const BAD_REQUEST = "google.rpc.BadRequest";

/** google.rpc.BadRequest { repeated FieldViolation field_violations = 1 } read from its wire form. */
export function decodeBadRequest(bytes: Uint8Array): FieldViolation[] {
  const out: FieldViolation[] = [];
  const r = new BinaryReader(bytes);
  while (r.pos < r.len) {
    const [no, wt] = r.tag();
    if (no !== 1) {
      r.skip(wt);
      continue;
    }
    const v = new BinaryReader(r.bytes());
    const fv: FieldViolation = { field: "", description: "" };
    while (v.pos < v.len) {
      const [n, w] = v.tag();
      if (n === 1) fv.field = v.string();
      else if (n === 2) fv.description = v.string();
      else v.skip(w);
    }
    out.push(fv);
  }
  return out;
}

export function showError(err: unknown): ShownError {
  const e = ConnectError.from(err);
  const violations: FieldViolation[] = [];
  for (const d of e.details) {
    if ("type" in d && d.type === BAD_REQUEST && "value" in d) {
      try {
        violations.push(...decodeBadRequest(d.value));
      } catch {
        // An undecodable detail: the message still says what happened.
      }
    }
  }
  const m = /query: .* at position (\d+)/.exec(e.rawMessage);
  const code = Code[e.code] ?? String(e.code);
  return {
    code: code.replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase(),
    message: e.rawMessage,
    violations,
    ...(m ? { queryPosition: Number(m[1]) } : {}),
  };
}
