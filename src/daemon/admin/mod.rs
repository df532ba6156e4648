//! The admin API on its own listener: `/healthz` without a token, everything under `/v1`
//! with a bearer token (viewer reads, operator also changes). JSON in and out, errors as
//! `{"error": {"code", "message"}}`, times in RFC 3339 UTC.

mod auth;
mod executions;
mod flows;
mod logs;
mod params;
mod presets;
mod schedules;
mod stream;

use super::Shared;
use super::http::{Body, json_response};
use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{ALLOW, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};
use std::sync::Arc;

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
    allow: Option<&'static str>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            allow: None,
        }
    }

    fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    fn method(allow: &'static str) -> ApiError {
        ApiError {
            allow: Some(allow),
            ..ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                format!("this path answers {allow}"),
            )
        }
    }

    fn internal(e: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %e, "admin API request failed");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
    }

    fn into_response(self) -> Response<AdminBody> {
        let mut r = json_response(
            self.status,
            &json!({ "error": { "code": self.code, "message": self.message } }),
        );
        if let Some(allow) = self.allow {
            r.headers_mut().insert(ALLOW, HeaderValue::from_static(allow));
        }
        boxed(r)
    }
}

type Answer = Result<Response<AdminBody>, ApiError>;

fn ok(value: &Value) -> Answer {
    Ok(boxed(json_response(StatusCode::OK, value)))
}

/// Answers one admin request.
pub async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Response<AdminBody> {
    route(&shared, req).await.unwrap_or_else(ApiError::into_response)
}

async fn route(shared: &Arc<Shared>, req: Request<Incoming>) -> Answer {
    let path = req.uri().path().to_string();
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    if segments == ["healthz"] {
        return match *req.method() {
            Method::GET => ok(&json!({ "status": "ok" })),
            _ => Err(ApiError::method("GET")),
        };
    }
    if segments.first() != Some(&"v1") {
        return Err(ApiError::not_found(format!("no admin endpoint at {path}")));
    }
    // A token is checked before the path: without one, nothing says what exists.
    let role = auth::role(&shared.config.server.tokens, req.headers())?;
    let query = req.uri().query().map(str::to_string);
    let query = query.as_deref();
    let method = req.method().clone();
    match (&segments[1..], method) {
        (["executions"], Method::GET) => executions::list(shared, query),
        (["executions"], _) => Err(ApiError::method("GET")),
        (["executions", id], Method::GET) => executions::detail(shared, id, query),
        (["executions", _], _) => Err(ApiError::method("GET")),
        (["logs"], Method::GET) => logs::search(shared, query),
        (["logs"], _) => Err(ApiError::method("GET")),
        (["logs", "download"], Method::GET) => stream::download(shared, query),
        (["logs", "follow"], Method::GET) => stream::follow(shared, query),
        (["logs", "download" | "follow"], _) => Err(ApiError::method("GET")),
        (["schedules"], Method::GET) => schedules::list(shared, query),
        (["schedules"], _) => Err(ApiError::method("GET")),
        (["schedules", "executions"], Method::GET) => schedules::executions(shared, query),
        (["schedules", "executions"], _) => Err(ApiError::method("GET")),
        (["schedules", name, action @ ("enable" | "disable")], Method::POST) => {
            auth::require_operator(role)?;
            schedules::set_enabled(shared, name, *action == "enable", query).await
        }
        (["schedules", name, "run"], Method::POST) => {
            auth::require_operator(role)?;
            schedules::run(shared, name, query).await
        }
        (["schedules", _, "enable" | "disable" | "run"], _) => Err(ApiError::method("POST")),
        (["flows"], Method::GET) => flows::list(shared, query),
        (["flows"], _) => Err(ApiError::method("GET")),
        (["flows", name, action @ ("activate" | "deactivate")], Method::POST) => {
            auth::require_operator(role)?;
            flows::set_active(shared, name, *action == "activate", query).await
        }
        (["flows", name, "run"], Method::POST) => {
            auth::require_operator(role)?;
            let body = read_json(req).await?;
            flows::run(shared, name, body, query).await
        }
        (["flows", _, "activate" | "deactivate" | "run"], _) => Err(ApiError::method("POST")),
        _ => Err(ApiError::not_found(format!("no admin endpoint at {path}"))),
    }
}

/// The request body as JSON (empty: `{}`), at most [`MAX_BODY`] bytes.
async fn read_json(req: Request<Incoming>) -> Result<Value, ApiError> {
    let body = Limited::new(req.into_body(), MAX_BODY).collect().await.map_err(|_| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the request body is larger than {MAX_BODY} bytes"),
        )
    })?;
    let bytes = body.to_bytes();
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_body",
            format!("the request body is not JSON: {e}"),
        )
    })
}
