// The admin API as the console calls it: same origin, the session cookie sent by the
// browser, errors turned into exceptions carrying the API's code and message.

export class ApiError extends Error {
  constructor(
    public status: number,
    public code: string,
    message: string,
    public details: unknown = null,
  ) {
    super(message);
  }
}

/// Called when an answer says the session is gone (401), so the app shows sign-in.
let onSignedOut: () => void = () => {};
export function whenSignedOut(f: () => void) {
  onSignedOut = f;
}

async function failure(r: Response): Promise<ApiError> {
  let code = "http_" + r.status;
  let message = `${r.status} ${r.statusText}`;
  let details: unknown = null;
  try {
    const body = await r.json();
    if (body?.error) {
      code = body.error.code ?? code;
      message = body.error.message ?? message;
      details = body.error.errors ?? null;
    }
  } catch {
    // Not JSON: the status line says enough.
  }
  return new ApiError(r.status, code, message, details);
}

export async function request<T = any>(method: string, path: string, body?: unknown): Promise<T> {
  const init: RequestInit = { method, credentials: "same-origin", headers: {} };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    (init.headers as Record<string, string>)["content-type"] = "application/json";
  }
  const r = await fetch(path, init);
  if (!r.ok) {
    const e = await failure(r);
    if (r.status === 401 && path !== "/v1/session") onSignedOut();
    throw e;
  }
  const text = await r.text();
  return (text ? JSON.parse(text) : null) as T;
}

export const get = <T = any>(path: string) => request<T>("GET", path);
export const post = <T = any>(path: string, body?: unknown) => request<T>("POST", path, body ?? {});

export interface Session {
  name: string;
  role: "viewer" | "operator";
  timezone: string;
  environment: string;
}

/// Reads NDJSON records from a streaming answer (the live tail) until `signal` aborts;
/// `opened` is called once the daemon answered: records stored from then on arrive.
export async function follow(
  path: string,
  signal: AbortSignal,
  each: (record: any) => void,
  opened: () => void = () => {},
): Promise<void> {
  const r = await fetch(path, { credentials: "same-origin", signal });
  if (!r.ok || !r.body) throw await failure(r);
  opened();
  const reader = r.body.getReader();
  const decoder = new TextDecoder();
  let buffered = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffered += decoder.decode(value, { stream: true });
    let nl: number;
    while ((nl = buffered.indexOf("\n")) >= 0) {
      const line = buffered.slice(0, nl).trim();
      buffered = buffered.slice(nl + 1);
      if (line) each(JSON.parse(line));
    }
  }
}
