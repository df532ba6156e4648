//! The binary form of the fixed-shape rows (executions, attempts, steps, log records),
//! in place of JSON text: a format byte, then each field in order: integers as LEB128
//! varints, times as milliseconds since the epoch (what the JSON form kept) with later
//! times of a row as differences from its first, strings length-prefixed, options behind
//! a presence byte, a connector's SHA-256 as its 32 bytes. The rare nested parts (a
//! step's or a try's error) are JSON text inside. Rows written before this are JSON
//! objects, which start with `{`: reads take either form.
//!
//! Format 2 (executions, steps, log records) keeps the strings every execution of a flow
//! version repeats (see `names`) as a number: format 1 rows held them inline and still
//! read. Format 3 (log records) keeps the record's category inline too: a connector picks
//! it at every call, so numbering it grew the names table (never pruned, held in memory)
//! with every new category; format 2 log rows, their category numbered, still read.

use super::ExecutionHead;
use super::names::{Names, Pending};
use crate::plugin::{Failure, Level};
use crate::status::{ConnectorUse, ExecutionStatus, StepStatus};
use crate::store::{Attempt, Execution, JobId, LogRow, ReadError, StepRow, TryRow};
use serde::de::DeserializeOwned;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The first byte of a row in the binary form (JSON text starts with `{`).
const FORMAT: u8 = 1;
/// The binary form with repeated strings numbered in the names table.
const FORMAT_NAMED: u8 = 2;
/// Format 2 with a log record's category inline, beside its message: only values a flow's
/// config fixes are numbered, never one a connector chooses.
const FORMAT_CATEGORY_INLINE: u8 = 3;

/// A row that has the binary form.
pub(super) trait Row: Sized + DeserializeOwned {
    /// The table it lives in, for errors.
    const TABLE: &'static str;
    /// The format it is written in; every earlier one still reads.
    const FORMAT: u8 = FORMAT;
    fn put(&self, w: &mut Writer);
    fn get(r: &mut Reader<'_>) -> Result<Self, ReadError>;
}

/// The stored bytes of `row`; values it makes a number for that are not yet durable are
/// added to `pending`.
pub(super) fn encode<T: Row>(row: &T, names: &Names, pending: &mut Vec<Pending>) -> Vec<u8> {
    let mut w = Writer(Vec::with_capacity(128), Some((names, pending)));
    w.0.push(T::FORMAT);
    row.put(&mut w);
    w.0
}

/// A row from its stored bytes, in any of its forms.
pub(super) fn decode<T: Row>(names: &Names, bytes: &[u8]) -> Result<T, ReadError> {
    match bytes.first() {
        Some(b'{') => serde_json::from_slice(bytes).map_err(|e| corrupt(T::TABLE, e.to_string())),
        Some(&format) if (FORMAT..=T::FORMAT).contains(&format) => {
            let mut r = Reader {
                table: T::TABLE,
                bytes: &bytes[1..],
                format,
                names,
            };
            let row = T::get(&mut r)?;
            if !r.bytes.is_empty() {
                return Err(corrupt(T::TABLE, format!("{} bytes after the row", r.bytes.len())));
            }
            Ok(row)
        }
        Some(b) => Err(corrupt(T::TABLE, format!("unknown row format {b:#04x}"))),
        None => Err(corrupt(T::TABLE, "an empty row".into())),
    }
}

/// Whether stored bytes are in a binary form (whose strings are stored unescaped).
pub(super) fn is_binary(bytes: &[u8]) -> bool {
    matches!(bytes.first(), Some(&(FORMAT..=FORMAT_CATEGORY_INLINE)))
}

/// The flow and status of a stored execution row, in any of its forms.
pub(super) fn head(names: &Names, bytes: &[u8]) -> Result<ExecutionHead, ReadError> {
    if bytes.first() == Some(&b'{') {
        return serde_json::from_slice(bytes).map_err(|e| corrupt("executions", e.to_string()));
    }
    let e: Execution = decode(names, bytes)?;
    Ok(ExecutionHead {
        flow: e.flow,
        status: e.status,
    })
}

/// `row` in format 1, its strings inline, as rows were written before names.
#[cfg(test)]
pub(super) fn inline<T: Row>(row: &T) -> Vec<u8> {
    let mut w = Writer(vec![FORMAT], None);
    row.put(&mut w);
    w.0
}

fn corrupt(table: &'static str, detail: String) -> ReadError {
    ReadError::Corrupt { table, detail }
}

/// A row's bytes as they are put together, with the names to number repeated strings in
/// (none for the bytes of a name itself, or of a row in format 1).
pub(super) struct Writer<'a>(Vec<u8>, Option<(&'a Names, &'a mut Vec<Pending>)>);

impl Writer<'_> {
    /// The fields `put` writes, stored once in the names table and here as their number.
    fn named(&mut self, put: impl FnOnce(&mut Writer)) {
        let mut value = Writer(Vec::with_capacity(64), None);
        put(&mut value);
        match &mut self.1 {
            Some((names, pending)) => {
                let id = names.number(&value.0, pending);
                self.uint(id.into());
            }
            None => self.0.extend_from_slice(&value.0),
        }
    }

    fn uint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push(v as u8 | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }

    fn int(&mut self, v: i64) {
        self.uint(((v << 1) ^ (v >> 63)) as u64);
    }

    fn str(&mut self, s: &str) {
        self.uint(s.len() as u64);
        self.0.extend_from_slice(s.as_bytes());
    }

    fn opt_str(&mut self, s: Option<&str>) {
        match s {
            Some(s) => {
                self.0.push(1);
                self.str(s);
            }
            None => self.0.push(0),
        }
    }

    fn time(&mut self, t: SystemTime) {
        self.int(millis(t));
    }

    /// `t` as its difference from `base`.
    fn time_from(&mut self, base: SystemTime, t: Option<SystemTime>) {
        match t {
            Some(t) => {
                self.0.push(1);
                self.int(millis(t).wrapping_sub(millis(base)));
            }
            None => self.0.push(0),
        }
    }

    /// A start and an end: the end as a difference from the start.
    fn span(&mut self, started: Option<SystemTime>, finished: Option<SystemTime>) {
        match started {
            Some(t) => {
                self.0.push(1);
                self.time(t);
                self.time_from(t, finished);
            }
            None => {
                self.0.push(0);
                self.time_from(UNIX_EPOCH, finished);
            }
        }
    }

    fn f64(&mut self, v: f64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }

    fn json<T: serde::Serialize>(&mut self, v: &T) {
        let text = serde_json::to_vec(v).expect("store records serialize");
        self.uint(text.len() as u64);
        self.0.extend_from_slice(&text);
    }
}

pub(super) struct Reader<'a> {
    table: &'static str,
    bytes: &'a [u8],
    format: u8,
    names: &'a Names,
}

impl<'a> Reader<'a> {
    /// Reads what [`Writer::named`] wrote: from the names table in format 2, inline before.
    fn named<T>(&mut self, get: impl FnOnce(&mut Reader<'_>) -> Result<T, ReadError>) -> Result<T, ReadError> {
        if self.format < FORMAT_NAMED {
            return get(self);
        }
        let id = self.u32()?;
        let value = self.names.value(self.table, id)?;
        let mut r = Reader {
            table: self.table,
            bytes: &value,
            format: FORMAT,
            names: self.names,
        };
        let out = get(&mut r)?;
        if !r.bytes.is_empty() {
            return Err(corrupt(
                self.table,
                format!("name {id} holds {} bytes more than its fields", r.bytes.len()),
            ));
        }
        Ok(out)
    }

    fn short(&self) -> ReadError {
        corrupt(self.table, "a row cut short".into())
    }

    fn byte(&mut self) -> Result<u8, ReadError> {
        let (&b, rest) = self.bytes.split_first().ok_or_else(|| self.short())?;
        self.bytes = rest;
        Ok(b)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], ReadError> {
        if self.bytes.len() < n {
            return Err(self.short());
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    fn uint(&mut self) -> Result<u64, ReadError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(corrupt(self.table, "a varint longer than 64 bits".into()))
    }

    fn u32(&mut self) -> Result<u32, ReadError> {
        let v = self.uint()?;
        u32::try_from(v).map_err(|_| corrupt(self.table, format!("{v} does not fit 32 bits")))
    }

    fn int(&mut self) -> Result<i64, ReadError> {
        let v = self.uint()?;
        Ok((v >> 1) as i64 ^ -((v & 1) as i64))
    }

    fn flag(&mut self) -> Result<bool, ReadError> {
        match self.byte()? {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(corrupt(self.table, format!("a presence byte of {b}"))),
        }
    }

    fn str(&mut self) -> Result<String, ReadError> {
        let n = self.uint()? as usize;
        let bytes = self.take(n)?;
        String::from_utf8(bytes.to_vec()).map_err(|e| corrupt(self.table, e.to_string()))
    }

    fn opt_str(&mut self) -> Result<Option<String>, ReadError> {
        if self.flag()? { self.str().map(Some) } else { Ok(None) }
    }

    fn time(&mut self) -> Result<SystemTime, ReadError> {
        Ok(from_millis(self.int()?))
    }

    fn time_from(&mut self, base: SystemTime) -> Result<Option<SystemTime>, ReadError> {
        if !self.flag()? {
            return Ok(None);
        }
        Ok(Some(from_millis(millis(base).wrapping_add(self.int()?))))
    }

    fn span(&mut self) -> Result<(Option<SystemTime>, Option<SystemTime>), ReadError> {
        if self.flag()? {
            let t = self.time()?;
            Ok((Some(t), self.time_from(t)?))
        } else {
            Ok((None, self.time_from(UNIX_EPOCH)?))
        }
    }

    fn f64(&mut self) -> Result<f64, ReadError> {
        let b = self.take(8)?;
        Ok(f64::from_le_bytes(b.try_into().expect("8 bytes")))
    }

    fn json<T: DeserializeOwned>(&mut self) -> Result<T, ReadError> {
        let n = self.uint()? as usize;
        let text = self.take(n)?;
        serde_json::from_slice(text).map_err(|e| corrupt(self.table, e.to_string()))
    }

    fn execution_status(&mut self) -> Result<ExecutionStatus, ReadError> {
        let code = self.byte()?;
        ExecutionStatus::ALL
            .into_iter()
            .find(|s| s.code() == code)
            .ok_or_else(|| corrupt(self.table, format!("unknown execution status code {code}")))
    }
}

/// Milliseconds since the epoch (negative before it), as the JSON form keeps times.
fn millis(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_millis()).map_or(i64::MIN, |m| -m),
    }
}

fn from_millis(ms: i64) -> SystemTime {
    let d = Duration::from_millis(ms.unsigned_abs());
    if ms >= 0 {
        UNIX_EPOCH.checked_add(d).unwrap_or(UNIX_EPOCH)
    } else {
        UNIX_EPOCH.checked_sub(d).unwrap_or(UNIX_EPOCH)
    }
}

/// Step statuses as stored. These codes are on disk: never renumber them.
const STEP_STATUSES: [(StepStatus, u8); 6] = [
    (StepStatus::Pending, 0),
    (StepStatus::Running, 1),
    (StepStatus::Success, 2),
    (StepStatus::Failed, 3),
    (StepStatus::Skipped, 4),
    (StepStatus::Paused, 5),
];

/// Log levels as stored. These codes are on disk: never renumber them.
const LEVELS: [(Level, u8); 5] = [
    (Level::Trace, 0),
    (Level::Debug, 1),
    (Level::Info, 2),
    (Level::Warn, 3),
    (Level::Error, 4),
];

fn code_of<T: PartialEq + Copy>(table: &[(T, u8)], v: T) -> u8 {
    table
        .iter()
        .find(|(t, _)| *t == v)
        .map(|(_, c)| *c)
        .expect("every value has a code")
}

fn value_of<T: Copy>(r: &mut Reader<'_>, table: &[(T, u8)], what: &str) -> Result<T, ReadError> {
    let code = r.byte()?;
    table
        .iter()
        .find(|(_, c)| *c == code)
        .map(|(t, _)| *t)
        .ok_or_else(|| corrupt(r.table, format!("unknown {what} code {code}")))
}

impl Row for Execution {
    const TABLE: &'static str = "executions";
    const FORMAT: u8 = FORMAT_NAMED;

    fn put(&self, w: &mut Writer) {
        w.0.extend_from_slice(&self.job_id.0.to_be_bytes());
        w.named(|w| {
            w.str(&self.project);
            w.str(&self.flow);
            w.str(&self.flow_version);
            w.str(&self.trigger_kind);
            w.str(&self.trigger_fingerprint);
            w.str(&self.environment);
        });
        w.0.push(self.status.code());
        w.uint(self.attempt.into());
        w.time(self.created_at);
        w.time_from(self.created_at, self.started_at);
        w.time_from(self.created_at, self.finished_at);
        w.uint(self.steps_total.into());
        w.uint(self.steps_executed.into());
        w.time_from(self.created_at, self.resume_at);
    }

    fn get(r: &mut Reader<'_>) -> Result<Self, ReadError> {
        let job_id = JobId(u128::from_be_bytes(r.take(16)?.try_into().expect("16 bytes")));
        let (project, flow, flow_version, trigger_kind, trigger_fingerprint, environment) =
            r.named(|r| Ok((r.str()?, r.str()?, r.str()?, r.str()?, r.str()?, r.str()?)))?;
        let status = r.execution_status()?;
        let attempt = r.u32()?;
        let created_at = r.time()?;
        Ok(Execution {
            job_id,
            project,
            flow,
            flow_version,
            trigger_kind,
            trigger_fingerprint,
            environment,
            status,
            attempt,
            created_at,
            started_at: r.time_from(created_at)?,
            finished_at: r.time_from(created_at)?,
            steps_total: r.u32()?,
            steps_executed: r.u32()?,
            resume_at: r.time_from(created_at)?,
        })
    }
}

impl Row for Attempt {
    const TABLE: &'static str = "attempts";

    fn put(&self, w: &mut Writer) {
        w.uint(self.attempt.into());
        w.0.push(self.status.code());
        w.span(self.started_at, self.finished_at);
        w.uint(self.from_step.into());
    }

    fn get(r: &mut Reader<'_>) -> Result<Self, ReadError> {
        let attempt = r.u32()?;
        let status = r.execution_status()?;
        let (started_at, finished_at) = r.span()?;
        Ok(Attempt {
            attempt,
            status,
            started_at,
            finished_at,
            from_step: r.u32()?,
        })
    }
}

/// A connector's use: its name, and its SHA-256 as 32 bytes when it is 64 lowercase hex
/// digits (as flowd writes it), else as text.
fn put_connector(w: &mut Writer, c: Option<&ConnectorUse>) {
    let Some(c) = c else {
        w.0.push(0);
        return;
    };
    let raw = (c.sha256.len() == 64 && c.sha256.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
        .then(|| hex::decode(&c.sha256).ok())
        .flatten();
    match raw {
        Some(raw) => {
            w.0.push(1);
            w.str(&c.name);
            w.0.extend_from_slice(&raw);
        }
        None => {
            w.0.push(2);
            w.str(&c.name);
            w.str(&c.sha256);
        }
    }
}

fn get_connector(r: &mut Reader<'_>) -> Result<Option<ConnectorUse>, ReadError> {
    match r.byte()? {
        0 => Ok(None),
        1 => Ok(Some(ConnectorUse {
            name: r.str()?,
            sha256: hex::encode(r.take(32)?),
        })),
        2 => Ok(Some(ConnectorUse {
            name: r.str()?,
            sha256: r.str()?,
        })),
        b => Err(corrupt(r.table, format!("a connector tag of {b}"))),
    }
}

impl Row for StepRow {
    const TABLE: &'static str = "steps";
    const FORMAT: u8 = FORMAT_NAMED;

    fn put(&self, w: &mut Writer) {
        w.uint(self.attempt.into());
        w.uint(self.index.into());
        let status = code_of(&STEP_STATUSES, self.status);
        if w.1.is_some() {
            w.named(|w| {
                w.str(&self.name);
                w.str(&self.kind);
                put_connector(w, self.connector.as_ref());
            });
            w.0.push(status);
        } else {
            // Format 1, as rows were written before names.
            w.str(&self.name);
            w.str(&self.kind);
            w.0.push(status);
            put_connector(w, self.connector.as_ref());
        }
        w.span(self.started_at, self.finished_at);
        w.f64(self.duration);
        w.uint(self.fuel_used);
        // The rare parts: a failure, a note, retried tries, a reused output.
        let rare = u8::from(self.error.is_some())
            | u8::from(self.note.is_some()) << 1
            | u8::from(!self.tries.is_empty()) << 2
            | u8::from(self.reused_from.is_some()) << 3;
        w.0.push(rare);
        if let Some(e) = &self.error {
            w.json(e);
        }
        if let Some(n) = &self.note {
            w.str(n);
        }
        if !self.tries.is_empty() {
            // Every step that ran has one try at least: binary, with its start as a
            // difference from the step's.
            let base = self.started_at.unwrap_or(UNIX_EPOCH);
            w.uint(self.tries.len() as u64);
            for t in &self.tries {
                w.time_from(base, Some(t.started_at));
                w.f64(t.duration);
                w.uint(t.fuel_used);
                w.uint(t.dropped_logs);
                match &t.error {
                    Some(e) => {
                        w.0.push(1);
                        w.json(e);
                    }
                    None => w.0.push(0),
                }
            }
        }
        if let Some(a) = self.reused_from {
            w.uint(a.into());
        }
    }

    fn get(r: &mut Reader<'_>) -> Result<Self, ReadError> {
        let (attempt, index) = (r.u32()?, r.u32()?);
        let (name, kind, status, connector) = if r.format < FORMAT_NAMED {
            let (name, kind) = (r.str()?, r.str()?);
            let status = value_of(r, &STEP_STATUSES, "step status")?;
            (name, kind, status, get_connector(r)?)
        } else {
            let (name, kind, connector) = r.named(|r| Ok((r.str()?, r.str()?, get_connector(r)?)))?;
            (name, kind, value_of(r, &STEP_STATUSES, "step status")?, connector)
        };
        let (started_at, finished_at) = r.span()?;
        let duration = r.f64()?;
        let fuel_used = r.uint()?;
        let rare = r.byte()?;
        if rare & !0b1111 != 0 {
            return Err(corrupt(r.table, format!("unknown parts {rare:#04x}")));
        }
        let error: Option<Failure> = if rare & 1 != 0 { Some(r.json()?) } else { None };
        let note = if rare & 2 != 0 { Some(r.str()?) } else { None };
        let mut tries = Vec::new();
        if rare & 4 != 0 {
            let base = started_at.unwrap_or(UNIX_EPOCH);
            let n = r.uint()?;
            for _ in 0..n {
                let started_at = r
                    .time_from(base)?
                    .ok_or_else(|| corrupt(r.table, "a try without its start".into()))?;
                tries.push(TryRow {
                    started_at,
                    duration: r.f64()?,
                    fuel_used: r.uint()?,
                    dropped_logs: r.uint()?,
                    error: if r.flag()? { Some(r.json()?) } else { None },
                });
            }
        }
        let reused_from = if rare & 8 != 0 { Some(r.u32()?) } else { None };
        Ok(StepRow {
            attempt,
            index,
            name,
            kind,
            status,
            connector,
            started_at,
            finished_at,
            duration,
            fuel_used,
            error,
            note,
            tries,
            reused_from,
        })
    }
}

impl Row for LogRow {
    const TABLE: &'static str = "logs";
    const FORMAT: u8 = FORMAT_CATEGORY_INLINE;

    fn put(&self, w: &mut Writer) {
        let format = if w.1.is_some() { FORMAT_CATEGORY_INLINE } else { FORMAT };
        put_log(self, w, format);
    }

    fn get(r: &mut Reader<'_>) -> Result<Self, ReadError> {
        let time = r.time()?;
        let level = value_of(r, &LEVELS, "level")?;
        let job_id = JobId(u128::from_be_bytes(r.take(16)?.try_into().expect("16 bytes")));
        let format = r.format;
        let (attempt, (project, flow, flow_version), (step, connector, action), named_category, environment) =
            if format < FORMAT_NAMED {
                let head = (r.str()?, r.str()?, r.str()?);
                let attempt = r.u32()?;
                let tail = (r.opt_str()?, r.opt_str()?, r.str()?);
                (attempt, head, tail, Some(r.str()?), r.str()?)
            } else {
                let attempt = r.u32()?;
                let (head, tail, category, environment) = r.named(|r| {
                    Ok((
                        (r.str()?, r.str()?, r.str()?),
                        (r.opt_str()?, r.opt_str()?, r.str()?),
                        if format == FORMAT_NAMED { Some(r.str()?) } else { None },
                        r.str()?,
                    ))
                })?;
                (attempt, head, tail, category, environment)
            };
        let category = match named_category {
            Some(c) => c,
            None => r.str()?,
        };
        Ok(LogRow {
            time,
            level,
            job_id,
            project,
            flow,
            flow_version,
            attempt,
            step,
            connector,
            action,
            category,
            environment,
            message: r.str()?,
        })
    }
}

/// `row` in `format`: 1 with every string inline, 2 with its category numbered among the
/// flow's names (as log rows were written before format 3), 3 with it inline.
fn put_log(row: &LogRow, w: &mut Writer, format: u8) {
    w.time(row.time);
    w.0.push(code_of(&LEVELS, row.level));
    w.0.extend_from_slice(&row.job_id.0.to_be_bytes());
    if format < FORMAT_NAMED {
        w.str(&row.project);
        w.str(&row.flow);
        w.str(&row.flow_version);
        w.uint(row.attempt.into());
        w.opt_str(row.step.as_deref());
        w.opt_str(row.connector.as_deref());
        w.str(&row.action);
        w.str(&row.category);
        w.str(&row.environment);
    } else {
        w.uint(row.attempt.into());
        w.named(|w| {
            w.str(&row.project);
            w.str(&row.flow);
            w.str(&row.flow_version);
            w.opt_str(row.step.as_deref());
            w.opt_str(row.connector.as_deref());
            w.str(&row.action);
            if format == FORMAT_NAMED {
                w.str(&row.category);
            }
            w.str(&row.environment);
        });
        if format > FORMAT_NAMED {
            w.str(&row.category);
        }
    }
    w.str(&row.message);
}

/// `row` in format 2, as log rows were written before format 3; its names go to `pending`.
#[cfg(test)]
pub(super) fn log_format_2(row: &LogRow, names: &Names, pending: &mut Vec<Pending>) -> Vec<u8> {
    let mut w = Writer(vec![FORMAT_NAMED], Some((names, pending)));
    put_log(row, &mut w, FORMAT_NAMED);
    w.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::ErrorKind;

    fn at(ms: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(ms)
    }

    fn executions() -> Vec<Execution> {
        let full = Execution {
            job_id: JobId::new(),
            project: "shop".into(),
            flow: "order-intake".into(),
            flow_version: "3f2a".into(),
            trigger_kind: "http".into(),
            trigger_fingerprint: "fp".into(),
            environment: "prod".into(),
            status: ExecutionStatus::Paused,
            attempt: 3,
            created_at: at(1_764_900_000_123),
            started_at: Some(at(1_764_900_000_125)),
            finished_at: Some(at(1_764_900_000_100)),
            steps_total: 7,
            steps_executed: 2,
            resume_at: Some(at(1_864_900_000_000)),
        };
        let bare = Execution {
            project: String::new(),
            flow: "日本語".into(),
            status: ExecutionStatus::Rejected,
            created_at: UNIX_EPOCH - Duration::from_millis(5),
            started_at: None,
            finished_at: None,
            resume_at: None,
            attempt: u32::MAX,
            steps_total: u32::MAX,
            ..full.clone()
        };
        vec![full, bare]
    }

    fn steps() -> Vec<StepRow> {
        let failure = Failure {
            kind: ErrorKind::Connector,
            code: Some("E42".into()),
            message: "said \"no\"\n".into(),
            retryable: true,
        };
        let full = StepRow {
            attempt: 2,
            index: 4,
            name: "fetch".into(),
            kind: "connector".into(),
            status: StepStatus::Failed,
            connector: Some(ConnectorUse {
                name: "http".into(),
                sha256: "ab".repeat(32),
            }),
            started_at: Some(at(1_764_900_000_000)),
            finished_at: Some(at(1_764_900_001_500)),
            duration: 1.5,
            fuel_used: u64::MAX,
            error: Some(failure.clone()),
            note: Some("a note".into()),
            tries: vec![
                TryRow {
                    started_at: at(1_764_900_000_000),
                    duration: 0.25,
                    fuel_used: 10,
                    error: Some(failure),
                    dropped_logs: 3,
                },
                TryRow {
                    started_at: at(1_764_899_000_000),
                    duration: 0.5,
                    fuel_used: 0,
                    error: None,
                    dropped_logs: 0,
                },
            ],
            reused_from: Some(1),
        };
        let odd_hash = StepRow {
            connector: Some(ConnectorUse {
                name: "x".into(),
                sha256: "AB".repeat(32),
            }),
            started_at: None,
            finished_at: Some(at(3)),
            error: None,
            note: None,
            tries: Vec::new(),
            reused_from: None,
            status: StepStatus::Skipped,
            ..full.clone()
        };
        let bare = StepRow {
            connector: None,
            finished_at: None,
            status: StepStatus::Paused,
            ..odd_hash.clone()
        };
        vec![full, odd_hash, bare]
    }

    fn logs() -> Vec<LogRow> {
        let full = LogRow {
            time: at(1_764_900_000_001),
            level: Level::Warn,
            job_id: JobId::new(),
            project: "p".into(),
            flow: "f".into(),
            flow_version: "v".into(),
            attempt: 1,
            step: Some("fetch".into()),
            connector: Some("http".into()),
            action: "run".into(),
            category: "orders".into(),
            environment: "e".into(),
            message: "caf\u{e9} \"quoted\"\u{1}".into(),
        };
        let bare = LogRow {
            step: None,
            connector: None,
            level: Level::Trace,
            message: String::new(),
            ..full.clone()
        };
        vec![full, bare]
    }

    fn attempts() -> Vec<Attempt> {
        vec![
            Attempt {
                attempt: 1,
                status: ExecutionStatus::Success,
                started_at: Some(at(1_764_900_000_000)),
                finished_at: Some(at(1_764_900_000_009)),
                from_step: 0,
            },
            Attempt {
                attempt: 3,
                status: ExecutionStatus::Running,
                started_at: None,
                finished_at: Some(at(9)),
                from_step: 2,
            },
        ]
    }

    fn encoded<T: Row>(row: &T, names: &Names) -> Vec<u8> {
        let mut pending = Vec::new();
        let bytes = encode(row, names, &mut pending);
        names.stored(pending.into_iter().map(|(id, _)| id));
        bytes
    }

    /// Every cut of `bytes` is an error naming the table, never a panic; so is a byte more.
    fn every_cut_is_an_error<T: Row + std::fmt::Debug>(names: &Names, bytes: &[u8]) {
        for cut in 0..bytes.len() {
            match decode::<T>(names, &bytes[..cut]) {
                Err(ReadError::Corrupt { table, .. }) => assert_eq!(table, T::TABLE),
                other => panic!("{} of {} bytes read as {other:?}", cut, bytes.len()),
            }
        }
        let mut longer = bytes.to_vec();
        longer.push(0);
        assert!(matches!(decode::<T>(names, &longer), Err(ReadError::Corrupt { .. })));
    }

    /// Every row reads back equal from the binary forms and from its JSON text, and
    /// every cut of its bytes is an error naming the table, never a panic.
    fn round_trips<T: Row + serde::Serialize + PartialEq + std::fmt::Debug>(rows: Vec<T>) {
        let names = Names::default();
        for row in rows {
            let bytes = encoded(&row, &names);
            assert!(is_binary(&bytes));
            assert_eq!(bytes[0], T::FORMAT);
            assert_eq!(decode::<T>(&names, &bytes).unwrap(), row);
            let old = inline(&row);
            assert_eq!(decode::<T>(&names, &old).unwrap(), row, "format 1 still reads");
            assert!(bytes.len() <= old.len());
            let json = serde_json::to_vec(&row).unwrap();
            assert!(!is_binary(&json));
            assert_eq!(decode::<T>(&names, &json).unwrap(), row);
            assert!(bytes.len() < json.len(), "{} vs {} bytes", bytes.len(), json.len());
            for bytes in [&bytes, &old] {
                every_cut_is_an_error::<T>(&names, bytes);
            }
            // Read with names that lack the ones it refers to: a named error.
            if T::FORMAT >= FORMAT_NAMED {
                match decode::<T>(&Names::default(), &bytes) {
                    Err(ReadError::Corrupt { table, detail }) => {
                        assert_eq!(table, T::TABLE);
                        assert!(detail.contains("names table does not hold"), "{detail}");
                    }
                    other => panic!("read without its names as {other:?}"),
                }
            }
        }
    }

    #[test]
    fn rows_of_one_flow_version_share_their_names() {
        let names = Names::default();
        let mut pending = Vec::new();
        let e = &executions()[0];
        let first = encode(e, &names, &mut pending);
        assert_eq!(pending.len(), 1, "the execution's strings are one name");
        let mut other = e.clone();
        other.job_id = JobId(e.job_id.0 + 1);
        other.status = ExecutionStatus::Success;
        let second = encode(&other, &names, &mut pending);
        assert_eq!(pending.len(), 1, "the same name again");
        assert_eq!(first.len(), second.len());
        assert!(
            first.len() < inline(e).len() - 20,
            "{} vs {}",
            first.len(),
            inline(e).len()
        );
    }

    #[test]
    fn every_row_reads_back_from_either_form() {
        round_trips(executions());
        round_trips(attempts());
        round_trips(steps());
        round_trips(logs());
    }

    #[test]
    fn log_rows_of_formats_1_2_and_3_read_back_and_only_format_3_leaves_categories_unnumbered() {
        let names = Names::default();
        for row in logs() {
            let mut pending = Vec::new();
            let two = log_format_2(&row, &names, &mut pending);
            names.stored(pending.into_iter().map(|(id, _)| id));
            let three = encoded(&row, &names);
            let one = inline(&row);
            for (format, bytes) in [(FORMAT, &one), (FORMAT_NAMED, &two), (FORMAT_CATEGORY_INLINE, &three)] {
                assert_eq!(bytes[0], format);
                assert!(is_binary(bytes), "format {format}");
                assert_eq!(decode::<LogRow>(&names, bytes).unwrap(), row, "format {format}");
                every_cut_is_an_error::<LogRow>(&names, bytes);
            }
            // Format 3 holds the category itself, format 2 only a number for it.
            assert!(memchr::memmem::find(&three, row.category.as_bytes()).is_some());
            assert!(memchr::memmem::find(&two, row.category.as_bytes()).is_none());
            assert!(
                matches!(
                    decode::<LogRow>(&Names::default(), &two),
                    Err(ReadError::Corrupt { table: "logs", .. })
                ),
                "format 2 without its names"
            );
        }
        // A connector naming a new category at every call: format 3 numbers the record's
        // other strings once; format 2 numbered a value per category.
        let names = Names::default();
        let (mut three, mut two) = (Vec::new(), Vec::new());
        let mut row = logs()[0].clone();
        for n in 0..100 {
            row.category = format!("req-{n}");
            let bytes = encode(&row, &names, &mut three);
            assert_eq!(decode::<LogRow>(&names, &bytes).unwrap(), row);
            log_format_2(&row, &names, &mut two);
        }
        assert_eq!(three.len(), 1);
        assert_eq!(two.len(), 100);
        // Format 3 is known to log rows only.
        let mut bytes = encoded(&executions()[0], &names);
        bytes[0] = FORMAT_CATEGORY_INLINE;
        let err = decode::<Execution>(&names, &bytes).unwrap_err().to_string();
        assert!(err.contains("unknown row format 0x03"), "{err}");
    }

    #[test]
    fn an_execution_head_reads_from_either_form() {
        for e in executions() {
            let names = Names::default();
            for bytes in [encoded(&e, &names), inline(&e), serde_json::to_vec(&e).unwrap()] {
                let head = head(&names, &bytes).unwrap();
                assert_eq!((head.flow, head.status), (e.flow.clone(), e.status));
            }
        }
    }

    #[test]
    fn bytes_of_neither_form_are_named_errors() {
        for bad in [
            &[][..],
            &[7, 1, 2][..],
            b"[1]",
            &[FORMAT, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01][..],
        ] {
            let err = decode::<Execution>(&Names::default(), bad).unwrap_err();
            assert!(
                matches!(
                    err,
                    ReadError::Corrupt {
                        table: "executions",
                        ..
                    }
                ),
                "{bad:?}: {err:?}"
            );
        }
        // A status code no status has.
        let mut bytes = inline(&executions()[0]);
        let status_at = 1
            + 16
            + ["shop", "order-intake", "3f2a", "http", "fp", "prod"]
                .iter()
                .map(|s| 1 + s.len())
                .sum::<usize>();
        assert_eq!(bytes[status_at], ExecutionStatus::Paused.code());
        bytes[status_at] = 200;
        let err = decode::<Execution>(&Names::default(), &bytes).unwrap_err().to_string();
        assert!(err.contains("unknown execution status code 200"), "{err}");
    }

    #[test]
    fn the_peer_shape_rows_are_a_fraction_of_their_json() {
        let (e, s) = (&executions()[0], &steps()[2]);
        let ratio = |a: usize, b: usize| a as f64 / b as f64;
        let names = Names::default();
        assert!(ratio(encoded(e, &names).len(), serde_json::to_vec(e).unwrap().len()) < 0.3);
        assert!(ratio(encoded(s, &names).len(), serde_json::to_vec(s).unwrap().len()) < 0.3);
    }
}
