import { describe, expect, it } from "vitest";
import { readSaved, withSaved, withoutSaved, writeSaved } from "../src/lib/saved";

function memory(initial: Record<string, string> = {}) {
  const m = new Map(Object.entries(initial));
  return { getItem: (k: string) => m.get(k) ?? null, setItem: (k: string, v: string) => void m.set(k, v) };
}

describe("saved log searches", () => {
  it("are kept by name and read back", () => {
    const s = memory();
    writeSaved(s, withSaved(withSaved(readSaved(s), " errors ", "?level=error"), "shop", "?project=shop&preset=1d"));
    expect(readSaved(s)).toEqual({ errors: "?level=error", shop: "?project=shop&preset=1d" });
    writeSaved(s, withoutSaved(readSaved(s), "errors"));
    expect(readSaved(s)).toEqual({ shop: "?project=shop&preset=1d" });
  });

  it("ignore a nameless save and whatever else is in storage", () => {
    expect(withSaved({}, "  ", "?x=1")).toEqual({});
    expect(readSaved(memory({ "flowd.saved-log-searches": "not json" }))).toEqual({});
    expect(readSaved(memory({ "flowd.saved-log-searches": '["a"]' }))).toEqual({});
    expect(readSaved(memory({ "flowd.saved-log-searches": '{"a": "?x=1", "b": 3}' }))).toEqual({ a: "?x=1" });
  });
});
