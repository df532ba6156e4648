//! Admin API bearer tokens: `[[server.tokens]]` entries, each a name, a role and the
//! environment variable holding its value (values never live in config files or logs).

use super::diag::{ConfigErrors, SourceFile};
use serde::Deserialize;
use toml::Spanned;

/// What a token may do on the admin API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Read, search and download.
    Viewer,
    /// Also retry, resume, run, activate and reload.
    Operator,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
        }
    }
}

/// A resolved token: its value was read from the environment when the config loaded.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminToken {
    pub name: String,
    pub role: Role,
    pub value: String,
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminToken")
            .field("name", &self.name)
            .field("role", &self.role)
            .field("value", &"<redacted>")
            .finish()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawToken {
    name: Spanned<String>,
    role: Spanned<String>,
    env: Spanned<String>,
}

/// Tokens shorter than this are refused: a bearer token must not be guessable.
const MIN_LEN: usize = 16;

pub(super) fn resolve(source: &SourceFile, raw: Vec<Spanned<RawToken>>, errors: &mut ConfigErrors) -> Vec<AdminToken> {
    let mut out = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for t in raw {
        let t = t.into_inner();
        let name = t.name.get_ref().clone();
        if name.is_empty() {
            errors.push(source.error(t.name.span(), "server.tokens: name must not be empty"));
        } else if !seen.insert(name.clone()) {
            errors.push(source.error(t.name.span(), format!("server.tokens: a second token named \"{name}\"")));
        }
        let role = match t.role.get_ref().as_str() {
            "viewer" => Some(Role::Viewer),
            "operator" => Some(Role::Operator),
            other => {
                errors.push(source.error(
                    t.role.span(),
                    format!("server.tokens \"{name}\": role \"{other}\" is not \"viewer\" or \"operator\""),
                ));
                None
            }
        };
        let var = t.env.get_ref();
        let value = match std::env::var(var) {
            Ok(v) if v.len() >= MIN_LEN => Some(v),
            Ok(_) => {
                errors.push(source.error(
                    t.env.span(),
                    format!("server.tokens \"{name}\": the value of ${var} is shorter than {MIN_LEN} characters"),
                ));
                None
            }
            Err(_) => {
                errors.push(source.error(
                    t.env.span(),
                    format!("server.tokens \"{name}\": the environment variable ${var} is not set (or not UTF-8)"),
                ));
                None
            }
        };
        if let (Some(role), Some(value)) = (role, value) {
            out.push(AdminToken { name, role, value });
        }
    }
    out
}
