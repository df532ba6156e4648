import { describe, expect, it } from "vitest";
import { appendOlder, mergeFirstPage } from "../src/lib/pagination";
import { chart } from "../src/lib/gantt";

const row = (id: string, status = "success") => ({ job_id: id, status });

describe("keyset pagination", () => {
  it("appends an older page, never twice the same row", () => {
    const rows = [row("05"), row("04")];
    expect(appendOlder(rows, [row("04"), row("03"), row("02")]).map((r) => r.job_id)).toEqual(["05", "04", "03", "02"]);
  });

  it("merges a refreshed first page: new rows on top, changed rows replaced, older pages kept", () => {
    const loaded = [row("05", "running"), row("04"), row("03"), row("02"), row("01")];
    const page = [row("07"), row("06"), row("05", "failed"), row("04")];
    const merged = mergeFirstPage(loaded, page);
    expect(merged.map((r) => r.job_id)).toEqual(["07", "06", "05", "04", "03", "02", "01"]);
    expect(merged[2].status).toBe("failed");
  });

  it("drops a row of the page's span that no longer matches the filter", () => {
    const loaded = [row("05", "running"), row("04"), row("03")];
    const page = [row("06"), row("04")];
    expect(mergeFirstPage(loaded, page).map((r) => r.job_id)).toEqual(["06", "04", "03"]);
  });

  it("takes the page as it is when nothing was loaded, and keeps rows when it is empty", () => {
    expect(mergeFirstPage([], [row("01")]).map((r) => r.job_id)).toEqual(["01"]);
    expect(mergeFirstPage([row("01")], []).map((r) => r.job_id)).toEqual(["01"]);
  });
});

describe("the timeline of an attempt", () => {
  it("shows the queue wait, each step's bar and steps that never started", () => {
    const c = chart(
      { started_at: "2026-12-05T10:00:02Z", finished_at: "2026-12-05T10:00:10Z" },
      [
        { name: "a", kind: "connector", status: "success", started_at: "2026-12-05T10:00:02Z", finished_at: "2026-12-05T10:00:04Z" },
        { name: "wait", kind: "pause", status: "success", started_at: "2026-12-05T10:00:04Z", finished_at: "2026-12-05T10:00:09Z" },
        { name: "b", kind: "connector", status: "skipped", started_at: null, finished_at: null },
      ],
      "2026-12-05T10:00:00Z",
      Date.parse("2026-12-05T11:00:00Z"),
    );
    expect(c.span).toBe(10_000);
    expect(c.bars.map((b) => [b.label, b.kind, b.start, b.end])).toEqual([
      ["queue", "queue", 0, 2000],
      ["a", "step", 2000, 4000],
      ["wait", "pause", 4000, 9000],
      ["b", "step", null, null],
    ]);
  });

  it("draws a running step up to now and an attempt with no step started yet", () => {
    const now = Date.parse("2026-12-05T10:00:05Z");
    const c = chart(
      { started_at: "2026-12-05T10:00:00Z", finished_at: null },
      [{ name: "a", kind: "connector", status: "running", started_at: "2026-12-05T10:00:01Z", finished_at: null }],
      null,
      now,
    );
    expect(c.bars[0]).toMatchObject({ start: 1000, end: 5000 });
    const empty = chart({ started_at: null, finished_at: null }, [], null, now);
    expect(empty.bars).toEqual([]);
    expect(empty.span).toBe(1);
  });
});
