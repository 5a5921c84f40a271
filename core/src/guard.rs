//! DNS-rebinding defence: the `Host` and `Origin` checks a proxy must make
//! itself, because once it rewrites `Host` for the upstream the backend can
//! no longer see what the browser sent.
//!
//! Allow-list syntax:
//! - hosts: `*` (any), `*.example.com` (any subdomain, not the name itself),
//!   or a name; names match case-insensitively with the port ignored: a
//!   rebinding attack changes the name, not the port.
//! - origins: `*` (any), `null` (the opaque origin), or
//!   `scheme://host[:port]` where `:*` allows any port and a missing port
//!   means the scheme's default (80 for http, 443 for https).
//!
//! An absent `Origin` is allowed (non-browser clients send none); the literal
//! `null` origin is refused unless allowed.

use std::fmt;

use crate::host::{Host, check_dns_name, parse_host};

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuardError {
    /// No `Host` header, or more than one, or one that does not parse (400).
    BadHost,
    /// A `Host` whose name is not allowed (403).
    ForeignHost(String),
    /// More than one `Origin` header, or one that does not parse (400).
    BadOrigin,
    /// An `Origin` that is not allowed (403).
    ForeignOrigin(String),
}

impl GuardError {
    /// The HTTP status to answer with.
    pub fn status(&self) -> u16 {
        match self {
            GuardError::BadHost | GuardError::BadOrigin => 400,
            GuardError::ForeignHost(_) | GuardError::ForeignOrigin(_) => 403,
        }
    }
}

impl std::fmt::Display for GuardError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GuardError::BadHost => f.write_str("missing, repeated or malformed Host header"),
            GuardError::ForeignHost(h) => write!(f, "Host {h:?} is not allowed"),
            GuardError::BadOrigin => f.write_str("repeated or malformed Origin header"),
            GuardError::ForeignOrigin(o) => write!(f, "Origin {o:?} is not allowed"),
        }
    }
}

impl std::error::Error for GuardError {}

/// One entry of `allowed_hosts`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostRule {
    /// `"*"`: any host (turns the check off; for a proxy behind another one
    /// that already checks).
    Any,
    /// An exact host, normalised: lower case, no trailing dot, IPv6 in
    /// brackets.
    Exact(String),
    /// `"*.example.com"`: any name ending in `.example.com` (stored as
    /// `example.com`); not `example.com` itself.
    Subdomains(String),
}

impl HostRule {
    /// Parses an `allowed_hosts` entry.
    pub fn parse(text: &str) -> Result<HostRule, String> {
        if text == "*" {
            return Ok(HostRule::Any);
        }
        if let Some(parent) = text.strip_prefix("*.") {
            check_dns_name(parent)?;
            return Ok(HostRule::Subdomains(normalise_name(parent)));
        }
        // A bare IPv6 address is accepted and bracketed.
        if let Ok(ip) = text.parse::<std::net::Ipv6Addr>() {
            return Ok(HostRule::Exact(format!("[{ip}]")));
        }
        let has_port = match text.strip_prefix('[') {
            Some(_) => !text.ends_with(']'),
            None => text.contains(':'),
        };
        if has_port {
            return Err(format!(
                "{text:?} has a port; hosts are matched without their port"
            ));
        }
        let host = parse_host(text)?;
        Ok(HostRule::Exact(match host {
            Host::Name(name) => normalise_name(&name),
            Host::Ip(_) => host.to_string(),
        }))
    }
}

impl fmt::Display for HostRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostRule::Any => f.write_str("*"),
            HostRule::Exact(host) => f.write_str(host),
            HostRule::Subdomains(parent) => write!(f, "*.{parent}"),
        }
    }
}

/// One entry of `allowed_origins`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OriginRule {
    /// `"*"`: any origin (turns the check off).
    Any,
    /// `"null"`: the opaque origin browsers send from sandboxed frames and
    /// `file:` pages. Not allowed unless listed.
    Null,
    /// `scheme://host[:port]`, or `scheme://host:*` for any port. Scheme and
    /// host lower case; for http/https a missing port means the default one.
    Exact {
        /// The scheme, lower case (`http`, `https`, or e.g. `vscode-webview`).
        scheme: String,
        /// The host, lower case, IPv6 in brackets.
        host: String,
        /// The port, or `None` for any port (`:*`).
        port: Option<u16>,
    },
}

impl OriginRule {
    /// Parses an `allowed_origins` entry.
    pub fn parse(text: &str) -> Result<OriginRule, String> {
        match text {
            "*" => return Ok(OriginRule::Any),
            "null" => return Ok(OriginRule::Null),
            _ => {}
        }
        let bad = |why: &str| {
            Err(format!(
                "{text:?} is not an origin ({why}; examples: https://app.example.com, http://localhost:*, null, *)"
            ))
        };
        let Some((scheme, rest)) = text.split_once("://") else {
            return bad("no scheme://");
        };
        if rest.contains(['/', '?', '#', '@']) {
            return bad("an origin has no path, query or userinfo");
        }
        let (host, port) = match rest.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && !port.contains(']') => (host, Some(port)),
            _ => (rest, None),
        };
        let Some(parsed) = parse_origin_parts(scheme, host, None) else {
            return bad("bad scheme or host");
        };
        let port = match port {
            Some("*") => None,
            Some(p) => match p.parse::<u16>() {
                Ok(p) if p > 0 => Some(p),
                _ => return bad("bad port"),
            },
            None => parsed.port,
        };
        Ok(OriginRule::Exact {
            scheme: parsed.scheme,
            host: parsed.host,
            port,
        })
    }
}

impl fmt::Display for OriginRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OriginRule::Any => f.write_str("*"),
            OriginRule::Null => f.write_str("null"),
            OriginRule::Exact { scheme, host, port } => match port {
                None => write!(f, "{scheme}://{host}:*"),
                Some(p) => write!(f, "{scheme}://{host}:{p}"),
            },
        }
    }
}

struct ParsedOrigin {
    scheme: String,
    host: String,
    /// Explicit or the scheme's default; `None` for an unknown scheme without
    /// a port.
    port: Option<u16>,
}

fn parse_origin_parts(scheme: &str, host: &str, port: Option<u16>) -> Option<ParsedOrigin> {
    let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !scheme_ok || host.is_empty() || host.bytes().any(|b| !b.is_ascii_graphic()) {
        return None;
    }
    let scheme = scheme.to_ascii_lowercase();
    let host = match parse_host(host).ok()? {
        Host::Name(name) => normalise_name(&name),
        ip => ip.to_string(),
    };
    let port = port.or(match scheme.as_str() {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    });
    Some(ParsedOrigin { scheme, host, port })
}

/// Lower case, no trailing dot: `Example.COM.` and `example.com` are one host.
fn normalise_name(name: &str) -> String {
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}

impl HostRule {
    /// Whether a request's host name (port and trailing dot removed) is
    /// covered.
    fn matches(&self, name: &str) -> bool {
        match self {
            HostRule::Any => true,
            HostRule::Exact(h) => h.eq_ignore_ascii_case(name),
            HostRule::Subdomains(d) => {
                name.len() > d.len() + 1
                    && name.as_bytes()[name.len() - d.len() - 1] == b'.'
                    && name[name.len() - d.len()..].eq_ignore_ascii_case(d)
            }
        }
    }
}

/// The allow-lists for `Host` and `Origin`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostGuard {
    hosts: Vec<HostRule>,
    origins: Vec<OriginRule>,
}

/// Host names allowed when the operator names none besides the listen address.
pub const LOCAL_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "[::1]"];

impl HostGuard {
    /// A guard allowing what these rules cover.
    pub fn from_rules(hosts: &[HostRule], origins: &[OriginRule]) -> Self {
        HostGuard {
            hosts: hosts.to_vec(),
            origins: origins.to_vec(),
        }
    }

    /// A guard allowing `hosts` and `origins` entries, read with
    /// [`HostRule::parse`] and [`OriginRule::parse`]; the first entry that
    /// does not parse is the error.
    pub fn new<H: AsRef<str>, O: AsRef<str>>(hosts: &[H], origins: &[O]) -> Result<Self, String> {
        let hosts = hosts
            .iter()
            .map(|h| HostRule::parse(h.as_ref().trim()))
            .collect::<Result<Vec<_>, _>>()?;
        let origins = origins
            .iter()
            .map(|o| OriginRule::parse(o.as_ref().trim()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(HostGuard { hosts, origins })
    }

    /// The default for a listen host: that host plus the local names, and
    /// their `http`/`https` origins on any port.
    pub fn local_default(listen_host: &str) -> Self {
        let mut hosts: Vec<HostRule> = LOCAL_NAMES
            .iter()
            .map(|n| HostRule::Exact((*n).to_owned()))
            .collect();
        if let Ok(rule) = HostRule::parse(listen_host)
            && !hosts.contains(&rule)
        {
            hosts.push(rule);
        }
        let origins = hosts
            .iter()
            .filter_map(|h| match h {
                HostRule::Exact(host) => Some(host),
                _ => None,
            })
            .flat_map(|host| {
                ["http", "https"].map(|scheme| OriginRule::Exact {
                    scheme: scheme.to_owned(),
                    host: host.clone(),
                    port: None,
                })
            })
            .collect();
        HostGuard { hosts, origins }
    }

    /// The host rules, in order.
    pub fn host_rules(&self) -> &[HostRule] {
        &self.hosts
    }

    /// The origin rules, in order.
    pub fn origin_rules(&self) -> &[OriginRule] {
        &self.origins
    }

    /// Whether one `Host` value (`name[:port]`) is allowed.
    pub fn host_allowed(&self, host: &[u8]) -> bool {
        self.check(&[host], &[]).is_ok()
    }

    /// Whether one `Origin` value is allowed; `None` (no header) is.
    pub fn origin_allowed(&self, origin: Option<&[u8]>) -> bool {
        let Some(origin) = origin else { return true };
        let Ok(origin) = std::str::from_utf8(origin) else {
            return false;
        };
        let got = parse_origin(origin);
        self.origins.iter().any(|rule| match (rule, &got) {
            (OriginRule::Any, _) => true,
            (OriginRule::Null, _) => origin == "null",
            (OriginRule::Exact { scheme, host, port }, Some(got)) => {
                *scheme == got.scheme
                    && *host == got.host
                    && port.is_none_or(|p| Some(p) == got.port)
            }
            (OriginRule::Exact { .. }, None) => false,
        })
    }

    /// Check one request's `Host` and `Origin` header values (every
    /// occurrence, in order).
    pub fn check(&self, hosts: &[&[u8]], origins: &[&[u8]]) -> Result<(), GuardError> {
        let [host] = hosts else {
            return Err(GuardError::BadHost);
        };
        let host = std::str::from_utf8(host).map_err(|_| GuardError::BadHost)?;
        let (name, _) = split_host_port(host).ok_or(GuardError::BadHost)?;
        // `localhost.` is `localhost`: the root label changes nothing.
        let name = name.strip_suffix('.').unwrap_or(name);
        if !self.hosts.iter().any(|h| h.matches(name)) {
            return Err(GuardError::ForeignHost(host.to_owned()));
        }
        match origins {
            [] => Ok(()),
            [origin] => {
                let text = std::str::from_utf8(origin).map_err(|_| GuardError::BadOrigin)?;
                if self.origin_allowed(Some(origin)) {
                    Ok(())
                } else {
                    Err(GuardError::ForeignOrigin(text.to_owned()))
                }
            }
            _ => Err(GuardError::BadOrigin),
        }
    }
}

/// Split `host[:port]` (with `[v6]` brackets kept on the name).
fn split_host_port(s: &str) -> Option<(&str, Option<u16>)> {
    let (name, port) = if s.starts_with('[') {
        let end = s.find(']')?;
        let (name, rest) = s.split_at(end + 1);
        match rest {
            "" => (name, None),
            _ => (name, Some(rest.strip_prefix(':')?)),
        }
    } else {
        match s.rsplit_once(':') {
            Some((n, p)) => (n, Some(p)),
            None => (s, None),
        }
    };
    let valid_name = !name.is_empty()
        && name.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'[' | b']' | b':')
        });
    if !valid_name {
        return None;
    }
    let port = match port {
        None => None,
        Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => Some(p.parse().ok()?),
        Some(_) => return None,
    };
    Some((name, port))
}

/// A request's `Origin`, as the rules compare it: scheme and host lower
/// case, the port concrete when the scheme has a default.
struct RequestOrigin {
    scheme: String,
    host: String,
    port: Option<u16>,
}

fn parse_origin(s: &str) -> Option<RequestOrigin> {
    let (scheme, rest) = s.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    if rest.contains('/') || rest.contains('@') || rest.ends_with(":*") {
        return None;
    }
    let (host, port) = split_host_port(rest)?;
    Some(RequestOrigin {
        port: port.or_else(|| default_port(&scheme)),
        scheme,
        host: host.to_ascii_lowercase(),
    })
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(g: &HostGuard, host: &[&str], origin: &[&str]) -> Result<(), GuardError> {
        let h: Vec<&[u8]> = host.iter().map(|s| s.as_bytes()).collect();
        let o: Vec<&[u8]> = origin.iter().map(|s| s.as_bytes()).collect();
        g.check(&h, &o)
    }

    #[test]
    fn local_default_allows_local_names_any_port() {
        let g = HostGuard::local_default("127.0.0.1");
        assert_eq!(check(&g, &["localhost:8080"], &[]), Ok(()));
        assert_eq!(check(&g, &["LOCALHOST"], &[]), Ok(()));
        assert_eq!(check(&g, &["localhost.:80"], &[]), Ok(()));
        assert_eq!(check(&g, &["localhost"], &["HTTP://LocalHost:1"]), Ok(()));
        assert_eq!(
            check(&g, &["127.0.0.1:1"], &["http://localhost:3000"]),
            Ok(())
        );
        assert_eq!(check(&g, &["[::1]:9"], &["https://[::1]"]), Ok(()));
    }

    #[test]
    fn rebinding_attempts_are_refused() {
        let g = HostGuard::local_default("127.0.0.1");
        let cases: [(&[&str], &[&str], u16); 8] = [
            (&["evil.example:8080"], &[], 403),
            (&["localhost.evil.example"], &[], 403),
            (&["localhost"], &["http://evil.example"], 403),
            (&["localhost"], &["null"], 403),
            (&["localhost"], &["ftp://localhost"], 403),
            (&[], &[], 400),
            (&["localhost", "localhost"], &[], 400),
            (
                &["localhost"],
                &["http://localhost", "http://localhost"],
                400,
            ),
        ];
        for (host, origin, status) in cases {
            let err = check(&g, host, origin).expect_err("must refuse");
            assert_eq!(err.status(), status, "{host:?} {origin:?}");
        }
    }

    #[test]
    fn explicit_lists_and_wildcards() {
        let g = HostGuard::new(
            &["mcp.example.com", "*.corp.example"],
            &[
                "https://app.example.com:8443",
                "https://web.example",
                "vscode-webview://x:*",
                "null",
            ],
        )
        .unwrap();
        assert_eq!(
            check(&g, &["mcp.example.com"], &["https://app.example.com:8443"]),
            Ok(())
        );
        assert!(check(&g, &["mcp.example.com"], &["https://app.example.com"]).is_err());
        assert_eq!(
            check(&g, &["mcp.example.com"], &["https://web.example:443"]),
            Ok(())
        );
        assert_eq!(
            check(&g, &["mcp.example.com"], &["https://web.example"]),
            Ok(())
        );
        assert!(check(&g, &["mcp.example.com"], &["https://web.example:8443"]).is_err());
        assert_eq!(
            check(&g, &["mcp.example.com"], &["vscode-webview://x:123"]),
            Ok(())
        );
        assert_eq!(check(&g, &["mcp.example.com"], &["null"]), Ok(()));
        assert_eq!(check(&g, &["a.corp.example:1"], &[]), Ok(()));
        let v6 = HostGuard::new(&["::1"], &[] as &[&str]).unwrap();
        assert_eq!(check(&v6, &["[::1]:8080"], &[]), Ok(()));
        assert!(check(&g, &["corp.example"], &[]).is_err());
        assert!(check(&g, &["acorp.example"], &[]).is_err());
        assert!(check(&g, &["localhost"], &[]).is_err());
        let any = HostGuard::new(&["*"], &["*"]).unwrap();
        assert_eq!(check(&any, &["anything:1"], &["null"]), Ok(()));
        assert!(HostGuard::new(&["bad host"], &[] as &[&str]).is_err());
        assert!(HostGuard::new(&["ok"], &["no-scheme"]).is_err());
    }
}
