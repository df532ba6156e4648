// Filter state <-> the console's URL and the admin API's query string. The URL is the
// state: a link restores the same view, and back/forward walk through earlier filters.

import { isStatus, type Status } from "./statuses";

/// The API's time presets, with the console's labels.
export const PRESETS: ReadonlyArray<[string, string]> = [
  ["5m", "Last 5 minutes"],
  ["15m", "Last 15 minutes"],
  ["1h", "Last hour"],
  ["6h", "Last 6 hours"],
  ["1d", "Last day"],
  ["3d", "Last 3 days"],
  ["7d", "Last 7 days"],
  ["30d", "Last 30 days"],
  ["today", "Today"],
  ["yesterday", "Yesterday"],
  ["two_days_ago", "2 days ago"],
  ["this_week", "This week"],
  ["last_week", "Last week"],
];

const PRESET_NAMES = new Set(PRESETS.map(([p]) => p));

/// A time filter: a preset, a custom range (RFC 3339 instants, either end open), or
/// none (`all`: everything retained; for logs, the API's last 30 minutes).
export type TimeFilter =
  | { kind: "preset"; preset: string }
  | { kind: "custom"; from: string | null; to: string | null }
  | { kind: "all" };

export interface ExecutionFilters {
  time: TimeFilter;
  statuses: Status[];
  flow: string;
  project: string;
  trigger_kind: string;
  job_id: string;
}

/// The execution log's default: the last 7 days.
export const DEFAULT_EXECUTION_TIME: TimeFilter = { kind: "preset", preset: "7d" };

function readTime(q: URLSearchParams, fallback: TimeFilter): TimeFilter {
  const from = q.get("from");
  const to = q.get("to");
  if (from || to) return { kind: "custom", from: from || null, to: to || null };
  const preset = q.get("preset");
  if (preset === "all") return { kind: "all" };
  if (preset && PRESET_NAMES.has(preset)) return { kind: "preset", preset };
  return fallback;
}

function writeTime(q: URLSearchParams, t: TimeFilter, fallback: TimeFilter, forApi: boolean) {
  if (t.kind === "custom") {
    if (t.from) q.set("from", t.from);
    if (t.to) q.set("to", t.to);
  } else if (t.kind === "preset") {
    if (forApi || !sameTime(t, fallback)) q.set("preset", t.preset);
  } else if (!forApi && fallback.kind !== "all") {
    q.set("preset", "all");
  }
}

export function sameTime(a: TimeFilter, b: TimeFilter): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

export function parseExecutionFilters(search: string): ExecutionFilters {
  const q = new URLSearchParams(search);
  const statuses = (q.get("status") ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter(isStatus);
  return {
    time: readTime(q, DEFAULT_EXECUTION_TIME),
    statuses: [...new Set(statuses)],
    flow: q.get("flow") ?? "",
    project: q.get("project") ?? "",
    trigger_kind: q.get("trigger_kind") ?? "",
    job_id: (q.get("job_id") ?? "").trim(),
  };
}

function writeExecution(f: ExecutionFilters, forApi: boolean): URLSearchParams {
  const q = new URLSearchParams();
  writeTime(q, f.time, DEFAULT_EXECUTION_TIME, forApi);
  if (f.statuses.length > 0) q.set("status", f.statuses.join(","));
  for (const key of ["flow", "project", "trigger_kind", "job_id"] as const) {
    const v = f[key].trim();
    if (v) q.set(key, v);
  }
  return q;
}

/// The console URL's query string (`?…`, or `""` for the defaults).
export function executionSearch(f: ExecutionFilters): string {
  const s = writeExecution(f, false).toString();
  return s ? `?${s}` : "";
}

/// The query string of `GET /v1/executions` (and of its histogram) for `f`.
export function executionApiQuery(f: ExecutionFilters, extra: Record<string, string> = {}): string {
  const q = writeExecution(f, true);
  for (const [k, v] of Object.entries(extra)) q.set(k, v);
  return q.toString();
}

/// The search fields of the running logs, each a query parameter of `GET /v1/logs`.
export const LOG_FIELDS = [
  "project",
  "flow",
  "flow_version",
  "environment",
  "level",
  "job_id",
  "step",
  "connector",
  "action",
  "category",
  "contains",
] as const;

export type LogField = (typeof LOG_FIELDS)[number];

export interface LogFilters {
  time: TimeFilter;
  fields: Record<LogField, string>;
}

/// Logs default to the API's own window: the last 30 minutes.
export const DEFAULT_LOG_TIME: TimeFilter = { kind: "all" };

export function parseLogFilters(search: string): LogFilters {
  const q = new URLSearchParams(search);
  const fields = {} as Record<LogField, string>;
  for (const k of LOG_FIELDS) fields[k] = q.get(k) ?? "";
  return { time: readTime(q, DEFAULT_LOG_TIME), fields };
}

function writeLogs(f: LogFilters, forApi: boolean): URLSearchParams {
  const q = new URLSearchParams();
  writeTime(q, f.time, DEFAULT_LOG_TIME, forApi);
  for (const k of LOG_FIELDS) {
    const v = k === "contains" ? f.fields[k] : f.fields[k].trim();
    if (v) q.set(k, v);
  }
  return q;
}

export function logSearch(f: LogFilters): string {
  const s = writeLogs(f, false).toString();
  return s ? `?${s}` : "";
}

/// The query of `GET /v1/logs` (and of its download; a live tail takes no time range).
export function logApiQuery(f: LogFilters, extra: Record<string, string> = {}, withTime = true): string {
  const q = writeLogs(withTime ? f : { ...f, time: { kind: "all" } }, true);
  for (const [k, v] of Object.entries(extra)) q.set(k, v);
  return q.toString();
}
