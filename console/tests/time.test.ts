import { describe, expect, it } from "vitest";
import { formatDuration, formatTime, formatWithOffset, offsetMinutes, toWallInput, wallToUtc } from "../src/lib/time";

describe("rendering times in a zone", () => {
  const t = "2026-12-04T20:15:30Z";

  it("shows one instant in the daemon's zone, UTC and a zone with a half-hour offset", () => {
    expect(formatTime(t, "UTC")).toBe("2026-12-04 20:15:30");
    expect(formatTime(t, "Asia/Kolkata")).toBe("2026-12-05 01:45:30");
    expect(formatTime(t, "America/New_York")).toBe("2026-12-04 15:15:30");
    expect(formatWithOffset(t, "Asia/Kolkata")).toBe("2026-12-05 01:45:30 +05:30");
    expect(formatWithOffset(t, "America/St_Johns")).toBe("2026-12-04 16:45:30 -03:30");
  });

  it("follows daylight saving time", () => {
    expect(offsetMinutes(Date.parse("2026-07-01T12:00:00Z"), "Europe/Berlin")).toBe(120);
    expect(offsetMinutes(Date.parse("2026-12-01T12:00:00Z"), "Europe/Berlin")).toBe(60);
  });

  it("shows a dash for a time not there yet", () => {
    expect(formatTime(null, "UTC")).toBe("—");
  });

  it("formats durations at every scale", () => {
    expect(formatDuration(0.0123)).toBe("12 ms");
    expect(formatDuration(0.00031)).toBe("0.31 ms");
    expect(formatDuration(3.456)).toBe("3.46 s");
    expect(formatDuration(125)).toBe("2 min 5 s");
    expect(formatDuration(7260)).toBe("2 h 1 min");
    expect(formatDuration(null)).toBe("—");
  });
});

describe("wall times typed in a zone", () => {
  it("become the instant at which that zone's clocks read them", () => {
    expect(wallToUtc("2026-12-05T00:00", "Asia/Kolkata")).toBe("2026-12-04T18:30:00Z");
    expect(wallToUtc("2026-12-05T00:00:30", "UTC")).toBe("2026-12-05T00:00:30Z");
    expect(wallToUtc("not a time", "UTC")).toBeNull();
  });

  it("take the first of two readings when clocks go back", () => {
    // Berlin went from 03:00 CEST back to 02:00 CET on 2026-10-25: 02:30 happened twice.
    expect(wallToUtc("2026-10-25T02:30", "Europe/Berlin")).toBe("2026-10-25T00:30:00Z");
    expect(wallToUtc("2026-10-25T03:30", "Europe/Berlin")).toBe("2026-10-25T02:30:00Z");
  });

  it("land just after a gap when clocks go forward", () => {
    // Berlin skipped 02:00–03:00 on 2026-03-29; 02:30 does not exist there.
    expect(wallToUtc("2026-03-29T02:30", "Europe/Berlin")).toBe("2026-03-29T01:30:00Z");
    expect(formatTime("2026-03-29T01:30:00Z", "Europe/Berlin")).toBe("2026-03-29 03:30:00");
  });

  it("round-trip through the input's value in each zone", () => {
    for (const tz of ["UTC", "Asia/Kolkata", "America/New_York", "Australia/Lord_Howe"]) {
      const iso = "2026-06-15T09:41:00Z";
      expect(wallToUtc(toWallInput(iso, tz), tz)).toBe(iso);
    }
  });
});
