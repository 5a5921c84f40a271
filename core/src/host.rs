//! Host names and IP literals as sluice reads them everywhere: upstream
//! URLs, `allowed_hosts` and `allowed_origins` entries. One reader, strict:
//! anything URL parsers disagree on (numeric names that are not dotted
//! quads, unbracketed IPv6 in a URL) is refused rather than normalised.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A host: a DNS name or an IP literal.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Host {
    /// A DNS name, lower-cased (resolve it; use it as the TLS server name).
    Name(String),
    /// A literal IPv4 or IPv6 address (connect to it directly).
    Ip(IpAddr),
}

/// Formats the host as it appears in a URL or a `Host` header: IPv6 in
/// brackets.
impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Name(name) => f.write_str(name),
            Host::Ip(IpAddr::V4(ip)) => write!(f, "{ip}"),
            Host::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
        }
    }
}

/// Parses a host as written in a URL (IPv6 in brackets), lower-casing names.
pub fn parse_host(host: &str) -> Result<Host, String> {
    if let Some(inner) = host.strip_prefix('[') {
        let inner = inner.strip_suffix(']').unwrap_or(inner);
        return inner
            .parse::<Ipv6Addr>()
            .map(|ip| Host::Ip(IpAddr::V6(ip)))
            .map_err(|_| format!("[{inner}] is not an IPv6 address"));
    }
    if host.is_empty() {
        return Err("the host is empty".into());
    }
    // A name whose last label is numeric is an IPv4 address to every URL
    // parser; anything but a plain dotted quad there ("1.2.3", "0x7f.1",
    // "010.0.0.1") is read differently by different parsers, so refuse it.
    let trimmed = host.strip_suffix('.').unwrap_or(host);
    let last_label = trimmed.rsplit('.').next().unwrap_or(trimmed);
    let numeric = !last_label.is_empty() && last_label.bytes().all(|b| b.is_ascii_digit());
    if numeric || last_label.starts_with("0x") || last_label.starts_with("0X") {
        return trimmed
            .parse::<Ipv4Addr>()
            .map(|ip| Host::Ip(IpAddr::V4(ip)))
            .map_err(|_| format!("{host:?} is not a valid IPv4 address (write four decimal numbers, e.g. 127.0.0.1)"));
    }
    check_dns_name(host)?;
    Ok(Host::Name(host.to_ascii_lowercase()))
}

/// Letters, digits, `-` and `_` in dot-separated labels of 1–63 bytes, 253
/// in all; a trailing dot is allowed.
pub fn check_dns_name(name: &str) -> Result<(), String> {
    let bare = name.strip_suffix('.').unwrap_or(name);
    let bad = |why: &str| Err(format!("{name:?} is not a valid host name ({why})"));
    if bare.is_empty() || bare.len() > 253 {
        return bad("it must be 1-253 characters");
    }
    for label in bare.split('.') {
        if label.is_empty() || label.len() > 63 {
            return bad("each dot-separated part must be 1-63 characters");
        }
        if let Some(c) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
        {
            return bad(&format!("{c:?} is not allowed"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return bad("a part may not start or end with '-'");
        }
    }
    Ok(())
}
