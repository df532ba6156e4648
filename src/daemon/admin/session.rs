//! Console sessions: a sign-in (see `signin`) trades an admin token for a random session
//! id in an `HttpOnly`, `SameSite=Strict` cookie. Sessions live
//! in memory for [`LIFETIME`], keyed by the SHA-256 of their id, so the map holds nothing
//! a memory dump could replay. Failed sign-ins are limited to [`MAX_FAILURES`] a minute.
//! Also the local operator token a loopback daemon without tokens makes at start.

use crate::config::{AdminToken, Role, Server};
use crate::sync::Lock as _;
use sha2::{Digest, Sha256};
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const COOKIE: &str = "flowd_session";
pub const LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// Failed sign-ins accepted per minute, over all clients; more get a 429.
pub const MAX_FAILURES: usize = 10;
const WINDOW: Duration = Duration::from_secs(60);

/// Who a session belongs to: the token's name and role, never its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub name: String,
    pub role: Role,
    expires: Instant,
}

#[derive(Default)]
pub struct Sessions {
    live: Mutex<HashMap<[u8; 32], Session>>,
    failures: Mutex<VecDeque<Instant>>,
}

fn key(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

/// `n` random bytes from the kernel, as hex.
pub fn random_hex(n: usize) -> std::io::Result<String> {
    use std::io::Read as _;
    let mut bytes = vec![0u8; n];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(hex::encode(bytes))
}

impl Sessions {
    /// A new session for `token`: its id, for the cookie.
    pub fn open(&self, token: &AdminToken) -> std::io::Result<String> {
        let id = random_hex(32)?;
        let now = Instant::now();
        let mut live = self.live.locked();
        live.retain(|_, s| s.expires > now);
        live.insert(
            key(&id),
            Session {
                name: token.name.clone(),
                role: token.role,
                expires: now + LIFETIME,
            },
        );
        Ok(id)
    }

    /// The live session `id` names.
    pub fn get(&self, id: &str) -> Option<Session> {
        let live = self.live.locked();
        live.get(&key(id)).filter(|s| s.expires > Instant::now()).cloned()
    }

    pub fn close(&self, id: &str) {
        self.live.locked().remove(&key(id));
    }

    /// Counts a failed sign-in; false when the minute's allowance was already used.
    pub fn failed(&self) -> bool {
        let now = Instant::now();
        let mut f = self.failures.locked();
        while f.front().is_some_and(|t| now.duration_since(*t) > WINDOW) {
            f.pop_front();
        }
        if f.len() >= MAX_FAILURES {
            return false;
        }
        f.push_back(now);
        true
    }

    /// Whether sign-ins are refused for now (too many failures in the last minute).
    pub fn locked_out(&self) -> bool {
        let now = Instant::now();
        let f = self.failures.locked();
        f.iter().filter(|t| now.duration_since(**t) <= WINDOW).count() >= MAX_FAILURES
    }
}

/// The `Set-Cookie` value for session `id`.
pub fn cookie(id: &str) -> String {
    format!(
        "{COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}",
        LIFETIME.as_secs()
    )
}

/// The `Set-Cookie` value that removes the session cookie.
pub fn expired_cookie() -> String {
    format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0")
}

/// The session id in a request's `Cookie` headers.
pub fn from_headers(headers: &hyper::HeaderMap) -> Option<String> {
    headers
        .get_all(hyper::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// The token a daemon makes for itself at start so a newcomer can sign in: only when the
/// config names no token and both listeners are on loopback (nobody else can reach it).
pub fn local_token(server: &Server) -> std::io::Result<Option<AdminToken>> {
    if !server.tokens.is_empty() || !server.listen.ip().is_loopback() || !server.admin.ip().is_loopback() {
        return Ok(None);
    }
    Ok(Some(AdminToken {
        name: "local".into(),
        role: Role::Operator,
        value: random_hex(24)?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(listen: &str, admin: &str, tokens: usize) -> Server {
        let mut config = crate::config::DaemonConfig::builtin();
        config.server.listen = listen.parse().unwrap();
        config.server.admin = admin.parse().unwrap();
        config.server.tokens = (0..tokens)
            .map(|i| AdminToken {
                name: format!("t{i}"),
                role: Role::Viewer,
                value: "x".repeat(20),
            })
            .collect();
        config.server
    }

    #[test]
    fn a_local_token_only_without_tokens_and_on_loopback() {
        let t = local_token(&server("127.0.0.1:8080", "[::1]:8081", 0))
            .unwrap()
            .unwrap();
        assert_eq!((t.name.as_str(), t.role, t.value.len()), ("local", Role::Operator, 48));
        assert!(
            local_token(&server("127.0.0.1:8080", "127.0.0.1:8081", 1))
                .unwrap()
                .is_none()
        );
        assert!(
            local_token(&server("0.0.0.0:8080", "127.0.0.1:8081", 0))
                .unwrap()
                .is_none()
        );
        assert!(
            local_token(&server("127.0.0.1:8080", "10.0.0.5:8081", 0))
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn sessions_are_found_by_id_and_gone_once_closed() {
        let s = Sessions::default();
        let token = AdminToken {
            name: "ops".into(),
            role: Role::Operator,
            value: "v".repeat(20),
        };
        let id = s.open(&token).unwrap();
        assert_eq!(
            s.get(&id).map(|x| (x.name, x.role)),
            Some(("ops".into(), Role::Operator))
        );
        assert!(s.get(&format!("{id}0")).is_none());
        assert!(!s.live.locked().keys().any(|k| hex::encode(k) == id), "keyed by a hash");
        s.close(&id);
        assert!(s.get(&id).is_none());
    }

    #[test]
    fn failures_are_limited_per_minute() {
        let s = Sessions::default();
        for _ in 0..MAX_FAILURES {
            assert!(!s.locked_out());
            assert!(s.failed());
        }
        assert!(s.locked_out());
        assert!(!s.failed());
    }

    #[test]
    fn the_cookie_is_read_among_others() {
        let mut h = hyper::HeaderMap::new();
        h.append(hyper::header::COOKIE, "a=1; flowd_session=abc ; b=2".parse().unwrap());
        assert_eq!(from_headers(&h).as_deref(), Some("abc"));
        assert!(cookie("abc").contains("HttpOnly; SameSite=Strict; Path=/"));
    }
}
