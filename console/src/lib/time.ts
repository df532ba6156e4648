// Times as the console shows them: in the daemon's time zone, the browser's, or UTC,
// and wall times typed into a custom range turned back into instants in that zone.

export type ZoneChoice = "daemon" | "local" | "utc";

/// The IANA name behind a choice.
export function zoneName(choice: ZoneChoice, daemonZone: string): string {
  if (choice === "utc") return "UTC";
  if (choice === "daemon") return daemonZone;
  return Intl.DateTimeFormat().resolvedOptions().timeZone;
}

interface Parts {
  year: number;
  month: number;
  day: number;
  hour: number;
  minute: number;
  second: number;
}

const formatters = new Map<string, Intl.DateTimeFormat>();

function partsIn(instant: number, tz: string): Parts {
  let f = formatters.get(tz);
  if (!f) {
    f = new Intl.DateTimeFormat("en-US", {
      timeZone: tz,
      hourCycle: "h23",
      year: "numeric",
      month: "2-digit",
      day: "2-digit",
      hour: "2-digit",
      minute: "2-digit",
      second: "2-digit",
    });
    formatters.set(tz, f);
  }
  const out: Record<string, number> = {};
  for (const p of f.formatToParts(new Date(instant))) {
    if (p.type !== "literal") out[p.type] = Number(p.value);
  }
  return out as unknown as Parts;
}

/// Minutes `tz` is ahead of UTC at `instant`.
export function offsetMinutes(instant: number, tz: string): number {
  const p = partsIn(instant, tz);
  const asUtc = Date.UTC(p.year, p.month - 1, p.day, p.hour, p.minute, p.second);
  return Math.round((asUtc - Math.floor(instant / 1000) * 1000) / 60000);
}

/// `+05:30`, `-04:00`, `+00:00`.
export function offsetLabel(minutes: number): string {
  const sign = minutes < 0 ? "-" : "+";
  const m = Math.abs(minutes);
  return `${sign}${pad(Math.floor(m / 60))}:${pad(m % 60)}`;
}

function pad(n: number, width = 2): string {
  return String(n).padStart(width, "0");
}

/// `2026-12-05 14:03:07` in `tz` (no offset; see [`formatWithOffset`]).
export function formatTime(iso: string | number | null | undefined, tz: string): string {
  if (iso === null || iso === undefined || iso === "") return "—";
  const t = typeof iso === "number" ? iso : Date.parse(iso);
  if (Number.isNaN(t)) return String(iso);
  const p = partsIn(t, tz);
  return `${p.year}-${pad(p.month)}-${pad(p.day)} ${pad(p.hour)}:${pad(p.minute)}:${pad(p.second)}`;
}

/// `2026-12-05 00:00:00 +05:30`.
export function formatWithOffset(iso: string | number, tz: string): string {
  const t = typeof iso === "number" ? iso : Date.parse(iso);
  return `${formatTime(t, tz)} ${offsetLabel(offsetMinutes(t, tz))}`;
}

/// The value of an `<input type="datetime-local" step="1">` (`2026-12-05T14:03:07`) for
/// `instant` in `tz`.
export function toWallInput(iso: string, tz: string): string {
  const p = partsIn(Date.parse(iso), tz);
  return `${p.year}-${pad(p.month)}-${pad(p.day)}T${pad(p.hour)}:${pad(p.minute)}:${pad(p.second)}`;
}

/// The instant (RFC 3339, UTC) at which clocks in `tz` read `wall` (`YYYY-MM-DDTHH:MM[:SS]`).
/// A wall time that occurs twice (clocks going back) is its first occurrence; one that
/// does not occur (clocks going forward) is read with the offset before the jump, which
/// lands just after it. `null` when `wall` is not a wall time.
export function wallToUtc(wall: string, tz: string): string | null {
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2}))?$/.exec(wall);
  if (!m) return null;
  const [y, mo, d, h, mi, s] = m.slice(1).map((x) => Number(x ?? 0));
  const asUtc = Date.UTC(y, mo - 1, d, h, mi, s);
  // The two offsets around this wall time: a day either side covers every transition.
  const before = offsetMinutes(asUtc - 86_400_000, tz);
  const after = offsetMinutes(asUtc + 86_400_000, tz);
  const candidates = [before, after]
    .map((off) => asUtc - off * 60_000)
    .filter((t) => {
      const p = partsIn(t, tz);
      return Date.UTC(p.year, p.month - 1, p.day, p.hour, p.minute, p.second) === asUtc;
    })
    .sort((a, b) => a - b);
  const t = candidates.length > 0 ? candidates[0] : asUtc - before * 60_000;
  return new Date(t).toISOString().replace(".000Z", "Z");
}

/// `0.31 ms`, `12 ms`, `1.25 s`, `2 min 3 s`, `—`.
export function formatDuration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined) return "—";
  if (seconds < 0.01) return `${(seconds * 1000).toFixed(2)} ms`;
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 60) return `${seconds.toFixed(2)} s`;
  const m = Math.floor(seconds / 60);
  if (m < 60) return `${m} min ${Math.round(seconds % 60)} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}
