//! The admin API's HTTP client, for the CLI's client mode: one HTTP/1.1 connection per
//! request (hyper's client connection over a tokio `TcpStream`, no pool: a command makes
//! one or a few requests), the bearer token from `FLOWD_TOKEN`, answers as JSON or as a
//! body stream. Plain `http://` only; the token is never printed.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST, HeaderValue};
use hyper::{Method, Request, Response, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use std::time::Duration;

/// The variable holding the bearer token: never a flag, so it stays out of shell
/// history and process listings.
pub const TOKEN_ENV: &str = "FLOWD_TOKEN";
pub const DEFAULT_URL: &str = "http://127.0.0.1:8081";
/// A daemon that does not accept within this is reported unreachable, rather than the
/// command hanging on a black-holed address.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an answer may take (its head; for JSON its whole body) unless `--timeout`
/// says otherwise: a listener that takes the request and never answers (not a flowd, or
/// a stopped process) is reported rather than waited for without end.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

/// Where the admin API is, and the token to show it. No `Debug`: it holds the token.
pub struct Client {
    /// As given, for messages.
    url: String,
    /// `host:port` to connect to.
    addr: String,
    /// How long an answer may take.
    answer_within: Duration,
    /// The `Host` header.
    authority: String,
    /// A path prefix (a daemon behind a proxy at `/flowd`), without a trailing slash.
    base: String,
    token: HeaderValue,
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the flowd daemon at {url}: {source}")]
    Unreachable { url: String, source: std::io::Error },
    /// The API answered with an error status; `code` and `message` come from its
    /// `{"error": {"code", "message"}}` body.
    #[error("{code}: {message} (HTTP {})", status.as_u16())]
    Api {
        status: StatusCode,
        code: String,
        message: String,
        body: Value,
    },
    #[error("the daemon at {url} {what}")]
    Protocol { url: String, what: String },
}

impl ClientError {
    /// 2 when the daemon could not be reached, 1 when it answered an error.
    pub fn exit_code(&self) -> u8 {
        match self {
            ClientError::Unreachable { .. } => 2,
            ClientError::Api { .. } | ClientError::Protocol { .. } => 1,
        }
    }
}

impl Client {
    /// A client of the API at `url`, with the token from [`TOKEN_ENV`]; the error is a
    /// message for a bad invocation (exit 2).
    pub fn from_env(url: &str) -> Result<Client, String> {
        let token = std::env::var(TOKEN_ENV).unwrap_or_default();
        if token.trim().is_empty() {
            return Err(format!(
                "no admin API token: set {TOKEN_ENV} to one of the daemon's tokens (the value of a server.tokens variable)"
            ));
        }
        Client::new(url, token.trim())
    }

    fn new(url: &str, token: &str) -> Result<Client, String> {
        let (addr, authority, base) = parse_url(url)?;
        let mut token = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| format!("{TOKEN_ENV} holds characters that cannot be sent in an HTTP header"))?;
        token.set_sensitive(true);
        Ok(Client {
            url: url.trim_end_matches('/').to_string(),
            addr,
            answer_within: ANSWER_TIMEOUT,
            authority,
            base,
            token,
        })
    }

    /// The same client, waiting `d` for each answer.
    pub fn answering_within(mut self, d: Duration) -> Client {
        self.answer_within = d;
        self
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// What a request gets when no answer came in time.
    fn too_slow(&self, path: &str) -> ClientError {
        ClientError::Protocol {
            url: self.url.clone(),
            what: format!(
                "did not answer {} within {} (a daemon this slow needs a longer --timeout)",
                route(path),
                crate::config::units::format_duration(self.answer_within)
            ),
        }
    }

    /// Sends one request; `path` starts with `/v1/` and may carry a query string.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Response<Incoming>, ClientError> {
        let unreachable = |source| ClientError::Unreachable {
            url: self.url.clone(),
            source,
        };
        let stream = match tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(&self.addr)).await {
            Ok(r) => r.map_err(unreachable)?,
            Err(_) => {
                return Err(unreachable(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no connection within {}s", CONNECT_TIMEOUT.as_secs()),
                )));
            }
        };
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| self.broke(e))?;
        // The connection task ends when the response body is read or dropped.
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header(HOST, &self.authority)
            .header(AUTHORIZATION, self.token.clone());
        let bytes = match body {
            Some(v) => {
                req = req.header(CONTENT_TYPE, "application/json");
                Bytes::from(v.to_string())
            }
            None => Bytes::new(),
        };
        let req = req.body(Full::new(bytes)).map_err(|e| ClientError::Protocol {
            url: self.url.clone(),
            what: format!("cannot be asked for {path}: {e}"),
        })?;
        match tokio::time::timeout(self.answer_within, sender.send_request(req)).await {
            Ok(answer) => answer.map_err(|e| self.broke(e)),
            Err(_) => Err(self.too_slow(path)),
        }
    }

    /// Sends one request and reads its JSON answer: the status and body of a success,
    /// or the API's error.
    pub async fn json(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(StatusCode, Value), ClientError> {
        let whole = async {
            let resp = self.send(method, path, body).await?;
            let status = resp.status();
            let bytes = resp.into_body().collect().await.map_err(|e| self.broke(e))?.to_bytes();
            Ok::<_, ClientError>((status, bytes))
        };
        let (status, bytes) = tokio::time::timeout(self.answer_within, whole)
            .await
            .map_err(|_| self.too_slow(path))??;
        if !status.is_success() {
            return Err(api_error(status, &bytes));
        }
        let value = serde_json::from_slice(&bytes).map_err(|e| ClientError::Protocol {
            url: self.url.clone(),
            what: format!("answered {path} with a body that is not JSON ({e})"),
        })?;
        Ok((status, value))
    }

    /// `GET path` whose successful answer, of media type `media` (`text/csv`), is read as
    /// a stream (downloads, live tail). An answer of another type (a proxy's page, a
    /// server that is not flowd) is refused before anything of it is kept.
    pub async fn stream(&self, path: &str, media: &str) -> Result<Incoming, ClientError> {
        let resp = self.send(Method::GET, path, None).await?;
        let status = resp.status();
        if status.is_success() {
            let given = resp
                .headers()
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let essence = given.split(';').next().unwrap_or("").trim();
            if !essence.eq_ignore_ascii_case(media) {
                let given = if given.is_empty() { "no content type" } else { given };
                return Err(ClientError::Protocol {
                    url: self.url.clone(),
                    what: format!(
                        "answered {} with {given}, not {media}: is it a flowd admin API?",
                        route(path)
                    ),
                });
            }
            return Ok(resp.into_body());
        }
        let bytes = resp.into_body().collect().await.map_err(|e| self.broke(e))?.to_bytes();
        Err(api_error(status, &bytes))
    }

    /// The connection failed after it was made.
    pub fn broke(&self, e: hyper::Error) -> ClientError {
        ClientError::Protocol {
            url: self.url.clone(),
            what: format!("broke the connection: {e}"),
        }
    }
}

/// A request's path without its query, for messages (filters can be long).
fn route(path: &str) -> &str {
    path.split('?').next().unwrap_or(path)
}

/// The API's `{"error": {"code", "message"}}`, or what can be said of another body (a
/// proxy's page, say).
fn api_error(status: StatusCode, bytes: &[u8]) -> ClientError {
    let body: Value = serde_json::from_slice(bytes).unwrap_or(Value::Null);
    let e = &body["error"];
    let (code, message) = match (e["code"].as_str(), e["message"].as_str()) {
        (Some(c), Some(m)) => (c.to_string(), m.to_string()),
        _ => {
            let text = String::from_utf8_lossy(bytes);
            let text = text.trim();
            let message = if text.is_empty() {
                status.canonical_reason().unwrap_or("no message").to_string()
            } else {
                text.chars().take(200).collect()
            };
            ("http_error".to_string(), message)
        }
    };
    ClientError::Api {
        status,
        code,
        message,
        body,
    }
}

/// `http://HOST[:PORT][/PREFIX]` → the address to connect to, the `Host` header, and
/// the path prefix.
fn parse_url(url: &str) -> Result<(String, String, String), String> {
    let expected = "expected http://HOST:PORT, such as http://127.0.0.1:8081";
    let uri: Uri = url
        .parse()
        .map_err(|e| format!("--url {url:?} is not a URL ({e}); {expected}"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => {
            return Err(format!(
                "--url {url}: https is not supported; the admin client speaks plain http:// only (reach a remote daemon through an SSH tunnel or a local TLS-terminating proxy)"
            ));
        }
        Some(other) => {
            return Err(format!(
                "--url {url}: the scheme {other}:// is not supported; {expected}"
            ));
        }
        None => return Err(format!("--url {url:?}: no scheme; {expected}")),
    }
    let Some(authority) = uri.authority() else {
        return Err(format!("--url {url:?}: no host; {expected}"));
    };
    if authority.as_str().contains('@') {
        return Err(format!(
            "--url: credentials in the URL are not supported; set {TOKEN_ENV} instead"
        ));
    }
    if uri.query().is_some() {
        return Err(format!("--url {url:?}: a query string is not supported; {expected}"));
    }
    let port = authority.port_u16().unwrap_or(80);
    let addr = format!("{}:{port}", authority.host());
    let base = uri.path().trim_end_matches('/').to_string();
    Ok((addr, authority.as_str().to_string(), base))
}

#[cfg(test)]
mod tests {
    use super::parse_url;

    #[test]
    fn urls_are_http_with_a_host_and_an_optional_prefix() {
        assert_eq!(
            parse_url("http://127.0.0.1:8081").unwrap(),
            ("127.0.0.1:8081".into(), "127.0.0.1:8081".into(), "".into())
        );
        assert_eq!(
            parse_url("http://flowd.internal/admin/").unwrap(),
            ("flowd.internal:80".into(), "flowd.internal".into(), "/admin".into())
        );
        assert_eq!(parse_url("http://[::1]:9000").unwrap().0, "[::1]:9000");
        let https = parse_url("https://flowd.example.com").unwrap_err();
        assert!(https.contains("https is not supported"), "{https}");
        assert!(parse_url("127.0.0.1:8081").is_err());
        assert!(parse_url("http://user:pw@host").unwrap_err().contains("FLOWD_TOKEN"));
        assert!(parse_url("ftp://host").unwrap_err().contains("ftp://"));
    }
}
