import { useEffect, useErrorBoundary, useMemo, useState } from "preact/hooks";
import { clientsFor } from "./api.ts";
import { onLinkClick, useLocation } from "./router.ts";
import { loadSession, type Session, saveSession } from "./session.ts";
import { Admin } from "./views/Admin.tsx";
import type { Clients } from "./api.ts";
import type { Location } from "./router.ts";
import { EventDetail } from "./views/EventDetail.tsx";
import { Help } from "./views/Help.tsx";
import { Integrity } from "./views/Integrity.tsx";
import { Search } from "./views/Search.tsx";
import { SignIn } from "./views/SignIn.tsx";

function NavLink({ to, label, current }: { to: string; label: string; current: boolean }) {
  return (
    <a href={to} aria-current={current ? "page" : undefined} onClick={(e) => onLinkClick(e, to)}>
      {label}
    </a>
  );
}

type ChartsView = typeof import("./views/Charts.tsx").Charts;

/** Charts load on first use: uPlot stays out of the first visit's bytes. */
function LazyCharts(props: { clients: Clients; loc: Location }) {
  const [Charts, setCharts] = useState<ChartsView | null>(null);
  const [failed, setFailed] = useState("");
  useEffect(() => {
    import("./views/Charts.tsx").then(
      (m) => setCharts(() => m.Charts),
      (err: Error) => setFailed(err.message),
    );
  }, []);
  if (failed)
    return (
      <main>
        <div class="error" role="alert">
          Could not load the charts: {failed}
        </div>
      </main>
    );
  return Charts ? <Charts {...props} /> : <main aria-busy="true">Loading charts…</main>;
}

/** A view that throws shows what went wrong, never a blank page. */
function Guard({ children }: { children: preact.ComponentChildren }) {
  const [error, reset] = useErrorBoundary();
  if (error)
    return (
      <main>
        <div class="error" role="alert">
          <strong>The console hit an error:</strong> {String((error as Error)?.message ?? error)}
        </div>
        <button type="button" onClick={reset}>
          Try again
        </button>
      </main>
    );
  return <>{children}</>;
}

export function App() {
  const [session, setSession] = useState<Session | null>(loadSession);
  const loc = useLocation();
  const clients = useMemo(() => (session ? clientsFor(session) : null), [session?.credential, session?.tenant]);
  const signIn = (s: Session | null) => {
    saveSession(s);
    setSession(s);
  };
  if (!session || !clients) return <SignIn onSignIn={signIn} />;
  const admin = session.role === "operator" || session.role === "admin";
  const path = loc.path === "/" ? (session.role === "operator" ? "/admin" : "/search") : loc.path;
  const sharedQuery = path === "/search" || path === "/charts" ? loc.params.toString() : "";
  let view: preact.ComponentChildren;
  if (path === "/search") view = <Search clients={clients} session={session} loc={loc} />;
  else if (path.startsWith("/events/")) view = <EventDetail clients={clients} session={session} id={decodeURIComponent(path.slice(8))} />;
  else if (path === "/charts") view = <LazyCharts clients={clients} loc={loc} />;
  else if (path === "/integrity") view = <Integrity clients={clients} />;
  else if (path === "/admin") view = <Admin clients={clients} session={session} />;
  else if (path === "/help") view = <Help />;
  else
    view = (
      <main>
        <h1>Not found</h1>
        <p>
          No view at <code>{path}</code>.{" "}
          <a href="/search" onClick={(e) => onLinkClick(e, "/search")}>
            Search
          </a>
        </p>
      </main>
    );
  const q = sharedQuery ? `?${sharedQuery}` : "";
  return (
    <>
      <a class="skip" href="#content">
        Skip to content
      </a>
      <header>
        <nav aria-label="Main">
          <strong class="brand">Audit log</strong>
          <NavLink to={`/search${q}`} label="Search" current={path === "/search"} />
          <NavLink to={`/charts${q}`} label="Charts" current={path === "/charts"} />
          <NavLink to="/integrity" label="Integrity" current={path === "/integrity"} />
          {admin && <NavLink to="/admin" label="Admin" current={path === "/admin"} />}
          <NavLink to="/help" label="Help" current={path === "/help"} />
          <span class="who">
            {session.role}
            {session.tenant ? ` · ${session.tenant}` : ""}
          </span>
          <button type="button" onClick={() => signIn(null)}>
            Sign out
          </button>
        </nav>
      </header>
      <div id="content">
        <Guard key={path}>{view}</Guard>
      </div>
    </>
  );
}
