//! `flowd logs`: the running logs of recorded executions, with every filter the admin
//! API has. With `--data-dir` or `--config` read from the store (oldest first); otherwise from
//! the daemon's API: its newest page printed oldest first, `--follow` (a live tail), or
//! `--download` (NDJSON, CSV or text, with progress).

use super::args::{Query, Target, TimeRange, client_only, parse_level};
use super::client::Client;
use super::remote::{CommandError, Outcome, PROGRESS_EVERY, decode, page_limit, print_json, with_client};
use crate::plugin::Level;
use crate::store::{JobId, LogKey, LogQuery, LogRow};
use clap::Args;
use http_body_util::BodyExt;
use hyper::Method;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Args)]
pub struct LogsArgs {
    #[command(flatten)]
    pub target: Target,
    #[arg(long)]
    pub flow: Option<String>,
    #[arg(long)]
    pub project: Option<String>,
    #[arg(long, value_name = "VERSION")]
    pub flow_version: Option<String>,
    #[arg(long)]
    pub environment: Option<String>,
    #[arg(long, value_name = "JOB_ID")]
    pub job: Option<JobId>,
    #[arg(long)]
    pub step: Option<String>,
    #[arg(long)]
    pub connector: Option<String>,
    /// What was running: run (a step), accept (the trigger), or a host event name.
    #[arg(long)]
    pub action: Option<String>,
    #[arg(long)]
    pub category: Option<String>,
    /// The lowest level shown: trace, debug, info, warn or error.
    #[arg(long, value_parser = parse_level, conflicts_with = "levels")]
    pub level: Option<Level>,
    /// Exactly these levels, comma-separated.
    #[arg(long, value_name = "L[,L...]", value_delimiter = ',', value_parser = parse_level)]
    pub levels: Vec<Level>,
    /// Only records whose message contains this text.
    #[arg(long, value_name = "TEXT")]
    pub contains: Option<String>,
    #[command(flatten)]
    pub time: TimeRange,
    /// At most this many records: offline the oldest (default 1000); in client mode the
    /// newest (default 100, at most 1000), printed oldest first.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub limit: Option<u64>,
    /// The records older than a page (its next-page hint); client mode.
    #[arg(long, value_name = "CURSOR", value_parser = parse_log_cursor)]
    pub cursor: Option<LogKey>,
    /// Print new matching records as they are stored, until Ctrl-C or the daemon stops
    /// (client mode).
    #[arg(long, conflicts_with_all = ["from", "to", "preset", "limit", "cursor", "download"])]
    pub follow: bool,
    /// Write every matching record to FILE, oldest first, streamed; FILE appears only
    /// once complete (client mode).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["limit", "cursor", "json"])]
    pub download: Option<PathBuf>,
    /// The format of --download.
    #[arg(long, value_enum, default_value_t = DownloadFormat::Ndjson, requires = "download")]
    pub format: DownloadFormat,
    /// JSON: offline and with --follow one record per line, otherwise the API's answer.
    #[arg(long)]
    pub json: bool,
}

fn parse_log_cursor(s: &str) -> Result<LogKey, String> {
    s.parse()
}

/// Runs `flowd logs` on the source its arguments name.
pub async fn logs(a: LogsArgs) -> u8 {
    match a.target.source(false) {
        Ok(Some(source)) => logs_offline(&source, a).await,
        Ok(None) => logs_remote(a).await,
        Err(code) => code,
    }
}

async fn logs_offline(source: &super::source::Source, a: LogsArgs) -> u8 {
    let refused = client_only(a.time.preset.is_some(), "--preset")
        .and_then(|()| client_only(a.cursor.is_some(), "--cursor"))
        .and_then(|()| client_only(a.follow, "--follow"))
        .and_then(|()| client_only(a.download.is_some(), "--download"));
    if let Err(c) = refused {
        return c;
    }
    if let Err(why) = a.time.check() {
        eprintln!("error: {why}");
        return 2;
    }
    let store = match super::source::open(source).await {
        Ok(s) => s.store,
        Err(c) => return c,
    };
    let q = LogQuery {
        job_id: a.job,
        project: a.project,
        flow: a.flow,
        flow_version: a.flow_version,
        environment: a.environment,
        step: a.step,
        connector: a.connector,
        action: a.action,
        level: a.level,
        levels: a.levels,
        category: a.category,
        contains: a.contains,
        from: a.time.from,
        to: a.time.to,
        limit: a.limit.map_or(1000, |n| n as usize),
        ..LogQuery::default()
    };
    let rows = match store.logs(&q).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    for (_, l) in rows {
        if a.json {
            println!("{}", serde_json::to_string(&l).expect("serializes"));
        } else {
            println!("{}", crate::detail::log_line(&l));
        }
    }
    0
}

/// The formats of `flowd logs --download`.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DownloadFormat {
    /// One JSON record per line.
    Ndjson,
    /// A header row, then one row per record (RFC 4180 quoting).
    Csv,
    /// The lines `flowd logs` prints.
    Text,
}

impl DownloadFormat {
    fn name(self) -> &'static str {
        match self {
            DownloadFormat::Ndjson => "ndjson",
            DownloadFormat::Csv => "csv",
            DownloadFormat::Text => "text",
        }
    }

    /// The media type the admin API sends it as.
    fn media(self) -> &'static str {
        match self {
            DownloadFormat::Ndjson => "application/x-ndjson",
            DownloadFormat::Csv => "text/csv",
            DownloadFormat::Text => "text/plain",
        }
    }
}

/// The filters of a log search, follow or download.
fn log_filters(a: &LogsArgs) -> Query {
    let mut q = Query::new();
    q.opt("flow", a.flow.as_deref())
        .opt("project", a.project.as_deref())
        .opt("flow_version", a.flow_version.as_deref())
        .opt("environment", a.environment.as_deref())
        .opt("job_id", a.job.map(|j| j.to_string()))
        .opt("step", a.step.as_deref())
        .opt("connector", a.connector.as_deref())
        .opt("action", a.action.as_deref())
        .opt("category", a.category.as_deref())
        .opt("level", a.level.map(|l| l.as_str()))
        .list("levels", a.levels.iter().map(|l| l.as_str()))
        .opt("contains", a.contains.as_deref());
    q
}

async fn logs_remote(a: LogsArgs) -> u8 {
    with_client(&a.target.remote, async |c| {
        if a.follow {
            return follow(&c, log_filters(&a).path("/v1/logs/follow"), a.json).await;
        }
        if let Some(file) = &a.download {
            let mut q = log_filters(&a);
            a.time.append(&mut q).map_err(super::remote::CommandError::usage)?;
            q.opt("format", Some(a.format.name()));
            return download(&c, q.path("/v1/logs/download"), file, a.format).await;
        }
        let mut q = log_filters(&a);
        a.time.append(&mut q).map_err(super::remote::CommandError::usage)?;
        q.opt("limit", page_limit(a.limit)?)
            .opt("cursor", a.cursor.map(|k| k.to_string()));
        let (_, v) = c.json(Method::GET, &q.path("/v1/logs"), None).await?;
        if a.json {
            print_json(&v);
            return Ok(0);
        }
        let rows: Vec<LogRow> = decode(&c, &v, "logs")?;
        // The API pages newest first; a page reads top to bottom in time order, the
        // newest record last, as a terminal's tail does.
        for l in rows.iter().rev() {
            println!("{}", crate::detail::log_line(l));
        }
        if let Some(next) = v["next_cursor"].as_str() {
            println!("older records: add --cursor {next}");
        }
        Ok(0)
    })
    .await
}

/// Prints each record of the live tail as it arrives, until the daemon ends the stream
/// (or Ctrl-C ends the process).
async fn follow(c: &Client, path: String, json: bool) -> Outcome {
    let mut body = c.stream(&path, "application/x-ndjson").await?;
    // Said once the daemon answered: records stored from here on are sent.
    eprintln!("following new log records from {} (Ctrl-C stops)", c.url());
    let mut pending: Vec<u8> = Vec::new();
    let mut out = std::io::stdout();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| c.broke(e))?;
        let Ok(data) = frame.into_data() else { continue };
        pending.extend_from_slice(&data);
        while let Some(end) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            let line = &line[..end];
            // Empty lines are the stream's heartbeats.
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let text = if json {
                String::from_utf8_lossy(line).into_owned()
            } else {
                match serde_json::from_slice::<LogRow>(line) {
                    Ok(r) => crate::detail::log_line(&r),
                    Err(e) => {
                        return Err(CommandError::local(format!(
                            "the live tail sent a line that is not a log record ({e})"
                        )));
                    }
                }
            };
            // A closed pipe (`| head`) ends the tail quietly.
            if writeln!(out, "{text}").and_then(|()| out.flush()).is_err() {
                return Ok(0);
            }
        }
    }
    eprintln!("the daemon ended the live tail");
    Ok(0)
}

/// Counts bytes and records of a download as its chunks pass.
struct Tally {
    csv: bool,
    in_quotes: bool,
    lines: u64,
    bytes: u64,
}

impl Tally {
    fn feed(&mut self, data: &[u8]) {
        self.bytes += data.len() as u64;
        for b in data {
            match b {
                // A quoted CSV field may hold newlines; `""` toggles twice.
                b'"' if self.csv => self.in_quotes = !self.in_quotes,
                b'\n' if !self.in_quotes => self.lines += 1,
                _ => {}
            }
        }
    }

    fn records(&self) -> u64 {
        if self.csv {
            self.lines.saturating_sub(1)
        } else {
            self.lines
        }
    }
}

/// Streams a download into a temporary file next to `file`, renamed to `file` once
/// complete, so a failed or interrupted download never leaves a truncated `file`.
async fn download(c: &Client, path: String, file: &Path, format: DownloadFormat) -> Outcome {
    let Some(name) = file.file_name() else {
        return Err(CommandError::usage(format!(
            "--download {}: not a file name",
            file.display()
        )));
    };
    let partial = file.with_file_name(format!(".{}.{}.part", name.to_string_lossy(), std::process::id()));
    let body = c.stream(&path, format.media()).await?;
    let mut tally = Tally {
        csv: format == DownloadFormat::Csv,
        in_quotes: false,
        lines: 0,
        bytes: 0,
    };
    let progress = std::io::stderr().is_terminal();
    let result = tokio::select! {
        r = write_body(c, body, &partial, &mut tally, progress) => r,
        _ = tokio::signal::ctrl_c() => Err(CommandError { message: "interrupted".into(), code: 130 }),
    };
    if progress {
        eprint!("\r\x1b[K");
    }
    if let Err(mut e) = result {
        let _ = std::fs::remove_file(&partial);
        e.message = format!("{}; {} not written", e.message, file.display());
        return Err(e);
    }
    if let Err(e) = std::fs::rename(&partial, file) {
        let _ = std::fs::remove_file(&partial);
        return Err(CommandError::local(format!("cannot write {}: {e}", file.display())));
    }
    eprintln!(
        "downloaded {} records ({} bytes) to {}",
        tally.records(),
        tally.bytes,
        file.display()
    );
    Ok(0)
}

/// Writes each chunk of `body` to `partial` as it arrives (memory stays one chunk), then
/// syncs it.
async fn write_body(
    c: &Client,
    mut body: hyper::body::Incoming,
    partial: &Path,
    tally: &mut Tally,
    progress: bool,
) -> Result<(), CommandError> {
    use tokio::io::AsyncWriteExt;
    let local = |e: std::io::Error| CommandError::local(format!("cannot write {}: {e}", partial.display()));
    let mut f = tokio::fs::File::create(partial).await.map_err(local)?;
    let mut drawn = Instant::now();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| c.broke(e))?;
        let Ok(data) = frame.into_data() else { continue };
        f.write_all(&data).await.map_err(local)?;
        tally.feed(&data);
        if progress && drawn.elapsed() >= PROGRESS_EVERY {
            eprint!(
                "\r\x1b[K{} records, {} so far",
                tally.records(),
                bytesize::ByteSize(tally.bytes)
            );
            drawn = Instant::now();
        }
    }
    f.sync_all().await.map_err(local)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Tally;

    fn records(csv: bool, chunks: &[&str]) -> u64 {
        let mut t = Tally {
            csv,
            in_quotes: false,
            lines: 0,
            bytes: 0,
        };
        for c in chunks {
            t.feed(c.as_bytes());
        }
        t.records()
    }

    #[test]
    fn records_are_counted_across_chunks_and_quoted_csv_newlines() {
        assert_eq!(records(false, &["{\"a\":1}\n{\"a\"", ":2}\n"]), 2);
        assert_eq!(
            records(
                true,
                &["time,message\n", "t,\"two\nlines, \"\"quoted\"\"\"\n", "t,plain\n"]
            ),
            2
        );
    }
}
