// What the service said, for the person: its code, message and field
// violations (google.rpc.BadRequest in the error details), and where the
// query string's syntax error is (the message ends "at position N").
import { BinaryReader } from "@bufbuild/protobuf/wire";
import { Code, ConnectError } from "@connectrpc/connect";

export type FieldViolation = { field: string; description: string };
export type ShownError = { code: string; message: string; violations: FieldViolation[]; queryPosition?: number };

const BAD_REQUEST = "google.rpc.BadRequest";
const ERROR_INFO = "google.rpc.ErrorInfo";

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

/** google.rpc.ErrorInfo { string reason = 1; string domain = 2; map<string, string> metadata = 3 } read from its wire form. */
export function decodeErrorInfo(bytes: Uint8Array): { reason: string; metadata: Record<string, string> } {
  const out = { reason: "", metadata: {} as Record<string, string> };
  const r = new BinaryReader(bytes);
  while (r.pos < r.len) {
    const [no, wt] = r.tag();
    if (no === 1) out.reason = r.string();
    else if (no === 3) {
      const e = new BinaryReader(r.bytes());
      let key = "";
      let value = "";
      while (e.pos < e.len) {
        const [n, w] = e.tag();
        if (n === 1) key = e.string();
        else if (n === 2) value = e.string();
        else e.skip(w);
      }
      out.metadata[key] = value;
    } else r.skip(wt);
  }
  return out;
}

export function showError(err: unknown): ShownError {
  const e = ConnectError.from(err);
  const violations: FieldViolation[] = [];
  let position: number | undefined;
  for (const d of e.details) {
    if (!("type" in d && "value" in d)) continue;
    try {
      if (d.type === BAD_REQUEST) violations.push(...decodeBadRequest(d.value));
      if (d.type === ERROR_INFO) {
        const info = decodeErrorInfo(d.value);
        if (info.reason === "QUERY_SYNTAX" && /^\d+$/.test(info.metadata["position"] ?? "")) position = Number(info.metadata["position"]);
      }
    } catch {
      // An undecodable detail: the message still says what happened.
    }
  }
  // Without the ErrorInfo detail, the message names the position too.
  const m = position === undefined ? /query: .* at position (\d+)/.exec(e.rawMessage) : null;
  if (m) position = Number(m[1]);
  const code = Code[e.code] ?? String(e.code);
  return {
    code: code.replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase(),
    message: e.rawMessage,
    violations,
    ...(position !== undefined ? { queryPosition: position } : {}),
  };
}
