//! Leases on PostgreSQL: rows of `claims` timed by the database's clock, renewed in one
//! statement per heartbeat, and expired ones taken over in bounded batches with
//! `FOR UPDATE SKIP LOCKED`, so daemons taking over at once never get the same execution.

use super::{PostgresStore, UNFINISHED, decode, describe, from_id, id, status_code, time};
use crate::status::ExecutionStatus;
use crate::store::{ClaimError, Execution, JobId, Lease};
use std::time::Duration;

/// Now on the database's clock, in nanoseconds since the epoch.
pub(super) const NOW_NS: &str = "(extract(epoch FROM clock_timestamp()) * 1000000)::bigint * 1000";

fn backend(e: tokio_postgres::Error) -> ClaimError {
    ClaimError::Backend(describe(&e))
}

pub(super) fn ttl_ns(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_nanos()).unwrap_or(i64::MAX / 2)
}

pub(super) async fn renew(
    store: &PostgresStore,
    owner: &str,
    leases: &[Lease],
    ttl: Duration,
) -> Result<Vec<Lease>, ClaimError> {
    if leases.is_empty() {
        return Ok(Vec::new());
    }
    let client = store.client().await.map_err(ClaimError::Backend)?;
    let jobs: Vec<Vec<u8>> = leases.iter().map(|l| id(l.job.0)).collect();
    let fences: Vec<i64> = leases.iter().map(|l| l.fence as i64).collect();
    // An expired lease nobody claimed since is renewed too: its fence is still current,
    // so nobody else wrote meanwhile. One whose row is not there yet (an acceptance
    // still on its way to being stored with its claim) is inserted as it will be.
    let rows = client
        .query(
            &*format!(
                "INSERT INTO claims AS c (job_id, owner, fence, expires_ns)
                 SELECT l.j, $1, l.f, {NOW_NS} + $3 FROM unnest($2::bytea[], $4::bigint[]) AS l(j, f)
                 ON CONFLICT (job_id) DO UPDATE SET expires_ns = EXCLUDED.expires_ns
                 WHERE c.owner = EXCLUDED.owner AND c.fence = EXCLUDED.fence
                 RETURNING c.job_id, c.fence, c.expires_ns"
            ),
            &[&owner, &jobs, &ttl_ns(ttl), &fences],
        )
        .await
        .map_err(backend)?;
    rows.iter()
        .map(|r| {
            let job = from_id(r.get(0)).map_err(|e| ClaimError::Backend(e.to_string()))?;
            Ok(Lease {
                job: JobId(job),
                owner: owner.to_string(),
                fence: r.get::<_, i64>(1) as u64,
                expires: time(r.get(2)),
            })
        })
        .collect()
}

pub(super) async fn take_over(
    store: &PostgresStore,
    owner: &str,
    ttl: Duration,
    flows: &[String],
    limit: usize,
) -> Result<Vec<(Execution, Lease)>, ClaimError> {
    if flows.is_empty() || limit == 0 {
        return Ok(Vec::new());
    }
    let client = store.client().await.map_err(ClaimError::Backend)?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    // Candidates are locked with SKIP LOCKED, so a concurrent taker passes over them;
    // the conflict clause grants a row only while it is still expired, which holds
    // against a claim made between the scan and the insert.
    let rows = client
        .query(
            &*format!(
                "WITH now AS (SELECT {NOW_NS} AS ns),
                 cand AS (
                     SELECT e.job_id FROM executions e CROSS JOIN now
                     LEFT JOIN claims h ON h.job_id = e.job_id
                     WHERE e.status = ANY($1) AND e.flow = ANY($2)
                       AND (e.status <> $3 OR e.doc->>'resume_at' IS NOT NULL)
                       AND (h.job_id IS NULL OR h.expires_ns <= now.ns)
                     ORDER BY e.job_id LIMIT $4
                     FOR UPDATE OF e SKIP LOCKED)
                 INSERT INTO claims AS c (job_id, owner, fence, expires_ns)
                 SELECT cand.job_id, $5, 1, now.ns + $6 FROM cand CROSS JOIN now
                 ON CONFLICT (job_id) DO UPDATE SET owner = EXCLUDED.owner, fence = c.fence + 1,
                     expires_ns = EXCLUDED.expires_ns
                 WHERE c.expires_ns <= EXCLUDED.expires_ns - $6
                 RETURNING c.job_id, c.fence, c.expires_ns"
            ),
            &[
                &UNFINISHED.to_vec(),
                &flows,
                &status_code(ExecutionStatus::Paused),
                &limit,
                &owner,
                &ttl_ns(ttl),
            ],
        )
        .await
        .map_err(backend)?;
    let mut leases = Vec::with_capacity(rows.len());
    for r in &rows {
        let job = JobId(from_id(r.get(0)).map_err(|e| ClaimError::Backend(e.to_string()))?);
        leases.push(Lease {
            job,
            owner: owner.to_string(),
            fence: r.get::<_, i64>(1) as u64,
            expires: time(r.get(2)),
        });
    }
    leases.sort_by_key(|l| l.job);
    let ids: Vec<Vec<u8>> = leases.iter().map(|l| id(l.job.0)).collect();
    // Out of any throttle's line until its new holder asks: a line counts the waiters
    // whose lease is alive, and this one may wait in its new daemon's own queue first.
    client
        .execute("DELETE FROM throttle_waits WHERE job_id = ANY($1)", &[&ids])
        .await
        .map_err(backend)?;
    let docs = client
        .query(
            "SELECT doc::text FROM executions WHERE job_id = ANY($1) ORDER BY job_id",
            &[&ids],
        )
        .await
        .map_err(backend)?;
    let mut execs = std::collections::HashMap::new();
    for row in &docs {
        let e: Execution = decode("executions", row.get(0)).map_err(|e| ClaimError::Backend(e.to_string()))?;
        execs.insert(e.job_id, e);
    }
    // An execution pruned between the two statements (it went final) is not there.
    Ok(leases
        .into_iter()
        .filter_map(|l| execs.remove(&l.job).map(|e| (e, l)))
        .collect())
}
