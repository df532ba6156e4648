//! Throttles across daemons: a place among a flow's running executions is a row of
//! `throttle_slots` held under its execution's lease, the rate a row of
//! `throttle_rates` with the next moment a start may happen, and who is waiting a row
//! of `throttle_waits` refreshed at each ask, so the oldest waiting goes first. Each
//! grant is decided under the flow's advisory lock, in one transaction.

use super::lease::{NOW_NS, ttl_ns};
use super::{PostgresStore, describe, id};
use crate::store::{ClaimError, JobId, Lease, Slot};
use std::time::Duration;

/// A waiter that has not asked for this long is gone (it asks every few tens of ms).
const WAITER_GONE: Duration = Duration::from_secs(2);

/// How long past its lease's expiry a place stays held when nobody took its execution
/// over (a taken-over execution frees it at once).
const EXPIRED_PLACE: Duration = Duration::from_secs(10);

/// How long to wait before asking again when the flow is full.
const FULL_RETRY: Duration = Duration::from_millis(50);

fn backend(e: tokio_postgres::Error) -> ClaimError {
    ClaimError::Backend(describe(&e))
}

pub(super) async fn take_slot(
    store: &PostgresStore,
    lease: &Lease,
    flow: &str,
    max_concurrency: u32,
    interval: Option<Duration>,
) -> Result<Slot, ClaimError> {
    let mut client = store.client().await.map_err(ClaimError::Backend)?;
    let tx = client.transaction().await.map_err(backend)?;
    let job = id(lease.job.0);
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended('flowd throttle ' || $1::text, 0))",
        &[&flow],
    )
    .await
    .map_err(backend)?;
    let now: i64 = tx
        .query_one(&*format!("SELECT {NOW_NS}"), &[])
        .await
        .map_err(backend)?
        .get(0);
    let held = tx
        .query_opt(
            "SELECT 1 FROM claims WHERE job_id = $1 AND owner = $2 AND fence = $3 AND expires_ns > $4",
            &[&job, &lease.owner, &(lease.fence as i64), &now],
        )
        .await
        .map_err(backend)?;
    if held.is_none() {
        return Err(ClaimError::Lost(lease.job));
    }
    // A place is free again once its execution was claimed by another owner (taken
    // over), or its lease is long expired (its daemon died after the execution ended).
    // A lease just expired keeps it: its holder may still renew it, and its step may
    // still be running.
    tx.execute(
        "DELETE FROM throttle_slots s WHERE s.flow = $1 AND NOT EXISTS (
             SELECT 1 FROM claims c WHERE c.job_id = s.job_id AND c.owner = s.owner
                 AND c.fence = s.fence AND c.expires_ns > $2)",
        &[&flow, &(now - ttl_ns(EXPIRED_PLACE))],
    )
    .await
    .map_err(backend)?;
    let gone = now - ttl_ns(WAITER_GONE);
    tx.execute(
        "DELETE FROM throttle_waits WHERE flow = $1 AND seen_ns < $2",
        &[&flow, &gone],
    )
    .await
    .map_err(backend)?;
    let older_waiting = tx
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM throttle_waits WHERE flow = $1 AND job_id < $2)",
            &[&flow, &job],
        )
        .await
        .map_err(backend)?
        .get::<_, bool>(0);
    let running: i64 = tx
        .query_one("SELECT count(*) FROM throttle_slots WHERE flow = $1", &[&flow])
        .await
        .map_err(backend)?
        .get(0);
    let next: Option<i64> = tx
        .query_opt("SELECT next_ns FROM throttle_rates WHERE flow = $1", &[&flow])
        .await
        .map_err(backend)?
        .map(|r| r.get(0));
    let rate_wait = next
        .filter(|n| *n > now)
        .map(|n| Duration::from_nanos((n - now) as u64));
    let wait = if older_waiting || running >= i64::from(max_concurrency) {
        Some(rate_wait.unwrap_or(FULL_RETRY).max(FULL_RETRY))
    } else {
        rate_wait
    };
    if let Some(wait) = wait {
        tx.execute(
            "INSERT INTO throttle_waits (flow, job_id, seen_ns) VALUES ($1, $2, $3)
             ON CONFLICT (flow, job_id) DO UPDATE SET seen_ns = EXCLUDED.seen_ns",
            &[&flow, &job, &now],
        )
        .await
        .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        return Ok(Slot::Wait(wait));
    }
    tx.execute(
        "INSERT INTO throttle_slots (flow, job_id, owner, fence) VALUES ($1, $2, $3, $4)
         ON CONFLICT (job_id) DO UPDATE SET flow = EXCLUDED.flow, owner = EXCLUDED.owner, fence = EXCLUDED.fence",
        &[&flow, &job, &lease.owner, &(lease.fence as i64)],
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

pub(super) async fn free_slot(store: &PostgresStore, job: JobId) -> Result<(), ClaimError> {
    let client = store.client().await.map_err(ClaimError::Backend)?;
    let job = id(job.0);
    client
        .execute("DELETE FROM throttle_slots WHERE job_id = $1", &[&job])
        .await
        .map_err(backend)?;
    client
        .execute("DELETE FROM throttle_waits WHERE job_id = $1", &[&job])
        .await
        .map_err(backend)?;
    Ok(())
}
