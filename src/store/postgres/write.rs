//! Writes to PostgreSQL: a batch is one transaction of upserts (log records inserted in
//! one statement), refused whole when a payload is over the limit; retention deletes one
//! bounded batch per transaction, old final executions by job id (creation time) then old
//! log records of their own, skipping rows another daemon is deleting.

use super::lease::{NOW_NS, ttl_ns};
use super::{PostgresStore, UNFINISHED, describe, from_id, id, nanos, status_code, text, write_err};
use crate::plugin::Level;
use crate::store::{JobId, PayloadKind, Pruned, SHARED_ATTEMPT, Write, WriteError};

/// Log records one batch may delete on their own, per execution it may delete.
const SWEEP_PER_EXECUTION: usize = 16;

pub(super) fn level_code(l: Level) -> i16 {
    match l {
        Level::Trace => 0,
        Level::Debug => 1,
        Level::Info => 2,
        Level::Warn => 3,
        Level::Error => 4,
    }
}

pub(super) fn kind_code(k: PayloadKind) -> i16 {
    i16::from(k.code())
}

fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("store records serialize")
}

/// Refuses the batch when a payload is over `max` bytes, before anything is sent.
fn check_payloads(writes: &[Write], max: usize) -> Result<Vec<Option<String>>, WriteError> {
    writes
        .iter()
        .map(|w| match w {
            Write::Payload { key, value, text } => {
                let text = match text {
                    Some(text) => text.to_string(),
                    None => json(value),
                };
                if text.len() > max {
                    return Err(WriteError::PayloadTooLarge {
                        kind: key.kind.name(),
                        size: text.len(),
                        max,
                    });
                }
                Ok(Some(text))
            }
            _ => Ok(None),
        })
        .collect()
}

pub(super) async fn write(store: &PostgresStore, writes: Vec<Write>) -> Result<(), WriteError> {
    let payloads = check_payloads(&writes, store.max_payload)?;
    // A batch of a running execution carries its fence; a new request's does not, and
    // fails at once so that its caller hears the database is unavailable.
    let leased = writes.iter().any(|w| matches!(w, Write::Fence { .. }));
    let mut client = if leased {
        store.client_waiting().await.map_err(WriteError::Backend)?
    } else {
        store.client_for_write().await?
    };
    let tx = client.transaction().await.map_err(write_err)?;
    for (w, payload) in writes.iter().zip(payloads) {
        match w {
            // Checked last, once the batch's own claim (if any) is in.
            Write::Fence { .. } => {}
            Write::Claim { job, owner, ttl } => {
                tx.execute(
                    &*format!(
                        "INSERT INTO claims (job_id, owner, fence, expires_ns) VALUES ($1, $2, 1, {NOW_NS} + $3)
                         ON CONFLICT (job_id) DO NOTHING"
                    ),
                    &[&id(job.0), owner, &ttl_ns(*ttl)],
                )
                .await
                .map_err(write_err)?;
            }
            Write::Fire { flow, at } => {
                // Concurrent firers of one time queue on the row; the first to commit
                // moves it, the others then find it not earlier and are refused.
                let n = tx
                    .execute(
                        "INSERT INTO schedules AS s (flow, last_fire_ns) VALUES ($1, $2)
                         ON CONFLICT (flow) DO UPDATE SET last_fire_ns = EXCLUDED.last_fire_ns
                         WHERE s.last_fire_ns < EXCLUDED.last_fire_ns",
                        &[flow, &nanos(*at)],
                    )
                    .await
                    .map_err(write_err)?;
                if n == 0 {
                    return Err(WriteError::AlreadyFired {
                        flow: flow.clone(),
                        at: *at,
                    });
                }
            }
            Write::Execution(e) => {
                let st = tx
                    .prepare_cached(
                        "INSERT INTO executions (job_id, flow, project, status, trigger_kind, doc)
                         VALUES ($1, $2, $3, $4, $5, $6::text::jsonb)
                         ON CONFLICT (job_id) DO UPDATE SET flow = EXCLUDED.flow, project = EXCLUDED.project,
                             status = EXCLUDED.status, trigger_kind = EXCLUDED.trigger_kind, doc = EXCLUDED.doc",
                    )
                    .await
                    .map_err(write_err)?;
                tx.execute(
                    &st,
                    &[
                        &id(e.job_id.0),
                        &e.flow,
                        &e.project,
                        &status_code(e.status),
                        &e.trigger_kind,
                        &text::doc(e),
                    ],
                )
                .await
                .map_err(write_err)?;
            }
            Write::Attempt { job_id, row } => {
                let st = tx
                    .prepare_cached(
                        "INSERT INTO attempts (job_id, attempt, doc) VALUES ($1, $2, $3::text::jsonb)
                         ON CONFLICT (job_id, attempt) DO UPDATE SET doc = EXCLUDED.doc",
                    )
                    .await
                    .map_err(write_err)?;
                tx.execute(&st, &[&id(job_id.0), &i64::from(row.attempt), &text::doc(row)])
                    .await
                    .map_err(write_err)?;
            }
            Write::Step { job_id, row } => {
                let st = tx
                    .prepare_cached(
                        "INSERT INTO steps (job_id, attempt, step, doc) VALUES ($1, $2, $3, $4::text::jsonb)
                         ON CONFLICT (job_id, attempt, step) DO UPDATE SET doc = EXCLUDED.doc",
                    )
                    .await
                    .map_err(write_err)?;
                tx.execute(
                    &st,
                    &[
                        &id(job_id.0),
                        &i64::from(row.attempt),
                        &i64::from(row.index),
                        &text::doc(row),
                    ],
                )
                .await
                .map_err(write_err)?;
            }
            Write::Payload { key, .. } => {
                // A shared config is written once and never replaced, and every execution
                // of its flow version writes it again: DO UPDATE would lock its one row
                // until each writer commits and so serialise them all (measured by
                // benches/postgres.rs); DO NOTHING leaves a committed row unlocked.
                let st = tx
                    .prepare_cached(if key.attempt == SHARED_ATTEMPT {
                        "INSERT INTO payloads (job_id, attempt, step, kind, value) VALUES ($1, $2, $3, $4, $5::text::json)
                         ON CONFLICT (job_id, attempt, step, kind) DO NOTHING"
                    } else {
                        "INSERT INTO payloads (job_id, attempt, step, kind, value) VALUES ($1, $2, $3, $4, $5::text::json)
                         ON CONFLICT (job_id, attempt, step, kind) DO UPDATE SET value = EXCLUDED.value"
                    })
                    .await
                    .map_err(write_err)?;
                let text = payload.expect("a payload write has its text");
                tx.execute(
                    &st,
                    &[
                        &id(key.job_id.0),
                        &i64::from(key.attempt),
                        &i64::from(key.step),
                        &kind_code(key.kind),
                        &text,
                    ],
                )
                .await
                .map_err(write_err)?;
            }
            Write::Logs(rows) if rows.is_empty() => {}
            Write::Logs(rows) => {
                // One statement for the whole group; unnest keeps their order, so their
                // sequence numbers follow it.
                let st = tx
                    .prepare_cached(
                        "INSERT INTO logs (time_ns, job_id, level, project, flow, flow_version, environment,
                                           step, connector, action, category, message, doc)
                         SELECT t, j, l, p, f, v, e, s, c, a, k, m, r::jsonb FROM unnest(
                             $1::bigint[], $2::bytea[], $3::smallint[], $4::text[], $5::text[], $6::text[],
                             $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[]
                         ) WITH ORDINALITY AS u(t, j, l, p, f, v, e, s, c, a, k, m, r, n) ORDER BY n",
                    )
                    .await
                    .map_err(write_err)?;
                // Each text column escaped as `text` has it: a message may carry U+0000.
                let col = |f: &dyn Fn(&crate::store::LogRow) -> &str| {
                    rows.iter().map(|r| text::escape(f(r))).collect::<Vec<_>>()
                };
                let opt = |f: &dyn Fn(&crate::store::LogRow) -> Option<&str>| {
                    rows.iter().map(|r| f(r).map(text::escape)).collect::<Vec<_>>()
                };
                let times: Vec<i64> = rows.iter().map(|r| nanos(r.time)).collect();
                let jobs: Vec<Vec<u8>> = rows.iter().map(|r| id(r.job_id.0)).collect();
                let levels: Vec<i16> = rows.iter().map(|r| level_code(r.level)).collect();
                tx.execute(
                    &st,
                    &[
                        &times,
                        &jobs,
                        &levels,
                        &col(&|r| &r.project),
                        &col(&|r| &r.flow),
                        &col(&|r| &r.flow_version),
                        &col(&|r| &r.environment),
                        &opt(&|r| r.step.as_deref()),
                        &opt(&|r| r.connector.as_deref()),
                        &col(&|r| &r.action),
                        &col(&|r| &r.category),
                        &col(&|r| &r.message),
                        &rows.iter().map(text::doc).collect::<Vec<_>>(),
                    ],
                )
                .await
                .map_err(write_err)?;
            }
            Write::FlowActive { flow, active: true } => {
                tx.execute("DELETE FROM inactive_flows WHERE flow = $1", &[flow])
                    .await
                    .map_err(write_err)?;
            }
            Write::FlowActive { flow, active: false } => {
                tx.execute(
                    "INSERT INTO inactive_flows (flow) VALUES ($1) ON CONFLICT DO NOTHING",
                    &[flow],
                )
                .await
                .map_err(write_err)?;
            }
            Write::LastFire { flow, at } => {
                tx.execute(
                    "INSERT INTO schedules (flow, last_fire_ns) VALUES ($1, $2)
                     ON CONFLICT (flow) DO UPDATE SET last_fire_ns = EXCLUDED.last_fire_ns",
                    &[flow, &nanos(*at)],
                )
                .await
                .map_err(write_err)?;
            }
        }
    }
    // The claim row is share-locked until commit: a claim by another owner waits for
    // this transaction, and one made before it has moved the fence, refusing it.
    for w in &writes {
        if let Write::Fence { job, owner, fence } = w {
            let held = tx
                .query_opt(
                    "SELECT 1 FROM claims WHERE job_id = $1 AND owner = $2 AND fence = $3 FOR SHARE",
                    &[&id(job.0), owner, &(*fence as i64)],
                )
                .await
                .map_err(write_err)?;
            if held.is_none() {
                return Err(WriteError::Fenced {
                    job: *job,
                    owner: owner.clone(),
                    fence: *fence,
                });
            }
        }
    }
    tx.commit().await.map_err(write_err)
}

pub(super) async fn announce_reload(store: &PostgresStore) -> Result<u64, WriteError> {
    let client = store.client_for_write().await?;
    let row = client
        .query_one(
            "UPDATE signals SET count = count + 1 WHERE name = 'reload' RETURNING count",
            &[],
        )
        .await
        .map_err(write_err)?;
    Ok(row.get::<_, i64>(0) as u64)
}

/// How long a wake request nobody acted on is kept (its pause ended meanwhile).
const WAKE_KEPT_NS: i64 = 600 * 1_000_000_000;

pub(super) async fn ask_wake(
    store: &PostgresStore,
    job: JobId,
    due: std::time::SystemTime,
) -> Result<bool, WriteError> {
    let client = store.client_for_write().await?;
    client
        .execute(
            &*format!(
                "WITH now AS (SELECT {NOW_NS} AS ns),
                 stale AS (DELETE FROM pause_wakes WHERE asked_ns < (SELECT ns FROM now) - $3)
                 INSERT INTO pause_wakes (job_id, due_ns, asked_ns) SELECT $1, $2, ns FROM now
                 ON CONFLICT (job_id) DO UPDATE SET due_ns = EXCLUDED.due_ns, asked_ns = EXCLUDED.asked_ns"
            ),
            &[&id(job.0), &nanos(due), &WAKE_KEPT_NS],
        )
        .await
        .map_err(write_err)?;
    Ok(true)
}

pub(super) async fn forget_wakes(store: &PostgresStore, jobs: Vec<JobId>) -> Result<(), WriteError> {
    let client = store.client_for_write().await?;
    let ids: Vec<Vec<u8>> = jobs.iter().map(|j| id(j.0)).collect();
    client
        .execute("DELETE FROM pause_wakes WHERE job_id = ANY($1)", &[&ids])
        .await
        .map_err(write_err)?;
    Ok(())
}

pub(super) async fn prune(
    store: &PostgresStore,
    cutoff: std::time::SystemTime,
    max_executions: usize,
) -> Result<crate::store::Pruned, WriteError> {
    let mut pruned = Pruned::default();
    let mut client = store.client_for_write().await?;
    let tx = client.transaction().await.map_err(write_err)?;
    let limit = i64::try_from(max_executions).unwrap_or(i64::MAX);
    // Old executions are the lowest job ids; unfinished ones are passed over (recovery
    // needs them), and so are rows another daemon's prune holds.
    let doomed: Vec<Vec<u8>> = tx
        .query(
            "SELECT job_id FROM executions WHERE job_id < $1 AND NOT (status = ANY($2))
             ORDER BY job_id LIMIT $3 FOR UPDATE SKIP LOCKED",
            &[&id(JobId::lower_bound(cutoff).0), &UNFINISHED.to_vec(), &limit],
        )
        .await
        .map_err(write_err)?
        .iter()
        .map(|r| r.get(0))
        .collect();
    if !doomed.is_empty() {
        for table in [
            "attempts",
            "steps",
            "payloads",
            "claims",
            "throttle_slots",
            "throttle_waits",
        ] {
            tx.execute(&*format!("DELETE FROM {table} WHERE job_id = ANY($1)"), &[&doomed])
                .await
                .map_err(write_err)?;
        }
        pruned.log_records += tx
            .execute("DELETE FROM logs WHERE job_id = ANY($1)", &[&doomed])
            .await
            .map_err(write_err)? as usize;
        tx.execute("DELETE FROM executions WHERE job_id = ANY($1)", &[&doomed])
            .await
            .map_err(write_err)?;
    }
    pruned.executions = doomed.len();

    // Then old records left on their own, oldest first, except those of an execution that
    // is not final; at most four times the bound are examined, so many kept records
    // cannot make a batch long.
    let sweep = max_executions.saturating_mul(SWEEP_PER_EXECUTION);
    let examine = i64::try_from(sweep.saturating_mul(4)).unwrap_or(i64::MAX);
    let old = tx
        .query(
            "SELECT l.time_ns, l.job_id, l.seq,
                    EXISTS (SELECT 1 FROM executions e WHERE e.job_id = l.job_id AND e.status = ANY($2))
             FROM (SELECT time_ns, job_id, seq FROM logs WHERE time_ns < $1
                   ORDER BY time_ns, job_id, seq LIMIT $3) l",
            &[&nanos(cutoff), &UNFINISHED.to_vec(), &examine],
        )
        .await
        .map_err(write_err)?;
    let examined = old.len();
    let (mut times, mut jobs, mut seqs) = (Vec::<i64>::new(), Vec::<Vec<u8>>::new(), Vec::<i64>::new());
    for row in &old {
        if times.len() >= sweep {
            break;
        }
        if !row.get::<_, bool>(3) {
            times.push(row.get(0));
            let job: Vec<u8> = row.get(1);
            from_id(&job).map_err(|e| WriteError::Backend(e.to_string()))?;
            jobs.push(job);
            seqs.push(row.get(2));
        }
    }
    let swept = times.len();
    if swept > 0 {
        pruned.log_records += tx
            .execute(
                "DELETE FROM logs WHERE (time_ns, job_id, seq) IN
                 (SELECT * FROM unnest($1::bigint[], $2::bytea[], $3::bigint[]))",
                &[&times, &jobs, &seqs],
            )
            .await
            .map_err(write_err)? as usize;
    }
    pruned.more = doomed.len() >= max_executions || swept >= sweep || examined as i64 >= examine;
    tx.commit()
        .await
        .map_err(|e| WriteError::Backend(format!("committing a prune batch: {}", describe(&e))))?;
    Ok(pruned)
}
