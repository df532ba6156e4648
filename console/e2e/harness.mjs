// What the browser tests share: the daemon they were given (its URLs and tokens come from
// tests/console.rs through the environment), Chromium from Debian driven by
// playwright-core, the admin API called directly to compare with what the page shows,
// and a watch for Content-Security-Policy violations and page errors.

import { chromium } from "playwright-core";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const ADMIN = process.env.FLOWD_ADMIN;
export const TRIGGER = process.env.FLOWD_TRIGGER;
export const OPERATOR = process.env.FLOWD_OPERATOR;
export const VIEWER = process.env.FLOWD_VIEWER;
export const SETUP = process.env.FLOWD_SETUP;
export const SHOTS = process.env.FLOWD_SCREENSHOTS || "";
if (!ADMIN || !TRIGGER || !OPERATOR || !VIEWER) {
  throw new Error("run through `cargo test --test console the_console_in_chromium`: it starts the daemon these tests need");
}

export const CHROMIUM = process.env.FLOWD_CHROMIUM || "/usr/bin/chromium";

export async function launch() {
  const profile = mkdtempSync(join(tmpdir(), "flowd-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"],
    baseURL: ADMIN,
    viewport: { width: 1400, height: 900 },
    acceptDownloads: true,
    permissions: ["clipboard-read", "clipboard-write"],
  });
  context.setDefaultTimeout(30_000);
  return {
    context,
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/// The admin API with a bearer token: its JSON (or text for `raw`), failing on an error.
export async function api(method, path, { token = OPERATOR, body, raw = false, ok = true } = {}) {
  const r = await fetch(ADMIN + path, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body ? { "content-type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await r.text();
  if (ok && !r.ok) throw new Error(`${method} ${path}: ${r.status} ${text}`);
  if (raw) return { status: r.status, text };
  return text ? JSON.parse(text) : null;
}

export async function hook(path, body) {
  const r = await fetch(TRIGGER + path, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  const v = await r.json();
  if (r.status !== 202) throw new Error(`POST ${path}: ${r.status} ${JSON.stringify(v)}`);
  return v.job_id;
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/// Polls `f` until it returns something truthy (30 s at most).
export async function until(what, f) {
  const end = Date.now() + 30_000;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > end) throw new Error(`never: ${what}`);
    await sleep(25);
  }
}

/// The list row of `job` once its attempt `attempt` has ended.
export async function ended(job, attempt = 1) {
  return until(`${job} ends attempt ${attempt}`, async () => {
    const v = await api("GET", `/v1/executions?job_id=${job}`);
    const row = v.executions[0];
    return row && row.finished_at && row.attempt === attempt ? row : null;
  });
}

export async function status(job, want) {
  return until(`${job} is ${want}`, async () => {
    const v = await api("GET", `/v1/executions?job_id=${job}`);
    return v.executions[0]?.status === want ? v.executions[0] : null;
  });
}

/// A new tab signed in with `token` (through the API, sharing the browser's cookies),
/// recording CSP violations and page errors in `problems`.
export async function open(context, token, path = "/") {
  const r = await context.request.post(ADMIN + "/v1/session", { data: { token } });
  if (!r.ok()) throw new Error(`sign-in: ${r.status()}`);
  return watched(context, path);
}

export async function watched(context, path = "/") {
  const page = await context.newPage();
  page.problems = [];
  page.on("pageerror", (e) => page.problems.push(`page error: ${e.message}`));
  page.on("console", (m) => {
    if (m.type() === "error" || /Content Security Policy|Refused to/i.test(m.text())) {
      // A refusal the test asks for on purpose (a viewer's 403, a broken config's 422)
      // is not a problem of the page: the test checks what the page shows of it.
      if (/the server responded with a status of (401|403|422)/.test(m.text())) return;
      page.problems.push(`console ${m.type()}: ${m.text()}`);
    }
  });
  await page.addInitScript(() => {
    document.addEventListener("securitypolicyviolation", (e) => {
      console.error(`CSP violation: ${e.violatedDirective} ${e.blockedURI}`);
    });
  });
  await page.goto(path);
  return page;
}

/// The job ids the execution log shows, in order.
export async function shownJobs(page) {
  await page.locator('[data-testid="executions"][data-loading="false"]').waitFor();
  return page.locator('[data-testid="executions"] tbody tr[data-job]').evaluateAll((rows) => rows.map((r) => r.dataset.job));
}

export async function shot(page, name) {
  if (!SHOTS) return;
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: false });
}
