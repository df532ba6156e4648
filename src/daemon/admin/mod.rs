//! The admin API on its own listener: `/healthz` without a token, everything under `/v1`
//! with a bearer token or a console session (viewer reads, operator also changes). JSON in
//! and out, errors as `{"error": {"code", "message"}}`, times in RFC 3339 UTC. Every other
//! `GET` is the web console's (see `console`).

mod audit;
mod auth;
mod compress;
pub mod console;
mod executions;
mod flows;
mod histogram;
mod logs;
mod metrics;
mod params;
mod payloads;
mod presets;
pub mod routes;
mod schedules;
pub mod session;
mod signin;
mod stream;
pub mod tail;

pub use presets::NAMES as PRESETS;

use super::Shared;
use super::respond::{Body, json as json_response};
use bytes::Bytes;
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;
use hyper::body::Incoming;
use hyper::header::{ALLOW, HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE};
use hyper::{Request, Response, StatusCode};
use serde_json::{Value, json};
use std::sync::Arc;

/// How soon a client is told to ask again when the database did not answer.
const STORE_RETRY_AFTER: u32 = 5;

/// The largest request body the admin API reads (a manual run's payload).
const MAX_BODY: usize = 1 << 20;

/// Every admin answer's body: whole JSON documents, or streams (downloads, live tail).
pub type AdminBody = UnsyncBoxBody<Bytes, std::convert::Infallible>;

fn boxed(r: Response<Body>) -> Response<AdminBody> {
    r.map(BodyExt::boxed_unsync)
}

/// An error answer: status, stable code, and a message saying what to do.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    allow: Option<String>,
    /// A 401's `WWW-Authenticate` challenge.
    challenge: Option<&'static str>,
    /// A 503's `Retry-After`, in seconds.
    retry_after: Option<u32>,
    /// More for the client than the message (a reload's errors, each on its own).
    details: Option<Box<(&'static str, Value)>>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            allow: None,
            challenge: None,
            retry_after: None,
            details: None,
        }
    }

    fn with_challenge(mut self, challenge: &'static str) -> ApiError {
        self.challenge = Some(challenge);
        self
    }

    fn with(mut self, key: &'static str, value: Value) -> ApiError {
        self.details = Some(Box::new((key, value)));
        self
    }

    fn conflict(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, code, message)
    }

    fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    fn method(allow: String) -> ApiError {
        let mut e = ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!("this path answers {allow}"),
        );
        e.allow = Some(allow);
        e
    }

    /// A store's error: a database that did not answer is 503 `store_unavailable` with
    /// `Retry-After` (as a webhook's is: asking again later may work), anything else
    /// [`ApiError::internal`].
    fn store(e: impl Into<crate::store::StoreError>) -> ApiError {
        let e = e.into();
        if !e.is_unavailable() {
            return ApiError::internal(e);
        }
        tracing::warn!(error = %e, "admin API request: the database did not answer");
        let mut a = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            format!("{e}; try again in {STORE_RETRY_AFTER}s"),
        );
        a.retry_after = Some(STORE_RETRY_AFTER);
        a
    }

    fn internal(e: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %e, "admin API request failed");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
    }

    fn into_response(self) -> Response<AdminBody> {
        let mut error = json!({ "code": self.code, "message": self.message });
        if let Some((key, value)) = self.details.map(|d| *d) {
            error[key] = value;
        }
        let mut r = json_response(self.status, &json!({ "error": error }));
        if let Some(allow) = self.allow.and_then(|a| HeaderValue::from_str(&a).ok()) {
            r.headers_mut().insert(ALLOW, allow);
        }
        if let Some(challenge) = self.challenge {
            r.headers_mut()
                .insert(WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
        }
        if let Some(seconds) = self.retry_after {
            r.headers_mut().insert(RETRY_AFTER, HeaderValue::from(seconds));
        }
        boxed(r)
    }
}

type Answer = Result<Response<AdminBody>, ApiError>;

fn ok(value: &impl serde::Serialize) -> Answer {
    Ok(boxed(json_response(StatusCode::OK, value)))
}

/// Answers one admin request.
pub async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Response<AdminBody> {
    let gzip_ok = compress::accepts_gzip(req.headers());
    let answer = route(&shared, req).await.unwrap_or_else(ApiError::into_response);
    compressed(answer, gzip_ok).await
}

/// `answer` gzipped for a client that takes it, when it is a whole document (a stream
/// has no exact size) of [`compress::MIN_SIZE`] or more.
async fn compressed(answer: Response<AdminBody>, gzip_ok: bool) -> Response<AdminBody> {
    match hyper::body::Body::size_hint(answer.body()).exact() {
        Some(len) if len >= compress::MIN_SIZE as u64 => {}
        _ => return answer,
    }
    let (mut parts, body) = answer.into_parts();
    let bytes = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(never) => match never {},
    };
    let bytes = compress::encode(&mut parts.headers, bytes, gzip_ok).await;
    Response::from_parts(parts, http_body_util::Full::new(bytes).boxed_unsync())
}

async fn route(shared: &Arc<Shared>, req: Request<Incoming>) -> Answer {
    use routes::{Access, Endpoint as E, Miss};
    let path = req.uri().path().to_string();
    if req.method() == hyper::Method::GET && console::owns(&path) {
        return Ok(console::serve(&path, compress::accepts_gzip(req.headers())));
    }
    let trimmed = match path.trim_end_matches('/') {
        "" => "/",
        p => p,
    };
    let segments: Vec<&str> = trimmed.split('/').skip(1).collect();
    let found = routes::find(req.method().as_str(), &segments);
    // Public: the route found is, or (for a wrong method) every route at the path is.
    let public = match &found {
        Ok((r, _)) => r.access == Access::Public,
        Err(_) => {
            let mut at_path = routes::ROUTES.iter().filter(|r| r.path == trimmed).peekable();
            at_path.peek().is_some() && at_path.all(|r| r.access == Access::Public)
        }
    };
    // A caller is checked before the path: without a token, nothing says what exists.
    let caller = if public {
        None
    } else {
        Some(auth::caller(
            &shared.config.server.tokens,
            &shared.sessions,
            req.headers(),
        )?)
    };
    let (route, captures) = match found {
        Ok(found) => found,
        Err(Miss::NotFound) => return Err(ApiError::not_found(format!("no admin endpoint at {path}"))),
        Err(Miss::Method(allow)) => return Err(ApiError::method(allow)),
    };
    if let Some(caller) = &caller
        && caller.session.is_some()
        && req.method() != hyper::Method::GET
    {
        auth::require_same_origin(req.headers())?;
    }
    if route.access == Access::Operator {
        let caller = caller.as_ref().expect("only public routes skip the caller");
        if let Err(refused) = auth::require_operator(caller.role) {
            audit::change(caller, route.endpoint, &captures, refused.status);
            return Err(refused);
        }
    }
    let query = req.uri().query().map(str::to_string);
    let query = query.as_deref();
    let arg = |i: usize| captures[i];
    let answer = match route.endpoint {
        E::Health => {
            params::Params::parse(query, &[])?;
            ok(&json!({ "status": "ok" }))
        }
        E::Metrics => metrics::render(shared, query),
        E::OpenApi => openapi(query),
        E::SignIn => signin::sign_in(shared, req, query).await,
        E::Session => signin::show(shared, caller.as_ref().expect("a viewer route"), query),
        E::SignOut => signin::sign_out(shared, caller.as_ref().expect("a viewer route"), query),
        E::ExecutionList => executions::list(shared, query).await,
        E::ExecutionHistogram => histogram::answer(shared, query).await,
        E::ExecutionDetail => executions::detail(shared, arg(0), query).await,
        E::TriggerPayload => payloads::trigger(shared, arg(0), query).await,
        E::StepPayload => payloads::step(shared, arg(0), arg(1), arg(2), query).await,
        E::Retry => executions::retry(shared, arg(0), query).await,
        E::Resume => executions::resume(shared, arg(0), query).await,
        E::LogSearch => logs::search(shared, query).await,
        E::LogDownload => stream::download(shared, query),
        E::LogFollow => stream::follow(shared, query),
        E::ScheduleList => schedules::list(shared, query).await,
        E::ScheduleExecutions => schedules::executions(shared, query).await,
        E::ScheduleEnable => schedules::set_enabled(shared, arg(0), true, query).await,
        E::ScheduleDisable => schedules::set_enabled(shared, arg(0), false, query).await,
        E::ScheduleRun => schedules::run(shared, arg(0), query).await,
        E::FlowList => flows::list(shared, query),
        E::FlowActivate => flows::set_active(shared, arg(0), true, query).await,
        E::FlowDeactivate => flows::set_active(shared, arg(0), false, query).await,
        E::FlowRun => {
            let name = arg(0).to_string();
            match read_json(shared, req).await {
                Ok(body) => flows::run(shared, &name, body, query).await,
                Err(e) => Err(e),
            }
        }
        E::Reload => flows::reload(shared, query).await,
    };
    if route.access == Access::Operator
        && let Some(caller) = &caller
    {
        let status = match &answer {
            Ok(r) => r.status(),
            Err(e) => e.status,
        };
        audit::change(caller, route.endpoint, &captures, status);
    }
    answer
}

/// The OpenAPI 3 document of this API, kept in the repository.
const OPENAPI: &str = include_str!("../../../docs/openapi.json");

fn openapi(query: Option<&str>) -> Answer {
    params::Params::parse(query, &[])?;
    Ok(boxed(super::respond::json_text(StatusCode::OK, OPENAPI)))
}

/// The request body as JSON (empty: `{}`), at most [`MAX_BODY`] bytes, decoded when sent
/// with a content coding.
async fn read_json(shared: &Shared, req: Request<Incoming>) -> Result<Value, ApiError> {
    let refused = |e: crate::daemon::body::BodyError| ApiError::new(e.status(), e.code(), e.to_string());
    let codings = crate::daemon::body::codings(req.headers()).map_err(refused)?;
    let bytes = crate::daemon::body::read(req.into_body(), MAX_BODY as u64, shared.config.server.body_read_timeout)
        .await
        .map_err(refused)?;
    let bytes = crate::daemon::body::decode(codings, bytes, MAX_BODY as u64)
        .await
        .map_err(refused)
        .map(crate::daemon::body::without_bom)?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    let bad = |e: serde_json::Error| {
        let message = if e.to_string().starts_with(crate::daemon::body::TOO_DEEP) {
            format!("the request body's arrays and objects are {e}")
        } else {
            format!("the request body is not JSON: {e}")
        };
        ApiError::new(StatusCode::BAD_REQUEST, "bad_body", message)
    };
    // Checked first: a body the store could not read back once it is a payload is refused.
    crate::daemon::body::check_json(&bytes).map_err(bad)?;
    serde_json::from_slice(&bytes).map_err(bad)
}
