// Searches kept by name in this browser (as the running-logs products keep a frequently
// used period): a name and the console URL's query string. Nothing of it reaches the
// daemon.

const KEY = "flowd.saved-log-searches";

export type Saved = Record<string, string>;

export function readSaved(storage: Pick<Storage, "getItem">): Saved {
  try {
    const v = JSON.parse(storage.getItem(KEY) ?? "{}");
    if (v === null || typeof v !== "object" || Array.isArray(v)) return {};
    return Object.fromEntries(Object.entries(v).filter(([, s]) => typeof s === "string")) as Saved;
  } catch {
    return {};
  }
}

/// `saved` with `search` kept under `name` (trimmed; an empty name keeps nothing).
export function withSaved(saved: Saved, name: string, search: string): Saved {
  const n = name.trim();
  return n ? { ...saved, [n]: search } : saved;
}

export function withoutSaved(saved: Saved, name: string): Saved {
  const out = { ...saved };
  delete out[name];
  return out;
}

export function writeSaved(storage: Pick<Storage, "setItem">, saved: Saved) {
  storage.setItem(KEY, JSON.stringify(saved));
}
