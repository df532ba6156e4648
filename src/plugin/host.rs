//! The per-invocation store data: the WASI context (with stdout/stderr captured into the
//! log, never the daemon's terminal), flowd's `log` import, and the memory limiter that
//! remembers when it refused to grow, so a trap after that reads as `memory_limit`.

use super::bindings::log_iface;
use super::outbound::{IssueSlot, Outbound};
use crate::config::Grants;
use crate::sync::Lock as _;
use serde::{Deserialize, Serialize};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::SystemTime;
use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};
use wasmtime_wasi::sockets::SocketAddrUse;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// A log message longer than this is cut (with a marker) before it is kept.
const MAX_MESSAGE: usize = 8 << 10;
const MAX_CATEGORY: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }
}

/// One record of an execution's log, as written by a connector (or its stdio).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogRecord {
    #[serde(with = "crate::time_format")]
    pub time: SystemTime,
    pub level: Level,
    pub category: String,
    pub message: String,
}

/// Records of one invocation, capped: past the cap they are counted, not kept.
#[derive(Debug, Default)]
pub struct LogBuffer {
    pub records: Vec<LogRecord>,
    pub dropped: u64,
    max: usize,
    partial_stdout: Vec<u8>,
    partial_stderr: Vec<u8>,
    /// The last stderr lines, kept past the record cap: what a trap is explained with,
    /// even after stdout filled the records.
    stderr_tail: std::collections::VecDeque<String>,
}

/// stderr lines kept for a trap's explanation, and how much of each.
const STDERR_TAIL: usize = 32;
const STDERR_TAIL_LINE: usize = 2 << 10;

impl LogBuffer {
    pub fn new(max: u32) -> LogBuffer {
        LogBuffer {
            max: max as usize,
            ..LogBuffer::default()
        }
    }

    pub fn push(&mut self, level: Level, category: &str, message: &str) {
        if self.records.len() >= self.max {
            self.dropped += 1;
            return;
        }
        self.records.push(LogRecord {
            time: SystemTime::now(),
            level,
            category: truncate(category, MAX_CATEGORY),
            message: truncate(message, MAX_MESSAGE),
        });
    }

    fn write_stdio(&mut self, err: bool, bytes: &[u8]) {
        let mut pending = std::mem::take(if err {
            &mut self.partial_stderr
        } else {
            &mut self.partial_stdout
        });
        pending.extend_from_slice(bytes);
        let mut start = 0;
        while let Some(nl) = pending[start..].iter().position(|b| *b == b'\n') {
            let line = String::from_utf8_lossy(&pending[start..start + nl]).into_owned();
            self.push_stdio(err, &line);
            start += nl + 1;
        }
        pending.drain(..start);
        // A line longer than a message can be is emitted in pieces.
        while pending.len() > MAX_MESSAGE {
            let line = String::from_utf8_lossy(&pending[..MAX_MESSAGE]).into_owned();
            self.push_stdio(err, &line);
            pending.drain(..MAX_MESSAGE);
        }
        *(if err {
            &mut self.partial_stderr
        } else {
            &mut self.partial_stdout
        }) = pending;
    }

    fn push_stdio(&mut self, err: bool, line: &str) {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if err {
            if self.stderr_tail.len() == STDERR_TAIL {
                self.stderr_tail.pop_front();
            }
            self.stderr_tail.push_back(truncate(line, STDERR_TAIL_LINE));
            self.push(Level::Warn, "stderr", line);
        } else {
            self.push(Level::Info, "stdout", line);
        }
    }

    /// Emits unterminated stdio lines; called when the invocation ends.
    pub fn finish(&mut self) {
        for err in [false, true] {
            let rest = std::mem::take(if err {
                &mut self.partial_stderr
            } else {
                &mut self.partial_stdout
            });
            if !rest.is_empty() {
                self.push_stdio(err, &String::from_utf8_lossy(&rest));
            }
        }
    }

    /// What the component said on stderr before it trapped, summarised in its language
    /// (see [`super::trap`]).
    pub fn trap_context(&self) -> Option<String> {
        let stderr: Vec<&str> = self.stderr_tail.iter().map(String::as_str).collect();
        super::trap::summary(&stderr)
    }
}

pub(super) fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let cut = s.floor_char_boundary(max);
    format!("{}… [{} bytes cut]", &s[..cut], s.len() - cut)
}

pub type SharedLog = Arc<Mutex<LogBuffer>>;

/// stdout or stderr of a component, turned into log records line by line.
#[derive(Clone)]
struct Capture {
    log: SharedLog,
    err: bool,
}

impl Capture {
    fn write(&self, bytes: &[u8]) {
        self.log.locked().write_stdio(self.err, bytes);
    }
}

impl IsTerminal for Capture {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for Capture {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for Capture {
    async fn ready(&mut self) {}
}

impl OutputStream for Capture {
    fn write(&mut self, bytes: bytes::Bytes) -> StreamResult<()> {
        Capture::write(self, &bytes);
        Ok(())
    }
    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }
    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 << 10)
    }
}

impl tokio::io::AsyncWrite for Capture {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Capture::write(&self, buf);
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Caps linear memory at the step's limit and remembers a refused growth.
pub struct MemoryLimiter {
    pub limit: u64,
    /// The size a refused `memory.grow` asked for.
    pub refused: Option<u64>,
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired as u64 > self.limit {
            self.refused = Some(desired as u64);
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

/// Everything one invocation's store holds.
pub struct HostState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    outbound: Outbound,
    table: ResourceTable,
    pub limiter: MemoryLimiter,
    pub log: SharedLog,
    /// The last outbound request refused or failed on the host's side.
    pub outbound_issue: IssueSlot,
}

impl HostState {
    pub fn new(grants: &Grants, memory: u64, max_log_records: u32) -> anyhow::Result<HostState> {
        let log: SharedLog = Arc::new(Mutex::new(LogBuffer::new(max_log_records)));
        let mut b = WasiCtxBuilder::new();
        b.stdout(Capture {
            log: log.clone(),
            err: false,
        })
        .stderr(Capture {
            log: log.clone(),
            err: true,
        })
        .envs(&grants.env)
        .allow_ip_name_lookup(false)
        .allow_udp(!grants.sockets.is_empty())
        .allow_tcp(!grants.sockets.is_empty());
        if !grants.sockets.is_empty() {
            let allowed = Arc::new(grants.sockets.clone());
            // Granted addresses are the remote ends a component may use; the wildcard bind
            // a connect does implicitly is allowed, any other local bind must be granted.
            b.socket_addr_check(move |addr, usage| {
                let ok = match usage {
                    SocketAddrUse::TcpBind | SocketAddrUse::UdpBind => {
                        (addr.ip().is_unspecified() && addr.port() == 0) || allowed.contains(&addr)
                    }
                    SocketAddrUse::TcpAccept => true,
                    _ => allowed.contains(&addr),
                };
                Box::pin(async move { ok })
            });
        }
        for d in &grants.dirs {
            let perms = if d.writable {
                wasmtime_wasi::FsPerms::ReadWrite
            } else {
                wasmtime_wasi::FsPerms::ReadOnly
            };
            b.preopened_dir(&d.host, &d.guest, perms)
                .map_err(anyhow::Error::from)
                .map_err(|e| e.context(format!("opening granted directory {}", d.host.display())))?;
        }
        let outbound_issue = IssueSlot::default();
        Ok(HostState {
            wasi: b.build(),
            http: WasiHttpCtx::new(),
            outbound: Outbound::new(grants.http.clone(), outbound_issue.clone(), log.clone()),
            table: ResourceTable::new(),
            limiter: MemoryLimiter {
                limit: memory,
                refused: None,
            },
            log,
            outbound_issue,
        })
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.outbound,
        }
    }
}

impl log_iface::Host for HostState {
    fn log(&mut self, level: log_iface::Level, category: String, message: String) {
        let level = match level {
            log_iface::Level::Trace => Level::Trace,
            log_iface::Level::Debug => Level::Debug,
            log_iface::Level::Info => Level::Info,
            log_iface::Level::Warn => Level::Warn,
            log_iface::Level::Error => Level::Error,
        };
        self.log.locked().push(level, &category, &message);
    }
}

impl super::bindings::types::Host for HostState {}
