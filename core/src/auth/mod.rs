//! Who is calling: the rules of an OAuth 2.1 resource server (the MCP
//! authorization spec) that sluice applies before any hook or upstream sees
//! a request, with no I/O and the time passed in.
//!
//! | module | what it decides |
//! |---|---|
//! | [`credentials`] | the bearer token of a request, read as a backend would; two `Authorization` fields, a malformed one, a token in the query: refused |
//! | [`challenge`](mod@challenge) | the `WWW-Authenticate: Bearer` value and the status of each refusal; no reason leaks |
//! | [`metadata`] | RFC 9728: a resource identifier, the path and URL of its metadata document, the document |
//! | [`jwt`] | a JWS compact token's header and claims read strictly (duplicate keys, `none`, HMAC, `crit` refused), the algorithm allow-list, the claim rules (`iss`, `aud`, `exp`/`nbf` with leeway, scopes) |
//! | [`scope`] | `scope` and `scp`, and what is missing |
//! | [`api_key`] | API keys by SHA-256, compared in constant time |
//! | [`introspection`] | RFC 7662: the request, `client_secret_basic`, the answer read strictly (its claims then go through [`jwt::check_claims`]) |
//! | [`cache`] | a bounded cache by token hash, with the time passed in, and how long an introspection answer or an exchanged token may be kept |
//! | [`verified`] | JWTs that passed every check, kept by hash until `exp` or a TTL, so a reused token skips the signature check |
//! | [`token_exchange`] | RFC 8693: the exchange of a caller's token for the upstream's, and the token endpoint's answer read (502 or 503 when it gives none) |
//! | [`gate`] | what the exchange knows of a protected route (its metadata documents, `forward_token`), how a token is judged ([`gate::method`]), the call the exchange makes to the driver and the verdict it gets back |
//!
//! The signature itself is verified by the runtime with a JOSE crate and
//! the route's JWKS: [`jwt::Jwt::signing_input`] and
//! [`jwt::Jwt::signature`] are what it checks, and [`jwt::Alg::key_type`]
//! the key it may use.

pub mod api_key;
pub mod cache;
pub mod challenge;
pub mod credentials;
pub mod gate;
pub mod introspection;
mod json;
pub mod jwt;
pub mod metadata;
pub mod scope;
pub mod token_exchange;
pub mod verified;

use serde_json::{Map, Value};

pub use api_key::{ApiKey, ApiKeys};
pub use challenge::{ChallengeError, Denial, DenialAnswer, challenge};
pub use credentials::{CredentialError, Credentials, read_credentials};
pub use gate::{AuthCall, Gate, Outage, UpstreamToken, Verdict};
pub use jwt::{Alg, ClaimRules, TokenError};
pub use metadata::{Resource, well_known_path};

/// How a route established who is calling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// A JWT checked against the issuer's keys.
    Jwt,
    /// An opaque token the authorization server introspected (RFC 7662).
    Introspection,
    /// One of the route's API keys.
    ApiKey,
}

/// The caller, as a validated token or API key says. Attached to the
/// exchange once the request is allowed; what hooks (`sluice:hook@0.2.0`)
/// and the access log will read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// How it was established.
    pub scheme: Scheme,
    /// `sub`, else the client id; an API key's `subject`.
    pub subject: String,
    /// `iss` of a JWT; `None` for an API key.
    pub issuer: Option<String>,
    /// `client_id`, else `azp`, of a JWT.
    pub client_id: Option<String>,
    /// The scopes granted.
    pub scopes: Vec<String>,
    /// A JWT's whole claims set; `None` for an API key.
    pub claims: Option<Map<String, Value>>,
}
