import { timestampDate } from "@bufbuild/protobuf/wkt";
import { useEffect, useRef, useState } from "preact/hooks";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { type GetStatsResponse, StatsInterval } from "../../../gen/auditlog/v1/query_pb.js";
import type { Clients } from "../api.ts";
import { type ShownError, showError } from "../errors.ts";
import { fillBuckets } from "../histogram.ts";
import { queryFromParams, queryToParams, type QueryState, type RangeKey, timeBounds, toEventFilter } from "../query-state.ts";
import { type Location, navigate } from "../router.ts";
import { ErrorBox } from "./ErrorBox.tsx";
import { QueryForm } from "./QueryForm.tsx";

const INTERVALS: [string, StatsInterval][] = [
  ["Automatic", StatsInterval.UNSPECIFIED],
  ["Minute", StatsInterval.MINUTE],
  ["Hour", StatsInterval.HOUR],
  ["Day", StatsInterval.DAY],
  ["Week", StatsInterval.WEEK],
];

const DEFAULT_INTERVAL: Partial<Record<RangeKey, StatsInterval>> = {
  "15m": StatsInterval.MINUTE,
  "1h": StatsInterval.MINUTE,
  "24h": StatsInterval.HOUR,
  "7d": StatsInterval.DAY,
  "30d": StatsInterval.DAY,
};

const STEP_SECONDS: Partial<Record<StatsInterval, number>> = {
  [StatsInterval.MINUTE]: 60,
  [StatsInterval.HOUR]: 3600,
  [StatsInterval.DAY]: 86_400,
  [StatsInterval.WEEK]: 7 * 86_400,
};

/** The chart spans the searched time range, so that a few busy buckets are not stretched over the whole width. */
function Histogram({ stats, span, step }: { stats: GetStatsResponse; span: { after?: Date; before?: Date }; step: number }) {
  const el = useRef<HTMLDivElement>(null);
  useEffect(() => {
    if (!el.current) return;
    const [xs, ys] = fillBuckets(
      stats.histogram.map((b) => timestampDate(b.start!).getTime() / 1000),
      stats.histogram.map((b) => Number(b.count)),
      step,
      span.after && span.after.getTime() / 1000,
      (span.before ?? new Date()).getTime() / 1000,
    );
    const width = Math.max(280, el.current.clientWidth);
    const plot = new uPlot(
      {
        width,
        height: 260,
        series: [{}, { label: "Events", stroke: "#2563eb", fill: "rgba(37,99,235,0.15)", paths: uPlot.paths.bars?.({ size: [0.9, 48] }) }],
        axes: [{}, { label: "events" }],
        scales: { y: { range: (_u, _min, max) => [0, Math.max(1, max)] } },
      },
      [xs, ys],
      el.current,
    );
    const resize = () => el.current && plot.setSize({ width: Math.max(280, el.current.clientWidth), height: 260 });
    addEventListener("resize", resize);
    return () => {
      removeEventListener("resize", resize);
      plot.destroy();
    };
  }, [stats, step, span.after?.getTime(), span.before?.getTime()]);
  return (
    <div ref={el} class="chart" role="img" aria-label={`Events over time: ${stats.histogram.length} buckets, ${stats.total} events`} />
  );
}

export function Charts({ clients, loc }: { clients: Clients; loc: Location }) {
  const query = queryFromParams(loc.params);
  // Buckets that suit the range: a chart of one bar says little.
  const [interval, setIntervalValue] = useState(DEFAULT_INTERVAL[query.range] ?? StatsInterval.UNSPECIFIED);
  const [stats, setStats] = useState<GetStatsResponse | null>(null);
  const [error, setError] = useState<ShownError | null>(null);
  const [statsAt, setStatsAt] = useState(Date.now);
  useEffect(() => {
    setError(null);
    const now = Date.now();
    setStatsAt(now);
    clients.query.getStats({ filter: toEventFilter(query, now), interval, top: 10 }).then(setStats, (err) => {
      setStats(null);
      setError(showError(err));
    });
  }, [clients, loc.params.toString(), interval]);
  const submit = (q: QueryState) => navigate(`/charts?${queryToParams(q)}`);
  const span = timeBounds(query, statsAt);
  return (
    <main>
      <h1>Charts</h1>
      <QueryForm key={loc.params.toString()} initial={query} error={error} onSubmit={submit} showPaging={false} />
      <div class="field narrow">
        <label for="interval">Bucket</label>
        <select id="interval" value={String(interval)} onChange={(e) => setIntervalValue(Number(e.currentTarget.value))}>
          {INTERVALS.map(([label, v]) => (
            <option key={v} value={String(v)}>
              {label}
            </option>
          ))}
        </select>
      </div>
      <ErrorBox error={error} />
      {stats && (
        <>
          <h2>Events over time ({stats.total.toLocaleString()} in all)</h2>
          <Histogram stats={stats} span={span} step={STEP_SECONDS[interval] ?? 0} />
          <h2>Top values</h2>
          <div class="tops">
            {stats.top.map((t) => {
              const max = Math.max(1, ...t.values.map((v) => Number(v.count)));
              return (
                <section key={t.field} aria-label={`Top ${t.field}`}>
                  <h3>{t.field}</h3>
                  <ol class="bars">
                    {t.values.map((v) => (
                      <li key={v.value}>
                        <span class="bar" style={{ width: `${(Number(v.count) / max) * 100}%` }} />
                        <span class="label">{v.value || "(empty)"}</span> <span class="count">{v.count.toLocaleString()}</span>
                      </li>
                    ))}
                  </ol>
                </section>
              );
            })}
          </div>
        </>
      )}
    </main>
  );
}
