// The console's speed in Chromium (run by `cargo bench --bench console`, which seeds the
// store and starts the daemon): navigation → the execution log's first 50 rows rendered,
// navigation → a 50-step execution's detail (Gantt and steps) rendered, each against a
// navigation to `/healthz` on the same daemon in the same run; and the bundle's size
// gzipped.

import { chromium } from "playwright-core";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";

const ADMIN = process.env.FLOWD_ADMIN;
const TOKEN = process.env.FLOWD_TOKEN;
const JOB = process.env.FLOWD_JOB;
const RUNS = Number(process.env.FLOWD_RUNS ?? 20);
if (!ADMIN || !TOKEN || !JOB) throw new Error("run through `cargo bench --bench console`");

function percentile(xs, p) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}
const fmt = (ms) => `${ms.toFixed(0)} ms`;

// The bundle: index.html and every file it names, gzipped as a server would send them.
const index = await (await fetch(ADMIN + "/")).text();
const assets = [...index.matchAll(/"(\/assets\/[^"]+)"/g)].map((m) => m[1]);
let raw = Buffer.byteLength(index);
let gz = gzipSync(index, { level: 9 }).length;
const parts = [];
for (const a of assets) {
  const bytes = Buffer.from(await (await fetch(ADMIN + a)).arrayBuffer());
  const z = gzipSync(bytes, { level: 9 }).length;
  raw += bytes.length;
  gz += z;
  parts.push(`${a.replace(/^\/assets\//, "")} ${(z / 1024).toFixed(1)} KB`);
}
console.log(
  `bundle: ${(gz / 1024).toFixed(1)} KB gzipped (${(raw / 1024).toFixed(1)} KB raw; ${parts.join(", ")}); target ≤ 200 KB`,
);

const profile = mkdtempSync(join(tmpdir(), "flowd-bench-chromium-"));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.FLOWD_CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"],
  viewport: { width: 1400, height: 900 },
});
context.setDefaultTimeout(60_000);
try {
  const signed = await context.request.post(ADMIN + "/v1/session", { data: { token: TOKEN } });
  if (!signed.ok()) throw new Error(`sign-in: ${signed.status()}`);
  const page = await context.newPage();
  const timed = async (url, ready) => {
    const start = performance.now();
    await page.goto(url);
    await ready();
    return performance.now() - start;
  };
  const measures = {
    baseline: () => timed(ADMIN + "/healthz", async () => {}),
    log: () => timed(ADMIN + "/executions", () => page.locator('[data-testid="executions"] tr[data-job]').nth(49).waitFor()),
    detail: () =>
      timed(ADMIN + `/executions/${JOB}`, async () => {
        await page.locator('[data-testid="gantt-1"] g[data-step]').nth(49).waitFor();
        await page.locator("table.steps tr[data-step]").nth(49).waitFor();
      }),
  };
  const took = { baseline: [], log: [], detail: [] };
  for (const k of Object.keys(measures)) await measures[k](); // warm-up
  // Interleaved, so a slow moment of the machine falls on all three alike.
  for (let i = 0; i < RUNS; i++) for (const k of Object.keys(measures)) took[k].push(await measures[k]());
  const base = percentile(took.baseline, 50);
  const line = (label, xs, target) => {
    const p50 = percentile(xs, 50);
    console.log(
      `${label}: p50 ${fmt(p50)}, p90 ${fmt(percentile(xs, 90))} over ${xs.length} navigations; ` +
        `${(p50 / base).toFixed(1)}× a navigation to /healthz (p50 ${fmt(base)})${target}`,
    );
  };
  line("execution log, navigation → first 50 rows rendered", took.log, "; target ≤ 500 ms");
  line("50-step execution, navigation → Gantt and steps rendered", took.detail, "");
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
