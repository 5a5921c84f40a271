//! Upstream URLs and listen addresses.
//!
//! A deliberately small URL parser: an upstream is `http` or `https`, a host
//! (DNS name, IPv4, or bracketed IPv6), an optional port, a path and an
//! optional query. Anything a proxy could misread — userinfo, fragments,
//! unbracketed IPv6, numeric hosts that are not dotted quads, non-ASCII — is
//! refused with a message instead of being normalised behind the operator's
//! back.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};

pub use sluice_core::host::{Host, parse_host};

/// The scheme of an upstream URL.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// Plain HTTP/1.1 over TCP.
    Http,
    /// HTTP/1.1 over TLS (rustls).
    Https,
}

impl Scheme {
    /// The port used when the URL gives none: 80 or 443.
    pub(crate) fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }

    /// `"http"` or `"https"`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A parsed, validated upstream URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upstream {
    /// `http` or `https`.
    pub scheme: Scheme,
    /// Where to connect (and, for https, the TLS server name).
    pub host: Host,
    /// The port, defaulted from the scheme when the URL gives none.
    pub port: u16,
    /// The path, always starting with `/` (`/` when the URL has none).
    /// Percent-escapes are kept as written.
    pub path: String,
    /// The query without its `?`, if the URL has one. It is sent on every
    /// request to this upstream (see [`Config::resolve`](super::Config::resolve)).
    pub query: Option<String>,
    /// The value for the `Host` header of requests to this upstream: the
    /// host, plus `:port` when the port is not the scheme's default.
    pub authority: String,
}

impl Upstream {
    /// Parses an upstream URL such as `http://127.0.0.1:3001/mcp` or
    /// `https://mcp.example.com/v1/mcp?tenant=a`. The error is a sentence
    /// naming the problem.
    pub(crate) fn parse(text: &str) -> Result<Upstream, String> {
        if let Some(c) = text.chars().find(|c| !c.is_ascii()) {
            return Err(format!(
                "{text:?} contains the non-ASCII character {c:?} (percent-encode the path; write the host in punycode)"
            ));
        }
        if text.bytes().any(|b| !b.is_ascii_graphic()) {
            return Err(format!("{text:?} contains a space or control character"));
        }
        let not_http = || format!("{text:?} is not an http or https URL");
        let (scheme, rest) = text.split_once("://").ok_or_else(not_http)?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            _ => return Err(not_http()),
        };
        if rest.contains('#') {
            return Err(format!(
                "{text:?} has a fragment (#...), which is never sent to a server"
            ));
        }
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path_and_query) = rest.split_at(authority_end);
        if authority.contains('@') {
            return Err(format!(
                "{text:?} has userinfo (user:password@), which sluice does not send; pass credentials in headers instead"
            ));
        }
        if authority.is_empty() {
            return Err(format!("{text:?} has no host"));
        }
        let (host, port) = split_host_port(authority).map_err(|p| format!("{text:?}: {p}"))?;
        let host = parse_host(host).map_err(|p| format!("{text:?}: {p}"))?;
        let port = match port {
            None => scheme.default_port(),
            Some(p) => parse_port(p).map_err(|p| format!("{text:?}: {p}"))?,
        };
        let (path, query) = match path_and_query.split_once('?') {
            Some((path, query)) => (path, Some(query.to_string())),
            None => (path_and_query, None),
        };
        let path = if path.is_empty() { "/" } else { path };
        check_percent_escapes(path).map_err(|p| format!("{text:?}: {p}"))?;
        let authority = if port == scheme.default_port() {
            host.to_string()
        } else {
            format!("{host}:{port}")
        };
        Ok(Upstream {
            scheme,
            host,
            port,
            path: path.to_string(),
            query,
            authority,
        })
    }

    /// `scheme://authority`, e.g. `https://mcp.example.com`: where
    /// `/.well-known/*` requests go, and a safe name for logs.
    pub fn origin(&self) -> String {
        format!("{}://{}", self.scheme, self.authority)
    }
}

/// Formats the upstream back as a URL.
impl fmt::Display for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}{}", self.scheme, self.authority, self.path)?;
        if let Some(query) = &self.query {
            write!(f, "?{query}")?;
        }
        Ok(())
    }
}

/// Splits `host[:port]` / `[v6][:port]`.
fn split_host_port(authority: &str) -> Result<(&str, Option<&str>), String> {
    if let Some(bracketed) = authority.strip_prefix('[') {
        let (inside, after) = bracketed
            .split_once(']')
            .ok_or("the IPv6 address has no closing ]")?;
        let host = &authority[..inside.len() + 2];
        return match after {
            "" => Ok((host, None)),
            _ => match after.strip_prefix(':') {
                Some(port) => Ok((host, Some(port))),
                None => Err(format!("unexpected {after:?} after the IPv6 address")),
            },
        };
    }
    match authority.matches(':').count() {
        0 => Ok((authority, None)),
        1 => {
            let (host, port) = authority.split_once(':').unwrap_or((authority, ""));
            Ok((host, Some(port)))
        }
        _ => Err("an IPv6 address must be written in brackets, e.g. http://[::1]:3001/".into()),
    }
}

fn parse_port(port: &str) -> Result<u16, String> {
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{port:?} is not a port number"));
    }
    match port.parse::<u16>() {
        Ok(0) | Err(_) => Err(format!("port {port} is out of range (1-65535)")),
        Ok(p) => Ok(p),
    }
}

/// `%` must start a two-hex-digit escape: a stray one is read differently
/// by different servers.
fn check_percent_escapes(path: &str) -> Result<(), String> {
    let bytes = path.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'%' {
            let ok = bytes.len() > i + 2
                && bytes[i + 1].is_ascii_hexdigit()
                && bytes[i + 2].is_ascii_hexdigit();
            if !ok {
                return Err("the path has a '%' that is not followed by two hex digits".into());
            }
        }
    }
    Ok(())
}

/// Parses a listen address: any socket address (`127.0.0.1:8080`,
/// `[::1]:8080`, `0.0.0.0:0`) or `localhost:PORT`, which means
/// `127.0.0.1:PORT`. Port 0 asks the OS for a free port.
pub(crate) fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let bad = || {
        format!(
            "{text:?} is not a listen address (examples: 127.0.0.1:8080, [::1]:8080, localhost:8080, 0.0.0.0:0)"
        )
    };
    let (host, port) = text.rsplit_once(':').ok_or_else(bad)?;
    if !host.eq_ignore_ascii_case("localhost") || !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let port = port.parse::<u16>().map_err(|_| bad())?;
    Ok(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    #[test]
    fn upstreams() {
        let u = Upstream::parse("http://127.0.0.1:3001/mcp").unwrap();
        assert_eq!(u.scheme, Scheme::Http);
        assert_eq!(u.host, Host::Ip(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        assert_eq!(
            (u.port, u.path.as_str(), u.query.as_deref()),
            (3001, "/mcp", None)
        );
        assert_eq!(u.authority, "127.0.0.1:3001");
        assert_eq!(u.origin(), "http://127.0.0.1:3001");

        let u = Upstream::parse("HTTPS://MCP.Example.com?t=1").unwrap();
        assert_eq!(u.host, Host::Name("mcp.example.com".into()));
        assert_eq!(
            (u.port, u.path.as_str(), u.query.as_deref()),
            (443, "/", Some("t=1"))
        );
        assert_eq!(u.authority, "mcp.example.com");
        assert_eq!(u.to_string(), "https://mcp.example.com/?t=1");

        let u = Upstream::parse("http://[::1]:80/a%20b/").unwrap();
        assert_eq!(u.authority, "[::1]");
        assert_eq!(u.path, "/a%20b/");

        let u = Upstream::parse("http://my_service:8000").unwrap();
        assert_eq!(u.authority, "my_service:8000");
    }

    #[test]
    fn bad_upstreams() {
        let cases = [
            ("ftp://x", "is not an http or https URL"),
            ("localhost:3000/mcp", "is not an http or https URL"),
            ("http://", "has no host"),
            ("http:///mcp", "has no host"),
            ("http://u:p@h/", "userinfo"),
            ("http://h/#frag", "fragment"),
            ("http://h:0/", "out of range"),
            ("http://h:99999/", "out of range"),
            ("http://h:/", "is not a port number"),
            ("http://h:x/", "is not a port number"),
            ("http://::1/", "brackets"),
            ("http://[::1/", "no closing ]"),
            ("http://[::1]x/", "after the IPv6 address"),
            ("http://[zz]/", "is not an IPv6 address"),
            ("http://1.2.3/", "not a valid IPv4"),
            ("http://010.0.0.1/", "not a valid IPv4"),
            ("http://0x7f.1/", "not a valid IPv4"),
            ("http://a..b/", "not a valid host name"),
            ("http://-a/", "not a valid host name"),
            ("http://a b/", "space or control"),
            ("http://é.com/", "non-ASCII"),
            ("http://h/%zz", "two hex digits"),
        ];
        for (text, want) in cases {
            let e = Upstream::parse(text).unwrap_err();
            assert!(e.contains(want), "{text}: {e}");
        }
    }

    #[test]
    fn listen() {
        assert_eq!(
            parse_listen("127.0.0.1:8080").unwrap().to_string(),
            "127.0.0.1:8080"
        );
        assert_eq!(parse_listen("[::1]:0").unwrap().to_string(), "[::1]:0");
        assert_eq!(
            parse_listen("localhost:9").unwrap().to_string(),
            "127.0.0.1:9"
        );
        assert_eq!(
            parse_listen("LOCALHOST:9").unwrap().to_string(),
            "127.0.0.1:9"
        );
        for bad in [
            "8080",
            "localhost",
            "example.com:80",
            "localhost:x",
            "localhost:70000",
            "",
        ] {
            assert!(
                parse_listen(bad)
                    .unwrap_err()
                    .contains("is not a listen address"),
                "{bad}"
            );
        }
    }
}
