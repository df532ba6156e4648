//! `POST /v1/session` (sign in: a token in the body, never in a URL, for a session
//! cookie), `GET /v1/session` (who is calling) and `DELETE /v1/session` (sign out).

use super::auth::Caller;
use super::params::Params;
use super::session::{MAX_FAILURES, cookie, expired_cookie};
use super::{Answer, ApiError, boxed};
use crate::config::Role;
use crate::daemon::Shared;
use crate::daemon::respond::json as json_response;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, SET_COOKIE};
use hyper::{Request, StatusCode};
use serde_json::{Value, json};

/// `POST /v1/session` with `{"token": "…"}`: a session cookie for that token's name and
/// role. The token is read from the body only; the log names the token, never its value.
pub async fn sign_in(shared: &Shared, req: Request<Incoming>, query: Option<&str>) -> Answer {
    Params::parse(query, &[])?;
    let sessions = &shared.sessions;
    if sessions.locked_out() {
        return Err(too_many());
    }
    let body = super::read_json(shared, req).await?;
    let Some(given) = body.get("token").and_then(Value::as_str).map(str::trim) else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_body",
            "the body must be {\"token\": \"<an admin token>\"}",
        ));
    };
    let Some(token) = super::auth::find(&shared.config.server.tokens, given).filter(|_| !given.is_empty()) else {
        if !sessions.failed() {
            return Err(too_many());
        }
        tracing::warn!("console sign-in refused: not one of the configured tokens");
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "that is not one of the daemon's admin tokens",
        ));
    };
    let id = sessions.open(token).map_err(ApiError::internal)?;
    tracing::info!(token = ?token.name, role = %token.role.as_str(), "console sign-in");
    let mut r = json_response(StatusCode::OK, &who(shared, &token.name, token.role, "session"));
    r.headers_mut()
        .insert(SET_COOKIE, HeaderValue::from_str(&cookie(&id)).expect("hex and ASCII"));
    Ok(boxed(r))
}

fn too_many() -> ApiError {
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_sign_ins",
        format!("more than {MAX_FAILURES} failed sign-ins in the last minute; wait a minute and try again"),
    )
}

fn who(shared: &Shared, name: &str, role: Role, via: &str) -> Value {
    json!({
        "name": name,
        "role": role.as_str(),
        "via": via,
        "timezone": shared.config.server.timezone.name(),
        "environment": shared.config.environment,
    })
}

/// `GET /v1/session`: who the caller is (the console asks at start).
pub fn show(shared: &Shared, caller: &Caller, query: Option<&str>) -> Answer {
    Params::parse(query, &[])?;
    let via = if caller.session.is_some() { "session" } else { "bearer" };
    Ok(boxed(json_response(
        StatusCode::OK,
        &who(shared, &caller.name, caller.role, via),
    )))
}

/// `DELETE /v1/session`: ends the caller's session and clears its cookie.
pub fn sign_out(shared: &Shared, caller: &Caller, query: Option<&str>) -> Answer {
    Params::parse(query, &[])?;
    if let Some(id) = &caller.session {
        shared.sessions.close(id);
        tracing::info!(token = ?caller.name, "console sign-out");
    }
    let mut r = json_response(StatusCode::OK, &json!({ "signed_out": caller.session.is_some() }));
    r.headers_mut()
        .insert(SET_COOKIE, HeaderValue::from_str(&expired_cookie()).expect("ASCII"));
    Ok(boxed(r))
}
