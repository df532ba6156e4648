import { describe, expect, it } from "vitest";
import {
  executionApiQuery,
  executionSearch,
  logApiQuery,
  logSearch,
  parseExecutionFilters,
  parseLogFilters,
} from "../src/lib/filters";

describe("execution filters and the URL", () => {
  it("read back what they write, for every filter at once", () => {
    const f = parseExecutionFilters(
      "?preset=today&status=failed,paused&flow=orders&project=shop&trigger_kind=http&job_id=0193",
    );
    expect(f).toEqual({
      time: { kind: "preset", preset: "today" },
      statuses: ["failed", "paused"],
      flow: "orders",
      project: "shop",
      trigger_kind: "http",
      job_id: "0193",
    });
    expect(parseExecutionFilters(executionSearch(f))).toEqual(f);
  });

  it("leave the default (last 7 days) out of the URL but send it to the API", () => {
    const f = parseExecutionFilters("");
    expect(f.time).toEqual({ kind: "preset", preset: "7d" });
    expect(executionSearch(f)).toBe("");
    expect(executionApiQuery(f)).toBe("preset=7d");
  });

  it("keep 'everything retained' in the URL and send no time to the API", () => {
    const f = parseExecutionFilters("?preset=all");
    expect(f.time).toEqual({ kind: "all" });
    expect(executionSearch(f)).toBe("?preset=all");
    expect(executionApiQuery(f, { limit: "50" })).toBe("limit=50");
  });

  it("prefer a custom range over a preset and keep either end open", () => {
    const f = parseExecutionFilters("?preset=1h&from=2026-12-01T00:00:00Z");
    expect(f.time).toEqual({ kind: "custom", from: "2026-12-01T00:00:00Z", to: null });
    expect(executionApiQuery(f)).toBe("from=2026-12-01T00%3A00%3A00Z");
  });

  it("drop unknown statuses and presets, and repeated statuses", () => {
    const f = parseExecutionFilters("?status=failed,bogus,failed&preset=fortnight");
    expect(f.statuses).toEqual(["failed"]);
    expect(f.time).toEqual({ kind: "preset", preset: "7d" });
  });

  it("escape values so a filter cannot add parameters", () => {
    const f = { ...parseExecutionFilters(""), flow: "a&status=success" };
    expect(parseExecutionFilters(executionSearch(f)).flow).toBe("a&status=success");
    expect(new URLSearchParams(executionApiQuery(f)).get("status")).toBeNull();
  });
});

describe("log filters and the URL", () => {
  it("default to the API's 30-minute window: no time parameter at all", () => {
    const f = parseLogFilters("");
    expect(f.time).toEqual({ kind: "all" });
    expect(logSearch(f)).toBe("");
    expect(logApiQuery(f)).toBe("");
  });

  it("carry every search field, keeping spaces inside the message text", () => {
    const f = parseLogFilters(
      "?preset=1h&project=p&flow=f&flow_version=2&environment=prod&level=warn&job_id=j&step=s&connector=c&action=call&category=a&contains=+order+1+",
    );
    expect(f.fields.contains).toBe(" order 1 ");
    const q = new URLSearchParams(logApiQuery(f, { format: "csv" }));
    expect(Object.fromEntries(q)).toEqual({
      preset: "1h",
      project: "p",
      flow: "f",
      flow_version: "2",
      environment: "prod",
      level: "warn",
      job_id: "j",
      step: "s",
      connector: "c",
      action: "call",
      category: "a",
      contains: " order 1 ",
      format: "csv",
    });
    expect(parseLogFilters(logSearch(f))).toEqual(f);
  });

  it("leave the time range out of a live tail's query", () => {
    const f = parseLogFilters("?preset=1h&level=error");
    expect(logApiQuery(f, {}, false)).toBe("level=error");
  });
});
