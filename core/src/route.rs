//! Routing: which upstream serves a request target, and the target the
//! upstream sees.
//!
//! A route maps a path prefix on the listen side to a path prefix on the
//! upstream. Prefixes match on segment boundaries (`/mcp` serves `/mcp`,
//! `/mcp/x` and `/mcp?q`, never `/mcpx`); the longest prefix wins.
//! `/.well-known/*` goes, unchanged, to the origin of the route that claims it,
//! because OAuth discovery (RFC 9728) looks there, not under the MCP path.

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
}

/// A set of routes.
#[derive(Debug, Clone, Default)]
pub struct Router {
    routes: Vec<Route>,
}

impl Router {
    /// A router over `routes`, tried longest prefix first.
    pub fn new(routes: Vec<Route>) -> Self {
        Router { routes }
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
