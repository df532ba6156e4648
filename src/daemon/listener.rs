//! The accept loop both listeners share, and what bounds a client there: a cap on the
//! connections a listener holds open (a semaphore, as mini-redis does; past it, new
//! connections wait in the kernel's backlog), a backoff when accepting fails (out of file
//! descriptors) said once in the log rather than at every retry, a request head that must
//! arrive within `header_read_timeout` of its first byte, and a connection that waits at
//! most `idle_timeout` for its next request. A request handler that panics is answered
//! `500` with the JSON error shape, and so are the requests hyper itself refuses (a
//! malformed request, a path with bytes a URI may not hold, conflicting lengths, an
//! oversized head), where the connection allows it. A request whose `Host` is missing
//! (HTTP/1.1), repeated or not a host is answered `400` before any handler sees it, and
//! a client that opens with HTTP/2's preface is answered in HTTP/2: GOAWAY, use HTTP/1.1.

use crate::sync::Lock as _;
use bytes::Bytes;
use futures_util::FutureExt as _;
use http_body_util::BodyExt as _;
use http_body_util::combinators::UnsyncBoxBody;
use hyper::body::{Body, Frame, Incoming};
use hyper::server::conn::http1;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::future::Future;
use std::io;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What every response body of a listener becomes.
pub type AnyBody = UnsyncBoxBody<Bytes, BoxError>;

/// What bounds the clients of one listener.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
}

impl Limits {
    pub fn of(server: &crate::config::Server) -> Limits {
        Limits {
            max_connections: server.max_connections as usize,
            header_read_timeout: server.header_read_timeout,
            idle_timeout: server.idle_timeout,
        }
    }
}

/// The largest request head (request line and headers) a listener reads; a larger one
/// is answered `431`.
const MAX_HEAD: usize = 64 << 10;

/// The most header lines a request may have (hyper's default, said here so the `431`
/// can name it); more are answered `431` too.
const MAX_HEADERS: usize = 100;

/// The first wait after accepting fails, doubled after each failure up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(5);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// Serves HTTP/1 on `listener`, each request answered by `handle`, until `stopping`;
/// requests being answered then get `grace` to finish.
pub async fn serve<F, Fut, B>(
    listener: TcpListener,
    what: &'static str,
    limits: Limits,
    stopping: CancellationToken,
    grace: Duration,
    handle: F,
) where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<B>> + Send + 'static,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut failing: Option<(io::Error, u32, Instant)> = None;
    let mut backoff = FIRST_BACKOFF;
    let mut full = false;
    loop {
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) => {
                full = false;
                slot
            }
            Err(_) => {
                if !std::mem::replace(&mut full, true) {
                    tracing::warn!(
                        listener = what,
                        max_connections = limits.max_connections,
                        "the listener holds as many connections as server.max_connections allows; new ones wait in the backlog until one closes"
                    );
                }
                tokio::select! {
                    slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
                    _ = stopping.cancelled() => break,
                }
            }
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stopping.cancelled() => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            // A connection that went away before it was accepted says nothing of the listener.
            Err(e) if per_connection(&e) => continue,
            Err(e) => {
                match &mut failing {
                    None => {
                        tracing::error!(listener = what, error = %e, "accepting connections fails; retrying with a backoff of up to 1s (with \"Too many open files\", raise the open-file limit or lower server.max_connections)");
                        failing = Some((e, 1, Instant::now()));
                    }
                    Some((_, n, _)) => *n += 1,
                }
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stopping.cancelled() => break,
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        if let Some((e, n, since)) = failing.take() {
            tracing::info!(listener = what, failures = n, error = %e, seconds = since.elapsed().as_secs_f64(), "accepting connections again");
            backoff = FIRST_BACKOFF;
        }
        let _ = stream.set_nodelay(true);
        let conn = Arc::new(Conn::default());
        let service = {
            let (handle, conn) = (handle.clone(), conn.clone());
            hyper::service::service_fn(move |req| {
                conn.begin();
                let call = match host_problem(&req) {
                    None => Ok(AssertUnwindSafe(handle(req)).catch_unwind()),
                    Some(why) => Err(why),
                };
                let conn = conn.clone();
                async move {
                    let response = match call {
                        Err(why) => {
                            let mut r = error_response(hyper::StatusCode::BAD_REQUEST, "bad_host", &why);
                            // Which host the client meant is unknown: nothing more is read.
                            r.headers_mut().insert(
                                hyper::header::CONNECTION,
                                hyper::header::HeaderValue::from_static("close"),
                            );
                            r
                        }
                        Ok(fut) => match fut.await {
                            Ok(r) => r.map(|b| b.map_err(Into::into).boxed_unsync()),
                            Err(panic) => {
                                let why = panic_text(&*panic);
                                tracing::error!(listener = what, error = %why, "a request handler panicked; answered 500");
                                error_response(
                                    hyper::StatusCode::INTERNAL_SERVER_ERROR,
                                    "internal",
                                    "flowd failed on this request; the daemon goes on serving (see its log)",
                                )
                            }
                        },
                    };
                    Ok::<_, std::convert::Infallible>(response.map(|b| Tracked { inner: b, conn }.boxed_unsync()))
                }
            })
        };
        let io = Watched::new(stream, conn, limits);
        // The head and idle deadlines are the socket's (see `Watched`), not hyper's, whose
        // own header timeout would also count the wait between requests.
        let connection = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(None)
            .max_header_size(MAX_HEAD)
            .max_headers(MAX_HEADERS)
            .serve_connection(TokioIo::new(io), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, listener = what, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(grace, graceful.shutdown()).await;
}

/// Why a request's `Host` makes it one to refuse (RFC 9112 §3.2: a server answers `400` to
/// an HTTP/1.1 request without one, and to any with more than one or an invalid one).
/// An empty value is valid: it says the target has no authority.
fn host_problem<B>(req: &Request<B>) -> Option<String> {
    let mut hosts = req.headers().get_all(hyper::header::HOST).iter();
    match (hosts.next(), hosts.next()) {
        (None, _) if req.version() == hyper::Version::HTTP_11 => {
            Some("the request has no Host header, which HTTP/1.1 requires (RFC 9112 §3.2)".into())
        }
        (None, _) => None,
        (Some(_), Some(_)) => Some(format!(
            "the request has {} Host headers; it may have one (RFC 9112 §3.2)",
            2 + hosts.count()
        )),
        (Some(host), None) if host.is_empty() || is_host(host.as_bytes()) => None,
        (Some(host), None) => {
            let shown: String = String::from_utf8_lossy(host.as_bytes()).chars().take(60).collect();
            Some(format!(
                "the request's Host header {shown:?} is not a host with an optional port (RFC 9112 §3.2)"
            ))
        }
    }
}

/// Whether `value` is `uri-host [ ":" port ]`: an authority without user information,
/// whose port, when there is one, is a number a port can be.
fn is_host(value: &[u8]) -> bool {
    let Ok(authority) = hyper::http::uri::Authority::try_from(value) else {
        return false;
    };
    let text = authority.as_str();
    let after_host = match text.strip_prefix('[') {
        Some(bracketed) => bracketed.split_once(']').map_or("", |(_, after)| after),
        None => text.find(':').map_or("", |i| &text[i..]),
    };
    let port_ok = match after_host.strip_prefix(':') {
        // RFC 3986 §3.2.3: the port may be empty.
        Some(port) => port.is_empty() || port.bytes().all(|b| b.is_ascii_digit()) && port.parse::<u16>().is_ok(),
        None => after_host.is_empty(),
    };
    !text.contains('@') && port_ok
}

/// Errors of one connection, not of the listener: accept again at once.
fn per_connection(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset | io::ErrorKind::Interrupted
    )
}

fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".into())
}

/// A response in the JSON error shape of both listeners.
pub fn error_response(status: hyper::StatusCode, code: &str, message: &str) -> Response<AnyBody> {
    let body = error_json(code, message);
    let mut r = Response::new(
        http_body_util::Full::new(Bytes::from(body))
            .map_err(|e| match e {})
            .boxed_unsync(),
    );
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

fn error_json(code: &str, message: &str) -> String {
    super::respond::error_text(code, message)
}

/// What a connection's reader, writer and service share.
struct Conn {
    /// Requests handed to the service whose response body hyper still holds.
    busy: AtomicUsize,
    /// No request is open and everything written was flushed: a write now is hyper's own
    /// answer to a request it could not parse.
    clean: AtomicBool,
    /// Since when the connection has had no request (when the last response body went).
    idle_since: Mutex<Instant>,
    /// A read that waited while a request was open: woken when the last one closes, so
    /// that the idle deadline starts to count.
    reader: Mutex<Option<std::task::Waker>>,
}

impl Default for Conn {
    fn default() -> Conn {
        Conn {
            busy: AtomicUsize::new(0),
            clean: AtomicBool::new(true),
            idle_since: Mutex::new(Instant::now()),
            reader: Mutex::new(None),
        }
    }
}

impl Conn {
    fn begin(&self) {
        self.busy.fetch_add(1, Ordering::SeqCst);
        self.clean.store(false, Ordering::SeqCst);
    }

    fn end(&self) {
        if self.busy.fetch_sub(1, Ordering::SeqCst) == 1 {
            *self.idle_since.locked() = Instant::now();
            if let Some(w) = self.reader.locked().take() {
                w.wake();
            }
        }
    }

    fn busy(&self) -> bool {
        self.busy.load(Ordering::SeqCst) > 0
    }
}

/// A response body that tells its connection when hyper is done with it.
struct Tracked {
    inner: AnyBody,
    conn: Arc<Conn>,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.conn.end();
    }
}

impl Body for Tracked {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// The socket of one connection: reads time out while a head is late or the connection
/// idles too long, hyper's own error answers are rewritten in the JSON shape, and a
/// client that opens with HTTP/2's preface is told in HTTP/2 to use HTTP/1.1.
struct Watched {
    stream: TcpStream,
    conn: Arc<Conn>,
    limits: Limits,
    /// When the head being read began (its first byte), while no request is open.
    head_since: Option<Instant>,
    timer: Pin<Box<Sleep>>,
    /// hyper's error answer being replaced: its head so far, then the bytes sent instead.
    rewrite: Option<Rewrite>,
    /// How many of the connection's first bytes match HTTP/2's preface, until one does not.
    preface: Option<usize>,
}

struct Rewrite {
    head: Vec<u8>,
    out: Vec<u8>,
    sent: usize,
}

impl Watched {
    fn new(stream: TcpStream, conn: Arc<Conn>, limits: Limits) -> Watched {
        Watched {
            stream,
            conn,
            limits,
            head_since: None,
            timer: Box::pin(tokio::time::sleep(limits.idle_timeout)),
            rewrite: None,
            preface: Some(0),
        }
    }

    /// Whether `read`, the next bytes of the connection, completes the request line of
    /// HTTP/2's preface (RFC 9113 §3.4), which no HTTP/1 request has.
    fn opens_http2(&mut self, read: &[u8]) -> bool {
        let Some(n) = self.preface else { return false };
        let take = read.len().min(H2_PREFACE.len() - n);
        if read[..take] != H2_PREFACE[n..n + take] {
            self.preface = None;
            return false;
        }
        self.preface = Some(n + take);
        n + take == H2_PREFACE.len()
    }

    /// When the read now waiting must have given something, if anything bounds it.
    fn deadline(&mut self) -> Option<Instant> {
        if self.conn.busy() {
            self.head_since = None;
            return None;
        }
        Some(match self.head_since {
            Some(t) => t + self.limits.header_read_timeout,
            None => *self.conn.idle_since.locked() + self.limits.idle_timeout,
        })
    }

    /// Sends what replaces hyper's answer; ready when all of it went.
    fn drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let Watched { stream, rewrite, .. } = self;
        let Some(r) = rewrite else {
            return Poll::Ready(Ok(()));
        };
        while r.sent < r.out.len() {
            match Pin::new(&mut *stream).poll_write(cx, &r.out[r.sent..]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => r.sent += n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncRead for Watched {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.stream).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before && self.head_since.is_none() && !self.conn.busy() {
                    self.head_since = Some(Instant::now());
                }
                if self.opens_http2(&buf.filled()[before..]) {
                    // hyper would close without a word: the client is answered in its own
                    // protocol (a server preface, then GOAWAY with HTTP_1_1_REQUIRED), and
                    // what hyper writes after is dropped. Best effort: its 84 bytes fit any
                    // fresh socket's buffer, and the connection is never held to send them.
                    self.rewrite = Some(Rewrite {
                        head: Vec::new(),
                        out: http2_refusal(),
                        sent: 0,
                    });
                    return match self.drain(cx) {
                        Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                        _ => Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            "the client opened with HTTP/2's preface; it was told to use HTTP/1.1",
                        ))),
                    };
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                let Some(deadline) = self.deadline() else {
                    *self.conn.reader.locked() = Some(cx.waker().clone());
                    // Closed meanwhile: the waker stored above may have been missed.
                    if !self.conn.busy() {
                        cx.waker().wake_by_ref();
                    }
                    return Poll::Pending;
                };
                if self.timer.deadline() != deadline {
                    self.timer.as_mut().reset(deadline);
                }
                match self.timer.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        let why = if self.head_since.is_some() {
                            "the request head did not arrive within server.header_read_timeout"
                        } else {
                            "no request came within server.idle_timeout"
                        };
                        Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, why)))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

impl AsyncWrite for Watched {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if self.rewrite.is_none() && !self.conn.busy() && self.conn.clean.load(Ordering::SeqCst) {
            self.rewrite = Some(Rewrite {
                head: Vec::new(),
                out: Vec::new(),
                sent: 0,
            });
        }
        let Some(r) = &mut self.rewrite else {
            return Pin::new(&mut self.stream).poll_write(cx, buf);
        };
        // hyper's answer is taken whole (it is a head alone) and replaced once complete.
        if r.out.is_empty() {
            r.head.extend_from_slice(buf);
            if r.head.windows(4).any(|w| w == b"\r\n\r\n") {
                r.out = replacement(&r.head);
            }
        }
        // Best effort now; the rest goes with the next flush.
        if let Poll::Ready(Err(e)) = self.drain(cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.drain(cx) {
            Poll::Ready(Ok(())) => {}
            other => return other,
        }
        let flushed = Pin::new(&mut self.stream).poll_flush(cx);
        if matches!(flushed, Poll::Ready(Ok(()))) && !self.conn.busy() {
            self.conn.clean.store(true, Ordering::SeqCst);
        }
        flushed
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.drain(cx) {
            Poll::Ready(Ok(())) => Pin::new(&mut self.stream).poll_shutdown(cx),
            other => other,
        }
    }
}

/// The request line HTTP/2's connection preface starts with.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n";

/// What an HTTP/2 client is sent (RFC 9113 §3.4, §6.5, §6.8): the server's preface (an
/// empty SETTINGS frame), then GOAWAY with error HTTP_1_1_REQUIRED and why.
fn http2_refusal() -> Vec<u8> {
    let why = b"flowd serves HTTP/1.1 only (http:// without HTTP/2 prior knowledge)";
    let mut out = vec![0, 0, 0, 0x4, 0, 0, 0, 0, 0];
    let len = (8 + why.len()) as u32;
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.extend_from_slice(&[0x7, 0, 0, 0, 0, 0]);
    out.extend_from_slice(&0u32.to_be_bytes());
    out.extend_from_slice(&0xdu32.to_be_bytes());
    out.extend_from_slice(why);
    out
}

/// flowd's answer in place of hyper's automatic one (whose head is `head`).
fn replacement(head: &[u8]) -> Vec<u8> {
    let status: u16 = std::str::from_utf8(head)
        .ok()
        .and_then(|h| h.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(400);
    let (code, message) = match status {
        414 => ("uri_too_long", "the request target is too long"),
        431 => (
            "head_too_large",
            "the request head is too large: its request line and headers are over 64 KiB, or it has more than 100 headers",
        ),
        _ => (
            "bad_request",
            "the request is not valid HTTP/1.1: a malformed request line or header, a byte a request target may not hold (such as invalid UTF-8 or a space), or conflicting Content-Length headers",
        ),
    };
    let reason = hyper::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Bad Request");
    let body = error_json(code, message);
    format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}
