// The web console end to end, in headless Chromium against the whole service
// (PostgreSQL + Elasticsearch) started in-process: sign in, live tail, a
// query-string search, an event's before/after diff, a CSV export, and a key
// of another tenant seeing none of it. Screenshots of the main views go to
// CONSOLE_SCREENSHOT_DIR (default: a temp dir, printed); the console's first
// visit bytes and the time to render a 100-row page are printed and written
// there as perf.json (docs/PERFORMANCE.md).
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse } from "csv-parse/sync";
import { type Browser, type BrowserContext, chromium, type Page, type Response } from "playwright-core";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { connectCall } from "../../scripts/lib/connect-json.ts";
import { makeEvent, toConnectJson } from "../support/events.ts";
import { BOOTSTRAP_KEY, createTenantWithKeys, startTestService, type TenantKeys, type TestService } from "../support/service.ts";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
const SEEDED = 130;
const run = randomBytes(3).toString("hex");
const TARGET_ID = `plan-change-${run}`;

/** Render times the console records on window (console/src/views/Search.tsx). */
type Timing = { rows: number; ms: number };
type Ctx = { svc: TestService; browser: Browser; acme: TenantKeys; other: TenantKeys; shots: string; prefix: string };
let ctx: Ctx;

async function ingest(keys: TenantKeys, events: Record<string, unknown>[]): Promise<void> {
  const r = await connectCall(ctx.svc.url, "auditlog.v1.IngestService/Append", { events }, keys.ingest);
  if (r.status !== 200) throw new Error(`Append: ${JSON.stringify(r.body)}`);
}

/** Polls SearchEvents (through Elasticsearch) until `want` events match the query. */
async function searchable(keys: TenantKeys, query: string, want: number): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const r = await connectCall<{ events?: unknown[] }>(
      ctx.svc.url,
      "auditlog.v1.QueryService/SearchEvents",
      { filter: { query }, pageSize: 1000 },
      keys.query,
    );
    if (r.status === 200 && (r.body.events?.length ?? 0) >= want) return;
    if (Date.now() > deadline) throw new Error(`not searchable after 30 s: ${query} (${JSON.stringify(r.body).slice(0, 300)})`);
    await new Promise((res) => setTimeout(res, 200));
  }
}

async function shot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: join(ctx.shots, `${name}.png`), fullPage: false });
}

async function signIn(page: Page, credential: string): Promise<void> {
  await page.goto(`${ctx.svc.url}/`);
  await page.getByLabel("API key or token").fill(credential);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("button", { name: "Sign out" }).waitFor();
}

async function newPage(width = 1280, height = 860): Promise<{ context: BrowserContext; page: Page }> {
  const context = await ctx.browser.newContext({ viewport: { width, height }, acceptDownloads: true });
  const page = await context.newPage();
  page.on("pageerror", (err) => console.error("page error:", err.message));
  return { context, page };
}

// Skipped on a machine without the browser, except in CI (.ci/run installs it), where a missing one fails.
const hasChromium = existsSync(CHROMIUM) || process.env.CI === "true";

describe.skipIf(!hasChromium)("web console in Chromium", () => {
  beforeAll(async () => {
    // The console is built by `npm test`'s pretest; a direct vitest run needs `npm run build:console` first.
    expect(existsSync(join(import.meta.dirname, "../../console/dist/index.html")), "console/dist is not built").toBe(true);
    const prefix = `console-e2e-${run}`;
    const svc = await startTestService({
      ELASTICSEARCH_URL: inject("elasticsearchUrl"),
      AUDITLOG_ES_INDEX_PREFIX: prefix,
      AUDITLOG_RECONCILE_INTERVAL_MS: "0",
    });
    const shots = process.env.CONSOLE_SCREENSHOT_DIR ?? (await mkdtemp(join(tmpdir(), "console-shots-")));
    await mkdir(shots, { recursive: true });
    const acme = await createTenantWithKeys(svc.url, `acme-${run}`);
    const other = await createTenantWithKeys(svc.url, `other-${run}`);
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS });
    ctx = { svc, browser, acme, other, shots, prefix };
    console.log(`console screenshots: ${shots}`);
    // A page and more of ordinary events in the last minutes, for the results table.
    const base = Date.now() - 10 * 60_000;
    await ingest(
      acme,
      Array.from({ length: SEEDED }, (_, i) => toConnectJson(makeEvent(i, `seed-${run}`, base))),
    );
    await ingest(other, [toConnectJson(makeEvent(0, `other-${run}`, base))]);
    await searchable(acme, `id:seed-${run}-0`, 1);
    await searchable(acme, "", SEEDED);
  });

  afterAll(async () => {
    await ctx?.browser.close();
    await ctx?.svc.stop();
    if (ctx) {
      // Only this run's indices.
      const es = inject("elasticsearchUrl");
      await fetch(`${es}/${ctx.prefix}*?expand_wildcards=all&ignore_unavailable=true&allow_no_indices=true`, { method: "DELETE" }).catch(
        () => {},
      );
      await fetch(`${es}/_index_template/${ctx.prefix}*`, { method: "DELETE" }).catch(() => {});
    }
  });

  it("serves the console with its content types, immutable hashed assets and index.html for client routes", async () => {
    const index = await fetch(`${ctx.svc.url}/`);
    expect(index.status).toBe(200);
    expect(index.headers.get("content-type")).toBe("text/html; charset=utf-8");
    expect(index.headers.get("cache-control")).toBe("no-cache");
    const html = await index.text();
    const js = /src="(\/assets\/[^"]+\.js)"/.exec(html)?.[1];
    expect(js).toBeDefined();
    const asset = await fetch(`${ctx.svc.url}${js}`);
    expect(asset.headers.get("content-type")).toBe("text/javascript; charset=utf-8");
    expect(asset.headers.get("cache-control")).toBe("public, max-age=31536000, immutable");
    const route = await fetch(`${ctx.svc.url}/events/some-id`);
    expect(route.status).toBe(200);
    expect(await route.text()).toBe(html);
    expect((await fetch(`${ctx.svc.url}/assets/missing-abcdefgh.js`)).status).toBe(404);
    expect((await fetch(`${ctx.svc.url}/%2e%2e/package.json`)).status).toBe(404);
    expect((await fetch(`${ctx.svc.url}/healthz`)).headers.get("content-type")).toBe("application/json");
  });

  it("signs in, tails, searches, shows the diff, exports CSV; measures the first visit and a 100-row render", async () => {
    const { context, page } = await newPage();
    const assets: { url: string; type: string; bytes: number; sent: number; encoding: string }[] = [];
    const pending: Promise<void>[] = [];
    const collect = (res: Response) => {
      const type = res.request().resourceType();
      if (type !== "script" && type !== "stylesheet") return;
      pending.push(
        res.body().then(async (body) => {
          // What was sent: the compressed size when the server gzipped it.
          const sent = Number((await res.headerValue("content-length")) ?? body.length);
          assets.push({
            url: new URL(res.url()).pathname,
            type,
            bytes: body.length,
            sent,
            encoding: (await res.headerValue("content-encoding")) ?? "identity",
          });
        }),
      );
    };
    // The first visit only: the page's own scripts and styles until it is usable.
    page.on("response", collect);
    await page.goto(`${ctx.svc.url}/`, { waitUntil: "networkidle" });
    await page.getByLabel("API key or token").waitFor();
    page.off("response", collect);
    await Promise.all(pending);
    await shot(page, "sign-in");
    await signIn(page, ctx.acme.all);

    // Search: the seeded events, newest first, 100 to a page.
    await page.goto(`${ctx.svc.url}/search?range=24h`);
    await page.getByTestId("results-table").locator("tbody tr").nth(99).waitFor();
    expect(await page.getByTestId("results-table").locator("tbody tr").count()).toBe(100);
    await expect.poll(() => page.getByTestId("results-table").locator("caption").textContent()).toMatch(/^\d+ events match; page 1$/);
    // Everything the tenant has in the range (the seeded events, and whatever the service records of its own).
    const total = Number(/^(\d+)/.exec((await page.getByTestId("results-table").locator("caption").textContent())!)![1]);
    expect(total).toBeGreaterThanOrEqual(SEEDED);
    await shot(page, "search");

    // The render time of a 100-row page: next page and back, a few times.
    const rendered = () => page.evaluate(() => ((globalThis as any).__consoleRenderMs as Timing[] | undefined)?.length ?? 0);
    for (let i = 0; i < 5; i++) {
      const before = await rendered();
      await page.getByRole("button", { name: "Next page →" }).click();
      await expect.poll(rendered).toBe(before + 1);
      await page.getByRole("button", { name: "← Previous page" }).click();
      await expect.poll(rendered).toBe(before + 2);
    }
    const renders = await page.evaluate(() => ((globalThis as any).__consoleRenderMs ?? []) as Timing[]);
    const hundred = renders.filter((r) => r.rows === 100).map((r) => r.ms);
    const painted = (await page.evaluate(() => ((globalThis as any).__consolePaintMs ?? []) as Timing[]))
      .filter((r) => r.rows === 100)
      .map((r) => r.ms);
    expect(hundred.length).toBe(6);

    // Live tail: turn it on, ingest through the API, see the event arrive.
    await page.getByRole("button", { name: "Live tail" }).click();
    await page.getByText("Live tail: waiting for new events").waitFor({ timeout: 15_000 });
    const changed = {
      ...toConnectJson(makeEvent(7, "x", Date.now() - 1000)),
      id: TARGET_ID,
      action: "customer.plan_changed",
      actor: { id: "ada", type: "ACTOR_TYPE_USER", name: "Ada Lovelace" },
      message: "plan upgraded",
      changes: { before: { plan: "free", seats: 3, billing: { cycle: "monthly" } }, after: { plan: "pro", seats: 5, owner: "ada" } },
    };
    await ingest(ctx.acme, [changed]);
    const tailRow = page.getByTestId("tail-table").locator("tbody tr", { hasText: "customer.plan_changed" });
    await tailRow.waitFor({ timeout: 15_000 });
    await shot(page, "live-tail");
    // Pause holds new events; resume shows them.
    await page.getByRole("button", { name: "Pause" }).click();
    await ingest(ctx.acme, [{ ...toConnectJson(makeEvent(8, "x", Date.now())), id: `held-${run}`, action: "customer.held" }]);
    await page.getByRole("button", { name: "Resume (1 new)" }).waitFor({ timeout: 15_000 });
    expect(await page.getByTestId("tail-table").locator("tbody tr", { hasText: "customer.held" }).count()).toBe(0);
    await page.getByRole("button", { name: /Resume/ }).click();
    await page.getByTestId("tail-table").locator("tbody tr", { hasText: "customer.held" }).waitFor();
    await page.getByRole("button", { name: "Stop live tail" }).click();

    // A query-string search finds it; a syntax error is marked where the service says.
    await searchable(ctx.acme, `id:${TARGET_ID}`, 1);
    await page.getByLabel("Query", { exact: true }).fill("action:customer.* actor.id:");
    await page.getByRole("button", { name: "Search", exact: true }).click();
    await page.getByRole("alert").filter({ hasText: 'empty value for "actor.id" at position 27' }).waitFor();
    expect(await page.getByTestId("query-error-mark").textContent()).toContain("(position 27)");
    await shot(page, "query-error");
    await page.getByLabel("Query", { exact: true }).fill('action:customer.plan_changed actor.id:ada "plan upgraded"');
    await page.getByRole("button", { name: "Search", exact: true }).click();
    await expect.poll(() => page.getByTestId("results-table").locator("tbody tr").count()).toBe(1);
    expect(page.url()).toContain("q=action%3Acustomer.plan_changed");
    expect(page.url()).not.toContain(ctx.acme.all);

    // Export CSV of the current query through the browser.
    const [download] = await Promise.all([page.waitForEvent("download"), page.getByRole("button", { name: "Export CSV" }).click()]);
    const csv = await readFile((await download.path())!, "utf8");
    const rows = parse(csv, { columns: true }) as Record<string, string>[];
    expect(rows.map((r) => r["id"])).toEqual([TARGET_ID]);
    expect(rows[0]!["action"]).toBe("customer.plan_changed");
    expect(rows[0]!["tenant_id"]).toBe(ctx.acme.tenantId);

    // Event detail: every field, the diff, sequence and hash.
    await page.getByTestId("results-table").locator("tbody tr a").first().click();
    await page.getByTestId("diff-table").waitFor();
    const diff = await page.getByTestId("diff-table").locator("tbody tr").allTextContents();
    expect(diff).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^billing\.cycle"monthly"removed$/),
        expect.stringMatching(/^owner"ada"added$/),
        expect.stringMatching(/^plan"free""pro"changed$/),
        expect.stringMatching(/^seats35changed$/),
      ]),
    );
    const fields = await page.getByTestId("event-fields").textContent();
    expect(fields).toContain("Sequence");
    expect(fields).toMatch(/Hash[0-9a-f]{64}/);
    expect(await page.locator("pre.code").first().textContent()).toContain('"Authorization: Bearer $KEY"');
    await shot(page, "event-detail");

    // Charts and integrity of the tenant.
    await page.goto(`${ctx.svc.url}/charts?range=24h`);
    await page.locator(".chart canvas").waitFor();
    await page.getByRole("heading", { name: "Top values" }).waitFor();
    await shot(page, "charts");
    await page.goto(`${ctx.svc.url}/integrity`);
    await page.getByRole("button", { name: "Verify chain" }).click();
    expect(await page.getByTestId("verify-result").textContent()).toMatch(/Chain intact\. \d+ events checked/);
    await shot(page, "integrity");

    // The search view at phone width.
    await page.setViewportSize({ width: 390, height: 844 });
    await page.goto(`${ctx.svc.url}/search?range=24h&size=25`);
    await page.getByTestId("results-table").locator("tbody tr").nth(24).waitFor();
    await shot(page, "search-phone");
    await context.close();

    const firstVisit = {
      jsBytes: assets.filter((a) => a.type === "script").reduce((n, a) => n + a.bytes, 0),
      cssBytes: assets.filter((a) => a.type === "stylesheet").reduce((n, a) => n + a.bytes, 0),
      sentBytes: assets.reduce((n, a) => n + a.sent, 0),
      files: assets.map((a) => `${a.url} (${a.encoding})`),
    };
    const sorted = [...hundred].sort((a, b) => a - b);
    const perf = {
      firstVisit,
      render100: { runs: sorted.length, medianMs: sorted[Math.floor(sorted.length / 2)], maxMs: sorted[sorted.length - 1] },
      painted100: painted,
    };
    await writeFile(join(ctx.shots, "perf.json"), JSON.stringify(perf, null, 2));
    console.log("console perf", JSON.stringify(perf));
    expect(firstVisit.jsBytes).toBeGreaterThan(0);
    // Served compressed: the chromium first visit sends far fewer bytes than the files hold.
    expect(firstVisit.sentBytes).toBeLessThan((firstVisit.jsBytes + firstVisit.cssBytes) / 2);
  });

  it("shows another tenant's key none of it", async () => {
    const { context, page } = await newPage();
    await signIn(page, ctx.other.all);
    await page.goto(`${ctx.svc.url}/search?range=24h`);
    await page.getByTestId("results-table").waitFor();
    await page.getByTestId("results-table").locator("tbody tr", { hasText: "event number 0 for user 0" }).waitFor();
    const seen = await page.getByTestId("results-table").textContent();
    expect(seen).not.toContain("plan upgraded");
    expect(seen).not.toContain("customer.plan_changed");
    expect(seen).not.toContain("customer.held");
    await page.getByLabel("Query", { exact: true }).fill(`id:${TARGET_ID}`);
    await page.getByRole("button", { name: "Search", exact: true }).click();
    await expect.poll(() => page.getByTestId("results-table").locator("caption").textContent()).toMatch(/^0 events match/);
    const [download] = await Promise.all([page.waitForEvent("download"), page.getByRole("button", { name: "Export CSV" }).click()]);
    const rows = parse(await readFile((await download.path())!, "utf8"), { columns: true }) as unknown[];
    expect(rows).toEqual([]);
    await page.goto(`${ctx.svc.url}/events/${TARGET_ID}`);
    await page.getByRole("alert").filter({ hasText: "NOT_FOUND" }).waitFor();
    await context.close();
  });

  it("gives the operator the admin view: tenants and keys, the new secret shown once", async () => {
    const { context, page } = await newPage();
    await signIn(page, BOOTSTRAP_KEY);
    await page.getByRole("heading", { name: "Tenants" }).waitFor();
    await page.getByRole("button", { name: ctx.acme.tenantId }).click();
    await page.getByLabel("Key name").fill("console-made");
    await page.getByRole("button", { name: "Create key" }).click();
    const secret = await page.getByLabel("New secret").inputValue();
    expect(secret.length).toBeGreaterThan(16);
    await page.getByRole("cell", { name: "console-made" }).waitFor();
    await shot(page, "admin");
    // The new key works for the API.
    const r = await connectCall(ctx.svc.url, "auditlog.v1.QueryService/SearchEvents", { pageSize: 1 }, secret);
    expect(r.status).toBe(200);
    await context.close();
  });
});
