//! Who is calling the admin API: a bearer token (compared in constant time, so a token
//! cannot be guessed byte by byte from response times, with the `Bearer` scheme matched
//! case-insensitively, RFC 9110 §11.1) or the console's session cookie. Every 401 carries
//! the `WWW-Authenticate` challenge of RFC 6750 §3.

use super::ApiError;
use super::session::{self, Sessions};
use crate::config::{AdminToken, Role};
use hyper::StatusCode;
use hyper::header::{AUTHORIZATION, HeaderMap};
use subtle::ConstantTimeEq;

/// The challenge when no bearer token was sent (RFC 6750 §3.1: no error code then).
const NO_TOKEN: &str = "Bearer realm=\"flowd\"";
const INVALID_REQUEST: &str = "Bearer realm=\"flowd\", error=\"invalid_request\"";
const INVALID_TOKEN: &str = "Bearer realm=\"flowd\", error=\"invalid_token\"";

fn unauthorized(challenge: &'static str, message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message).with_challenge(challenge)
}

/// Who made a request: the name and role of its token, and whether it came through a
/// console session (a cookie the browser adds by itself, so changes need a same-origin
/// check).
#[derive(Debug, Clone)]
pub struct Caller {
    pub name: String,
    pub role: Role,
    pub session: Option<String>,
}

/// The caller of a request: its bearer token when it sends one, else its session cookie.
pub fn caller(tokens: &[AdminToken], sessions: &Sessions, headers: &HeaderMap) -> Result<Caller, ApiError> {
    if headers.contains_key(AUTHORIZATION) {
        let t = token(tokens, headers)?;
        return Ok(Caller {
            name: t.name.clone(),
            role: t.role,
            session: None,
        });
    }
    match session::from_headers(headers) {
        Some(id) => match sessions.get(&id) {
            Some(s) => Ok(Caller {
                name: s.name,
                role: s.role,
                session: Some(id),
            }),
            None => Err(unauthorized(
                INVALID_TOKEN,
                "the console session has ended (signed out, expired, or the daemon restarted); sign in again",
            )),
        },
        None => Err(unauthorized(
            NO_TOKEN,
            "this endpoint needs a bearer token (Authorization: Bearer <token>) or a console session",
        )),
    }
}

/// The configured token equal to `given`, compared with every token whichever matches,
/// so the time taken says nothing.
pub fn find<'t>(tokens: &'t [AdminToken], given: &str) -> Option<&'t AdminToken> {
    let mut found = None;
    for t in tokens {
        if bool::from(t.value.as_bytes().ct_eq(given.as_bytes())) {
            found = Some(t);
        }
    }
    found
}

/// The configured token in `headers`, or a 401 saying what is wrong with it.
pub fn token<'t>(tokens: &'t [AdminToken], headers: &HeaderMap) -> Result<&'t AdminToken, ApiError> {
    let Some(value) = headers.get(AUTHORIZATION) else {
        return Err(unauthorized(
            NO_TOKEN,
            "this endpoint needs a bearer token (Authorization: Bearer <token>)",
        ));
    };
    let malformed = || unauthorized(INVALID_REQUEST, "the Authorization header must be \"Bearer <token>\"");
    let text = value.to_str().map_err(|_| malformed())?.trim();
    let (scheme, given) = text.split_once([' ', '\t']).ok_or_else(malformed)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(unauthorized(
            NO_TOKEN,
            &format!("the Authorization scheme must be Bearer, not {scheme:?}"),
        ));
    }
    let given = given.trim();
    if given.is_empty() {
        return Err(malformed());
    }
    find(tokens, given)
        .ok_or_else(|| unauthorized(INVALID_TOKEN, "the bearer token is not one of the configured tokens"))
}

/// A 403 unless `role` may change things.
pub fn require_operator(role: Role) -> Result<(), ApiError> {
    if role == Role::Operator {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "this token has the viewer role; changing anything needs an operator token",
        ))
    }
}

/// A 403 for a change through a console session that does not come from the console's
/// own origin. The session cookie is `SameSite=Strict`, but "same site" ignores ports, so
/// a page served on another port of this host (a flow's webhook answer) would still send
/// it; browsers always send `Origin` with a POST, so it must name this listener.
pub fn require_same_origin(headers: &HeaderMap) -> Result<(), ApiError> {
    let origin = headers.get(hyper::header::ORIGIN).and_then(|v| v.to_str().ok());
    let host = headers.get(hyper::header::HOST).and_then(|v| v.to_str().ok());
    match (origin, host) {
        (Some(o), Some(h)) if o == format!("http://{h}") || o == format!("https://{h}") => Ok(()),
        _ => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "cross_origin",
            "a change through a console session must come from the console's own page (Origin must match Host)",
        )),
    }
}
