// The bars of an attempt's timeline: the wait in the queue, then one bar per step from
// its start to its end (a running step ends now), each try of a retried step marked.

export interface StepLike {
  name: string;
  kind: string;
  status: string;
  started_at: string | null;
  finished_at: string | null;
  tries?: { started_at: string; duration: number }[];
}

export interface Bar {
  label: string;
  kind: "queue" | "step" | "pause";
  status: string;
  /// Milliseconds from the chart's start; null for a step that never started.
  start: number | null;
  end: number | null;
  tries: number[];
}

export interface Chart {
  origin: number;
  span: number;
  bars: Bar[];
}

const ms = (iso: string | null | undefined): number | null => {
  if (!iso) return null;
  const t = Date.parse(iso);
  return Number.isNaN(t) ? null : t;
};

export function chart(
  attempt: { started_at: string | null; finished_at: string | null },
  steps: StepLike[],
  queuedSince: string | null,
  now: number,
): Chart {
  const times: number[] = [];
  const push = (t: number | null) => t !== null && times.push(t);
  const queued = ms(queuedSince);
  const started = ms(attempt.started_at);
  push(queued);
  push(started);
  push(ms(attempt.finished_at));
  for (const s of steps) {
    push(ms(s.started_at));
    push(ms(s.finished_at));
  }
  const running = !attempt.finished_at;
  if (running) push(now);
  const origin = times.length > 0 ? Math.min(...times) : now;
  const last = times.length > 0 ? Math.max(...times) : now;
  const rel = (t: number | null) => (t === null ? null : t - origin);
  const bars: Bar[] = [];
  if (queued !== null && started !== null && started >= queued) {
    bars.push({ label: "queue", kind: "queue", status: "queued", start: rel(queued), end: rel(started), tries: [] });
  }
  for (const s of steps) {
    const start = ms(s.started_at);
    let end = ms(s.finished_at);
    if (start !== null && end === null) end = running ? now : start;
    bars.push({
      label: s.name,
      kind: s.kind === "pause" ? "pause" : "step",
      status: s.status,
      start: rel(start),
      end: rel(end),
      tries: (s.tries ?? []).slice(1).map((t) => Date.parse(t.started_at) - origin),
    });
  }
  return { origin, span: Math.max(1, last - origin), bars };
}
