import { Code, ConnectError } from "@connectrpc/connect";
import { useState } from "preact/hooks";
import { clientsFor } from "../api.ts";
import { type ShownError, showError } from "../errors.ts";
import type { Role, Session } from "../session.ts";
import { ErrorBox } from "./ErrorBox.tsx";

/** What the credential may do, learnt by asking: tenants (operator), keys (admin), a search (query). */
async function detectRole(credential: string, tenant: string): Promise<Role> {
  const c = clientsFor({ credential, tenant });
  const attempts: [Role, () => Promise<unknown>][] = [
    ["operator", () => c.admin.listTenants({})],
    ["admin", () => c.admin.listApiKeys({})],
    ["query", () => c.query.searchEvents({ pageSize: 1 })],
  ];
  for (const [role, call] of attempts) {
    try {
      await call();
      return role;
    } catch (err) {
      const e = ConnectError.from(err);
      if (e.code === Code.Unauthenticated) throw e;
    }
  }
  return "limited";
}

export function SignIn({ onSignIn }: { onSignIn: (s: Session) => void }) {
  const [credential, setCredential] = useState("");
  const [tenant, setTenant] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ShownError | null>(null);
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const role = await detectRole(credential.trim(), tenant.trim());
      onSignIn({ credential: credential.trim(), tenant: tenant.trim(), role });
    } catch (err) {
      setError(showError(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <main class="signin">
      <h1>Audit log console</h1>
      <form onSubmit={submit} aria-describedby="signin-help">
        <label for="credential">API key or token</label>
        <input
          id="credential"
          name="credential"
          type="password"
          autocomplete="off"
          required
          value={credential}
          onInput={(e) => setCredential(e.currentTarget.value)}
        />
        <label for="tenant">Tenant (only for a token that names several tenants)</label>
        <input id="tenant" name="tenant" autocomplete="off" value={tenant} onInput={(e) => setTenant(e.currentTarget.value)} />
        <button type="submit" disabled={busy || !credential.trim()}>
          {busy ? "Signing in…" : "Sign in"}
        </button>
        <p id="signin-help" class="hint">
          The credential is sent as <code>Authorization: Bearer …</code> and kept in this tab's session storage only; it never appears in a
          URL. Closing the tab signs you out.
        </p>
      </form>
      <ErrorBox error={error} />
    </main>
  );
}
