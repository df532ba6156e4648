//! Streamed log answers: `GET /v1/logs/download` (any filtered set as NDJSON, CSV or
//! plain text, oldest first, read and sent a page at a time so memory stays constant)
//! and `GET /v1/logs/follow` (live tail as NDJSON: each new matching record is sent
//! within a poll interval of being stored, until the client leaves or the daemon stops).

use super::logs::{PARAMS, query};
use super::params::Params;
use super::tail::Batch;
use super::{AdminBody, Answer, ApiError};
use crate::daemon::Shared;
use crate::store::{LogKey, LogQuery, LogRow};
use bytes::Bytes;
use http_body_util::BodyExt;
use http_body_util::channel::{Channel, Sender};
use hyper::header::{CONTENT_DISPOSITION, CONTENT_TYPE, HeaderValue};
use hyper::{Response, StatusCode};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::broadcast;

/// Records read from the store and sent per chunk.
const PAGE: usize = 1000;
/// A quiet live tail sends an empty line this often.
const HEARTBEAT: Duration = Duration::from_secs(15);

#[derive(Clone, Copy)]
enum Format {
    Ndjson,
    Csv,
    Text,
}

impl Format {
    fn parse(p: &Params) -> Result<Format, ApiError> {
        match p.string("format")?.as_deref() {
            None | Some("ndjson") => Ok(Format::Ndjson),
            Some("csv") => Ok(Format::Csv),
            Some("text") => Ok(Format::Text),
            Some(other) => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_parameter",
                format!("query parameter `format`: {other:?} is not a format; expected ndjson, csv or text"),
            )),
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Format::Ndjson => "application/x-ndjson",
            Format::Csv => "text/csv; charset=utf-8",
            Format::Text => "text/plain; charset=utf-8",
        }
    }

    fn extension(self) -> &'static str {
        match self {
            Format::Ndjson => "ndjson",
            Format::Csv => "csv",
            Format::Text => "txt",
        }
    }
}

const CSV_HEADER: [&str; 13] = [
    "time",
    "level",
    "job_id",
    "project",
    "flow",
    "flow_version",
    "attempt",
    "step",
    "connector",
    "action",
    "category",
    "environment",
    "message",
];

/// `rows` in `format`, one record per line (CSV quotes what needs it).
fn encode(format: Format, rows: &[(LogKey, LogRow)], header: bool) -> Bytes {
    let mut out = Vec::with_capacity(rows.len() * 200);
    match format {
        Format::Ndjson => {
            for (_, r) in rows {
                serde_json::to_writer(&mut out, r).expect("serializes");
                out.push(b'\n');
            }
        }
        Format::Text => {
            for (_, r) in rows {
                out.extend_from_slice(crate::detail::log_line(r).as_bytes());
                out.push(b'\n');
            }
        }
        Format::Csv => {
            let mut w = csv::Writer::from_writer(&mut out);
            if header {
                w.write_record(CSV_HEADER).expect("writes to memory");
            }
            for (_, r) in rows {
                w.write_record([
                    crate::time_format::rfc3339(r.time).as_str(),
                    r.level.as_str(),
                    &r.job_id.to_string(),
                    &cell(&r.project),
                    &cell(&r.flow),
                    &cell(&r.flow_version),
                    &r.attempt.to_string(),
                    &cell(r.step.as_deref().unwrap_or("")),
                    &cell(r.connector.as_deref().unwrap_or("")),
                    &cell(&r.action),
                    &cell(&r.category),
                    &cell(&r.environment),
                    &cell(&r.message),
                ])
                .expect("writes to memory");
            }
            w.flush().expect("writes to memory");
            drop(w);
        }
    }
    Bytes::from(out)
}

/// A text field as a CSV cell a spreadsheet shows as text: one that starts with `=`, `+`,
/// `-`, `@`, a tab or a carriage return gets a `'` before it (OWASP's guard against CSV
/// injection: a log message holds what senders sent, and a spreadsheet would run
/// `=HYPERLINK(…)` as a formula). NDJSON keeps every field exactly.
fn cell(text: &str) -> std::borrow::Cow<'_, str> {
    match text.as_bytes().first() {
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r') => format!("'{text}").into(),
        _ => text.into(),
    }
}

fn streaming(body: Channel<Bytes>, content_type: &'static str) -> Response<AdminBody> {
    let mut r = Response::new(body.boxed_unsync());
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// The params of a streamed answer: the search's filters plus `format`.
fn params(q: Option<&str>, extra: &str) -> Result<Params, ApiError> {
    let known: Vec<&str> = PARAMS
        .iter()
        .copied()
        .filter(|p| !matches!(*p, "limit" | "cursor"))
        .chain([extra])
        .collect();
    Params::parse(q, &known)
}

pub fn download(shared: &Arc<Shared>, q: Option<&str>) -> Answer {
    let p = params(q, "format")?;
    let format = Format::parse(&p)?;
    let mut query = query(shared, &p, PAGE)?;
    query.newest_first = false;
    let (mut tx, body) = Channel::new(2);
    let shared = shared.clone();
    tokio::spawn(async move {
        let mut header = true;
        loop {
            let page = match read(&shared, &query).await {
                Ok(p) => p,
                Err(e) => {
                    // The status is sent; all that can be said now is that the body ends short.
                    tracing::error!(error = %e, "reading log records for a download failed; the download ends short");
                    return;
                }
            };
            let full = page.len() == PAGE;
            if page.is_empty() && !header {
                return;
            }
            query.after = page.last().map(|(k, _)| *k);
            if tx.send_data(encode(format, &page, header)).await.is_err() {
                return; // the client left
            }
            header = false;
            if !full {
                return;
            }
        }
    });
    let mut r = streaming(body, format.content_type());
    let disposition = format!("attachment; filename=\"flowd-logs.{}\"", format.extension());
    r.headers_mut()
        .insert(CONTENT_DISPOSITION, HeaderValue::from_str(&disposition).expect("ASCII"));
    Ok(r)
}

/// One page of `q` (the store keeps a large scan off the async threads).
async fn read(shared: &Arc<Shared>, q: &LogQuery) -> Result<Vec<(LogKey, LogRow)>, String> {
    shared.store.logs(q).await.map_err(|e| e.to_string())
}

pub fn follow(shared: &Arc<Shared>, q: Option<&str>) -> Answer {
    let p = params(q, "format")?;
    if !matches!(Format::parse(&p)?, Format::Ndjson) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_parameter",
            "query parameter `format`: follow mode sends ndjson only",
        ));
    }
    if p.string("from")?.is_some() || p.string("to")?.is_some() || p.string("preset")?.is_some() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_parameter",
            "query parameter `from`/`to`/`preset`: follow mode starts now and has no time range",
        ));
    }
    let mut query = query(shared, &p, PAGE)?;
    query.newest_first = false;
    let (tx, body) = Channel::new(4);
    // Following first, then the start: a record timed at or after it is handed on after.
    let new = shared.tail.follow(shared);
    tokio::spawn(tail(shared.clone(), query, new, tx, SystemTime::now()));
    Ok(streaming(body, Format::Ndjson.content_type()))
}

/// Sends what the live tail's reader hands on that `query` keeps and that was written
/// at or after `start`, until the client leaves, the reader ends or the daemon stops.
async fn tail(
    shared: Arc<Shared>,
    query: LogQuery,
    mut new: broadcast::Receiver<Batch>,
    mut tx: Sender<Bytes>,
    start: SystemTime,
) {
    let start = start
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    // A first (empty) chunk so the client sees the answer's head at once.
    if tx.send_data(Bytes::new()).await.is_err() {
        return;
    }
    let mut beat = tokio::time::Instant::now() + HEARTBEAT;
    loop {
        let batch = tokio::select! {
            b = new.recv() => b,
            // A quiet live tail sends an empty line: it keeps proxies from closing the
            // connection, and a failed send is how a client that left is noticed.
            _ = tokio::time::sleep_until(beat) => {
                if tx.send_data(Bytes::from_static(b"\n")).await.is_err() {
                    return;
                }
                beat = tokio::time::Instant::now() + HEARTBEAT;
                continue;
            }
            _ = shared.stopping.cancelled() => return,
        };
        let batch = match batch {
            Ok(b) => b,
            Err(broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!(
                    missed = n,
                    "a live tail's client reads too slowly to keep up; its stream ends"
                );
                return;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        let kept: Vec<_> = batch
            .iter()
            .filter(|(k, l)| k.time >= start && query.keeps(l))
            .cloned()
            .collect();
        for page in kept.chunks(PAGE) {
            if tx.send_data(encode(Format::Ndjson, page, false)).await.is_err() {
                return; // the client left
            }
            beat = tokio::time::Instant::now() + HEARTBEAT;
        }
    }
}
