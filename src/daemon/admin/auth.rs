//! Bearer-token checks of the admin API: which role a request's token has, compared in
//! constant time so a token cannot be guessed byte by byte from response times.

use super::ApiError;
use crate::config::{AdminToken, Role};
use hyper::StatusCode;
use hyper::header::{AUTHORIZATION, HeaderMap};
use subtle::ConstantTimeEq;

/// The role of the token in `headers`, or a 401 saying what is wrong with it.
pub fn role(tokens: &[AdminToken], headers: &HeaderMap) -> Result<Role, ApiError> {
    let unauthorized = |message: &str| ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message);
    let Some(value) = headers.get(AUTHORIZATION) else {
        return Err(unauthorized(
            "this endpoint needs a bearer token (Authorization: Bearer <token>)",
        ));
    };
    let Some(given) = value.to_str().ok().and_then(|v| v.strip_prefix("Bearer ")) else {
        return Err(unauthorized("the Authorization header must be \"Bearer <token>\""));
    };
    // Every token is compared, whichever matches, so the time taken says nothing.
    let mut found = None;
    for t in tokens {
        if bool::from(t.value.as_bytes().ct_eq(given.trim().as_bytes())) {
            found = Some(t.role);
        }
    }
    found.ok_or_else(|| unauthorized("the bearer token is not one of the configured tokens"))
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
