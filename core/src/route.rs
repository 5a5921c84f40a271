//! Routing: which upstream serves a request target, and the target the
//! upstream sees.
//!
//! A route maps a path prefix on the listen side to a path prefix on the
//! upstream. Prefixes match on segment boundaries (`/mcp` serves `/mcp`,
//! `/mcp/x` and `/mcp?q`, never `/mcpx`); the longest prefix wins.
//! `/.well-known/*` goes, unchanged, to the origin of the route that claims it,
//! because OAuth discovery (RFC 9728) looks there, not under the MCP path.
//!
//! Before any of that, [`check_path`] refuses a path that a server behind
//! sluice could read as another path: dot-segments and encoded separators.
//! Prefix matching is on the bytes as sent, so such a path would be routed by
//! one reading and served by another.

/// Why a request path is refused before routing. Each is a client error (400).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PathError {
    /// A `.` or `..` segment, in any spelling: plain, percent-encoded in any
    /// case (`%2e`, `.%2E`), or with `;` parameters (`..;x`, `.;`).
    DotSegment,
    /// A percent-encoded `/` or `\` (`%2F`, `%5c`): a server that decodes
    /// before it splits the path sees other segments than sluice routed.
    EncodedSeparator,
    /// A literal `\`, which some servers treat as `/`.
    Backslash,
}

impl PathError {
    /// The status to answer: 400.
    pub fn status(&self) -> u16 {
        400
    }
}

impl core::fmt::Display for PathError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            PathError::DotSegment => "dot-segment in the request path",
            PathError::EncodedSeparator => "percent-encoded / or \\ in the request path",
            PathError::Backslash => "backslash in the request path",
        })
    }
}

impl std::error::Error for PathError {}

/// Refuse a request path a server behind sluice could read as another path.
/// `target` is origin-form (`/path?query`); only the path is checked.
///
/// Routing matches prefixes on the path as sent, and the upstream gets it
/// verbatim under the route's upstream path. If the upstream (or a server in
/// front of it) removed dot-segments, `/tenant/../../tenant-b/mcp` routed to
/// `/tenant` would be served from another tenant's prefix. So sluice refuses,
/// rather than normalises, every path holding:
/// - a `.` or `..` segment, after percent-decoding and with any `;`
///   parameters cut off (`%2e%2E`, `.%2e`, `..;x`, `.;`, `%2e%3b`);
/// - a percent-encoded `/` or `\` (`%2f`, `%5C`), which a server that
///   decodes before splitting reads as a separator;
/// - a literal `\`, which some servers read as `/`.
///
/// No MCP client sends these: an MCP endpoint is one fixed URL, and a client
/// resolves relative references (RFC 3986 §5.2), which removes dot-segments,
/// before it sends. Empty segments (`//`) are left alone: they are not
/// dot-segments, and a path with them still starts with the route's prefix.
pub fn check_path(target: &str) -> Result<(), PathError> {
    let path = target.split_once('?').map_or(target, |(path, _)| path);
    let bytes = path.as_bytes();
    if bytes.contains(&b'\\') {
        return Err(PathError::Backslash);
    }
    let encoded_separator = bytes.windows(3).any(|w| {
        w[0] == b'%'
            && (matches!(w[1..], [b'2', b'f' | b'F']) || matches!(w[1..], [b'5', b'c' | b'C']))
    });
    if encoded_separator {
        return Err(PathError::EncodedSeparator);
    }
    if bytes.split(|&b| b == b'/').any(is_dot_segment) {
        return Err(PathError::DotSegment);
    }
    Ok(())
}

/// Whether a segment is `.` or `..` once percent-decoded and stripped of `;`
/// parameters.
fn is_dot_segment(segment: &[u8]) -> bool {
    let mut name = decoded(segment).take_while(|&b| b != b';');
    matches!(
        (name.next(), name.next(), name.next()),
        (Some(b'.'), None, _) | (Some(b'.'), Some(b'.'), None)
    )
}

/// The bytes of `s` with every `%XX` decoded (a `%` without two hex digits
/// stays as it is).
fn decoded(s: &[u8]) -> impl Iterator<Item = u8> + '_ {
    let mut i = 0;
    core::iter::from_fn(move || {
        let b = *s.get(i)?;
        let hex = |at: usize| s.get(at).and_then(|&c| (c as char).to_digit(16));
        if b == b'%'
            && let (Some(hi), Some(lo)) = (hex(i + 1), hex(i + 2))
        {
            i += 3;
            return Some((hi * 16 + lo) as u8);
        }
        i += 1;
        Some(b)
    })
}

/// What a routed request is for. It decides the methods the request may
/// use ([`Endpoint::check_method`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// A route's MCP endpoint: Streamable HTTP (POST a message, GET a
    /// stream, DELETE a session), and the client side of the legacy bridge.
    /// A route mounted under `/.well-known` is an MCP endpoint too.
    Mcp,
    /// `/.well-known/*` passed, unchanged, to the `well_known` route's origin:
    /// OAuth discovery (RFC 9728, RFC 8414), which is read with GET.
    WellKnown,
}

impl Endpoint {
    /// The methods this endpoint takes: the `Allow` header of a 405.
    pub fn allow(self) -> &'static str {
        match self {
            Endpoint::Mcp => "POST, GET, DELETE, OPTIONS",
            Endpoint::WellKnown => "GET, HEAD, OPTIONS",
        }
    }

    /// Whether a request with `method` (and a body, if `has_body`) may go to
    /// this endpoint's upstream.
    ///
    /// Request hooks read POST bodies, so on an MCP endpoint a message may
    /// travel in a POST only: any other method that reached the upstream with
    /// a body (`PUT`, a `GET` with a body, a lowercase `post`) would carry a
    /// `tools/call` past every hook. So an MCP endpoint takes `POST`, and
    /// `GET`, `DELETE` and `OPTIONS` without a body (no Content-Length above
    /// 0, no Transfer-Encoding). `OPTIONS` is passed through for CORS
    /// preflight, which sluice does not answer itself; it carries no message,
    /// so no hook is bypassed. A `/.well-known/*` document is read with
    /// `GET`, `HEAD` or `OPTIONS`, without a body. Method names are
    /// case-sensitive (RFC 9110 §9.1): `post` is not `POST`.
    pub fn check_method(self, method: &str, has_body: bool) -> Result<(), MethodError> {
        let bodyless = match (self, method) {
            (Endpoint::Mcp, "POST") => return Ok(()),
            (Endpoint::Mcp, "GET" | "DELETE" | "OPTIONS") => true,
            (Endpoint::WellKnown, "GET" | "HEAD" | "OPTIONS") => true,
            _ => false,
        };
        if !bodyless {
            Err(MethodError::NotAllowed(self))
        } else if has_body {
            Err(MethodError::BodyNotAllowed(self))
        } else {
            Ok(())
        }
    }
}

/// A request its endpoint does not take. Each is a 405 whose `Allow` header
/// is [`MethodError::allow`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MethodError {
    /// A method the endpoint does not take.
    NotAllowed(Endpoint),
    /// A body on a method that carries none there.
    BodyNotAllowed(Endpoint),
}

impl MethodError {
    /// The status to answer: 405.
    pub fn status(&self) -> u16 {
        405
    }

    /// The methods the endpoint takes, for the `Allow` header.
    pub fn allow(&self) -> &'static str {
        match self {
            MethodError::NotAllowed(e) | MethodError::BodyNotAllowed(e) => e.allow(),
        }
    }
}

impl core::fmt::Display for MethodError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            MethodError::NotAllowed(Endpoint::Mcp) => {
                f.write_str("method not allowed on an MCP endpoint")
            }
            MethodError::NotAllowed(Endpoint::WellKnown) => {
                f.write_str("method not allowed on /.well-known")
            }
            MethodError::BodyNotAllowed(Endpoint::Mcp) => {
                f.write_str("a body on an MCP endpoint goes in a POST only")
            }
            MethodError::BodyNotAllowed(Endpoint::WellKnown) => {
                f.write_str("a request to /.well-known carries no body")
            }
        }
    }
}

impl std::error::Error for MethodError {}

/// One route, as resolved from configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The path prefix served on the listen address, starting with `/`.
    pub prefix: String,
    /// The path prefix on the upstream that `prefix` maps to.
    pub upstream_path: String,
    /// A query the upstream URL carries; it goes first, joined to the
    /// client's query with `&`.
    pub upstream_query: Option<String>,
    /// Whether `/.well-known/*` requests go to this route's upstream.
    pub well_known: bool,
    /// The `Host` header value the upstream expects (`host[:port]`).
    pub upstream_host: String,
}

/// The result of routing one request target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// Index of the route in the router.
    pub route: usize,
    /// The origin-form target to send upstream.
    pub upstream_target: String,
    /// What the request is for: an MCP endpoint, or a `/.well-known/*`
    /// document passed to the `well_known` route's origin.
    pub endpoint: Endpoint,
}

/// A set of routes.
#[derive(Debug, Clone, Default)]
pub struct Router {
    routes: Vec<Route>,
    /// The gate of each protected route, by index (shorter than `routes`
    /// when the last ones have none).
    gates: Vec<Option<std::sync::Arc<crate::auth::Gate>>>,
    /// Fields the operator sets on every request to a route's upstream
    /// (credentials for it), by index (shorter when the last have none).
    upstream_headers: Vec<Vec<crate::http1::Header>>,
}

impl Router {
    /// A router over `routes`, tried longest prefix first.
    pub fn new(routes: Vec<Route>) -> Self {
        Router {
            routes,
            gates: Vec::new(),
            upstream_headers: Vec::new(),
        }
    }

    /// Puts route `route` behind `gate`: its MCP requests need credentials
    /// the driver judges (see [`crate::auth`]), and its metadata document
    /// is served.
    pub fn protect(&mut self, route: usize, gate: crate::auth::Gate) {
        if self.gates.len() <= route {
            self.gates.resize(route + 1, None);
        }
        self.gates[route] = Some(std::sync::Arc::new(gate));
    }

    /// Sets `headers` on every request route `route` forwards upstream, in
    /// place of any field of the same name the client sent: the operator's
    /// credentials for the upstream, never the client's.
    pub fn set_upstream_headers(&mut self, route: usize, headers: Vec<crate::http1::Header>) {
        if self.upstream_headers.len() <= route {
            self.upstream_headers.resize(route + 1, Vec::new());
        }
        self.upstream_headers[route] = headers;
    }

    /// The fields route `route` sets on its upstream requests.
    pub fn upstream_headers(&self, route: usize) -> &[crate::http1::Header] {
        self.upstream_headers.get(route).map_or(&[], Vec::as_slice)
    }

    /// The gate of route `route`, if it is protected.
    pub fn gate(&self, route: usize) -> Option<&crate::auth::Gate> {
        self.gates.get(route)?.as_deref()
    }

    /// The protected route that `path` reaches when it is read loosely
    /// (percent-encoded unreserved characters decoded, case folded, `//`
    /// and `;` parameters dropped), when the router sends it to another
    /// route as written: `/MCP`, `//mcp`, `/%6Dcp` or `/mcp;x` routed to an
    /// open `/` while `/mcp` is protected. Such a request must be refused:
    /// the upstream behind the open route may well serve `/mcp` for it. A
    /// path that reads loosely as the route it is sent to (an open
    /// `/mcp/public` under a protected `/mcp`) is not shadowed.
    pub fn shadowed_gate(&self, path: &str, routed_to: usize) -> Option<usize> {
        if self.gates.iter().all(Option::is_none) {
            return None;
        }
        let loose = loose_path(path);
        let matches: Vec<(usize, usize)> = self
            .routes
            .iter()
            .enumerate()
            .filter_map(|(i, r)| {
                let prefix = loose_path(&r.prefix);
                strip_segment_prefix(&loose, &prefix)
                    .map(|_| (i, prefix.trim_end_matches('/').len()))
            })
            .collect();
        let longest = matches.iter().map(|&(_, len)| len).max()?;
        matches
            .iter()
            .filter(|&&(i, len)| len == longest && i != routed_to)
            .map(|&(i, _)| i)
            .find(|&i| self.gate(i).is_some())
    }

    /// The HTTP answer serving a protected route's metadata document at
    /// `path` (no query), if one is there.
    pub fn metadata_document(&self, path: &str) -> Option<&bytes::Bytes> {
        self.gates
            .iter()
            .flatten()
            .find_map(|g| g.document_at(path))
    }

    /// The routes, in configuration order.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// Route an origin-form target (`/path?query`). `None` means 404.
    pub fn resolve(&self, target: &str) -> Option<Resolved> {
        let (path, query) = match target.find('?') {
            Some(i) => target.split_at(i),
            None => (target, ""),
        };
        if !path.starts_with('/') {
            return None;
        }
        let best = self
            .routes
            .iter()
            .enumerate()
            .filter_map(|(i, r)| strip_segment_prefix(path, &r.prefix).map(|rest| (i, r, rest)))
            .max_by_key(|(_, r, _)| r.prefix.trim_end_matches('/').len());
        let is_well_known = path == "/.well-known" || path.starts_with("/.well-known/");
        // A route mounted under /.well-known itself keeps its requests.
        let own_route = best.is_some_and(|(_, r, _)| r.prefix.starts_with("/.well-known"));
        if is_well_known
            && !own_route
            && let Some(i) = self.routes.iter().position(|r| r.well_known)
        {
            return Some(Resolved {
                route: i,
                upstream_target: target.to_owned(),
                endpoint: Endpoint::WellKnown,
            });
        }
        if let Some((route, r, rest)) = best {
            let rest = if path == r.prefix { "" } else { rest };
            let mut upstream_target = join_path(&r.upstream_path, rest);
            let client_query = query.strip_prefix('?').filter(|q| !q.is_empty());
            match (&r.upstream_query, client_query) {
                (Some(a), Some(b)) => upstream_target.push_str(&format!("?{a}&{b}")),
                (Some(a), None) => upstream_target.push_str(&format!("?{a}")),
                (None, _) => upstream_target.push_str(query),
            }
            return Some(Resolved {
                route,
                upstream_target,
                endpoint: Endpoint::Mcp,
            });
        }
        None
    }
}

/// `path` minus `prefix` when `prefix` ends on a segment boundary of `path`.
fn strip_segment_prefix<'a>(path: &'a str, prefix: &str) -> Option<&'a str> {
    let prefix = prefix.trim_end_matches('/');
    let rest = path.strip_prefix(prefix)?;
    (rest.is_empty() || rest.starts_with('/')).then_some(rest)
}

/// A path as the loosest upstream might read it: percent-encoded
/// unreserved characters decoded, ASCII lower-cased, runs of `/` made one,
/// `;` parameters dropped from each segment.
fn loose_path(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(hi), Some(lo)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            )
        {
            let c = (hi * 16 + lo) as u8;
            if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~') {
                decoded.push(c);
                i += 3;
                continue;
            }
        }
        decoded.push(bytes[i]);
        i += 1;
    }
    let text = String::from_utf8_lossy(&decoded).to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    for segment in text.split('/').filter(|s| !s.is_empty()) {
        out.push('/');
        out.push_str(segment.split(';').next().unwrap_or(""));
    }
    if out.is_empty() || text.ends_with('/') {
        out.push('/');
    }
    out
}

fn join_path(base: &str, rest: &str) -> String {
    let base = if rest.is_empty() {
        base
    } else {
        base.trim_end_matches('/')
    };
    let mut out = String::with_capacity(base.len() + rest.len() + 1);
    out.push_str(base);
    out.push_str(rest);
    if out.is_empty() {
        out.push('/');
    }
    out
}

#[cfg(test)]
mod gate_tests {
    use super::*;

    fn route(prefix: &str) -> Route {
        Route {
            prefix: prefix.into(),
            upstream_path: prefix.into(),
            upstream_query: None,
            well_known: false,
            upstream_host: "up".into(),
        }
    }

    #[test]
    fn loose_spellings() {
        assert_eq!(loose_path("/MCP"), "/mcp");
        assert_eq!(loose_path("//mcp//x"), "/mcp/x");
        assert_eq!(loose_path("/%6Dcp/"), "/mcp/");
        assert_eq!(loose_path("/mcp;jsessionid=1/x"), "/mcp/x");
        assert_eq!(loose_path("/a%2Fb"), "/a%2fb");
        assert_eq!(loose_path("/"), "/");
    }

    #[test]
    fn a_variant_of_a_protected_path_routed_elsewhere_is_shadowed() {
        let r = Resource::parse("http://h/mcp").unwrap();
        let mut router = Router::new(vec![route("/"), route("/mcp")]);
        assert_eq!(router.shadowed_gate("/MCP", 0), None, "no gate yet");
        router.protect(1, crate::auth::Gate::new(&r, "/mcp", &[], &[], false));
        for variant in ["/MCP", "//mcp", "/%6dcp", "/mcp;x", "/Mcp/x", "///mcp/"] {
            let to = router.resolve(variant).unwrap().route;
            assert_eq!(to, 0, "{variant} goes to the open route");
            assert_eq!(router.shadowed_gate(variant, to), Some(1), "{variant}");
        }
        for other in ["/mcpx", "/other", "/"] {
            assert_eq!(router.shadowed_gate(other, 0), None, "{other}");
        }
        assert_eq!(router.shadowed_gate("/mcp", 1), None);
        assert!(router.gate(1).is_some() && router.gate(0).is_none());

        // An open route under a protected one keeps its own requests, in
        // any spelling that still reads as it.
        let mut router = Router::new(vec![route("/mcp"), route("/mcp/public")]);
        router.protect(0, crate::auth::Gate::new(&r, "/mcp", &[], &[], false));
        for path in ["/mcp/public", "/mcp/public/x", "/MCP/public"] {
            let to = router.resolve(path).map(|r| r.route);
            if to == Some(1) {
                assert_eq!(router.shadowed_gate(path, 1), None, "{path}");
            }
        }
        // But a spelling of the protected route that lands on the open one
        // is refused.
        let mut router = Router::new(vec![route("/mcp"), route("/")]);
        router.protect(0, crate::auth::Gate::new(&r, "/mcp", &[], &[], false));
        assert_eq!(router.shadowed_gate("/%6Dcp/public", 1), Some(0));
    }

    use crate::auth::Resource;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router() -> Router {
        Router::new(vec![
            Route {
                prefix: "/mcp".into(),
                upstream_path: "/mcp".into(),
                well_known: true,
                upstream_host: "a".into(),
                upstream_query: None,
            },
            Route {
                prefix: "/mcp/deep".into(),
                upstream_path: "/other".into(),
                well_known: false,
                upstream_host: "b".into(),
                upstream_query: None,
            },
            Route {
                prefix: "/x".into(),
                upstream_path: "/".into(),
                well_known: false,
                upstream_host: "b".into(),
                upstream_query: None,
            },
        ])
    }

    fn one(prefix: &str, upstream_path: &str, query: Option<&str>) -> Router {
        Router::new(vec![Route {
            prefix: prefix.into(),
            upstream_path: upstream_path.into(),
            upstream_query: query.map(Into::into),
            well_known: false,
            upstream_host: "h".into(),
        }])
    }

    #[test]
    fn upstream_targets_join_paths_and_queries() {
        let cases = [
            (one("/mcp", "/v1/mcp", Some("k=1")), "/mcp", "/v1/mcp?k=1"),
            (
                one("/mcp", "/v1/mcp", Some("k=1")),
                "/mcp/x?y=2",
                "/v1/mcp/x?k=1&y=2",
            ),
            (one("/mcp", "/v1/mcp", Some("k=1")), "/mcp?", "/v1/mcp?k=1"),
            (one("/", "/mcp", None), "/", "/mcp"),
            (one("/", "/mcp", None), "/x", "/mcp/x"),
            (one("/", "/mcp", None), "/?a", "/mcp?a"),
            (one("/a/", "/b/", None), "/a/", "/b/"),
            (one("/a/", "/b/", None), "/a/c", "/b/c"),
            (one("/mcp", "/", None), "/mcp", "/"),
            (one("/mcp", "/", None), "/mcp/x", "/x"),
        ];
        for (router, target, want) in cases {
            let got = router.resolve(target).map(|r| r.upstream_target);
            assert_eq!(got.as_deref(), Some(want), "{target}");
        }
    }

    #[test]
    fn paths_a_server_could_read_as_another_are_refused() {
        use PathError::*;
        let refused = [
            ("/tenant/../../tenant-b/mcp", DotSegment),
            ("/mcp/..", DotSegment),
            ("/mcp/.", DotSegment),
            ("/mcp/./x", DotSegment),
            ("/..", DotSegment),
            ("/.", DotSegment),
            ("/mcp/%2e%2e/x", DotSegment),
            ("/mcp/%2E%2E/x", DotSegment),
            ("/mcp/.%2e/x", DotSegment),
            ("/mcp/%2e./x", DotSegment),
            ("/mcp/%2E/x", DotSegment),
            ("/mcp/..;/x", DotSegment),
            ("/mcp/..;x/y", DotSegment),
            ("/mcp/.;/x", DotSegment),
            ("/mcp/.;a=b", DotSegment),
            ("/mcp/%2e%2e;x/y", DotSegment),
            ("/mcp/..%3b/x", DotSegment),
            ("/mcp/.%3Bjsessionid=1", DotSegment),
            ("/.well-known/../mcp", DotSegment),
            ("/.well-known/%2e%2e/mcp", DotSegment),
            ("/mcp/..?q=1", DotSegment),
            ("/mcp%2f..%2f..%2fother", EncodedSeparator),
            ("/mcp/%2F", EncodedSeparator),
            ("/mcp/a%2fb", EncodedSeparator),
            ("/mcp/a%5cb", EncodedSeparator),
            ("/mcp/a%5Cb", EncodedSeparator),
            ("/mcp\\..\\other", Backslash),
            ("/mcp/a\\b", Backslash),
        ];
        for (target, want) in refused {
            assert_eq!(check_path(target), Err(want), "{target}");
            assert_eq!(want.status(), 400);
        }
        let allowed = [
            "/",
            "/mcp",
            "/mcp/",
            "/mcp//x",
            "//mcp",
            "/mcp/...",
            "/mcp/.../x",
            "/mcp/..a",
            "/mcp/a..",
            "/mcp/.x",
            "/mcp/x.",
            "/mcp/%2e%2e%2e",
            "/mcp/%2ex",
            "/mcp/;/x",
            "/mcp/%",
            "/mcp/%2",
            "/mcp/%2g",
            "/mcp/%252e%252e",
            "/mcp/a%20b",
            "/.well-known/oauth-protected-resource/mcp",
            // Only the path is checked.
            "/mcp?next=/../x",
            "/mcp?p=%2f%5c&q=\\",
            "/mcp?..",
        ];
        for target in allowed {
            assert_eq!(check_path(target), Ok(()), "{target}");
        }
    }

    #[test]
    fn methods_each_endpoint_takes() {
        use Endpoint::*;
        let ok = Ok(());
        let not = |e| Err(MethodError::NotAllowed(e));
        let body = |e| Err(MethodError::BodyNotAllowed(e));
        let cases = [
            (Mcp, "POST", true, ok),
            (Mcp, "POST", false, ok),
            (Mcp, "GET", false, ok),
            (Mcp, "DELETE", false, ok),
            (Mcp, "OPTIONS", false, ok),
            (Mcp, "GET", true, body(Mcp)),
            (Mcp, "DELETE", true, body(Mcp)),
            (Mcp, "OPTIONS", true, body(Mcp)),
            (Mcp, "PUT", true, not(Mcp)),
            (Mcp, "PUT", false, not(Mcp)),
            (Mcp, "PATCH", true, not(Mcp)),
            (Mcp, "post", true, not(Mcp)),
            (Mcp, "Post", true, not(Mcp)),
            (Mcp, "get", false, not(Mcp)),
            (Mcp, "HEAD", false, not(Mcp)),
            (Mcp, "TRACE", false, not(Mcp)),
            (Mcp, "PROPFIND", true, not(Mcp)),
            (Mcp, "CONNECT", false, not(Mcp)),
            (WellKnown, "GET", false, ok),
            (WellKnown, "HEAD", false, ok),
            (WellKnown, "OPTIONS", false, ok),
            (WellKnown, "GET", true, body(WellKnown)),
            (WellKnown, "HEAD", true, body(WellKnown)),
            (WellKnown, "POST", true, not(WellKnown)),
            (WellKnown, "POST", false, not(WellKnown)),
            (WellKnown, "DELETE", false, not(WellKnown)),
            (WellKnown, "get", false, not(WellKnown)),
        ];
        for (endpoint, method, has_body, want) in cases {
            let got = endpoint.check_method(method, has_body);
            assert_eq!(got, want, "{endpoint:?} {method} body={has_body}");
            if let Err(e) = got {
                assert_eq!(e.status(), 405);
                assert_eq!(e.allow(), endpoint.allow());
            }
        }
        assert_eq!(Mcp.allow(), "POST, GET, DELETE, OPTIONS");
        assert_eq!(WellKnown.allow(), "GET, HEAD, OPTIONS");
    }

    #[test]
    fn well_known_passthrough_is_its_own_endpoint() {
        let mut routes = router().routes().to_vec();
        routes.push(Route {
            prefix: "/.well-known/mcp-server".into(),
            upstream_path: "/card".into(),
            well_known: false,
            upstream_host: "c".into(),
            upstream_query: None,
        });
        let r = Router::new(routes);
        let cases = [
            ("/mcp", Endpoint::Mcp),
            ("/x/a", Endpoint::Mcp),
            ("/.well-known", Endpoint::WellKnown),
            (
                "/.well-known/oauth-protected-resource/mcp",
                Endpoint::WellKnown,
            ),
            ("/.well-known/mcp-server", Endpoint::Mcp),
        ];
        for (target, want) in cases {
            assert_eq!(
                r.resolve(target).map(|x| x.endpoint),
                Some(want),
                "{target}"
            );
        }
        // Without a well_known route, /.well-known is a path like any other.
        let r = one("/", "/", None);
        assert_eq!(
            r.resolve("/.well-known/x").map(|x| x.endpoint),
            Some(Endpoint::Mcp)
        );
    }

    #[test]
    fn routes_on_segment_boundaries_longest_first() {
        let r = router();
        let cases = [
            ("/mcp", Some((0, "/mcp"))),
            ("/mcp?a=1", Some((0, "/mcp?a=1"))),
            ("/mcp/", Some((0, "/mcp/"))),
            ("/mcpx", None),
            ("/mcp/deep/1", Some((1, "/other/1"))),
            ("/mcp/deeper", Some((0, "/mcp/deeper"))),
            ("/x", Some((2, "/"))),
            ("/x/a", Some((2, "/a"))),
            (
                "/.well-known/oauth-protected-resource/mcp",
                Some((0, "/.well-known/oauth-protected-resource/mcp")),
            ),
            ("/", None),
            ("*", None),
            ("http://evil/mcp", None),
        ];
        for (target, want) in cases {
            let got = r.resolve(target).map(|x| (x.route, x.upstream_target));
            let want = want.map(|(i, t)| (i, t.to_string()));
            assert_eq!(got, want, "target {target}");
        }
    }
}
