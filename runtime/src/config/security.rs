//! The DNS-rebinding defence: which `Host` and `Origin` request headers the
//! proxy accepts. The proxy must check these itself — it rewrites `Host` for
//! the upstream, which hides the attack from the backend.

use std::fmt;
use std::net::SocketAddr;

use sluice_core::guard::HostGuard;

use super::url::{Host, check_dns_name, parse_host};

/// The `[security]` section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Security {
    /// Host names a request's `Host` header may carry (port ignored).
    /// Default: the listen IP (unless it is `0.0.0.0`/`::`), `localhost`,
    /// `127.0.0.1`, `[::1]`. A request with another host gets 403 (or 400
    /// without a `Host` header).
    pub allowed_hosts: Vec<HostRule>,
    /// Origins a request's `Origin` header may carry. Default: `http` and
    /// `https` on `localhost`, `127.0.0.1` and `[::1]`, any port. A request
    /// without an `Origin` header (a non-browser client) is always allowed; a
    /// foreign origin gets 403.
    pub allowed_origins: Vec<OriginRule>,
    /// Add `X-Forwarded-For` and `X-Forwarded-Proto` to upstream requests.
    /// Default true.
    pub forwarded_headers: bool,
}

impl Security {
    /// The defaults for a proxy listening on `listen`.
    pub fn defaults_for(listen: SocketAddr) -> Security {
        Security {
            allowed_hosts: default_hosts(listen),
            allowed_origins: default_origins(),
            forwarded_headers: true,
        }
    }

    /// The core guard these rules describe (the one the proxy enforces).
    pub fn guard(&self) -> Result<HostGuard, String> {
        let hosts: Vec<String> = self.allowed_hosts.iter().map(ToString::to_string).collect();
        let origins: Vec<String> = self
            .allowed_origins
            .iter()
            .map(ToString::to_string)
            .collect();
        HostGuard::new(&hosts, &origins)
            .map_err(|bad| format!("{bad:?} is not a valid host or origin rule"))
    }

    /// Whether a request's `Host` header value (e.g. `localhost:8080`) is
    /// allowed, as the proxy decides it. The port is ignored.
    pub fn host_allowed(&self, host_header: &str) -> bool {
        self.guard()
            .is_ok_and(|g| g.host_allowed(host_header.as_bytes()))
    }

    /// Whether a request's `Origin` header is allowed; `None` (no header) is.
    pub fn origin_allowed(&self, origin: Option<&str>) -> bool {
        self.guard()
            .is_ok_and(|g| g.origin_allowed(origin.map(str::as_bytes)))
    }
}

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

fn default_hosts(listen: SocketAddr) -> Vec<HostRule> {
    let mut hosts = Vec::new();
    if !listen.ip().is_unspecified() {
        hosts.push(HostRule::Exact(Host::Ip(listen.ip()).to_string()));
    }
    for name in ["localhost", "127.0.0.1", "[::1]"] {
        let rule = HostRule::Exact(name.to_string());
        if !hosts.contains(&rule) {
            hosts.push(rule);
        }
    }
    hosts
}

fn default_origins() -> Vec<OriginRule> {
    let mut origins = Vec::new();
    for scheme in ["http", "https"] {
        for host in ["localhost", "127.0.0.1", "[::1]"] {
            origins.push(OriginRule::Exact {
                scheme: scheme.into(),
                host: host.into(),
                port: None,
            });
        }
    }
    origins
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sec(hosts: &[&str], origins: &[&str]) -> Security {
        Security {
            allowed_hosts: hosts.iter().map(|h| HostRule::parse(h).unwrap()).collect(),
            allowed_origins: origins
                .iter()
                .map(|o| OriginRule::parse(o).unwrap())
                .collect(),
            forwarded_headers: true,
        }
    }

    #[test]
    fn default_rules() {
        let s = Security::defaults_for("127.0.0.1:8080".parse().unwrap());
        let hosts: Vec<String> = s.allowed_hosts.iter().map(|h| h.to_string()).collect();
        assert_eq!(hosts, ["127.0.0.1", "localhost", "[::1]"]);
        for ok in [
            "localhost:8080",
            "LOCALHOST",
            "127.0.0.1:1",
            "[::1]:8080",
            "localhost.",
        ] {
            assert!(s.host_allowed(ok), "{ok}");
        }
        for bad in [
            "evil.com",
            "evil.com:8080",
            "",
            "127.0.0.2",
            "[::2]",
            "local host",
        ] {
            assert!(!s.host_allowed(bad), "{bad}");
        }
        assert!(s.origin_allowed(None));
        for ok in [
            "http://localhost:6274",
            "https://127.0.0.1",
            "http://[::1]:3000",
            "HTTP://LocalHost:1",
        ] {
            assert!(s.origin_allowed(Some(ok)), "{ok}");
        }
        for bad in [
            "http://evil.com",
            "null",
            "",
            "http://localhost.evil.com",
            "ftp://localhost",
            "http://localhost/x",
        ] {
            assert!(!s.origin_allowed(Some(bad)), "{bad}");
        }
        let s = Security::defaults_for("0.0.0.0:80".parse().unwrap());
        assert_eq!(s.allowed_hosts.len(), 3);
        let s = Security::defaults_for("192.168.1.5:80".parse().unwrap());
        assert!(s.host_allowed("192.168.1.5:80"));
        let s = Security::defaults_for("[::1]:80".parse().unwrap());
        assert_eq!(s.allowed_hosts.len(), 3);
    }

    #[test]
    fn rules() {
        let s = sec(
            &["*.example.com", "::1", "Mcp.Example.org"],
            &["https://app.example.com", "vscode-webview://abc", "null"],
        );
        assert!(s.host_allowed("a.example.com:443"));
        assert!(s.host_allowed("a.b.example.com"));
        assert!(!s.host_allowed("example.com"));
        assert!(!s.host_allowed("aexample.com"));
        assert!(s.host_allowed("[::1]"));
        assert!(s.host_allowed("mcp.example.org"));
        assert!(s.origin_allowed(Some("https://app.example.com")));
        assert!(s.origin_allowed(Some("https://app.example.com:443")));
        assert!(!s.origin_allowed(Some("https://app.example.com:8443")));
        assert!(!s.origin_allowed(Some("http://app.example.com")));
        assert!(s.origin_allowed(Some("vscode-webview://abc")));
        assert!(s.origin_allowed(Some("null")));
        let any = sec(&["*"], &["*"]);
        assert!(any.host_allowed("whatever.test"));
        assert!(any.origin_allowed(Some("garbage")));
    }

    #[test]
    fn bad_rules() {
        assert!(
            HostRule::parse("example.com:80")
                .unwrap_err()
                .contains("has a port")
        );
        assert!(
            HostRule::parse("[::1]:80")
                .unwrap_err()
                .contains("has a port")
        );
        assert!(HostRule::parse("a b").is_err());
        assert!(HostRule::parse("*.").is_err());
        for bad in [
            "localhost",
            "http://h/path",
            "http://h:x",
            "http://",
            "1http://h",
        ] {
            assert!(
                OriginRule::parse(bad)
                    .unwrap_err()
                    .contains("is not an origin"),
                "{bad}"
            );
        }
    }
}
