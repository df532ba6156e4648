//! The outbound-HTTP grant of a connector: which origins it may call (`allow` rules such as
//! `"api.example.com"`, `"https://*.example.com"`, `"http://127.0.0.1:8080"`), how long one
//! request may take, and how large a response may be. Matching is pure; sending lives in
//! `plugin::outbound`.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
pub const DEFAULT_MAX_RESPONSE: u64 = 4 << 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpGrant {
    pub allow: Vec<HostRule>,
    /// For the whole request: connecting, sending, and reading the response body.
    pub timeout: Duration,
    /// The largest response body read; a longer one fails the request.
    pub max_response: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }

    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    /// One DNS name, lowercase.
    Name(String),
    /// `*.example.com`: any name below `example.com` (not `example.com` itself).
    Below(String),
    /// An IP literal: the only way to reach a loopback, private or link-local address.
    Ip(IpAddr),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRule {
    pub scheme: Scheme,
    pub host: HostPattern,
    /// `None` for any port (`:*`).
    pub port: Option<u16>,
}

impl fmt::Display for HostRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://", self.scheme.as_str())?;
        match &self.host {
            HostPattern::Name(n) => f.write_str(n)?,
            HostPattern::Below(n) => write!(f, "*.{n}")?,
            HostPattern::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]")?,
            HostPattern::Ip(ip) => write!(f, "{ip}")?,
        }
        match self.port {
            Some(p) => write!(f, ":{p}"),
            None => f.write_str(":*"),
        }
    }
}

/// A request's destination as the guest wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub scheme: Scheme,
    /// Lowercase name, or an IP literal's text without brackets.
    pub host: String,
    pub port: u16,
}

impl Origin {
    pub fn ip(&self) -> Option<IpAddr> {
        self.host.parse().ok()
    }

    /// The host, with the port when it is not the scheme's default.
    pub fn host_port(&self) -> String {
        let host = match self.ip() {
            Some(IpAddr::V6(ip)) => format!("[{ip}]"),
            _ => self.host.clone(),
        };
        if self.port == self.scheme.default_port() {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme.as_str(), self.host_port())
    }
}

impl HostRule {
    /// Parses one `allow` entry: `[scheme://]host[:port]`, where the scheme defaults to
    /// https, the port to the scheme's, `:*` allows any port and `*.` a subdomain.
    pub fn parse(text: &str) -> Result<HostRule, String> {
        let (scheme, rest) = match text.split_once("://") {
            Some(("http", rest)) => (Scheme::Http, rest),
            Some(("https", rest)) => (Scheme::Https, rest),
            Some((other, _)) => return Err(format!("scheme \"{other}\" is not http or https")),
            None => (Scheme::Https, text),
        };
        if rest.contains(['/', '?', '#', '@']) {
            return Err("give an origin only (`[scheme://]host[:port]`), without user, path or query".into());
        }
        let (host, port) = split_host_port(rest)?;
        let port = match port {
            None => Some(scheme.default_port()),
            Some("*") => None,
            Some(p) => Some(parse_port(p)?),
        };
        let host = if let Some(below) = host.strip_prefix("*.") {
            HostPattern::Below(check_name(below)?)
        } else if let Ok(ip) = host.parse::<IpAddr>() {
            HostPattern::Ip(ip)
        } else {
            HostPattern::Name(check_name(host)?)
        };
        Ok(HostRule { scheme, host, port })
    }

    pub fn matches(&self, origin: &Origin) -> bool {
        if self.scheme != origin.scheme || self.port.is_some_and(|p| p != origin.port) {
            return false;
        }
        match (&self.host, origin.ip()) {
            (HostPattern::Ip(ip), Some(other)) => *ip == other,
            (HostPattern::Name(n), None) => *n == origin.host,
            (HostPattern::Below(n), None) => origin
                .host
                .strip_suffix(n.as_str())
                .is_some_and(|head| head.len() > 1 && head.ends_with('.')),
            _ => false,
        }
    }
}

impl HttpGrant {
    /// The rule that lets a request to `origin` through, if any.
    pub fn rule_for(&self, origin: &Origin) -> Option<&HostRule> {
        self.allow.iter().find(|r| r.matches(origin))
    }

    /// Whether the operator listed `ip` itself, which lets a name resolve to it even when
    /// it is not a public address.
    pub fn lists_ip(&self, ip: IpAddr) -> bool {
        self.allow.iter().any(|r| r.host == HostPattern::Ip(ip))
    }

    pub fn describe(&self) -> String {
        self.allow.iter().map(|r| r.to_string()).collect::<Vec<_>>().join(", ")
    }
}

/// Parses the scheme and authority of an outgoing request (`authority` may carry a port).
pub fn origin(scheme: &str, authority: &str) -> Result<Origin, String> {
    let scheme = match scheme {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        other => return Err(format!("scheme \"{other}\" is not http or https")),
    };
    if authority.contains('@') {
        return Err("user information in the URL is not allowed".into());
    }
    let (host, port) = split_host_port(authority)?;
    let port = match port {
        None => scheme.default_port(),
        Some(p) => parse_port(p)?,
    };
    let host = match host.parse::<IpAddr>() {
        Ok(ip) => ip.to_string(),
        Err(_) => check_name(host)?,
    };
    Ok(Origin { scheme, host, port })
}

/// Whether an address is reachable on the public internet; anything else (loopback,
/// private, link-local, shared, multicast, unspecified) must be listed by IP to be used.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (o[1] & 0xc0) == 64)
                || o[0] >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80)
        }
    }
}

fn split_host_port(text: &str) -> Result<(&str, Option<&str>), String> {
    if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or("an IPv6 address needs a closing `]`")?;
        return match after {
            "" => Ok((host, None)),
            p => p
                .strip_prefix(':')
                .map(|p| (host, Some(p)))
                .ok_or_else(|| format!("unexpected \"{p}\" after the address")),
        };
    }
    if text.matches(':').count() > 1 {
        return Err("write an IPv6 address in brackets, such as \"[::1]:8080\"".into());
    }
    Ok(match text.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (text, None),
    })
}

fn parse_port(p: &str) -> Result<u16, String> {
    match p.parse::<u16>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("port \"{p}\" is not a number from 1 to 65535")),
    }
}

fn check_name(name: &str) -> Result<String, String> {
    let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if ok {
        Ok(name)
    } else {
        Err(format!("\"{name}\" is not a host name or IP address"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(rules: &[&str]) -> HttpGrant {
        HttpGrant {
            allow: rules.iter().map(|r| HostRule::parse(r).unwrap()).collect(),
            timeout: DEFAULT_TIMEOUT,
            max_response: DEFAULT_MAX_RESPONSE,
        }
    }

    fn allowed(g: &HttpGrant, scheme: &str, authority: &str) -> bool {
        g.rule_for(&origin(scheme, authority).unwrap()).is_some()
    }

    #[test]
    fn rules_parse_and_print() {
        for (text, shown) in [
            ("api.example.com", "https://api.example.com:443"),
            ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
            ("https://*.Example.com:*", "https://*.example.com:*"),
            ("[::1]:8443", "https://[::1]:8443"),
        ] {
            assert_eq!(HostRule::parse(text).unwrap().to_string(), shown);
        }
        for bad in [
            "ftp://x.com",
            "x.com/path",
            "user@x.com",
            "x.com:0",
            "x.com:http",
            "::1",
            "[::1",
            "bad_name.com",
            "",
        ] {
            assert!(HostRule::parse(bad).is_err(), "{bad} should not parse");
        }
    }

    #[test]
    fn matching() {
        let g = grant(&["api.example.com", "http://127.0.0.1:8080", "https://*.hooks.test:*"]);
        assert!(allowed(&g, "https", "api.example.com"));
        assert!(allowed(&g, "https", "API.example.com:443"));
        assert!(!allowed(&g, "http", "api.example.com"), "scheme must match");
        assert!(!allowed(&g, "https", "api.example.com:8443"), "port must match");
        assert!(!allowed(&g, "https", "evil-api.example.com"));
        assert!(allowed(&g, "http", "127.0.0.1:8080"));
        assert!(!allowed(&g, "http", "127.0.0.2:8080"));
        assert!(!allowed(&g, "http", "localhost:8080"), "a name is not its address");
        assert!(allowed(&g, "https", "a.hooks.test:9999"));
        assert!(allowed(&g, "https", "a.b.hooks.test"));
        assert!(!allowed(&g, "https", "hooks.test"), "*. is below the name only");
        assert!(!allowed(&g, "https", "xhooks.test"));
        assert!(g.lists_ip("127.0.0.1".parse().unwrap()));
        assert!(!g.lists_ip("127.0.0.2".parse().unwrap()));
    }

    #[test]
    fn public_addresses() {
        for ip in ["8.8.8.8", "1.1.1.1", "2606:4700::1111"] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
    }
}
