//! The DNS-rebinding defence: which `Host` and `Origin` request headers the
//! proxy accepts. The proxy must check these itself — it rewrites `Host` for
//! the upstream, which hides the attack from the backend.

use std::net::SocketAddr;

pub use sluice_core::guard::{HostGuard, HostRule, OriginRule};
use sluice_core::host::Host;

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
    pub fn guard(&self) -> HostGuard {
        HostGuard::from_rules(&self.allowed_hosts, &self.allowed_origins)
    }

    /// Whether a request's `Host` header value (e.g. `localhost:8080`) is
    /// allowed, as the proxy decides it. The port is ignored.
    pub fn host_allowed(&self, host_header: &str) -> bool {
        self.guard().host_allowed(host_header.as_bytes())
    }

    /// Whether a request's `Origin` header is allowed; `None` (no header) is.
    pub fn origin_allowed(&self, origin: Option<&str>) -> bool {
        self.guard().origin_allowed(origin.map(str::as_bytes))
    }
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
