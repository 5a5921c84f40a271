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

#[derive(Debug, Clone, PartialEq, Eq)]
struct OriginRule {
    scheme: String,
    host: String,
    /// `None`: any port.
    port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostRule {
    Exact(String),
    /// Names ending in `.{0}`.
    Subdomains(String),
}

impl HostRule {
    fn matches(&self, name: &str) -> bool {
        match self {
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
    any_host: bool,
    hosts: Vec<HostRule>,
    any_origin: bool,
    null_origin: bool,
    origins: Vec<OriginRule>,
}

/// Host names allowed when the operator names none besides the listen address.
pub const LOCAL_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "[::1]"];

impl HostGuard {
    /// A guard allowing `hosts` (names, or `*` for any) and `origins`
    /// (`scheme://host[:port]`, or `*` for any). Returns the first entry that
    /// does not parse.
    pub fn new<H: AsRef<str>, O: AsRef<str>>(hosts: &[H], origins: &[O]) -> Result<Self, String> {
        let mut guard = HostGuard {
            any_host: false,
            hosts: Vec::new(),
            any_origin: false,
            null_origin: false,
            origins: Vec::new(),
        };
        for h in hosts {
            let h = h.as_ref().trim();
            if h == "*" {
                guard.any_host = true;
                continue;
            }
            if let Some(domain) = h.strip_prefix("*.") {
                let (name, None) = split_host_port(domain).ok_or_else(|| h.to_owned())? else {
                    return Err(h.to_owned());
                };
                guard
                    .hosts
                    .push(HostRule::Subdomains(name.to_ascii_lowercase()));
                continue;
            }
            // A bare IPv6 literal is written bracketed, as in `Host`.
            let bracketed;
            let h = if h.matches(':').count() > 1 && !h.starts_with('[') {
                bracketed = format!("[{h}]");
                bracketed.as_str()
            } else {
                h
            };
            let (name, _) = split_host_port(h).ok_or_else(|| h.to_owned())?;
            let name = name.strip_suffix('.').unwrap_or(name);
            guard.hosts.push(HostRule::Exact(name.to_ascii_lowercase()));
        }
        for o in origins {
            let o = o.as_ref().trim();
            match o {
                "*" => guard.any_origin = true,
                "null" => guard.null_origin = true,
                _ => guard
                    .origins
                    .push(parse_origin_rule(o).ok_or_else(|| o.to_owned())?),
            }
        }
        Ok(guard)
    }

    /// The default for a listen host: that host plus the local names, and
    /// their `http`/`https` origins on any port.
    pub fn local_default(listen_host: &str) -> Self {
        let mut hosts: Vec<String> = LOCAL_NAMES.iter().map(|s| s.to_string()).collect();
        if !hosts.iter().any(|h| h.eq_ignore_ascii_case(listen_host)) {
            hosts.push(listen_host.to_owned());
        }
        let origins: Vec<String> = hosts
            .iter()
            .flat_map(|h| [format!("http://{h}:*"), format!("https://{h}:*")])
            .collect();
        HostGuard::new(&hosts, &origins).unwrap_or_else(|_| {
            HostGuard::new(&LOCAL_NAMES, &[] as &[&str]).expect("local names parse")
        })
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
        if self.any_origin || (origin == "null" && self.null_origin) {
            return true;
        }
        let Some(got) = parse_origin(origin) else {
            return false;
        };
        self.origins.iter().any(|r| {
            r.scheme == got.scheme
                && r.host == got.host
                && r.port.is_none_or(|p| Some(p) == got.port)
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
        if !self.any_host && !self.hosts.iter().any(|h| h.matches(name)) {
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

/// A request's `Origin`: the port is always concrete (the default filled in).
fn parse_origin(s: &str) -> Option<OriginRule> {
    let (scheme, rest) = s.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    if rest.contains('/') || rest.contains('@') || rest.ends_with(":*") {
        return None;
    }
    let (host, port) = split_host_port(rest)?;
    Some(OriginRule {
        port: port.or_else(|| default_port(&scheme)),
        scheme,
        host: host.to_ascii_lowercase(),
    })
}

/// An allow-list entry: `:*` means any port.
fn parse_origin_rule(s: &str) -> Option<OriginRule> {
    if let Some(base) = s.strip_suffix(":*") {
        let mut rule = parse_origin(base)?;
        rule.port = None;
        return Some(rule);
    }
    parse_origin(s)
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
