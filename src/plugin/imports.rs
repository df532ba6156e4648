//! What a component imports and whether this host gives it: the sandbox's policy in one
//! place. Clocks, random, stdio and flowd's `log` are always offered; the filesystem,
//! environment values and sockets are linked but empty or denied unless the operator
//! grants them; outbound HTTP (wasi:http) is linked only for a connector with an http
//! grant; anything else is refused at load.

use crate::config::Grants;
use serde::Serialize;
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", content = "note", rename_all = "snake_case")]
pub enum Verdict {
    /// Linked and usable.
    Offered,
    /// Linked and granted by the connector's config.
    Granted(String),
    /// Linked, but every use fails until the operator grants it.
    Denied(String),
    /// Not linked: the component cannot be instantiated.
    NotOffered(String),
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Offered => f.write_str("offered"),
            Verdict::Granted(n) => write!(f, "granted ({n})"),
            Verdict::Denied(n) => write!(f, "denied: {n}"),
            Verdict::NotOffered(n) => write!(f, "not offered: {n}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Import {
    /// As the component names it, version included (`wasi:cli/stdout@0.2.6`).
    pub name: String,
    pub verdict: Verdict,
}

const ALWAYS: &[&str] = &[
    "wasi:io/",
    "wasi:clocks/",
    "wasi:random/",
    "wasi:cli/stdin",
    "wasi:cli/stdout",
    "wasi:cli/stderr",
    "wasi:cli/exit",
    "wasi:cli/terminal-",
];

/// Decides one import under the connector's grants.
pub fn classify(name: &str, grants: &Grants) -> Verdict {
    let (iface, version) = name.split_once('@').unwrap_or((name, ""));
    if iface.starts_with("flowd:connector/") {
        return if version.starts_with("0.1.") {
            Verdict::Offered
        } else {
            Verdict::NotOffered(format!("this host serves flowd:connector@0.1.x, not @{version}"))
        };
    }
    if iface.starts_with("wasi:") && !version.starts_with("0.2.") {
        return Verdict::NotOffered(format!("this host serves WASI 0.2 (wasm32-wasip2), not @{version}"));
    }
    if ALWAYS.iter().any(|p| iface.starts_with(p)) {
        return Verdict::Offered;
    }
    if iface == "wasi:cli/environment" {
        return if grants.env.is_empty() {
            Verdict::Offered
        } else {
            Verdict::Granted(format!("{} variables", grants.env.len()))
        };
    }
    if iface.starts_with("wasi:filesystem/") {
        return if grants.dirs.is_empty() {
            Verdict::Denied("no directories are granted (grants.dirs), so every open fails".into())
        } else {
            Verdict::Granted(
                grants
                    .dirs
                    .iter()
                    .map(|d| d.guest.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            )
        };
    }
    if iface.starts_with("wasi:sockets/") {
        return if grants.sockets.is_empty() {
            Verdict::Denied("no socket addresses are granted (grants.sockets), so every connect or bind fails".into())
        } else {
            Verdict::Granted(
                grants
                    .sockets
                    .iter()
                    .map(|a| a.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            )
        };
    }
    if iface.starts_with("wasi:http/") {
        return match &grants.http {
            Some(h) => Verdict::Granted(h.describe()),
            None => Verdict::NotOffered(
                "outbound HTTP is not granted: list the origins it may call in grants.http.allow".into(),
            ),
        };
    }
    Verdict::NotOffered("this host does not provide it".into())
}

/// The imports that stop a component from being instantiated.
pub fn refused(imports: &[Import]) -> Vec<&Import> {
    imports
        .iter()
        .filter(|i| matches!(i.verdict, Verdict::NotOffered(_)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy() {
        let none = Grants::default();
        assert_eq!(classify("wasi:cli/stdout@0.2.6", &none), Verdict::Offered);
        assert_eq!(classify("flowd:connector/log@0.1.0", &none), Verdict::Offered);
        assert!(matches!(
            classify("wasi:filesystem/preopens@0.2.0", &none),
            Verdict::Denied(_)
        ));
        assert!(matches!(classify("wasi:sockets/tcp@0.2.6", &none), Verdict::Denied(_)));
        assert!(matches!(
            classify("wasi:http/outgoing-handler@0.2.6", &none),
            Verdict::NotOffered(_)
        ));
        assert!(matches!(
            classify("wasi:cli/stdout@0.3.0", &none),
            Verdict::NotOffered(_)
        ));
        assert!(matches!(
            classify("acme:vault/secrets@1.0.0", &none),
            Verdict::NotOffered(_)
        ));
        let granted = Grants {
            sockets: vec!["127.0.0.1:9".parse().unwrap()],
            ..Grants::default()
        };
        assert_eq!(
            classify("wasi:sockets/tcp@0.2.6", &granted),
            Verdict::Granted("127.0.0.1:9".into())
        );
        let http = Grants {
            http: Some(std::sync::Arc::new(crate::config::http_grant::HttpGrant {
                allow: vec![crate::config::http_grant::HostRule::parse("api.example.com").unwrap()],
                timeout: std::time::Duration::from_secs(1),
                max_response: 1024,
            })),
            ..Grants::default()
        };
        assert_eq!(
            classify("wasi:http/outgoing-handler@0.2.12", &http),
            Verdict::Granted("https://api.example.com:443".into())
        );
    }
}
