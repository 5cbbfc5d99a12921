import { useState } from "preact/hooks";
import type { ShownError } from "../errors.ts";
import { ACTOR_TYPES, OUTCOMES, PAGE_SIZES, type QueryState, RANGE_PRESETS, type RangeKey, SEVERITIES } from "../query-state.ts";
import { onLinkClick } from "../router.ts";

type Props = { initial: QueryState; error: ShownError | null; onSubmit: (q: QueryState) => void; showPaging?: boolean };

function Checks({
  legend,
  name,
  options,
  value,
  onChange,
}: {
  legend: string;
  name: string;
  options: string[];
  value: string[];
  onChange: (v: string[]) => void;
}) {
  return (
    <fieldset class="checks">
      <legend>{legend}</legend>
      {options.map((o) => (
        <label key={o}>
          <input
            type="checkbox"
            name={name}
            value={o}
            checked={value.includes(o)}
            onChange={(e) => onChange(e.currentTarget.checked ? [...value, o] : value.filter((v) => v !== o))}
          />
          {o.toLowerCase()}
        </label>
      ))}
    </fieldset>
  );
}

/** The query string with its syntax error marked where the service says it is. */
function ErrorMark({ q, position }: { q: string; position: number }) {
  const at = Math.min(Math.max(position, 0), q.length);
  return (
    <p class="query-mark" data-testid="query-error-mark">
      <code>
        {q.slice(0, at)}
        <mark>{q.slice(at, at + 1) || " "}</mark>
        {q.slice(at + 1)}
      </code>{" "}
      (position {position})
    </p>
  );
}

export function QueryForm({ initial, error, onSubmit, showPaging = true }: Props) {
  const [s, setS] = useState<QueryState>(initial);
  const set = <K extends keyof QueryState>(k: K, v: QueryState[K]) => setS((prev) => ({ ...prev, [k]: v }));
  const text = (k: "action" | "actorId" | "targetType" | "targetId" | "source", label: string, hint: string) => (
    <div class="field">
      <label for={`f-${k}`}>{label}</label>
      <input id={`f-${k}`} value={s[k]} placeholder={hint} onInput={(e) => set(k, e.currentTarget.value)} />
    </div>
  );
  return (
    <form
      class="query-form"
      aria-label="Search query"
      onSubmit={(e) => {
        e.preventDefault();
        onSubmit(s);
      }}
    >
      <div class="field wide">
        <label for="q">Query</label>
        <div class="row">
          <input
            id="q"
            name="q"
            value={s.q}
            spellcheck={false}
            autocomplete="off"
            placeholder='action:customer.* severity>=WARNING "card declined"'
            aria-describedby="q-help"
            aria-invalid={error?.queryPosition !== undefined}
            onInput={(e) => set("q", e.currentTarget.value)}
          />
          <button type="submit">Search</button>
        </div>
        <p id="q-help" class="hint">
          Terms are ANDed; repeated <code>field:value</code> terms OR.{" "}
          <a href="/help" onClick={(e) => onLinkClick(e, "/help")}>
            Query syntax
          </a>
        </p>
        {error?.queryPosition !== undefined && <ErrorMark q={initial.q} position={error.queryPosition} />}
      </div>
      <details class="filters">
        <summary>Filters</summary>
        <div class="grid">
          {text("action", "Action", "customer.created, user.*")}
          {text("actorId", "Actor id", "u-1, u-2")}
          {text("targetType", "Target type", "invoice")}
          {text("targetId", "Target id", "inv-42")}
          {text("source", "Source", "billing-api")}
          <Checks legend="Outcome" name="outcome" options={OUTCOMES} value={s.outcome} onChange={(v) => set("outcome", v)} />
          <Checks legend="Severity" name="severity" options={SEVERITIES} value={s.severity} onChange={(v) => set("severity", v)} />
          <Checks legend="Actor type" name="actorType" options={ACTOR_TYPES} value={s.actorType} onChange={(v) => set("actorType", v)} />
        </div>
      </details>
      <div class="row wrap">
        <div class="field">
          <label for="range">Time range</label>
          <select id="range" value={s.range} onChange={(e) => set("range", e.currentTarget.value as RangeKey)}>
            {RANGE_PRESETS.map((r) => (
              <option key={r.key} value={r.key}>
                {r.label}
              </option>
            ))}
          </select>
        </div>
        {s.range === "custom" && (
          <>
            <div class="field">
              <label for="from">From (local time)</label>
              <input id="from" type="datetime-local" step="1" value={s.from} onInput={(e) => set("from", e.currentTarget.value)} />
            </div>
            <div class="field">
              <label for="to">To (local time, exclusive)</label>
              <input id="to" type="datetime-local" step="1" value={s.to} onInput={(e) => set("to", e.currentTarget.value)} />
            </div>
          </>
        )}
        {showPaging && (
          <>
            <div class="field">
              <label for="order">Order</label>
              <select id="order" value={s.order} onChange={(e) => set("order", e.currentTarget.value as "asc" | "desc")}>
                <option value="desc">Newest first</option>
                <option value="asc">Oldest first</option>
              </select>
            </div>
            <div class="field">
              <label for="size">Page size</label>
              <select id="size" value={String(s.pageSize)} onChange={(e) => set("pageSize", Number(e.currentTarget.value))}>
                {PAGE_SIZES.map((n) => (
                  <option key={n} value={String(n)}>
                    {n}
                  </option>
                ))}
              </select>
            </div>
          </>
        )}
      </div>
    </form>
  );
}
