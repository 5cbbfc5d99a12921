// The signed-in credential: kept in sessionStorage (gone when the tab
// closes), never in a URL, never in localStorage.
export type Role = "operator" | "admin" | "query" | "limited";

export type Session = {
  /** An API key or a JWT; sent as `Authorization: Bearer <credential>`. */
  credential: string;
  /** For a multi-tenant token: the tenant, sent as `x-auditlog-tenant`. */
  tenant: string;
  role: Role;
};

const KEY = "auditlog.console.session";

export function loadSession(): Session | null {
  try {
    const raw = sessionStorage.getItem(KEY);
    if (!raw) return null;
    const s = JSON.parse(raw) as Session;
    return typeof s.credential === "string" && s.credential ? s : null;
  } catch {
    return null;
  }
}

export function saveSession(s: Session | null): void {
  try {
    if (s) sessionStorage.setItem(KEY, JSON.stringify(s));
    else sessionStorage.removeItem(KEY);
  } catch {
    // Storage refused (private mode): the session lives in memory only.
  }
}

export function authHeaders(s: Pick<Session, "credential" | "tenant">): Record<string, string> {
  const h: Record<string, string> = { authorization: `Bearer ${s.credential}` };
  if (s.tenant) h["x-auditlog-tenant"] = s.tenant;
  return h;
}
