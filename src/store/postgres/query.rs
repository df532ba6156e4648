//! Reads of the PostgreSQL store. The execution list and log searches are keyset
//! queries: every filter in SQL, ordered along an index (job id; time, job, sequence),
//! the cursor a bound on that key and the page a `LIMIT`, so a page costs what it
//! returns; nothing is counted.

use super::text;
use super::write::{kind_code, level_code};
use super::{PostgresStore, UNFINISHED, decode, decode_payload, from_id, id, nanos, read_err, status_code, time};
use crate::store::{Execution, JobId, ListQuery, LogKey, LogQuery, LogRow, PayloadKey, ReadError};
use serde_json::Value;
use std::collections::BTreeSet;
use std::time::SystemTime;
use tokio_postgres::types::ToSql;

type Param = Box<dyn ToSql + Sync + Send>;

/// A `WHERE` clause being built, with its parameters.
#[derive(Default)]
struct Filter {
    clauses: Vec<String>,
    params: Vec<Param>,
}

impl Filter {
    /// Adds `clause`, where `$` stands for the new parameter `value`.
    fn add(&mut self, clause: &str, value: impl ToSql + Sync + Send + 'static) {
        self.params.push(Box::new(value));
        self.clauses
            .push(clause.replace('$', &format!("${}", self.params.len())));
    }

    fn sql(&self) -> String {
        if self.clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", self.clauses.join(" AND "))
        }
    }

    fn params(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.params.iter().map(|p| p.as_ref() as &(dyn ToSql + Sync)).collect()
    }
}

fn limit(n: usize) -> i64 {
    if n == 0 {
        i64::MAX
    } else {
        i64::try_from(n).unwrap_or(i64::MAX)
    }
}

pub(super) async fn execution(store: &PostgresStore, job: JobId) -> Result<Option<Execution>, ReadError> {
    let c = store.client_for_read().await?;
    let st = c
        .prepare_cached("SELECT doc::text FROM executions WHERE job_id = $1")
        .await
        .map_err(read_err)?;
    match c.query_opt(&st, &[&id(job.0)]).await.map_err(read_err)? {
        Some(row) => Ok(Some(decode("executions", row.get(0))?)),
        None => Ok(None),
    }
}

/// Every row of one execution in `table`, decoded, in the order `sql` gives.
pub(super) async fn rows<T: serde::de::DeserializeOwned>(
    store: &PostgresStore,
    table: &'static str,
    sql: &'static str,
    job: JobId,
) -> Result<Vec<T>, ReadError> {
    let c = store.client_for_read().await?;
    let st = c.prepare_cached(sql).await.map_err(read_err)?;
    c.query(&st, &[&id(job.0)])
        .await
        .map_err(read_err)?
        .iter()
        .map(|r| decode(table, r.get(0)))
        .collect()
}

pub(super) async fn payload(store: &PostgresStore, key: PayloadKey) -> Result<Option<Value>, ReadError> {
    let c = store.client_for_read().await?;
    let st = c
        .prepare_cached(
            "SELECT value::text FROM payloads WHERE job_id = $1 AND attempt = $2 AND step = $3 AND kind = $4",
        )
        .await
        .map_err(read_err)?;
    let params: [&(dyn ToSql + Sync); 4] = [
        &id(key.job_id.0),
        &i64::from(key.attempt),
        &i64::from(key.step),
        &kind_code(key.kind),
    ];
    match c.query_opt(&st, &params).await.map_err(read_err)? {
        Some(row) => Ok(Some(decode_payload(row.get(0))?)),
        None => Ok(None),
    }
}

pub(super) async fn list(store: &PostgresStore, q: &ListQuery) -> Result<Vec<Execution>, ReadError> {
    let mut f = list_filter(q, None, q.before.map(|b| b.0));
    let n = f.params.len() + 1;
    f.params.push(Box::new(limit(q.limit)));
    let sql = format!(
        "SELECT doc::text FROM executions {} ORDER BY job_id DESC LIMIT ${n}",
        f.sql()
    );
    let c = store.client_for_read().await?;
    let st = c.prepare_cached(&sql).await.map_err(read_err)?;
    c.query(&st, &f.params())
        .await
        .map_err(read_err)?
        .iter()
        .map(|r| decode("executions", r.get(0)))
        .collect()
}

/// The list's filters but its cursor and limit, within job ids `[lo, hi)` where given.
fn list_filter(q: &ListQuery, lo: Option<u128>, hi: Option<u128>) -> Filter {
    // Of two bounds on one side, the tighter; either alone, that one.
    let tighter = |a: Option<u128>, b: Option<u128>, pick: fn(u128, u128) -> u128| match (a, b) {
        (Some(a), Some(b)) => Some(pick(a, b)),
        (a, b) => a.or(b),
    };
    let mut f = Filter::default();
    // Job ids hold their creation time, so the time range is a range of ids.
    let from = q.from.map(|t| JobId::lower_bound(t).0);
    let to = q.to.map(|t| JobId::lower_bound(t).0.saturating_add(1 << 80));
    if let Some(lo) = tighter(from, lo, u128::max) {
        f.add("job_id >= $", id(lo));
    }
    if let Some(hi) = tighter(to, hi, u128::min) {
        f.add("job_id < $", id(hi));
    }
    if let Some(flow) = &q.flow {
        f.add("flow = $", text::escape(flow).into_owned());
    }
    if !q.statuses.is_empty() {
        let codes: Vec<i16> = q.statuses.iter().map(|s| status_code(*s)).collect();
        f.add("status = ANY($)", codes);
    }
    if let Some(p) = &q.project {
        f.add("project = $", text::escape(p).into_owned());
    }
    if let Some(k) = &q.trigger_kind {
        f.add("trigger_kind = $", text::escape(k).into_owned());
    }
    f
}

/// Executions matching `q` (its cursor and limit aside) per status in the buckets
/// `[edges[i], edges[i + 1])` of their creation time (as their job ids hold it): one
/// count per status code per bucket, counted by the database off the indexes.
pub(super) async fn histogram(
    store: &PostgresStore,
    q: &ListQuery,
    edges: &[SystemTime],
) -> Result<Vec<[u64; 8]>, ReadError> {
    let mut out = vec![[0u64; 8]; edges.len().saturating_sub(1)];
    let c = store.client_for_read().await?;
    for (b, pair) in edges.windows(2).enumerate() {
        let (lo, hi) = (JobId::lower_bound(pair[0]).0, JobId::lower_bound(pair[1]).0);
        if lo >= hi {
            continue;
        }
        let f = list_filter(q, Some(lo), Some(hi));
        let sql = format!("SELECT status, count(*) FROM executions {} GROUP BY status", f.sql());
        let st = c.prepare_cached(&sql).await.map_err(read_err)?;
        for row in c.query(&st, &f.params()).await.map_err(read_err)? {
            let code: i16 = row.get(0);
            let n: i64 = row.get(1);
            if let Some(slot) = usize::try_from(code).ok().and_then(|i| out[b].get_mut(i)) {
                *slot += n as u64;
            }
        }
    }
    Ok(out)
}

/// The oldest execution kept (the lowest job id).
pub(super) async fn oldest(store: &PostgresStore) -> Result<Option<Execution>, ReadError> {
    let c = store.client_for_read().await?;
    match c
        .query_opt("SELECT doc::text FROM executions ORDER BY job_id LIMIT 1", &[])
        .await
        .map_err(read_err)?
    {
        Some(row) => Ok(Some(decode("executions", row.get(0))?)),
        None => Ok(None),
    }
}

pub(super) async fn logs(store: &PostgresStore, q: &LogQuery) -> Result<Vec<(LogKey, LogRow)>, ReadError> {
    let mut f = Filter::default();
    if let Some(job) = q.job_id {
        f.add("job_id = $", id(job.0));
    }
    if let Some(from) = q.from {
        f.add("time_ns >= $", nanos(from));
    }
    if let Some(to) = q.to {
        f.add("time_ns <= $", nanos(to));
    }
    for (column, value) in [
        ("project", &q.project),
        ("flow", &q.flow),
        ("flow_version", &q.flow_version),
        ("environment", &q.environment),
        ("step", &q.step),
        ("connector", &q.connector),
        ("action", &q.action),
        ("category", &q.category),
    ] {
        if let Some(v) = value {
            f.add(&format!("{column} = $"), text::escape(v).into_owned());
        }
    }
    if let Some(level) = q.level {
        f.add("level >= $", level_code(level));
    }
    if !q.levels.is_empty() {
        let codes: Vec<i16> = q.levels.iter().map(|l| level_code(*l)).collect();
        f.add("level = ANY($)", codes);
    }
    if let Some(needle) = &q.contains {
        f.add("strpos(message, $) > 0", text::escape(needle).into_owned());
    }
    // The cursor is exclusive: the next page starts past it in the query's order.
    if let Some(c) = q.after {
        let (t, j, s) = (i64::try_from(c.time).unwrap_or(i64::MAX), id(c.job), i64::from(c.seq));
        let op = if q.newest_first { "<" } else { ">" };
        let base = f.params.len();
        f.params.push(Box::new(t));
        f.params.push(Box::new(j));
        f.params.push(Box::new(s));
        f.clauses.push(format!(
            "(time_ns, job_id, seq) {op} (${}, ${}, ${})",
            base + 1,
            base + 2,
            base + 3
        ));
    }
    let order = if q.newest_first { "DESC" } else { "ASC" };
    let n = f.params.len() + 1;
    f.params.push(Box::new(limit(q.limit)));
    let sql = format!(
        "SELECT time_ns, job_id, seq, doc::text FROM logs {}
         ORDER BY time_ns {order}, job_id {order}, seq {order} LIMIT ${n}",
        f.sql()
    );
    let c = store.client_for_read().await?;
    let st = c.prepare_cached(&sql).await.map_err(read_err)?;
    let rows = c.query(&st, &f.params()).await.map_err(read_err)?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let key = LogKey {
            time: r.get::<_, i64>(0).max(0) as u64,
            job: from_id(r.get(1))?,
            seq: r.get::<_, i64>(2) as u32,
        };
        out.push((key, decode("logs", r.get(3))?));
    }
    Ok(out)
}

pub(super) async fn inactive_flows(store: &PostgresStore) -> Result<BTreeSet<String>, ReadError> {
    let c = store.client_for_read().await?;
    Ok(c.query("SELECT flow FROM inactive_flows", &[])
        .await
        .map_err(read_err)?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

pub(super) async fn operator_state(store: &PostgresStore) -> Result<crate::store::OperatorState, ReadError> {
    let c = store.client_for_read().await?;
    let st = c
        .prepare_cached(
            "SELECT (SELECT count FROM signals WHERE name = 'reload'), ARRAY(SELECT flow FROM inactive_flows),
                    ARRAY(SELECT job_id FROM pause_wakes ORDER BY job_id), ARRAY(SELECT due_ns FROM pause_wakes ORDER BY job_id)",
        )
        .await
        .map_err(read_err)?;
    let row = c.query_one(&st, &[]).await.map_err(read_err)?;
    let jobs: Vec<Vec<u8>> = row.get(2);
    let dues: Vec<i64> = row.get(3);
    let wakes = jobs
        .iter()
        .zip(dues)
        .map(|(j, due)| Ok((JobId(from_id(j)?), time(due))))
        .collect::<Result<_, ReadError>>()?;
    Ok(crate::store::OperatorState {
        reloads: row.get::<_, Option<i64>>(0).unwrap_or(0) as u64,
        inactive: row.get::<_, Vec<String>>(1).into_iter().collect(),
        wakes,
    })
}

pub(super) async fn last_fire(store: &PostgresStore, flow: &str) -> Result<Option<SystemTime>, ReadError> {
    let c = store.client_for_read().await?;
    Ok(
        c.query_opt("SELECT last_fire_ns FROM schedules WHERE flow = $1", &[&flow])
            .await
            .map_err(read_err)?
            .map(|r| time(r.get(0))),
    )
}

pub(super) async fn unfinished(store: &PostgresStore) -> Result<Vec<Execution>, ReadError> {
    let c = store.client_for_read().await?;
    c.query(
        "SELECT doc::text FROM executions WHERE status = ANY($1) ORDER BY job_id",
        &[&UNFINISHED.to_vec()],
    )
    .await
    .map_err(read_err)?
    .iter()
    .map(|r| decode("executions", r.get(0)))
    .collect()
}

pub(super) async fn counts(store: &PostgresStore) -> Result<crate::store::Counts, ReadError> {
    let c = store.client_for_read().await?;
    // Exact counts, each a full scan: for a copy's check, not for the API.
    let row = c
        .query_one(
            "SELECT (SELECT count(*) FROM executions), (SELECT count(*) FROM attempts),
                    (SELECT count(*) FROM steps), (SELECT count(*) FROM payloads),
                    (SELECT count(*) FROM logs), (SELECT count(*) FROM inactive_flows),
                    (SELECT count(*) FROM schedules)",
            &[],
        )
        .await
        .map_err(read_err)?;
    let n = |i: usize| row.get::<_, i64>(i) as u64;
    Ok(crate::store::Counts {
        executions: n(0),
        attempts: n(1),
        steps: n(2),
        payloads: n(3),
        log_records: n(4),
        inactive_flows: n(5),
        schedules: n(6),
    })
}
