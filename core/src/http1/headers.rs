//! Field lookup, connection persistence and hop-by-hop fields (RFC 9110
//! §7.6.1, RFC 9112 §9.3).

use super::syntax::trim_ows;
use super::{Header, Version};

/// Fields that describe one connection, never the message: a proxy drops
/// them before forwarding, along with any field the `Connection` header
/// names.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Fields a `Connection` header may not make us drop: removing
/// `Content-Length` on the say-so of the sender would change how the next
/// hop frames the body (a smuggling primitive), and `Host` is required.
const NEVER_NOMINATED: &[&str] = &["content-length", "host"];

/// The first field called `name` (ASCII case-insensitive).
pub fn find_header<'a>(headers: &'a [Header], name: &str) -> Option<&'a Header> {
    headers.iter().find(|h| h.is(name))
}

/// The values of every field called `name`, in order.
pub fn header_values<'a>(
    headers: &'a [Header],
    name: &'a str,
) -> impl Iterator<Item = &'a [u8]> + 'a {
    headers
        .iter()
        .filter(move |h| h.is(name))
        .map(|h| h.value.as_slice())
}

/// The elements of all comma-separated `Connection` values, trimmed, empty
/// ones skipped.
fn connection_tokens(headers: &[Header]) -> impl Iterator<Item = &[u8]> {
    header_values(headers, "connection")
        .flat_map(|v| v.split(|&b| b == b','))
        .map(trim_ows)
        .filter(|t| !t.is_empty())
}

/// Whether any `Connection` field lists `token` (case-insensitive), e.g.
/// `close`, `keep-alive`, `upgrade`.
pub fn connection_has_token(headers: &[Header], token: &str) -> bool {
    connection_tokens(headers).any(|t| t.eq_ignore_ascii_case(token.as_bytes()))
}

/// Whether the connection must close after the message with these fields
/// (RFC 9112 §9.3): `close` always closes; otherwise HTTP/1.1 persists and
/// HTTP/1.0 persists only with `keep-alive`.
///
/// Framing can force a close too: a response read [`UntilClose`] ends the
/// connection, and so does any framing error.
///
/// [`UntilClose`]: super::BodyFraming::UntilClose
pub fn connection_close(version: Version, headers: &[Header]) -> bool {
    if connection_has_token(headers, "close") {
        return true;
    }
    match version {
        Version::Http11 => false,
        Version::Http10 => !connection_has_token(headers, "keep-alive"),
    }
}

/// Remove the hop-by-hop fields: `Connection`, `Keep-Alive`,
/// `Proxy-Connection`, `TE`, `Trailer`, `Transfer-Encoding`, `Upgrade`, and
/// every field a `Connection` header names, except `Content-Length` and
/// `Host`, which stay whatever `Connection` says.
///
/// The caller then writes its own framing fields for the next hop
/// (`Transfer-Encoding: chunked` when it re-chunks).
///
/// `Proxy-Authorization` and `Proxy-Authenticate` are left alone: RFC 9110
/// §11.7 lets a proxy relay them. See [`remove_proxy_auth`] for why sluice
/// probably wants them gone anyway.
pub fn remove_hop_by_hop(headers: &mut Vec<Header>) {
    let nominated: Vec<Vec<u8>> = connection_tokens(headers)
        .map(<[u8]>::to_ascii_lowercase)
        .filter(|t| !NEVER_NOMINATED.iter().any(|n| n.as_bytes() == t.as_slice()))
        .collect();
    headers.retain(|h| {
        !HOP_BY_HOP.iter().any(|n| h.is(n))
            && !nominated
                .iter()
                .any(|n| n.eq_ignore_ascii_case(h.name.as_bytes()))
    });
}

/// Whether [`remove_hop_by_hop`] would remove `field` from `headers`: for
/// writing a head straight from the parsed one, without a filtered copy.
pub fn is_hop_by_hop(headers: &[Header], field: &Header) -> bool {
    HOP_BY_HOP.iter().any(|n| field.is(n))
        || (!NEVER_NOMINATED.iter().any(|n| field.is(n))
            && connection_tokens(headers).any(|t| t.eq_ignore_ascii_case(field.name.as_bytes())))
}

/// Whether a request writer owns the field `name` for the next hop: `Host`,
/// `Content-Length` and `Expect` (the framing it writes itself) and the
/// hop-by-hop fields. Nobody else's value for one goes upstream: not the
/// client's, nor an operator's `upstream_headers`.
pub fn is_writer_owned(name: &str) -> bool {
    ["host", "content-length", "expect"]
        .iter()
        .chain(HOP_BY_HOP)
        .any(|n| n.eq_ignore_ascii_case(name))
}

/// Remove `Proxy-Authorization` and `Proxy-Authenticate`.
///
/// They address the nearest proxy. A reverse proxy that does not itself
/// authenticate with them should drop them: forwarding
/// `Proxy-Authorization` upstream would leak credentials meant for this hop,
/// and a `Proxy-Authenticate` from the origin would make the client think
/// this proxy asked for them.
pub fn remove_proxy_auth(headers: &mut Vec<Header>) {
    headers.retain(|h| !h.is("proxy-authorization") && !h.is("proxy-authenticate"));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(name: &str, value: &str) -> Header {
        Header::new(name, value.as_bytes())
    }

    #[test]
    fn the_writer_owns_host_the_framing_and_the_hop_by_hop_fields() {
        for owned in [
            "Host",
            "content-length",
            "EXPECT",
            "Transfer-Encoding",
            "te",
            "Upgrade",
        ] {
            assert!(is_writer_owned(owned), "{owned}");
        }
        for theirs in [
            "Authorization",
            "Accept",
            "Mcp-Session-Id",
            "X-Tenant",
            "hostx",
        ] {
            assert!(!is_writer_owned(theirs), "{theirs}");
        }
    }

    #[test]
    fn is_hop_by_hop_agrees_with_remove_hop_by_hop() {
        let heads = [
            vec![
                h("Host", "a"),
                h("Connection", "keep-alive, X-Trace, content-length, HOST"),
                h("X-Trace", "1"),
                h("x-trace", "2"),
                h("Content-Length", "5"),
                h("Keep-Alive", "timeout=5"),
                h("Transfer-Encoding", "chunked"),
                h("Content-Type", "application/json"),
            ],
            vec![
                h("Upgrade", "websocket"),
                h("TE", "trailers"),
                h("Accept", "*/*"),
            ],
            vec![
                h("Connection", ""),
                h("Connection", " , close ,"),
                h("close", "x"),
            ],
        ];
        for headers in heads {
            let mut removed = headers.clone();
            remove_hop_by_hop(&mut removed);
            let kept: Vec<Header> = headers
                .iter()
                .filter(|f| !is_hop_by_hop(&headers, f))
                .cloned()
                .collect();
            assert_eq!(kept, removed, "{headers:?}");
        }
    }

    #[test]
    fn removes_fixed_and_nominated() {
        let mut headers = vec![
            h("Host", "a"),
            h("Connection", "keep-alive, X-Foo ,,x-bar"),
            h("connection", "Upgrade"),
            h("Keep-Alive", "timeout=5"),
            h("X-FOO", "1"),
            h("X-Bar", "2"),
            h("X-Baz", "3"),
            h("Upgrade", "websocket"),
            h("TE", "trailers"),
            h("Trailer", "X-Checksum"),
            h("Transfer-Encoding", "chunked"),
            h("Proxy-Connection", "keep-alive"),
            h("Proxy-Authorization", "Basic x"),
        ];
        remove_hop_by_hop(&mut headers);
        let names: Vec<_> = headers.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names, ["Host", "X-Baz", "Proxy-Authorization"]);
        remove_proxy_auth(&mut headers);
        assert_eq!(headers.len(), 2);
    }

    #[test]
    fn connection_cannot_remove_length_or_host() {
        let mut headers = vec![
            h("Host", "a"),
            h("Content-Length", "5"),
            h("Connection", "content-length, HOST, x-a"),
            h("X-A", "1"),
        ];
        remove_hop_by_hop(&mut headers);
        let names: Vec<_> = headers.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names, ["Host", "Content-Length"]);
    }

    #[test]
    fn persistence_by_version() {
        let none: Vec<Header> = vec![];
        assert!(!connection_close(Version::Http11, &none));
        assert!(connection_close(Version::Http10, &none));
        let ka = vec![h("Connection", "Keep-Alive")];
        assert!(!connection_close(Version::Http10, &ka));
        let close = vec![h("Connection", "foo"), h("Connection", " CLOSE ")];
        assert!(connection_close(Version::Http11, &close));
        let both = vec![h("Connection", "keep-alive, close")];
        assert!(connection_close(Version::Http10, &both));
    }
}
