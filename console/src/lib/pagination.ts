// Keyset pagination as the console keeps it: pages are appended by cursor ("load
// older"), a refresh of the first page merges in new and changed rows without dropping
// the older ones already loaded, and nothing is ever counted.

export interface Keyed {
  job_id: string;
}

/// `older` appended after `rows`, skipping any row already there.
export function appendOlder<T extends Keyed>(rows: T[], older: T[]): T[] {
  const seen = new Set(rows.map((r) => r.job_id));
  return rows.concat(older.filter((r) => !seen.has(r.job_id)));
}

/// A fresh first page merged into what is loaded: rows of the page replace their older
/// copies (a status moved on), rows newer than anything loaded come first, and every
/// loaded row the page does not reach stays, so "load older" work is not lost.
/// Job ids are UUIDv7: their order is creation order, so newest first is descending.
export function mergeFirstPage<T extends Keyed>(rows: T[], page: T[]): T[] {
  if (rows.length === 0) return page.slice();
  if (page.length === 0) return rows.slice();
  const fresh = new Map(page.map((r) => [r.job_id, r]));
  const oldestOfPage = page[page.length - 1].job_id;
  const kept = rows.filter((r) => !fresh.has(r.job_id) && r.job_id < oldestOfPage);
  return page.concat(kept);
}
