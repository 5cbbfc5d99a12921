import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { useEffect, useState } from "preact/hooks";
import { type ApiKey, Scope, type Tenant } from "../../../gen/auditlog/v1/admin_pb.js";
import type { GetIndexStatusResponse } from "../../../gen/auditlog/v1/query_pb.js";
import type { Clients } from "../api.ts";
import { formatTime } from "../event-format.ts";
import { type ShownError, showError } from "../errors.ts";
import type { Session } from "../session.ts";
import { ErrorBox } from "./ErrorBox.tsx";

const SCOPES: [string, Scope][] = [
  ["ingest", Scope.INGEST],
  ["query", Scope.QUERY],
  ["admin", Scope.ADMIN],
];

function useCall() {
  const [error, setError] = useState<ShownError | null>(null);
  const run = async <T,>(fn: () => Promise<T>): Promise<T | undefined> => {
    setError(null);
    try {
      return await fn();
    } catch (err) {
      setError(showError(err));
      return undefined;
    }
  };
  return { error, run };
}

function Tenants({ clients, onPick }: { clients: Clients; onPick: (id: string) => void }) {
  const [tenants, setTenants] = useState<Tenant[]>([]);
  const [id, setId] = useState("");
  const [name, setName] = useState("");
  const { error, run } = useCall();
  const load = () => run(() => clients.admin.listTenants({})).then((r) => r && setTenants(r.tenants));
  useEffect(() => void load(), [clients]);
  return (
    <section aria-labelledby="tenants-h">
      <h2 id="tenants-h">Tenants</h2>
      <form
        class="row wrap"
        onSubmit={async (e) => {
          e.preventDefault();
          if (await run(() => clients.admin.createTenant({ id, name }))) {
            setId("");
            setName("");
            await load();
          }
        }}
      >
        <div class="field">
          <label for="t-id">New tenant id</label>
          <input id="t-id" value={id} required onInput={(e) => setId(e.currentTarget.value)} />
        </div>
        <div class="field">
          <label for="t-name">Name</label>
          <input id="t-name" value={name} onInput={(e) => setName(e.currentTarget.value)} />
        </div>
        <button type="submit">Create tenant</button>
      </form>
      <ErrorBox error={error} />
      <ul class="plain">
        {tenants.map((t) => (
          <li key={t.id}>
            <button type="button" class="link" onClick={() => onPick(t.id)}>
              {t.id}
            </button>{" "}
            {t.name} <span class="hint">created {formatTime(t.createdAt)}</span>
          </li>
        ))}
      </ul>
    </section>
  );
}

function Keys({ clients, tenantId }: { clients: Clients; tenantId: string }) {
  const [keys, setKeys] = useState<ApiKey[]>([]);
  const [name, setName] = useState("");
  const [scopes, setScopes] = useState<Scope[]>([Scope.QUERY]);
  const [expires, setExpires] = useState("");
  const [secret, setSecret] = useState<{ keyId: string; secret: string } | null>(null);
  const { error, run } = useCall();
  const load = () => run(() => clients.admin.listApiKeys({ tenantId })).then((r) => r && setKeys(r.keys));
  useEffect(() => void load(), [clients, tenantId]);
  const create = async (e: Event) => {
    e.preventDefault();
    const r = await run(() =>
      clients.admin.createApiKey({ tenantId, name, scopes, ...(expires ? { expiresAt: timestampFromDate(new Date(expires)) } : {}) }),
    );
    if (r) {
      setSecret({ keyId: r.key!.id, secret: r.secret });
      setName("");
      await load();
    }
  };
  const rotate = async (k: ApiKey) => {
    if (!confirm(`Rotate key "${k.name}"? The old secret stops working.`)) return;
    const r = await run(() => clients.admin.rotateApiKey({ keyId: k.id }));
    if (r) {
      setSecret({ keyId: r.key!.id, secret: r.secret });
      await load();
    }
  };
  const revoke = async (k: ApiKey) => {
    if (!confirm(`Revoke key "${k.name}"? This cannot be undone.`)) return;
    if (await run(() => clients.admin.revokeApiKey({ keyId: k.id }))) await load();
  };
  return (
    <section aria-labelledby="keys-h">
      <h2 id="keys-h">API keys{tenantId ? ` of ${tenantId}` : ""}</h2>
      <form class="row wrap" onSubmit={create}>
        <div class="field">
          <label for="k-name">Key name</label>
          <input id="k-name" value={name} onInput={(e) => setName(e.currentTarget.value)} />
        </div>
        <fieldset class="checks">
          <legend>Scopes</legend>
          {SCOPES.map(([label, s]) => (
            <label key={s}>
              <input
                type="checkbox"
                checked={scopes.includes(s)}
                onChange={(e) => setScopes(e.currentTarget.checked ? [...scopes, s] : scopes.filter((x) => x !== s))}
              />
              {label}
            </label>
          ))}
        </fieldset>
        <div class="field">
          <label for="k-exp">Expires (optional)</label>
          <input id="k-exp" type="datetime-local" value={expires} onInput={(e) => setExpires(e.currentTarget.value)} />
        </div>
        <button type="submit">Create key</button>
      </form>
      <ErrorBox error={error} />
      {secret && (
        <div class="secret" role="alert">
          <p>
            <strong>New secret for key {secret.keyId}.</strong> It is shown this once: store it now.
          </p>
          <input aria-label="New secret" readOnly value={secret.secret} onFocus={(e) => e.currentTarget.select()} class="mono" />
          <button type="button" onClick={() => setSecret(null)}>
            I stored it: hide
          </button>
        </div>
      )}
      <div class="table-wrap">
        <table>
          <caption>{keys.length} keys</caption>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Id</th>
              <th scope="col">Scopes</th>
              <th scope="col">Created</th>
              <th scope="col">State</th>
              <th scope="col">Actions</th>
            </tr>
          </thead>
          <tbody>
            {keys.map((k) => (
              <tr key={k.id}>
                <td>{k.name}</td>
                <td class="mono">{k.id}</td>
                <td>{k.scopes.map((s) => Scope[s]?.toLowerCase()).join(", ")}</td>
                <td>{formatTime(k.createdAt)}</td>
                <td>
                  {k.revokedAt ? `revoked ${formatTime(k.revokedAt)}` : k.expiresAt ? `expires ${formatTime(k.expiresAt)}` : "active"}
                </td>
                <td class="nowrap">
                  {!k.revokedAt && (
                    <>
                      <button type="button" onClick={() => rotate(k)}>
                        Rotate
                      </button>{" "}
                      <button type="button" onClick={() => revoke(k)}>
                        Revoke
                      </button>
                    </>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </section>
  );
}

function IndexStatus({ clients }: { clients: Clients }) {
  const [s, setS] = useState<GetIndexStatusResponse | null>(null);
  const { error, run } = useCall();
  const load = () => run(() => clients.query.getIndexStatus({})).then((r) => r && setS(r));
  useEffect(() => void load(), [clients]);
  const rec = s?.lastReconcile;
  return (
    <section aria-labelledby="index-h">
      <h2 id="index-h">Index status</h2>
      <button type="button" onClick={load}>
        Refresh
      </button>
      <ErrorBox error={error} />
      {s && (
        <dl class="fields">
          <div>
            <dt>Backend</dt>
            <dd>{s.backend}</dd>
          </div>
          <div>
            <dt>Committed / indexed position</dt>
            <dd>
              {s.committedPosition.toString()} / {s.indexedPosition.toString()}
            </dd>
          </div>
          <div>
            <dt>Lag</dt>
            <dd>
              {s.lagEvents.toString()} events, {s.lagSeconds.toFixed(1)} s
            </dd>
          </div>
          <div>
            <dt>Refused documents</dt>
            <dd>{s.refusedDocuments.toString()}</dd>
          </div>
          <div>
            <dt>Last reconciliation</dt>
            <dd>
              {rec
                ? `${formatTime(rec.finishedAt)}: ${rec.windowsChecked} windows checked, ${rec.windowsWithGaps} with gaps, ${rec.eventsRepaired} events repaired, ${rec.documentsRemoved} documents removed`
                : "none yet"}
            </dd>
          </div>
        </dl>
      )}
      {s && s.recentRefusals.length > 0 && (
        <ul>
          {s.recentRefusals.map((r) => (
            <li key={r.sequence.toString()}>
              #{r.sequence.toString()} <code>{r.eventId}</code>: {r.reason} ({formatTime(r.refusedAt)})
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}

export function Admin({ clients, session }: { clients: Clients; session: Session }) {
  const [tenant, setTenant] = useState("");
  const operator = session.role === "operator";
  return (
    <main>
      <h1>Admin</h1>
      {operator && <Tenants clients={clients} onPick={setTenant} />}
      {operator && !tenant ? <p class="hint">Pick a tenant to manage its keys.</p> : <Keys clients={clients} tenantId={tenant} />}
      {!operator && <IndexStatus clients={clients} />}
    </main>
  );
}
