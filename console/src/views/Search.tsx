import { useEffect, useLayoutEffect, useMemo, useRef, useState } from "preact/hooks";
import type { StoredEvent } from "../../../gen/auditlog/v1/event_pb.js";
import type { Clients } from "../api.ts";
import { downloadExport } from "../download.ts";
import { type ShownError, showError } from "../errors.ts";
import { queryFromParams, queryToParams, type QueryState, sortOrder, toEventFilter, toExportParams } from "../query-state.ts";
import { navigate, type Location } from "../router.ts";
import type { Session } from "../session.ts";
import { useTail } from "../tail.ts";
import { ErrorBox } from "./ErrorBox.tsx";
import { EventTable } from "./EventTable.tsx";
import { QueryForm } from "./QueryForm.tsx";

type Page = { events: StoredEvent[]; next: string; total?: bigint; totalIsLowerBound?: boolean };

// The last page render, for the console's performance figures (docs/PERFORMANCE.md).
declare global {
  interface Window {
    /** From the answer's arrival to the table's rows in the DOM. */
    __consoleRenderMs?: { rows: number; ms: number }[];
    /** The same, to the next painted frame. */
    __consolePaintMs?: { rows: number; ms: number }[];
  }
}

export function Search({ clients, session, loc }: { clients: Clients; session: Session; loc: Location }) {
  const query = useMemo(() => queryFromParams(loc.params), [loc.params.toString()]);
  // "Last 24 hours" is fixed when the search is made: page tokens belong to that exact filter, and the export matches the pages.
  const anchor = useMemo(() => Date.now(), [loc.params.toString()]);
  const filter = useMemo(() => toEventFilter(query, anchor), [query, anchor]);
  // Page tokens of the pages before this one (Newer goes back), and the token of this page.
  const [tokens, setTokens] = useState<string[]>([]);
  const [token, setToken] = useState("");
  const [page, setPage] = useState<Page | null>(null);
  const [error, setError] = useState<ShownError | null>(null);
  const [loading, setLoading] = useState(false);
  const [tailOn, setTailOn] = useState(false);
  const [paused, setPaused] = useState(false);
  const [status, setStatus] = useState("");
  const renderStart = useRef(0);
  const tail = useTail(clients, query, tailOn, paused);

  useEffect(() => {
    setTokens([]);
    setToken("");
  }, [loc.params.toString()]);

  useEffect(() => {
    const abort = new AbortController();
    setLoading(true);
    setError(null);
    clients.query
      .searchEvents(
        { filter, order: sortOrder(query), pageSize: query.pageSize, pageToken: token, includeTotal: token === "" },
        { signal: abort.signal },
      )
      .then(
        (r) => {
          renderStart.current = performance.now();
          setPage((prev) => ({
            events: r.events,
            next: r.nextPageToken,
            total: token === "" ? r.total : prev?.total,
            totalIsLowerBound: token === "" ? r.totalIsLowerBound : prev?.totalIsLowerBound,
          }));
        },
        (err) => {
          if (!abort.signal.aborted) {
            setPage(null);
            setError(showError(err));
          }
        },
      )
      .finally(() => !abort.signal.aborted && setLoading(false));
    return () => abort.abort();
  }, [clients, loc.params.toString(), token]);

  useLayoutEffect(() => {
    if (!page || renderStart.current === 0) return;
    const ms = performance.now() - renderStart.current;
    renderStart.current = 0;
    (window.__consoleRenderMs ??= []).push({ rows: page.events.length, ms });
    // And until the next frame is painted (layout and paint included).
    const start = performance.now() - ms;
    requestAnimationFrame(() =>
      setTimeout(() => (window.__consolePaintMs ??= []).push({ rows: page.events.length, ms: performance.now() - start })),
    );
  }, [page]);

  const submit = (q: QueryState) => {
    const p = queryToParams(q).toString();
    navigate(`/search${p ? `?${p}` : ""}`);
  };
  const exportAs = async (format: "csv" | "ndjson") => {
    setStatus(`Preparing ${format.toUpperCase()} export…`);
    try {
      const { filename, bytes } = await downloadExport(session, toExportParams(query, format, anchor));
      setStatus(`Downloaded ${filename} (${bytes.toLocaleString()} bytes)`);
    } catch (err) {
      setStatus("");
      setError({ code: "EXPORT", message: (err as Error).message, violations: [] });
    }
  };

  return (
    <main>
      <h1>Search</h1>
      <QueryForm key={loc.params.toString()} initial={query} error={error} onSubmit={submit} />
      <ErrorBox error={error} />
      <div class="toolbar row wrap">
        <button type="button" aria-pressed={tailOn} onClick={() => (setTailOn(!tailOn), setPaused(false))}>
          {tailOn ? "Stop live tail" : "Live tail"}
        </button>
        {tailOn && (
          <button type="button" aria-pressed={paused} onClick={() => setPaused(!paused)}>
            {paused ? `Resume${tail.held ? ` (${tail.held} new)` : ""}` : "Pause"}
          </button>
        )}
        <button type="button" onClick={() => exportAs("csv")}>
          Export CSV
        </button>
        <button type="button" onClick={() => exportAs("ndjson")}>
          Export NDJSON
        </button>
        <span role="status" class="hint">
          {status}
        </span>
      </div>
      {tailOn && (
        <section aria-label="Live tail" class="tail">
          <p class="hint" role="status">
            {tail.connected
              ? paused
                ? "Live tail paused: new events are held."
                : "Live tail: waiting for new events…"
              : "Live tail connecting…"}
          </p>
          <ErrorBox error={tail.error} />
          <EventTable events={tail.events} caption={`Live: ${tail.events.length} new events`} testId="tail-table" />
        </section>
      )}
      {page && (
        <section aria-label="Results" aria-busy={loading}>
          <EventTable
            events={page.events}
            testId="results-table"
            caption={
              page.total !== undefined
                ? `${page.total.toLocaleString()}${page.totalIsLowerBound ? "+" : ""} events match; page ${tokens.length + 1}`
                : `Page ${tokens.length + 1}`
            }
          />
          <nav class="row pager" aria-label="Pages">
            <button
              type="button"
              disabled={tokens.length === 0 || loading}
              onClick={() => {
                setToken(tokens[tokens.length - 1]!);
                setTokens(tokens.slice(0, -1));
              }}
            >
              ← Previous page
            </button>
            <button
              type="button"
              disabled={!page.next || loading}
              onClick={() => {
                setTokens([...tokens, token]);
                setToken(page.next);
              }}
            >
              Next page →
            </button>
          </nav>
        </section>
      )}
      {!page && loading && <p role="status">Searching…</p>}
    </main>
  );
}
