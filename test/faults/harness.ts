// Shared pieces of the fault suite (test/faults/*.test.ts): producers that
// retry unacknowledged batches with the same ids, and the per-fault report
// line.
export { freePort } from "../../src/devservers/processes.ts";
import type pg from "pg";
import type * as grpc from "@grpc/grpc-js";
import { connectCall } from "../../scripts/lib/connect-json.ts";
import { makeEvent, toConnectJson, toProtoLoader } from "../support/events.ts";
import { bearer } from "../../scripts/lib/grpc-client.ts";
import { procStatusBytes } from "../../src/platform/runtime-metrics.ts";

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export function envInt(name: string, dflt: number): number {
  const raw = process.env[name];
  const n = raw ? Number(raw) : NaN;
  return Number.isInteger(n) && n > 0 ? n : dflt;
}

export type FaultReport = { fault: string; sent: number; acknowledged: number; stored: number; duplicated: number; lost: number };

export function reportLine(r: FaultReport): string {
  return `fault=${r.fault} sent=${r.sent} acknowledged=${r.acknowledged} stored=${r.stored} duplicated=${r.duplicated} lost=${r.lost}`;
}

/** Prints the line (stdout and stderr, so it survives vitest's console capture settings). */
export function printReport(r: FaultReport, extra = ""): string {
  const line = reportLine(r) + (extra ? ` ${extra}` : "");
  console.log(line);
  process.stderr.write(`${line}\n`);
  return line;
}

/** stored / duplicated / lost for one tenant, from PostgreSQL's events table. */
export async function storedStats(
  pool: pg.Pool,
  tenantId: string,
  acked: Set<string>,
): Promise<{ stored: number; duplicated: number; lost: number; lostIds: string[] }> {
  const { rows } = await pool.query<{ id: string; n: number }>(
    "SELECT id, count(*)::int AS n FROM events WHERE tenant_id = $1 GROUP BY id",
    [tenantId],
  );
  const counts = new Map(rows.map((r) => [r.id, r.n]));
  let stored = 0;
  let duplicated = 0;
  for (const n of counts.values()) {
    stored += n;
    if (n > 1) duplicated += n;
  }
  const lostIds = [...acked].filter((id) => !counts.has(id));
  return { stored, duplicated, lost: lostIds.length, lostIds: lostIds.slice(0, 20) };
}

// ---------------------------------------------------------------------------
// Producers. A producer owns a sequence of batches with fixed ids; a batch is
// resent (same ids, same content) until it is acknowledged, and only then does
// the producer move on. `target()` gives the current service (null while it is
// down), so producers follow restarts on other ports.

export type Target = { url: string; ingestKey: string; grpcClient: (grpc.Client & Record<string, any>) | null; generation: number };

export type ProducerStats = {
  sent: Set<string>;
  acked: Set<string>;
  codes: Map<string, number>;
  /** Batches answered with anything but full acceptance/duplicates (rejected, conflicts). */
  anomalies: string[];
};

export function newStats(): ProducerStats {
  return { sent: new Set(), acked: new Set(), codes: new Map(), anomalies: [] };
}

function count(map: Map<string, number>, key: string) {
  map.set(key, (map.get(key) ?? 0) + 1);
}

type Summary = { accepted: string; duplicates: string; rejected: string; conflicts: string };

function checkSummary(stats: ProducerStats, s: Summary | undefined, n: number, what: string): boolean {
  if (!s) {
    stats.anomalies.push(`${what}: no summary`);
    return false;
  }
  const ok = Number(s.accepted) + Number(s.duplicates) === n && Number(s.rejected) === 0 && Number(s.conflicts) === 0;
  if (!ok) stats.anomalies.push(`${what}: ${JSON.stringify(s)}`);
  return ok;
}

export type ProducerControl = {
  /** Producers make no new batches once this is true (pending ones are still retried). */
  stopNew: () => boolean;
  /** Producers give up (even with a pending batch) once this is true. */
  giveUp: () => boolean;
  target: () => Target | null;
};

/** Connect JSON unary Append, batches of `size`. */
export async function appendProducer(
  name: string,
  tenantId: string,
  size: number,
  stats: ProducerStats,
  ctl: ProducerControl,
  opts: { pauseMs?: number; timeoutMs?: number } = {},
): Promise<void> {
  let next = 0;
  while (!ctl.stopNew() && !ctl.giveUp()) {
    const events = Array.from({ length: size }, () => makeEvent(next++, `${tenantId}-${name}`));
    for (const e of events) stats.sent.add(e.id);
    const body = { events: events.map(toConnectJson) };
    for (;;) {
      if (ctl.giveUp()) return;
      const t = ctl.target();
      if (!t) {
        await sleep(50);
        continue;
      }
      try {
        const res = await fetch(`${t.url}/auditlog.v1.IngestService/Append`, {
          method: "POST",
          headers: { "content-type": "application/json", authorization: `Bearer ${t.ingestKey}` },
          body: JSON.stringify(body),
          signal: AbortSignal.timeout(opts.timeoutMs ?? 15_000),
        });
        const text = await res.text();
        let parsed: { code?: string; summary?: Summary } = {};
        try {
          parsed = text ? JSON.parse(text) : {};
        } catch {
          parsed = { code: `unparsable(${res.status})` };
        }
        if (res.status === 200) {
          count(stats.codes, "connect:ok");
          if (checkSummary(stats, parsed.summary, size, `${name} append`)) {
            for (const e of events) stats.acked.add(e.id);
            break;
          }
        } else {
          count(stats.codes, `connect:${parsed.code ?? res.status}`);
        }
      } catch (err) {
        count(stats.codes, `connect:network(${(err as Error).name})`);
      }
      await sleep(100); // not acknowledged: resend the same batch
    }
    if (opts.pauseMs) await sleep(opts.pauseMs);
  }
}

/** grpc-js client-streaming Ingest: `messages` messages of `perMessage` events per stream. */
export async function ingestStreamProducer(
  name: string,
  tenantId: string,
  messages: number,
  perMessage: number,
  stats: ProducerStats,
  ctl: ProducerControl,
  opts: { timeoutMs?: number; gapMs?: number } = {},
): Promise<void> {
  let next = 0;
  while (!ctl.stopNew() && !ctl.giveUp()) {
    const batches = Array.from({ length: messages }, () =>
      Array.from({ length: perMessage }, () => makeEvent(next++, `${tenantId}-${name}`)),
    );
    for (const b of batches) for (const e of b) stats.sent.add(e.id);
    const wire = batches.map((b) => ({ events: b.map(toProtoLoader) }));
    const total = messages * perMessage;
    for (;;) {
      if (ctl.giveUp()) return;
      const t = ctl.target();
      if (!t?.grpcClient) {
        await sleep(50);
        continue;
      }
      const result = await new Promise<{ code: string; summary?: Summary }>((resolve) => {
        const deadline = new Date(Date.now() + (opts.timeoutMs ?? 15_000));
        const call = t.grpcClient!.Ingest(bearer(t.ingestKey), { deadline }, (err: grpc.ServiceError | null, res: { summary: Summary }) =>
          resolve(err ? { code: `grpc:${err.code}` } : { code: "grpc:0", summary: res.summary }),
        );
        call.on("error", () => {});
        let i = 0;
        const pump = async () => {
          while (i < wire.length) {
            let ok: boolean;
            try {
              ok = call.write(wire[i++]);
            } catch {
              return;
            }
            if (opts.gapMs) await sleep(opts.gapMs); // keep the stream open for a while: kills land mid-stream
            if (!ok) return void call.once("drain", () => void pump());
          }
          try {
            call.end();
          } catch {
            // already failed
          }
        };
        void pump();
      });
      count(stats.codes, result.code);
      if (result.code === "grpc:0" && checkSummary(stats, result.summary, total, `${name} ingest`)) {
        for (const b of batches) for (const e of b) stats.acked.add(e.id);
        break;
      }
      await sleep(100);
    }
  }
}

export async function verifyChain(url: string, queryKey: string): Promise<{ ok: boolean; checked: string; body: unknown }> {
  const r = await connectCall<{ ok?: boolean; checked?: string }>(url, "auditlog.v1.QueryService/VerifyChain", {}, queryKey);
  return { ok: r.status === 200 && r.body.ok === true, checked: r.body.checked ?? "0", body: r.body };
}

/** VmRSS of a process in bytes (Linux). */
export async function rssBytes(pid: number): Promise<number> {
  const { readFile } = await import("node:fs/promises");
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  const bytes = procStatusBytes(status, "VmRSS");
  if (bytes === null) throw new Error(`no VmRSS for ${pid}`);
  return bytes;
}
