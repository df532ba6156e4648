//! Throttles across daemons: a place among a flow's running executions is a row of
//! `throttle_slots` held under its execution's lease, the rate a row of
//! `throttle_rates` with the next moment a start may happen, and who is waiting a row
//! of `throttle_waits`, alive while its execution's lease is, so the oldest waiting goes
//! first. An ask is one statement that takes no lock: it puts the waiter in line and
//! reads its place, the places held and the rate's next start. Only a waiter whose turn
//! it is then tries the flow's advisory lock and decides the grant in one transaction;
//! one that finds it taken asks again shortly, holding no connection while it waits.
//! A waiter is told to ask again about when its turn may come (its place in line times
//! the rate's interval), so a long line asks a few times a second in all.

use super::lease::{NOW_NS, ttl_ns};
use super::{PostgresStore, describe, id};
use crate::store::{ClaimError, Lease, Slot};
use std::time::Duration;

/// The longest a waiter is told to wait before asking again.
const LONGEST_WAIT: Duration = Duration::from_secs(1);

/// The shortest, when it is not first in line (a first one is told its exact time).
const SHORTEST_WAIT: Duration = Duration::from_millis(1);

/// How long past its lease's expiry a place stays held when nobody took its execution
/// over (a taken-over execution frees it at once).
const EXPIRED_PLACE: Duration = Duration::from_secs(10);

/// How long the first in line waits before asking again when the flow is full; the
/// n-th in line waits n times as long.
const FULL_RETRY: Duration = Duration::from_millis(50);

/// How long a waiter whose turn it is waits before asking again when another daemon
/// holds the flow's lock (it is deciding a grant, which takes a few round trips).
const LOCK_BUSY_RETRY: Duration = Duration::from_millis(5);

/// Places in line counted past this are not told apart (they all wait the longest).
const AHEAD_COUNTED: i64 = 1000;

fn backend(e: tokio_postgres::Error) -> ClaimError {
    ClaimError::Backend(describe(&e))
}

/// What an ask sees of a flow's line.
struct Line {
    held: bool,
    ahead: i64,
    running: i64,
    next_ns: Option<i64>,
    now: i64,
}

impl Line {
    fn from_row(row: &tokio_postgres::Row) -> Line {
        Line {
            held: row.get(0),
            ahead: row.get(1),
            running: row.get(2),
            next_ns: row.get(3),
            now: row.get(4),
        }
    }

    /// How long to wait before asking again, or `None` when it may start now.
    fn turn(&self, max_concurrency: u32, interval: Option<Duration>) -> Option<Duration> {
        let rate_wait = self
            .next_ns
            .filter(|n| *n > self.now)
            .map(|n| Duration::from_nanos((n - self.now) as u64));
        turn(
            self.ahead as u64,
            self.running as u64,
            max_concurrency,
            rate_wait,
            interval,
        )
    }
}

/// Whether `flow`'s waiter `$2` still holds its lease (owner `$3`, fence `$4`). One that
/// ran out with nobody claiming the execution since still does, as for its heartbeat and
/// its writes: its fence is current. Refusing it would leave an execution that nobody
/// runs under a lease its daemon goes on renewing.
const HELD: &str = "held AS (SELECT EXISTS (SELECT 1 FROM claims WHERE job_id = $2 AND owner = $3
    AND fence = $4) AS held)";

/// The line as waiter `$2` sees it: whether it holds its lease, how many waiters whose
/// lease is alive are older, how many places are held (a place whose lease expired more
/// than `$5` ns ago is not), and the rate's next start.
const LINE: &str = "SELECT (SELECT held FROM held),
    (SELECT count(*) FROM (SELECT 1 FROM throttle_waits w JOIN claims c ON c.job_id = w.job_id
        WHERE w.flow = $1 AND w.job_id < $2 AND c.expires_ns > (SELECT ns FROM now) LIMIT $6) a),
    (SELECT count(*) FROM throttle_slots s JOIN claims c
        ON c.job_id = s.job_id AND c.owner = s.owner AND c.fence = s.fence
        WHERE s.flow = $1 AND c.expires_ns > (SELECT ns FROM now) - $5),
    (SELECT next_ns FROM throttle_rates WHERE flow = $1),
    (SELECT ns FROM now)";

pub(super) async fn take_slot(
    store: &PostgresStore,
    lease: &Lease,
    flow: &str,
    max_concurrency: u32,
    interval: Option<Duration>,
) -> Result<Slot, ClaimError> {
    let mut client = store.client().await.map_err(ClaimError::Backend)?;
    let job = id(lease.job.0);
    let fence = lease.fence as i64;
    let expired = ttl_ns(EXPIRED_PLACE);
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 6] =
        [&flow, &job, &lease.owner, &fence, &expired, &AHEAD_COUNTED];
    // In line (once: a row is not rewritten; only under its lease, so a row is always
    // its lease holder's), and what the line looks like, without a lock.
    let line = client
        .query_one(
            &*format!(
                "WITH now AS (SELECT {NOW_NS} AS ns), {HELD},
                 joined AS (INSERT INTO throttle_waits (flow, job_id, seen_ns)
                     SELECT $1, $2, ns FROM now WHERE (SELECT held FROM held)
                     ON CONFLICT (flow, job_id) DO NOTHING)
                 {LINE}"
            ),
            &params,
        )
        .await
        .map_err(backend)?;
    let line = Line::from_row(&line);
    if !line.held {
        return Err(ClaimError::Lost(lease.job));
    }
    if let Some(wait) = line.turn(max_concurrency, interval) {
        return Ok(Slot::Wait(wait));
    }
    // Its turn, as far as it could see: decided again under the flow's lock. The lock
    // is tried, not waited for: a waiter blocked on it would hold a pooled connection,
    // and a line of them would starve the daemon's lease renewals and reads.
    let tx = client.transaction().await.map_err(backend)?;
    let locked: bool = tx
        .query_one(
            "SELECT pg_try_advisory_xact_lock(hashtextextended('flowd throttle ' || $1::text, 0))",
            &[&flow],
        )
        .await
        .map_err(backend)?
        .get(0);
    if !locked {
        tx.rollback().await.map_err(backend)?;
        return Ok(Slot::Wait(LOCK_BUSY_RETRY));
    }
    let line = tx
        .query_one(&*format!("WITH now AS (SELECT {NOW_NS} AS ns), {HELD} {LINE}"), &params)
        .await
        .map_err(backend)?;
    let line = Line::from_row(&line);
    if !line.held {
        tx.rollback().await.map_err(backend)?;
        return Err(ClaimError::Lost(lease.job));
    }
    let now = line.now;
    // A place is free again once its execution was claimed by another owner (taken
    // over), or its lease is long expired (its daemon died after the execution ended).
    // A lease just expired keeps it: its holder may still renew it, and its step may
    // still be running. A waiter whose lease expired is out of line.
    tx.execute(
        "DELETE FROM throttle_slots s WHERE s.flow = $1 AND NOT EXISTS (
             SELECT 1 FROM claims c WHERE c.job_id = s.job_id AND c.owner = s.owner
                 AND c.fence = s.fence AND c.expires_ns > $2)",
        &[&flow, &(now - expired)],
    )
    .await
    .map_err(backend)?;
    tx.execute(
        "DELETE FROM throttle_waits w WHERE w.flow = $1 AND NOT EXISTS (
             SELECT 1 FROM claims c WHERE c.job_id = w.job_id AND c.expires_ns > $2)",
        &[&flow, &now],
    )
    .await
    .map_err(backend)?;
    if let Some(wait) = line.turn(max_concurrency, interval) {
        tx.commit().await.map_err(backend)?;
        return Ok(Slot::Wait(wait));
    }
    tx.execute(
        "INSERT INTO throttle_slots (flow, job_id, owner, fence) VALUES ($1, $2, $3, $4)
         ON CONFLICT (job_id) DO UPDATE SET flow = EXCLUDED.flow, owner = EXCLUDED.owner, fence = EXCLUDED.fence",
        &[&flow, &job, &lease.owner, &fence],
    )
    .await
    .map_err(backend)?;
    tx.execute("DELETE FROM throttle_waits WHERE job_id = $1", &[&job])
        .await
        .map_err(backend)?;
    if let Some(interval) = interval {
        // The next start is one interval after this one, or after the last allowed one
        // when starts are behind (so a backlog does not burst).
        tx.execute(
            "INSERT INTO throttle_rates AS r (flow, next_ns) VALUES ($1, $2::bigint + $3::bigint)
             ON CONFLICT (flow) DO UPDATE SET next_ns = greatest(r.next_ns, $2::bigint) + $3::bigint",
            &[&flow, &now, &ttl_ns(interval)],
        )
        .await
        .map_err(backend)?;
    }
    tx.commit().await.map_err(backend)?;
    Ok(Slot::Granted)
}

/// How long a waiter with `ahead` older waiters waits before asking again, or `None`
/// when it may start now. Older waiters go first: without a rate it may start only if
/// the places free hold them and it; with one, only as the first in line, when the
/// rate's next start (`rate_wait` away, if in the future) has come. Each waiter ahead
/// takes one more interval, or one more [`FULL_RETRY`] for places that free at no known
/// time.
fn turn(
    ahead: u64,
    running: u64,
    max_concurrency: u32,
    rate_wait: Option<Duration>,
    interval: Option<Duration>,
) -> Option<Duration> {
    let free = u64::from(max_concurrency).saturating_sub(running);
    let by_places = match free.checked_sub(ahead) {
        Some(1..) => None,
        _ => Some(FULL_RETRY.saturating_mul(u32::try_from(ahead + 1).unwrap_or(u32::MAX))),
    };
    let Some(interval) = interval else {
        return by_places.map(|w| w.min(LONGEST_WAIT));
    };
    if ahead == 0 && by_places.is_none() {
        return rate_wait;
    }
    let ahead = u32::try_from(ahead).unwrap_or(u32::MAX);
    let by_rate = rate_wait
        .unwrap_or_default()
        .saturating_add(interval.saturating_mul(ahead));
    Some(
        by_rate
            .max(by_places.unwrap_or_default())
            .clamp(SHORTEST_WAIT, LONGEST_WAIT),
    )
}

pub(super) async fn free_slot(store: &PostgresStore, lease: &Lease) -> Result<(), ClaimError> {
    let client = store.client().await.map_err(ClaimError::Backend)?;
    let job = id(lease.job.0);
    let fence = lease.fence as i64;
    // Only what this lease holds: after a take-over, the place and the place in line are
    // the new holder's.
    client
        .execute(
            "DELETE FROM throttle_slots WHERE job_id = $1 AND owner = $2 AND fence = $3",
            &[&job, &lease.owner, &fence],
        )
        .await
        .map_err(backend)?;
    client
        .execute(
            "DELETE FROM throttle_waits WHERE job_id = $1 AND EXISTS (
                 SELECT 1 FROM claims WHERE job_id = $1 AND owner = $2 AND fence = $3)",
            &[&job, &lease.owner, &fence],
        )
        .await
        .map_err(backend)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn without_a_rate_a_waiter_starts_when_the_free_places_hold_those_ahead_and_it() {
        assert_eq!(turn(0, 0, 1, None, None), None);
        assert_eq!(turn(2, 1, 4, None, None), None);
        assert_eq!(turn(3, 1, 4, None, None), Some(4 * FULL_RETRY));
        assert_eq!(turn(0, 4, 4, None, None), Some(FULL_RETRY));
        assert_eq!(turn(0, 9, 4, None, None), Some(FULL_RETRY));
        assert_eq!(turn(1_000_000, 4, 4, None, None), Some(LONGEST_WAIT));
    }

    #[test]
    fn with_a_rate_only_the_first_in_line_starts_and_the_rest_wait_for_their_turn() {
        let i = Some(125 * MS);
        assert_eq!(turn(0, 0, 100, None, i), None);
        assert_eq!(turn(0, 0, 100, Some(3 * MS), i), Some(3 * MS));
        // Second in line: the next start, then one interval for the first.
        assert_eq!(turn(1, 0, 100, Some(30 * MS), i), Some(155 * MS));
        assert_eq!(turn(1, 0, 100, None, i), Some(125 * MS));
        assert_eq!(turn(40, 0, 100, None, i), Some(LONGEST_WAIT));
        // Never later than LONGEST_WAIT, nor sooner than SHORTEST_WAIT.
        assert_eq!(turn(1, 0, 100, None, Some(MS)), Some(MS));
        assert_eq!(
            turn(1, 0, 100, None, Some(Duration::from_micros(100))),
            Some(SHORTEST_WAIT)
        );
        let long = Some(Duration::from_secs(100));
        assert_eq!(turn(0, 0, 100, long, long), long, "the first in line is told its time");
        assert_eq!(turn(1, 0, 100, long, long), Some(LONGEST_WAIT));
        // A full flow waits for a place too, at its place in line.
        assert_eq!(turn(0, 100, 100, None, i), Some(FULL_RETRY));
        assert_eq!(turn(9, 100, 100, Some(10 * MS), Some(MS)), Some(10 * FULL_RETRY));
    }
}
