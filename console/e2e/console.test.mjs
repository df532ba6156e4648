// The console in headless Chromium against a real daemon (started by tests/console.rs):
// every filter against the API's own answer, the URL and history, time zones, the
// execution detail, Retry and Resume, roles, the live tail, searches and downloads,
// untrusted payloads as text, scheduled tasks and flows.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  ADMIN,
  OPERATOR,
  SETUP,
  VIEWER,
  api,
  ended,
  hook,
  launch,
  open,
  shot,
  shownJobs,
  sleep,
  status,
  until,
  watched,
} from "./harness.mjs";

let browser;
const jobs = {};

before(async () => {
  browser = await launch();
  // Executions of every kind: http (two projects), manual, schedule; every final status.
  jobs.orders = [];
  for (let i = 0; i < 3; i++) jobs.orders.push(await hook("/orders", { id: `o-${i}` }));
  jobs.failing = await hook("/failing", { amount: 12 });
  jobs.partial = (await api("POST", "/v1/flows/partial/run", { body: { z: 3 } })).job_id;
  jobs.nightly = (await api("POST", "/v1/schedules/nightly/run")).job_id;
  for (const j of [...jobs.orders, jobs.failing, jobs.partial, jobs.nightly]) await ended(j);
});

after(async () => {
  await browser?.close();
});

function noProblems(page) {
  assert.deepEqual(page.problems, [], "no CSP violation and no page error");
}

/// The API's job ids for the execution list `query`.
async function apiJobs(query) {
  const v = await api("GET", `/v1/executions?limit=50${query ? "&" + query : ""}`);
  return v.executions.map((e) => e.job_id);
}

test("signing in through the form shows the role and the execution log", async () => {
  const page = await watched(browser.context, "/");
  await page.getByLabel("Admin token").fill("not-a-token");
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("alert").getByText("not one of the daemon's admin tokens").waitFor();
  await page.getByLabel("Admin token").fill(OPERATOR);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByTestId("role").getByText("operator").waitFor();
  // The token is in no URL and no storage the page can read.
  assert.ok(!page.url().includes(OPERATOR));
  const stored = await page.evaluate(() => JSON.stringify(localStorage) + document.cookie);
  assert.ok(!stored.includes(OPERATOR) && !stored.includes("flowd_session"), "HttpOnly: the page cannot read the cookie");
  assert.deepEqual(await shownJobs(page), await apiJobs("preset=7d"));
  await shot(page, "execution-log");
  noProblems(page);
  await page.close();
});

test("every filter changes the rows as the API does, lives in the URL, and walks back", async () => {
  const page = await open(browser.context, OPERATOR, "/executions");
  const all = await shownJobs(page);
  assert.equal(all.length, 6);
  const steps = [
    [() => page.getByTestId("status-failed").check(), "status=failed", "preset=7d&status=failed"],
    [() => page.getByTestId("status-success").check(), "status=failed%2Csuccess", "preset=7d&status=failed,success"],
    [() => page.getByTestId("status-failed").uncheck(), "status=success", "preset=7d&status=success"],
    [() => page.getByTestId("status-success").uncheck(), "", "preset=7d"],
    [() => page.getByTestId("flow").selectOption("orders"), "flow=orders", "preset=7d&flow=orders"],
    [() => page.getByTestId("flow").selectOption(""), "", "preset=7d"],
    [async () => { await page.getByTestId("project").fill("ops"); await page.getByTestId("project").press("Enter"); }, "project=ops", "preset=7d&project=ops"],
    [async () => { await page.getByTestId("project").fill(""); await page.getByTestId("project").press("Enter"); }, "", "preset=7d"],
    [() => page.getByTestId("trigger-kind").selectOption("schedule"), "trigger_kind=schedule", "preset=7d&trigger_kind=schedule"],
    [() => page.getByTestId("trigger-kind").selectOption("manual"), "trigger_kind=manual", "preset=7d&trigger_kind=manual"],
    [() => page.getByTestId("trigger-kind").selectOption(""), "", "preset=7d"],
    [async () => { await page.getByTestId("job-id").fill(jobs.failing); await page.getByTestId("job-id").press("Enter"); }, `job_id=${jobs.failing}`, `preset=7d&job_id=${jobs.failing}`],
  ];
  const seen = [];
  for (const [act, inUrl, query] of steps) {
    await act();
    await until(`the URL has ${inUrl || "no filter"}`, async () => (inUrl ? page.url().includes(inUrl) : !page.url().includes("?")));
    const want = await apiJobs(query);
    await until(`rows of ${query}`, async () => JSON.stringify(await shownJobs(page)) === JSON.stringify(want));
    seen.push([page.url(), want]);
  }
  // Every filter narrowed something.
  for (const [url, rows] of seen) if (url.includes("?")) assert.ok(rows.length < all.length, url);
  // Back walks through the same states, newest first; forward again.
  for (let i = seen.length - 2; i >= seen.length - 5; i--) {
    await page.goBack();
    const [url, want] = seen[i];
    assert.equal(page.url(), url);
    await until(`rows after back to ${url}`, async () => JSON.stringify(await shownJobs(page)) === JSON.stringify(want));
  }
  await page.goForward();
  assert.equal(page.url(), seen[seen.length - 4][0]);
  // A shared link opens on the same rows.
  const [url, want] = seen.find(([u]) => u.includes("trigger_kind=manual"));
  const other = await watched(browser.context, url);
  assert.deepEqual(await shownJobs(other), want);
  assert.equal(await other.getByTestId("trigger-kind").inputValue(), "manual");
  noProblems(page);
  noProblems(other);
  await page.close();
  await other.close();
});

test("presets and custom ranges are read in the daemon's zone (Asia/Kolkata), and times switch zones", async () => {
  const page = await open(browser.context, OPERATOR, "/executions");
  await page.getByTestId("zone").selectOption("daemon");
  await page.getByTestId("preset").selectOption("today");
  await until("today in the URL", async () => page.url().includes("preset=today"));
  const kolkataToday = new Intl.DateTimeFormat("en-CA", { timeZone: "Asia/Kolkata" }).format(new Date());
  const applied = page.getByTestId("applied-range");
  await applied.getByText(`${kolkataToday} 00:00:00 +05:30`).waitFor();
  assert.match(await page.getByTestId("zone-name").textContent(), /Asia\/Kolkata \(\+05:30\)/);
  assert.deepEqual(await shownJobs(page), await apiJobs("preset=today"));
  // The same range in UTC: Kolkata's midnight is 18:30 the day before.
  await page.getByTestId("zone").selectOption("utc");
  const midnight = new Date(`${kolkataToday}T00:00:00+05:30`);
  const utcText = midnight.toISOString().slice(0, 19).replace("T", " ");
  await applied.getByText(`${utcText} +00:00`).waitFor();
  const firstRow = await api("GET", "/v1/executions?limit=1");
  const cell = page.locator(`tr[data-job="${firstRow.executions[0].job_id}"] td.time`);
  assert.equal(await cell.textContent(), firstRow.executions[0].created_at.slice(0, 19).replace("T", " "));
  // Custom ranges typed in UTC: an hour before the first execution (no row), then one
  // around all of them (every row).
  const rows = (await api("GET", "/v1/executions?limit=50")).executions;
  const first = Date.parse(rows[rows.length - 1].created_at);
  const last = Date.parse(rows[0].created_at);
  const wallOf = (t) => new Date(t).toISOString().slice(0, 19);
  // Chromium drops ":00" seconds from the value it reports.
  const typed = (t) => (t.endsWith(":00") ? t.slice(0, 16) : t);
  await page.getByTestId("preset").selectOption("custom");
  for (const [from, to] of [
    [wallOf(first - 3600_000), wallOf(first - 2000)],
    [wallOf(first - 2000), wallOf(last + 2000)],
  ]) {
    await page.getByTestId("custom-from").fill(typed(from));
    await page.getByTestId("custom-from").dispatchEvent("change");
    await page.getByTestId("custom-to").fill(typed(to));
    await page.getByTestId("custom-to").dispatchEvent("change");
    await until("the custom range in the URL", async () => page.url().includes(`to=${encodeURIComponent(to + "Z")}`));
    assert.ok(page.url().includes(`from=${encodeURIComponent(from + "Z")}`), page.url());
    const want = await apiJobs(`from=${from}Z&to=${to}Z`);
    await until(`rows from ${from} to ${to}`, async () => JSON.stringify(await shownJobs(page)) === JSON.stringify(want));
    // The histogram counts what the list shows.
    await until("the histogram's total", async () => (await page.getByTestId("histogram").getAttribute("data-total")) === String(want.length));
  }
  assert.deepEqual(await shownJobs(page), rows.map((e) => e.job_id));
  // A range typed backwards: the daemon's reason is the page's alert.
  await page.getByTestId("custom-from").fill(typed(wallOf(last + 2000)));
  await page.getByTestId("custom-from").dispatchEvent("change");
  await page.getByTestId("custom-to").fill(typed(wallOf(first - 2000)));
  await page.getByTestId("custom-to").dispatchEvent("change");
  await page.getByRole("alert").getByText("is after `to`").waitFor();
  assert.match(await page.getByRole("alert").textContent(), /the range holds nothing/);
  await page.getByTestId("zone").selectOption("daemon");
  // The refusals the test asked for.
  page.problems = page.problems.filter((p) => !/status of 400/.test(p));
  noProblems(page);
  await page.close();
});

test("a slow answer to an earlier filter never overwrites the answer to a later one", async () => {
  const page = await open(browser.context, OPERATOR, "/executions");
  await page.getByTestId("zone").selectOption("daemon");
  // Answers for the last hour arrive 1.5 s late; today's at once.
  let asked = 0;
  let late = 0;
  await page.route("**/v1/executions**", async (route) => {
    if (!route.request().url().includes("preset=1h")) return route.continue();
    asked += 1;
    late += 1;
    await sleep(1500);
    await route.continue();
    late -= 1;
  });
  await page.getByTestId("preset").selectOption("1h");
  await until("the last hour asked for", async () => asked > 0);
  await page.getByTestId("preset").selectOption("today");
  const kolkataToday = new Intl.DateTimeFormat("en-CA", { timeZone: "Asia/Kolkata" }).format(new Date());
  const todays = `${kolkataToday} 00:00:00 +05:30`;
  const applied = page.getByTestId("applied-range");
  await applied.getByText(todays).waitFor();
  // The late answers came (and one for the rows would have been followed by a late
  // histogram, which must not come either), and changed nothing.
  for (let quiet = 0; quiet < 2; quiet += 1) {
    await until("no late answer on its way", async () => late === 0);
    await sleep(500);
  }
  assert.equal(late, 0);
  assert.ok((await applied.textContent()).includes(todays), await applied.textContent());
  assert.deepEqual(await shownJobs(page), await apiJobs("preset=today"));
  await page.unroute("**/v1/executions**");
  noProblems(page);
  await page.close();
});

test("the detail shows the Gantt, skipped steps with why, the connector's hash and the payloads", async () => {
  const page = await open(browser.context, OPERATOR, `/executions/${jobs.partial}`);
  const d = await api("GET", `/v1/executions/${jobs.partial}`);
  await page.getByTestId("detail").waitFor();
  assert.equal(await page.getByTestId("detail").getAttribute("data-status"), "partially_executed");
  const gantt = page.getByTestId("gantt-1");
  for (const s of d.steps) {
    const row = gantt.locator(`g[data-step="${s.name}"]`);
    assert.equal(await row.locator("rect").count(), s.started_at ? 1 : 0, s.name);
  }
  assert.equal(await gantt.locator('g[data-step="queue"]').count(), 1, "the wait in the queue");
  const skipped = page.locator('tr[data-step="uses_flaky"]');
  assert.equal(await skipped.getAttribute("data-status"), "skipped");
  assert.equal(await skipped.getByTestId("note").textContent(), "needs steps.flaky, which failed");
  const flaky = d.steps.find((s) => s.name === "flaky");
  assert.equal(await page.locator('tr[data-step="flaky"]').getByTestId("hash").getAttribute("data-hash"), flaky.connector.sha256);
  assert.match(await page.locator('tr[data-step="flaky"]').textContent(), new RegExp(flaky.error.kind));
  await shot(page, "execution-detail");
  // The output of a step: copied and downloaded, each the stored payload.
  await page.getByTestId("payloads-independent").click();
  const output = page.getByTestId("json-output");
  const stored = await api("GET", `/v1/executions/${jobs.partial}/steps/independent/output`);
  await output.getByTestId("copy").click();
  const copied = await page.evaluate(() => navigator.clipboard.readText());
  assert.deepEqual(JSON.parse(copied), stored);
  const [download] = await Promise.all([page.waitForEvent("download"), output.getByTestId("download").click()]);
  assert.deepEqual(JSON.parse(readFileSync(await download.path(), "utf8")), stored);
  assert.match(download.suggestedFilename(), /independent-output\.json$/);
  // The trigger's input.
  assert.match(await page.getByTestId("json-trigger input").textContent(), /"z"/);
  // Logs of the job: one click away.
  await page.getByTestId("job-logs").click();
  await until("the logs of the job", async () => page.url().includes(`/logs?job_id=${jobs.partial}`));
  noProblems(page);
  await page.close();
});

test("Retry makes attempt 2, then 3, then is replaced by the limit's reason", async () => {
  const page = await open(browser.context, OPERATOR, `/executions/${jobs.failing}`);
  await page.getByTestId("retries-left").getByText("2 retries left").waitFor();
  await page.getByTestId("retry").click();
  await ended(jobs.failing, 2);
  await page.locator('[data-testid="detail"][data-attempt="2"][data-status="failed"]').waitFor();
  await page.getByTestId("attempt-2").waitFor();
  await page.getByTestId("retries-left").getByText("1 retry left").waitFor();
  await page.getByTestId("retry-start").click();
  await ended(jobs.failing, 3);
  await page.locator('[data-testid="detail"][data-attempt="3"][data-status="failed"]').waitFor();
  const refused = page.getByTestId("retry-refused");
  await refused.waitFor();
  assert.equal(await refused.getAttribute("data-code"), "retry_limit");
  assert.equal(await page.getByTestId("retry").count(), 0);
  assert.equal(await page.getByTestId("attempt-1").count(), 1, "every attempt stays");
  const d = await api("GET", `/v1/executions/${jobs.failing}`);
  assert.equal(d.retry.refused.code, "retry_limit");
  assert.ok((await refused.textContent()).includes(d.retry.refused.message));
  noProblems(page);
  await page.close();
});

test("a retry the daemon would refuse shows why instead of the button (an inactive flow)", async () => {
  const job = await hook("/failing", { amount: 1 });
  await ended(job);
  await api("POST", "/v1/flows/failing/deactivate");
  try {
    const page = await open(browser.context, OPERATOR, `/executions/${job}`);
    const refused = page.getByTestId("retry-refused");
    await refused.waitFor();
    assert.equal(await refused.getAttribute("data-code"), "flow_inactive");
    assert.match(await refused.textContent(), /is inactive; activate it first/);
    assert.equal(await page.getByTestId("retry").count(), 0);
    noProblems(page);
    await page.close();
  } finally {
    await api("POST", "/v1/flows/failing/activate");
  }
});

test("Resume ends a pause", async () => {
  const job = (await api("POST", "/v1/flows/hold/run", { body: {} })).job_id;
  await status(job, "paused");
  const page = await open(browser.context, OPERATOR, `/executions/${job}`);
  await page.getByTestId("resume").click();
  await page.locator('[data-testid="detail"][data-status="success"]').waitFor();
  assert.equal((await ended(job)).status, "success");
  assert.equal(await page.getByTestId("resume").count(), 0);
  noProblems(page);
  await page.close();
});

test("a viewer sees no control that changes anything, and a forged change gets 403", async () => {
  const { context, close } = await launch();
  try {
    const page = await open(context, VIEWER, `/executions/${jobs.partial}`);
    await page.getByTestId("role").getByText("viewer").waitFor();
    await page.getByTestId("detail").waitFor();
    assert.equal(await page.locator('[data-testid="actions"] button').count(), 0);
    const paused = (await api("POST", "/v1/flows/hold/run", { body: {} })).job_id;
    await status(paused, "paused");
    await page.goto(`/executions/${paused}`);
    await page.locator('[data-testid="detail"][data-status="paused"]').waitFor();
    assert.equal(await page.getByTestId("resume").count(), 0);
    for (const path of ["/schedules", "/flows"]) {
      await page.goto(path);
      await page.locator("table.rows tbody tr").first().waitFor();
      assert.equal(await page.locator("main button:not(.link):not(.small)").count(), 0, path);
    }
    // The page's own origin, the viewer's cookie: the server refuses anyway.
    const answers = await page.evaluate(async (job) => {
      const out = [];
      for (const path of [`/v1/executions/${job}/resume`, "/v1/flows/partial/deactivate", "/v1/reload", "/v1/schedules/nightly/run"]) {
        const r = await fetch(path, { method: "POST" });
        out.push([path, r.status, (await r.json()).error.code]);
      }
      return out;
    }, paused);
    for (const [path, code, name] of answers) assert.deepEqual([code, name], [403, "forbidden"], path);
    await api("POST", `/v1/executions/${paused}/resume`);
    page.problems = page.problems.filter((p) => !/403/.test(p));
    noProblems(page);
  } finally {
    await close();
  }
});

test("the live tail shows a new record, and holds new ones while paused", async () => {
  const page = await open(browser.context, OPERATOR, "/logs");
  await page.getByTestId("tail").check();
  // Records stored once the daemon answered the tail arrive; wait for that answer.
  await page.locator('[data-testid="tail-state"][data-live="true"]').waitFor();
  await hook("/orders", { id: "tail-1" });
  await page.getByTestId("logs").getByText("order tail-1 in").waitFor();
  await page.getByTestId("tail-pause").click();
  await hook("/orders", { id: "tail-2" });
  await page.getByTestId("tail-resume").getByText(/Resume \([1-9]\d* new\)/).waitFor();
  assert.equal(await page.getByTestId("logs").getByText("order tail-2 in").count(), 0, "held while paused");
  await page.getByTestId("tail-resume").click();
  await page.getByTestId("logs").getByText("order tail-2 in").waitFor();
  // A record's detail opens on the right.
  await page.getByTestId("logs").getByText("order tail-2 in").click();
  await page.getByTestId("log-detail").getByText("order tail-2 in").waitFor();
  await shot(page, "running-logs");
  noProblems(page);
  await page.close();
});

test("every search field narrows the logs as the API does, and downloads yield the search", async () => {
  const page = await open(browser.context, OPERATOR, "/logs");
  const sample = (await api("GET", "/v1/logs?preset=1h&contains=order%20o-1")).logs[0];
  assert.ok(sample, "a record of the orders flow");
  const fields = {
    project: sample.project,
    flow: sample.flow,
    flow_version: sample.flow_version,
    environment: sample.environment,
    job_id: sample.job_id,
    step: sample.step,
    connector: sample.connector,
    action: sample.action,
    category: sample.category,
    contains: "o-1",
  };
  const apiMessages = async (q) => (await api("GET", `/v1/logs?limit=100${q}`)).logs.map((l) => l.message);
  const shownMessages = () => page.locator('[data-testid="logs"] tbody tr[data-level] td.msg').allTextContents();
  let query = "";
  for (const [k, v] of Object.entries(fields)) {
    await page.getByTestId(`log-${k}`).fill(v);
    await page.getByTestId(`log-${k}`).press("Enter");
    query += `&${k}=${encodeURIComponent(v)}`;
    await until(`${k} in the URL`, async () => page.url().includes(`${k}=`));
    const want = await apiMessages(query);
    await until(`logs of ${query}`, async () => JSON.stringify(await shownMessages()) === JSON.stringify(want));
  }
  await page.getByTestId("log-level").selectOption("warn");
  await until("level in the URL", async () => page.url().includes("level=warn"));
  await until("no info record at warn", async () => (await shownMessages()).length === (await apiMessages(query + "&level=warn")).length);
  await page.getByTestId("log-level").selectOption("");
  // The search kept by name in this browser, and found again from a bare page.
  const searched = page.url();
  await page.getByTestId("save-name").fill("o-1 records");
  await page.getByTestId("save").click();
  await page.goto("/logs");
  await page.getByTestId("saved").selectOption("o-1 records");
  await until("the saved search", async () => page.url() === searched);
  await until("its records", async () => JSON.stringify(await shownMessages()) === JSON.stringify(await apiMessages(query)));
  // Downloads of the current search, in each format, are the API's own.
  for (const format of ["ndjson", "csv", "text"]) {
    const [download] = await Promise.all([page.waitForEvent("download"), page.getByTestId(`download-${format}`).click()]);
    const got = readFileSync(await download.path(), "utf8");
    const want = await api("GET", `/v1/logs/download?format=${format}${query}`, { raw: true });
    assert.equal(got, want.text, format);
    assert.ok(got.includes("o-1"), `${format}: ${got}`);
    if (format === "ndjson") assert.ok(got.trim().split("\n").every((l) => JSON.parse(l).job_id === sample.job_id));
  }
  // A job id in a row filters to that job.
  await page.goto("/logs?preset=1h");
  await page.getByTestId("job-filter").first().click();
  await until("a job filter", async () => page.url().includes("job_id="));
  noProblems(page);
  await page.close();
});

test("payloads and log messages with <script> and HTML render as text", async () => {
  // No double quote: JSON shows one escaped, and the text is looked for as it is.
  const evil = `<script>window.__pwned=1</script><img src=x onerror=window.__pwned=2><b id=bold>bold</b>`;
  const job = await hook("/xss", { html: evil });
  await ended(job);
  const page = await open(browser.context, OPERATOR, `/executions/${job}`);
  await page.getByTestId("payloads-shout").click();
  await page.getByTestId("json-output").getByText(evil, { exact: false }).first().waitFor();
  const logs = await watched(browser.context, `/logs?job_id=${job}`);
  await logs.getByTestId("logs").getByText(`said ${evil}`).waitFor();
  for (const p of [page, logs]) {
    const dom = await p.evaluate(() => ({
      pwned: window.__pwned ?? null,
      scripts: document.scripts.length,
      bold: document.getElementById("bold") !== null,
      imgs: document.images.length,
    }));
    assert.deepEqual(dom, { pwned: null, scripts: 1, bold: false, imgs: 0 });
    noProblems(p);
  }
  await page.close();
  await logs.close();
});

test("scheduled tasks: next fires, run now, disable and enable", async () => {
  const page = await open(browser.context, OPERATOR, "/schedules");
  const row = page.locator('tr[data-flow="nightly"]');
  await row.waitFor();
  assert.match(await row.textContent(), /0 0 3 29 2 \*/);
  assert.match(await row.textContent(), /Asia\/Tokyo/);
  assert.equal(await row.locator("ul.fires li").count(), 5);
  await row.getByTestId("run-now").click();
  const started = (await page.getByTestId("message").textContent()).match(/Started (\S+)/)[1];
  await ended(started);
  await page.locator(`[data-testid="scheduled-executions"] tr[data-job="${started}"]`).waitFor();
  await row.getByTestId("disable").click();
  await until("disabled", async () => (await row.getAttribute("data-active")) === "false");
  assert.equal((await api("GET", "/v1/schedules")).schedules.find((s) => s.flow === "nightly").active, false);
  await row.getByTestId("enable").click();
  await until("enabled", async () => (await row.getAttribute("data-active")) === "true");
  assert.equal((await api("GET", "/v1/schedules")).schedules.find((s) => s.flow === "nightly").active, true);
  noProblems(page);
  await page.close();
});

test("flows: deactivate and activate, and a reload lists each error at file:line:column", async () => {
  const page = await open(browser.context, OPERATOR, "/flows");
  const row = page.locator('tr[data-flow="orders"]');
  await row.getByTestId("deactivate").click();
  await until("inactive", async () => (await row.getAttribute("data-active")) === "false");
  assert.equal((await api("GET", "/v1/flows")).flows.find((f) => f.name === "orders").active, false);
  await row.getByTestId("activate").click();
  await until("active", async () => (await row.getAttribute("data-active")) === "true");
  const broken = join(SETUP, "flows", "broken.toml");
  writeFileSync(broken, '[flow]\nname = "broken"\n[trigger.manual]\n[[steps]]\nname = "s"\nconnector = "no-such-connector"\n');
  try {
    await page.getByTestId("reload").click();
    const problems = page.getByTestId("problems");
    await problems.waitFor();
    assert.match(await problems.textContent(), /broken\.toml:\d+:\d+/);
    assert.match(await page.getByTestId("message").textContent(), /running config stays/);
  } finally {
    rmSync(broken);
  }
  await page.getByTestId("reload").click();
  await page.getByTestId("message").getByText(/Reloaded/).waitFor();
  noProblems(page);
  await page.close();
});

test("load older pages by cursor, and auto refresh adds new rows while keeping older ones", async () => {
  const made = [];
  for (let i = 0; i < 55; i++) made.push((await api("POST", "/v1/flows/quick/run", { body: {} })).job_id);
  for (const j of made) await ended(j);
  const page = await open(browser.context, OPERATOR, "/executions?preset=all");
  assert.equal((await shownJobs(page)).length, 50);
  await page.getByTestId("older").click();
  const all = (await api("GET", "/v1/executions?limit=1000")).executions.map((e) => e.job_id);
  await until("every row after load older", async () => (await shownJobs(page)).length === Math.min(all.length, 100));
  const loaded = await shownJobs(page);
  assert.deepEqual(loaded, all.slice(0, loaded.length));
  await page.getByTestId("refresh").selectOption("5");
  const fresh = (await api("POST", "/v1/flows/quick/run", { body: {} })).job_id;
  await until("the new row on top", async () => (await shownJobs(page))[0] === fresh);
  const after = await shownJobs(page);
  assert.deepEqual(after.slice(1), loaded, "older rows stay");
  await page.getByTestId("refresh").selectOption("0");
  noProblems(page);
  await page.close();
});
