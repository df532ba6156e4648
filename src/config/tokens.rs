//! Admin API bearer tokens: `[[server.tokens]]` entries, each a name, a role and the
//! environment variable holding its value (values never live in config files or logs).

use super::diag::{ConfigErrors, Place};
use super::document::Table;

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

/// Tokens shorter than this (once surrounding whitespace is trimmed) are refused: a
/// bearer token must not be guessable.
const MIN_LEN: usize = 16;

/// Resolves `[[server.tokens]]`. Mistakes in the file go to `errors`; a variable that is
/// unset, too short or shared with another token goes to `serve_errors` (it matters only
/// to a daemon that serves the admin API). Messages name tokens, never their values.
pub(super) fn resolve(
    tables: Vec<Table>,
    errors: &mut ConfigErrors,
    serve_errors: &mut ConfigErrors,
) -> Vec<AdminToken> {
    let mut out: Vec<AdminToken> = Vec::new();
    let mut seen: Vec<(String, Place)> = Vec::new();
    // (token name, variable, where it is named, value)
    let mut values: Vec<(String, String, Place, String)> = Vec::new();
    for mut t in tables {
        let source = t.source;
        let name = t.string("name", errors);
        let role = t.choice("role", &["viewer", "operator"], errors);
        let env = t.string("env", errors);
        for key in ["name", "role", "env"] {
            if !t.has(key) {
                errors.push(source.error(t.span.clone(), format!("server.tokens: each token needs `{key}`")));
            }
        }
        t.finish(errors);
        let (Some(name), Some(env)) = (name, env) else {
            continue;
        };
        let label = name.get_ref().clone();
        if label.trim().is_empty() {
            errors.push(source.error(name.span(), "server.tokens: name must not be empty"));
        } else if let Some((_, first)) = seen.iter().find(|(n, _)| *n == label) {
            errors.push(
                source
                    .error(name.span(), format!("server.tokens: a second token named \"{label}\""))
                    .with_related(first.related("first named here")),
            );
        } else {
            seen.push((label.clone(), t.place(name.span())));
        }
        let var = env.get_ref();
        let env_place = t.place(env.span());
        let value = match std::env::var(var) {
            Ok(v) if v.trim().chars().count() >= MIN_LEN => Some(v.trim().to_string()),
            Ok(v) => {
                serve_errors.push(
                    env_place
                        .error(if v.trim().is_empty() {
                            format!("server.tokens \"{label}\": ${var} is empty or only whitespace")
                        } else {
                            format!("server.tokens \"{label}\": the value of ${var} is shorter than {MIN_LEN} characters (whitespace around it does not count)")
                        })
                        .with_help("use a long random value, such as the output of `openssl rand -hex 32`"),
                );
                None
            }
            Err(_) => {
                serve_errors.push(env_place.error(format!(
                    "server.tokens \"{label}\": the environment variable ${var} is not set (or not UTF-8)"
                )));
                None
            }
        };
        let Some(value) = value else { continue };
        if let Some((other, other_var, other_place, _)) = values.iter().find(|(_, _, _, v)| *v == value) {
            serve_errors.push(
                env_place
                    .error(format!(
                        "server.tokens \"{label}\": ${var} holds the same value as ${other_var} of token \"{other}\""
                    ))
                    .with_related(other_place.related(format!("token \"{other}\" reads it here")))
                    .with_help("give each token its own value: a request is known by its token"),
            );
            continue;
        }
        values.push((label.clone(), var.clone(), env_place, value.clone()));
        if let Some(role) = role {
            out.push(AdminToken {
                name: label,
                role: if *role.get_ref() == "operator" {
                    Role::Operator
                } else {
                    Role::Viewer
                },
                value,
            });
        }
    }
    out
}
