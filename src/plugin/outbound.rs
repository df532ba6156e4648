//! Outbound HTTP (wasi:http) for connectors granted it. Every request is checked against
//! the connector's grant (scheme, host, port; a name's addresses must be public unless
//! listed by IP, so no SSRF to loopback or cloud metadata), then sent by flowd itself to
//! the checked address, under the grant's deadline and response cap. The last refusal or
//! failure is kept so that a step failing after it reads as a `host` error naming it.

use super::failure::{ErrorKind, Failure};
use super::log::{Level, SharedLog};
use crate::config::http_grant::{self, HttpGrant, Origin, Scheme};
use crate::config::units::{format_bytes, format_duration};
use crate::sync::Lock as _;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

/// A host-side refusal or failure of one outgoing request.
#[derive(Debug, Clone)]
pub struct Issue {
    /// `denied`, `dns`, `connect`, `tls`, `timeout`, `response_too_large`, `protocol`.
    pub code: &'static str,
    pub message: String,
    pub retryable: bool,
}

impl Issue {
    fn new(code: &'static str, message: String, retryable: bool) -> Issue {
        Issue {
            code,
            message,
            retryable,
        }
    }

    pub fn into_failure(self) -> Failure {
        Failure {
            kind: ErrorKind::Host,
            code: Some(self.code.into()),
            message: self.message,
            retryable: self.retryable,
        }
    }
}

/// Where the last issue of an invocation is kept.
pub type IssueSlot = Arc<Mutex<Option<Issue>>>;

/// The `WasiHttpHooks` of one invocation.
pub struct Outbound {
    grant: Option<Arc<HttpGrant>>,
    issue: IssueSlot,
    log: SharedLog,
}

impl Outbound {
    pub fn new(grant: Option<Arc<HttpGrant>>, issue: IssueSlot, log: SharedLog) -> Outbound {
        Outbound { grant, issue, log }
    }
}

type ResponseFuture = Box<
    dyn Future<
            Output = Result<
                (
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), Error>> + Send>,
                ),
                Error,
            >,
        > + Send,
>;

impl WasiHttpHooks for Outbound {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> ResponseFuture {
        let grant = self.grant.clone();
        let report = Reporter {
            issue: self.issue.clone(),
            log: self.log.clone(),
        };
        Box::new(async move {
            let Some(grant) = grant else {
                let issue = Issue::new(
                    "denied",
                    "outbound HTTP is not granted to this connector (grants.http)".into(),
                    false,
                );
                return Err(report.fail(issue, Error::HttpRequestDenied));
            };
            let deadline = Instant::from_std(crate::time_format::deadline_in(grant.timeout));
            let label = format!("{} {}", request.method(), request.uri());
            match send(&grant, request, options, deadline, report.clone()).await {
                Ok(r) => Ok(r),
                Err((issue, code)) => {
                    let issue = Issue {
                        message: format!("{label}: {}", issue.message),
                        ..issue
                    };
                    Err(report.fail(issue, code))
                }
            }
        })
    }
}

/// Records issues into the invocation's slot and log.
#[derive(Clone)]
struct Reporter {
    issue: IssueSlot,
    log: SharedLog,
}

impl Reporter {
    fn fail(&self, issue: Issue, code: Error) -> Error {
        self.log.locked().push(Level::Warn, "http", &issue.message);
        *self.issue.locked() = Some(issue);
        code
    }
}

type Fail = (Issue, Error);

async fn send(
    grant: &HttpGrant,
    mut request: http::Request<WasiBody>,
    options: Option<RequestOptions>,
    deadline: Instant,
    report: Reporter,
) -> Result<
    (
        http::Response<WasiBody>,
        Box<dyn Future<Output = Result<(), Error>> + Send>,
    ),
    Fail,
> {
    let uri = request.uri();
    let origin = http_grant::origin(
        uri.scheme_str().unwrap_or("https"),
        uri.authority().map(|a| a.as_str()).unwrap_or(""),
    )
    .map_err(|why| (Issue::new("denied", why, false), Error::HttpRequestUriInvalid))?;
    if grant.rule_for(&origin).is_none() {
        let message = format!(
            "denied: host {} (over {}) is not in the connector's grants.http.allow ({})",
            origin.host_port(),
            origin.scheme.as_str(),
            grant.describe()
        );
        return Err((Issue::new("denied", message, false), Error::HttpRequestDenied));
    }
    let addrs = addresses(grant, &origin, deadline).await?;
    let stream = connect(&origin, &addrs, deadline, options.and_then(|o| o.connect_timeout)).await?;
    let timed_out = |what: &str| {
        (
            Issue::new(
                "timeout",
                format!(
                    "{what} {origin} did not finish within {} (grants.http.timeout)",
                    format_duration(grant.timeout)
                ),
                true,
            ),
            Error::ConnectionReadTimeout,
        )
    };
    let io: Box<dyn Io> = match origin.scheme {
        Scheme::Http => Box::new(stream),
        Scheme::Https => {
            let name = rustls::pki_types::ServerName::try_from(origin.host.clone())
                .map_err(|e| (Issue::new("tls", e.to_string(), false), Error::TlsProtocolError))?;
            let tls = tokio_rustls::TlsConnector::from(tls_config()).connect(name, stream);
            let stream = tokio::time::timeout_at(deadline, tls)
                .await
                .map_err(|_| timed_out("the TLS handshake with"))?
                .map_err(|e| {
                    (
                        Issue::new("tls", format!("TLS with {origin} failed: {e}"), false),
                        Error::TlsCertificateError,
                    )
                })?;
            Box::new(stream)
        }
    };
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| protocol(&origin, &e))?;
    // The request line carries the path only; the host header names the origin.
    let path = request.uri().path_and_query().map_or("/", |p| p.as_str()).to_string();
    *request.uri_mut() = path.parse().expect("a path taken from a valid URI");
    // Not under the deadline itself (that would race the response's own timeout): it is
    // aborted when the request fails or the guest drops the response, and the body's
    // deadline ends any read.
    let conn = AbortOnDrop(tokio::spawn(conn));
    let first_byte = options.and_then(|o| o.first_byte_timeout).map_or(deadline, |t| {
        deadline.min(Instant::from_std(crate::time_format::deadline_in(t)))
    });
    let response = tokio::time::timeout_at(first_byte, sender.send_request(request))
        .await
        .map_err(|_| timed_out("the response from"))?
        .map_err(|e| protocol(&origin, &e))?;
    let too_large = |size: u64| {
        Issue::new(
            "response_too_large",
            format!(
                "the response from {origin} is over {} (grants.http.max_response){}",
                format_bytes(grant.max_response),
                if size > 0 {
                    format!(": it declares {}", format_bytes(size))
                } else {
                    String::new()
                }
            ),
            false,
        )
    };
    let (parts, incoming) = response.into_parts();
    if let Some(len) = incoming.size_hint().exact()
        && len > grant.max_response
    {
        return Err((too_large(len), Error::HttpResponseBodySize(Some(len))));
    }
    let body = Capped {
        inner: incoming,
        read: 0,
        cap: grant.max_response,
        deadline: Box::pin(tokio::time::sleep_until(deadline)),
        on_cap: Some((too_large(0), report.clone())),
        on_deadline: Some((timed_out("reading the response from").0, report)),
    };
    let io_future = async move {
        match conn.join().await {
            Ok(Ok(())) | Err(_) => Ok(()),
            Ok(Err(e)) => Err(Error::from(e)),
        }
    };
    Ok((
        http::Response::from_parts(parts, body.boxed_unsync()),
        Box::new(io_future),
    ))
}

fn protocol(origin: &Origin, e: &hyper::Error) -> Fail {
    (
        Issue::new("protocol", format!("HTTP with {origin} failed: {e}"), true),
        Error::HttpProtocolError,
    )
}

/// Resolves the origin and checks every address it names.
async fn addresses(grant: &HttpGrant, origin: &Origin, deadline: Instant) -> Result<Vec<SocketAddr>, Fail> {
    if let Some(ip) = origin.ip() {
        // An IP literal passed the allow-list only by being listed itself.
        return Ok(vec![SocketAddr::new(ip, origin.port)]);
    }
    let lookup = tokio::net::lookup_host((origin.host.as_str(), origin.port));
    let found: Vec<SocketAddr> = match tokio::time::timeout_at(deadline, lookup).await {
        Err(_) => {
            return Err((
                Issue::new("dns", format!("resolving {} timed out", origin.host), true),
                Error::DnsTimeout,
            ));
        }
        Ok(Err(e)) => {
            return Err((
                Issue::new("dns", format!("cannot resolve {}: {e}", origin.host), true),
                Error::DnsError {
                    rcode: Some(e.to_string()),
                    info_code: None,
                },
            ));
        }
        Ok(Ok(found)) => found.collect(),
    };
    // Every address must pass, or a name could rebind from a public address to a private one.
    if let Some(bad) = found
        .iter()
        .find(|a| !http_grant::is_public(a.ip()) && !grant.lists_ip(a.ip()))
    {
        let message = format!(
            "denied: host {} resolves to {}, which is not a public address; list \"{}\" in grants.http.allow to allow it",
            origin.host,
            bad.ip(),
            bad.ip()
        );
        return Err((Issue::new("denied", message, false), Error::DestinationIpProhibited));
    }
    if found.is_empty() {
        return Err((
            Issue::new("dns", format!("{} has no addresses", origin.host), true),
            Error::DestinationNotFound,
        ));
    }
    Ok(found)
}

/// Connects to the first checked address that answers (never re-resolving the name).
async fn connect(
    origin: &Origin,
    addrs: &[SocketAddr],
    deadline: Instant,
    guest_timeout: Option<std::time::Duration>,
) -> Result<TcpStream, Fail> {
    let deadline = guest_timeout.map_or(deadline, |t| {
        deadline.min(Instant::from_std(crate::time_format::deadline_in(t)))
    });
    let mut last = None;
    for addr in addrs {
        match tokio::time::timeout_at(deadline, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => {
                let _ = s.set_nodelay(true);
                return Ok(s);
            }
            Ok(Err(e)) => last = Some(format!("{addr}: {e}")),
            Err(_) => {
                return Err((
                    Issue::new("timeout", format!("connecting to {origin} ({addr}) timed out"), true),
                    Error::ConnectionTimeout,
                ));
            }
        }
    }
    Err((
        Issue::new(
            "connect",
            format!(
                "cannot connect to {origin}: {}",
                last.unwrap_or_else(|| "no address".into())
            ),
            true,
        ),
        Error::ConnectionRefused,
    ))
}

trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static> Io for T {}

/// The TLS client config: webpki's Mozilla roots, built once.
fn tls_config() -> Arc<rustls::ClientConfig> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let roots = rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            };
            let config =
                rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                    .with_safe_default_protocol_versions()
                    .expect("ring supports the default TLS versions")
                    .with_root_certificates(roots)
                    .with_no_client_auth();
            Arc::new(config)
        })
        .clone()
}

/// A task aborted when its handle is dropped.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> AbortOnDrop<T> {
    async fn join(mut self) -> Result<T, tokio::task::JoinError> {
        (&mut self.0).await
    }
}

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A response body cut off at the grant's size cap and deadline.
struct Capped {
    inner: hyper::body::Incoming,
    read: u64,
    cap: u64,
    deadline: Pin<Box<Sleep>>,
    on_cap: Option<(Issue, Reporter)>,
    on_deadline: Option<(Issue, Reporter)>,
}

impl Body for Capped {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.read += data.len() as u64;
                    if this.read > this.cap {
                        if let Some((issue, report)) = this.on_cap.take() {
                            return Poll::Ready(Some(Err(
                                report.fail(issue, Error::HttpResponseBodySize(Some(this.read)))
                            )));
                        }
                        return Poll::Ready(None);
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(Error::from(e)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                if this.deadline.as_mut().poll(cx).is_ready() {
                    if let Some((issue, report)) = this.on_deadline.take() {
                        return Poll::Ready(Some(Err(report.fail(issue, Error::ConnectionReadTimeout))));
                    }
                    return Poll::Ready(None);
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
