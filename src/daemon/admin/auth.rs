//! Bearer-token checks of the admin API: which configured token a request carries
//! (compared in constant time, so a token cannot be guessed byte by byte from response
//! times), with the `Bearer` scheme matched case-insensitively (RFC 9110 §11.1), and every
//! 401 carrying the `WWW-Authenticate` challenge of RFC 6750 §3.

use super::ApiError;
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
    // Every token is compared, whichever matches, so the time taken says nothing.
    let mut found = None;
    for t in tokens {
        if bool::from(t.value.as_bytes().ct_eq(given.as_bytes())) {
            found = Some(t);
        }
    }
    found.ok_or_else(|| unauthorized(INVALID_TOKEN, "the bearer token is not one of the configured tokens"))
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
