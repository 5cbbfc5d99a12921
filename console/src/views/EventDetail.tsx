import { useEffect, useState } from "preact/hooks";
import type { StoredEvent } from "../../../gen/auditlog/v1/event_pb.js";
import type { Clients } from "../api.ts";
import { diffChanges } from "../diff.ts";
import { type ShownError, showError } from "../errors.ts";
import { actorTypeName, curlForEvent, eventJson, formatTime, outcomeName, severityName } from "../event-format.ts";
import type { Session } from "../session.ts";
import { ErrorBox } from "./ErrorBox.tsx";
import { JsonTree } from "./JsonTree.tsx";

function show(v: unknown): string {
  return v === undefined ? "" : JSON.stringify(v);
}

async function copy(text: string): Promise<boolean> {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    return false;
  }
}

function Diff({ ev }: { ev: StoredEvent }) {
  const ch = ev.event?.changes;
  if (!ch || (!ch.before && !ch.after)) return <p class="hint">This event records no changes.</p>;
  const rows = diffChanges(ch.before ?? {}, ch.after ?? {});
  return (
    <div class="table-wrap">
      <table class="diff" data-testid="diff-table">
        <caption>Changes: before and after</caption>
        <thead>
          <tr>
            <th scope="col">Field</th>
            <th scope="col">Before</th>
            <th scope="col">After</th>
            <th scope="col">Change</th>
          </tr>
        </thead>
        <tbody>
          {rows.map((r) => (
            <tr key={r.path} class={`diff-${r.kind}`}>
              <th scope="row">
                <code>{r.path}</code>
              </th>
              <td>
                <code>{show(r.before)}</code>
              </td>
              <td>
                <code>{show(r.after)}</code>
              </td>
              <td>{r.kind}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

export function EventDetail({ clients, session, id }: { clients: Clients; session: Session; id: string }) {
  const [ev, setEv] = useState<StoredEvent | null>(null);
  const [error, setError] = useState<ShownError | null>(null);
  const [status, setStatus] = useState("");
  const [shown, setShown] = useState("");
  useEffect(() => {
    setEv(null);
    setError(null);
    clients.query.getEvent({ id }).then(
      (r) => setEv(r.event ?? null),
      (err) => setError(showError(err)),
    );
  }, [clients, id]);
  if (error)
    return (
      <main>
        <h1>Event {id}</h1>
        <ErrorBox error={error} />
      </main>
    );
  if (!ev) return <main aria-busy="true">Loading event {id}…</main>;
  const e = ev.event!;
  const json = JSON.stringify(eventJson(ev), null, 2);
  const curl = curlForEvent(location.origin, e.id, session.tenant);
  const copyText = async (what: string, text: string) => {
    const ok = await copy(text);
    setShown(ok ? "" : text);
    setStatus(ok ? `${what} copied to the clipboard` : `${what} shown below: copy it from there`);
  };
  const fields: [string, string][] = [
    ["Id", e.id],
    ["Tenant", ev.tenantId],
    ["Occurred at", formatTime(e.occurredAt)],
    ["Received at", formatTime(ev.receivedAt)],
    ["Action", e.action],
    ["Actor", `${e.actor?.id ?? ""} (${actorTypeName(e.actor?.type ?? 0)})${e.actor?.name ? ` ${e.actor.name}` : ""}`],
    ["Actor IP", e.actor?.ip ?? ""],
    ["User agent", e.actor?.userAgent ?? ""],
    ["Session", e.actor?.sessionId ?? ""],
    ["Target", e.target ? `${e.target.type} ${e.target.id} ${e.target.name}`.trim() : ""],
    ["Outcome", outcomeName(e.outcome)],
    ["Severity", severityName(e.severity)],
    ["Message", e.message],
    ["Request id", e.context?.requestId ?? ""],
    ["Trace id", e.context?.traceId ?? ""],
    ["Source", e.context?.source ?? ""],
    ["Location", e.context?.location ?? ""],
    ["Sequence", ev.sequence.toString()],
    ["Hash", ev.hash],
    ["Previous hash", ev.prevHash],
  ];
  return (
    <main>
      <h1>
        Event <code>{e.id}</code>
      </h1>
      <div class="row wrap toolbar">
        <button type="button" onClick={() => copyText("JSON", json)}>
          Copy as JSON
        </button>
        <button type="button" onClick={() => copyText("curl command", curl)}>
          Copy as curl
        </button>
        <span role="status" class="hint">
          {status}
        </span>
      </div>
      {shown && <textarea aria-label="Text to copy" readOnly rows={8} value={shown} />}
      <dl class="fields" data-testid="event-fields">
        {fields.map(([k, v]) => (
          <div key={k}>
            <dt>{k}</dt>
            <dd class={k.includes("ash") ? "mono" : ""}>{v || "—"}</dd>
          </div>
        ))}
      </dl>
      <h2>Changes</h2>
      <Diff ev={ev} />
      <h2>Metadata</h2>
      {e.metadata ? <JsonTree value={e.metadata} /> : <p class="hint">No metadata.</p>}
      <h2>curl</h2>
      <pre class="code">{curl}</pre>
      <details>
        <summary>JSON</summary>
        <pre class="code">{json}</pre>
      </details>
    </main>
  );
}
