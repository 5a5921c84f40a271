//! What the exchange needs to know of a protected route, and the verdict
//! a driver hands back once it has judged a token.

use bytes::Bytes;

use super::metadata::{Resource, document, well_known_path};
use super::{Denial, Identity};

/// A route that only callers with credentials may pass: where its
/// metadata is, what it says, and whether the token goes upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gate {
    resource_metadata: String,
    /// (path on the listener, the HTTP answer serving the document).
    documents: Vec<(String, Bytes)>,
    forward_token: bool,
}

impl Gate {
    /// The gate of a route served at `route_path` for `resource`. Its
    /// metadata document is served at the RFC 9728 path of the route's
    /// path and, when it differs, of the resource's path.
    pub fn new(
        resource: &Resource,
        route_path: &str,
        authorization_servers: &[String],
        scopes_supported: &[String],
        forward_token: bool,
    ) -> Gate {
        let doc = document(resource, authorization_servers, scopes_supported);
        let answer = Bytes::from(document_answer(&doc));
        let mut documents = vec![(well_known_path(route_path), answer.clone())];
        let resource_path = well_known_path(resource.path());
        if documents.iter().all(|(p, _)| *p != resource_path) {
            documents.push((resource_path, answer));
        }
        Gate {
            resource_metadata: resource.metadata_url(),
            documents,
            forward_token,
        }
    }

    /// The URL challenges name as `resource_metadata`.
    pub fn resource_metadata(&self) -> &str {
        &self.resource_metadata
    }

    /// Whether the client's `Authorization` goes upstream.
    pub fn forward_token(&self) -> bool {
        self.forward_token
    }

    /// The paths its metadata document is served at.
    pub fn document_paths(&self) -> impl Iterator<Item = &str> {
        self.documents.iter().map(|(p, _)| p.as_str())
    }

    /// The whole HTTP answer for a GET of `path`, if the document is there.
    pub fn document_at(&self, path: &str) -> Option<&Bytes> {
        self.documents
            .iter()
            .find(|(p, _)| p == path)
            .map(|(_, answer)| answer)
    }
}

/// A 200 carrying a metadata document. Any origin may read it (a browser
/// client discovers the authorization server from another origin), and it
/// closes the connection like every answer sluice makes itself.
fn document_answer(doc: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nCache-Control: max-age=300\r\n\
         Access-Control-Allow-Origin: *\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        doc.len()
    )
    .into_bytes();
    out.extend_from_slice(doc);
    out
}

/// The answer to a CORS preflight of a metadata document.
pub const DOCUMENT_PREFLIGHT: &[u8] =
    b"HTTP/1.1 204 No Content\r\nAccess-Control-Allow-Origin: *\r\n\
Access-Control-Allow-Methods: GET, HEAD, OPTIONS\r\nAccess-Control-Allow-Headers: *\r\n\
Access-Control-Max-Age: 86400\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

/// A token the driver must judge before the request goes any further
/// ([`crate::exchange::Output::Authenticate`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthCall {
    /// The route, by index.
    pub route: usize,
    /// The bearer token, as sent (a token68).
    pub token: String,
}

/// What the driver found about a token.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// A valid token or API key: the caller.
    Allow(Identity),
    /// A valid token, and the token the upstream gets in its place (one
    /// exchanged for it): the request goes with `Authorization: Bearer`
    /// and this token, whatever else it carried.
    AllowWith(Identity, UpstreamToken),
    /// Refused: the client gets the denial's status and challenge.
    Deny(Denial),
    /// The token could not be judged: the client gets the outage's status
    /// and a JSON-RPC error; what failed goes to the log.
    Unavailable(Outage),
}

/// A token for the upstream. Its `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct UpstreamToken(pub String);

impl std::fmt::Debug for UpstreamToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UpstreamToken(<redacted>)")
    }
}

/// Why a token could not be judged, or the upstream's token not had. Not
/// the client's fault: no challenge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outage {
    /// No signing keys were ever fetched.
    NoKeys,
    /// The introspection endpoint could not be reached, or its answer not
    /// read.
    Introspection,
    /// The token endpoint could not be reached for a token exchange, or
    /// could not answer (5xx).
    TokenExchangeUnavailable,
    /// The token endpoint answered a token exchange, but gave no usable
    /// token (a refusal, or an answer that is not one).
    TokenExchangeRefused,
}

impl Outage {
    /// The HTTP status: 503 while the authorization server is away, 502
    /// when it answered but gave no token for the upstream.
    pub fn status(self) -> u16 {
        match self {
            Outage::TokenExchangeRefused => 502,
            _ => 503,
        }
    }

    /// The JSON-RPC error message.
    pub fn message(self) -> &'static str {
        match self {
            Outage::NoKeys => "authorization is unavailable: no signing keys",
            Outage::Introspection => {
                "authorization is unavailable: the token cannot be introspected"
            }
            Outage::TokenExchangeUnavailable => {
                "upstream credentials are unavailable: the token exchange cannot be made"
            }
            Outage::TokenExchangeRefused => {
                "upstream credentials are unavailable: the token exchange was refused"
            }
        }
    }
}

/// How a route may judge tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Methods {
    /// JWTs, verified with the issuer's keys.
    pub jwt: bool,
    /// RFC 7662 introspection, and whether for every token.
    pub introspection: Option<IntrospectionFor>,
    /// Configured API keys.
    pub api_keys: bool,
}

/// Which tokens a route introspects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntrospectionFor {
    /// Those that are not JWTs (opaque tokens).
    Opaque,
    /// Every token, JWTs included (the authorization server decides, and
    /// a revoked JWT is refused at once).
    All,
}

/// How one token is judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Verified as a JWT.
    Jwt,
    /// Introspected.
    Introspect,
    /// Looked up among the API keys; if it is none of them, introspected
    /// when `else_introspect`, else refused.
    ApiKey {
        /// Introspect a token that is no configured key.
        else_introspect: bool,
    },
}

/// How a route with `methods` judges `token`; `None`: it cannot, and the
/// token is refused.
///
/// | the route has | a token of three dot-separated parts | any other token |
/// |---|---|---|
/// | introspection for `All` tokens | introspect | an API key if it is one, else introspect |
/// | introspection for `Opaque` tokens | verify as a JWT | an API key if it is one, else introspect |
/// | no introspection | verify as a JWT (with an issuer), else refuse | an API key if it is one, else refuse |
///
/// A JWT-shaped token is never looked up as an API key (keys are random
/// strings); a configured key is always found before any introspection
/// (it is local, and the authorization server does not know it).
pub fn method(token: &str, methods: Methods) -> Option<Method> {
    if super::jwt::looks_like_jwt(token) {
        return match methods.introspection {
            Some(IntrospectionFor::All) => Some(Method::Introspect),
            _ => methods.jwt.then_some(Method::Jwt),
        };
    }
    match (methods.api_keys, methods.introspection.is_some()) {
        (true, introspect) => Some(Method::ApiKey {
            else_introspect: introspect,
        }),
        (false, true) => Some(Method::Introspect),
        (false, false) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_method() {
        const JWT: &str = "a.b.c";
        const OPAQUE: &str = "opaque-token";
        let m = |jwt, introspection, api_keys| Methods {
            jwt,
            introspection,
            api_keys,
        };
        let opaque = Some(IntrospectionFor::Opaque);
        let all = Some(IntrospectionFor::All);
        let key = |else_introspect| Some(Method::ApiKey { else_introspect });
        for (methods, jwt, other) in [
            (m(true, None, false), Some(Method::Jwt), None),
            (m(true, None, true), Some(Method::Jwt), key(false)),
            (m(false, None, true), None, key(false)),
            (
                m(true, opaque, false),
                Some(Method::Jwt),
                Some(Method::Introspect),
            ),
            (m(true, opaque, true), Some(Method::Jwt), key(true)),
            (m(false, opaque, false), None, Some(Method::Introspect)),
            (m(true, all, true), Some(Method::Introspect), key(true)),
            (
                m(false, all, false),
                Some(Method::Introspect),
                Some(Method::Introspect),
            ),
        ] {
            assert_eq!(method(JWT, methods), jwt, "{methods:?}");
            assert_eq!(method(OPAQUE, methods), other, "{methods:?}");
        }
    }

    #[test]
    fn outages() {
        for o in [Outage::NoKeys, Outage::Introspection] {
            assert_eq!(o.status(), 503);
            assert!(o.message().starts_with("authorization is unavailable"));
        }
        assert_eq!(Outage::TokenExchangeUnavailable.status(), 503);
        assert_eq!(Outage::TokenExchangeRefused.status(), 502);
        assert_eq!(
            format!("{:?}", UpstreamToken("secret".into())),
            "UpstreamToken(<redacted>)"
        );
    }

    #[test]
    fn documents_at_the_route_and_resource_paths() {
        let r = Resource::parse("https://mcp.example.com/public/mcp").unwrap();
        let gate = Gate::new(&r, "/mcp", &["https://as".into()], &[], false);
        let paths: Vec<&str> = gate.document_paths().collect();
        assert_eq!(
            paths,
            [
                "/.well-known/oauth-protected-resource/mcp",
                "/.well-known/oauth-protected-resource/public/mcp"
            ]
        );
        let answer = gate.document_at(paths[0]).unwrap();
        let text = std::str::from_utf8(answer).unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(text.contains("Access-Control-Allow-Origin: *\r\n"));
        let body = &text[text.find("\r\n\r\n").unwrap() + 4..];
        let doc: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(doc["resource"], "https://mcp.example.com/public/mcp");
        assert_eq!(doc["authorization_servers"][0], "https://as");
        assert!(
            gate.document_at("/.well-known/oauth-protected-resource")
                .is_none()
        );
        assert_eq!(
            gate.resource_metadata(),
            "https://mcp.example.com/.well-known/oauth-protected-resource/public/mcp"
        );

        let same = Resource::parse("http://127.0.0.1:8080/mcp").unwrap();
        let gate = Gate::new(&same, "/mcp", &[], &[], true);
        assert_eq!(gate.document_paths().count(), 1);
        assert!(gate.forward_token());

        let root = Resource::parse("http://127.0.0.1:8080").unwrap();
        let gate = Gate::new(&root, "/", &[], &[], false);
        assert_eq!(
            gate.document_paths().collect::<Vec<_>>(),
            ["/.well-known/oauth-protected-resource"]
        );
    }
}
