//! The parts of a JWS compact token sluice reads itself, and the claim
//! rules of a JWT access token (RFC 7519, RFC 9068, the MCP spec's
//! audience rule). The signature is checked by the runtime with a JOSE
//! crate; everything else is here, with the time passed in.
//!
//! What [`parse_jwt`] refuses:
//! - anything but three base64url parts, unpadded, in canonical form (a
//!   second spelling of the same bytes is a second token);
//! - a header or claims set that is not one JSON object, or has a key
//!   twice (one reader takes the first `aud`, another the last);
//! - `alg: none` and every HMAC algorithm, whatever the allow-list says:
//!   a resource server never shares a secret with the authorization
//!   server, and HMAC "verified" with a public key is the classic key
//!   confusion;
//! - an algorithm outside the route's allow-list;
//! - `crit` (no extension is understood) and `enc` (an encrypted token).
//!
//! `jku`, `x5u`, `jwk` and `x5c` in a header are ignored: keys come only
//! from the route's JWKS.

use std::fmt;

use serde_json::{Map, Value};

use super::json::parse_object;
use super::scope::{missing_scopes, scopes_of};
use super::{Denial, Identity};
use crate::base64;

/// A signature algorithm sluice verifies (RFC 7518 §3, RFC 8037).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Alg {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    Rs256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    Rs384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    Rs512,
    /// RSASSA-PSS with SHA-256.
    Ps256,
    /// RSASSA-PSS with SHA-384.
    Ps384,
    /// RSASSA-PSS with SHA-512.
    Ps512,
    /// ECDSA on P-256 with SHA-256.
    Es256,
    /// ECDSA on P-384 with SHA-384.
    Es384,
    /// EdDSA (Ed25519).
    EdDsa,
}

/// The kind of key an algorithm needs: a key of another kind never
/// verifies it, whatever the JOSE library would do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    /// `kty: RSA`.
    Rsa,
    /// `kty: EC`, `crv: P-256`.
    EcP256,
    /// `kty: EC`, `crv: P-384`.
    EcP384,
    /// `kty: OKP`, `crv: Ed25519`.
    Ed25519,
}

/// The default allow-list: what the MCP ecosystem's authorization servers
/// sign with.
pub const DEFAULT_ALGS: [Alg; 4] = [Alg::Rs256, Alg::Ps256, Alg::Es256, Alg::EdDsa];

const ALL: [(Alg, &str); 9] = [
    (Alg::Rs256, "RS256"),
    (Alg::Rs384, "RS384"),
    (Alg::Rs512, "RS512"),
    (Alg::Ps256, "PS256"),
    (Alg::Ps384, "PS384"),
    (Alg::Ps512, "PS512"),
    (Alg::Es256, "ES256"),
    (Alg::Es384, "ES384"),
    (Alg::EdDsa, "EdDSA"),
];

impl Alg {
    /// The algorithm named `name` (case-sensitive, as in JOSE).
    pub fn parse(name: &str) -> Result<Alg, AlgError> {
        if let Some((alg, _)) = ALL.iter().find(|(_, n)| *n == name) {
            return Ok(*alg);
        }
        if name.eq_ignore_ascii_case("none") {
            return Err(AlgError::None);
        }
        if name
            .as_bytes()
            .get(..2)
            .is_some_and(|p| p.eq_ignore_ascii_case(b"HS"))
        {
            return Err(AlgError::Symmetric(name.to_string()));
        }
        Err(AlgError::Unsupported(name.to_string()))
    }

    /// Its JOSE name.
    pub fn name(self) -> &'static str {
        ALL.iter().find(|(a, _)| *a == self).map_or("?", |(_, n)| n)
    }

    /// The key it needs.
    pub fn key_type(self) -> KeyType {
        match self {
            Alg::Rs256 | Alg::Rs384 | Alg::Rs512 | Alg::Ps256 | Alg::Ps384 | Alg::Ps512 => {
                KeyType::Rsa
            }
            Alg::Es256 => KeyType::EcP256,
            Alg::Es384 => KeyType::EcP384,
            Alg::EdDsa => KeyType::Ed25519,
        }
    }

    /// Every algorithm sluice can verify, by name.
    pub fn names() -> impl Iterator<Item = &'static str> {
        ALL.iter().map(|(_, n)| *n)
    }
}

impl fmt::Display for Alg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why an algorithm name is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlgError {
    /// `none`: an unsigned token.
    None,
    /// An HMAC algorithm (`HS256`…): never with a public key.
    Symmetric(String),
    /// A name sluice does not verify.
    Unsupported(String),
}

impl fmt::Display for AlgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AlgError::None => f.write_str("\"none\" (an unsigned token) is never accepted"),
            AlgError::Symmetric(n) => write!(
                f,
                "{n:?} is an HMAC algorithm, never accepted: a resource server holds no shared secret"
            ),
            AlgError::Unsupported(n) => {
                let names: Vec<&str> = Alg::names().collect();
                write!(f, "{n:?} is not one of: {}", names.join(", "))
            }
        }
    }
}

/// Why a token is refused. Only [`TokenError::denial`] reaches the client;
/// the rest is for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenError {
    /// Not a well-formed JWS compact token: what is wrong.
    Malformed(&'static str),
    /// The header's `alg` is refused outright.
    Algorithm(AlgError),
    /// The header's `alg` is not in the route's allow-list.
    AlgorithmNotAllowed(Alg),
    /// The header has `crit`.
    Critical,
    /// No key of the JWKS has this `kid` (or there is no `kid` and no
    /// single key of the right type).
    UnknownKey(Option<String>),
    /// The key with the token's `kid` is of another type than its `alg`,
    /// or names another `alg`.
    KeyMismatch,
    /// The signature does not verify.
    BadSignature,
    /// `iss` is not the route's issuer.
    WrongIssuer,
    /// `aud` does not name the route's resource.
    WrongAudience,
    /// Past `exp` (and the leeway).
    Expired,
    /// Before `nbf` (less the leeway).
    NotYetValid,
    /// A claim that must be there is missing or of the wrong type.
    BadClaim(&'static str),
    /// A bearer token that is no JWT and no configured API key.
    UnknownApiKey,
    /// The authorization server's introspection says `active: false`.
    Inactive,
    /// Valid, but without these scopes the route requires.
    InsufficientScope {
        /// The scopes missing.
        missing: Vec<String>,
        /// Every scope the route requires (what the challenge names).
        required: Vec<String>,
    },
}

impl TokenError {
    /// What the client is told.
    pub fn denial(&self) -> Denial {
        match self {
            TokenError::InsufficientScope { required, .. } => {
                Denial::InsufficientScope(required.clone())
            }
            _ => Denial::InvalidToken,
        }
    }
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenError::Malformed(why) => write!(f, "malformed token: {why}"),
            TokenError::Algorithm(e) => write!(f, "algorithm {e}"),
            TokenError::AlgorithmNotAllowed(a) => {
                write!(f, "algorithm {a} is not allowed on this route")
            }
            TokenError::Critical => f.write_str("the header has crit"),
            TokenError::UnknownKey(Some(kid)) => write!(f, "no key with kid {kid:?}"),
            TokenError::UnknownKey(None) => f.write_str("no kid, and no single key of its type"),
            TokenError::KeyMismatch => f.write_str("the key does not go with the token's alg"),
            TokenError::BadSignature => f.write_str("bad signature"),
            TokenError::WrongIssuer => f.write_str("wrong issuer"),
            TokenError::WrongAudience => f.write_str("wrong audience"),
            TokenError::Expired => f.write_str("expired"),
            TokenError::NotYetValid => f.write_str("not yet valid"),
            TokenError::BadClaim(c) => write!(f, "claim {c} missing or of the wrong type"),
            TokenError::UnknownApiKey => f.write_str("not a JWT and no configured API key"),
            TokenError::Inactive => f.write_str("introspection says it is not active"),
            TokenError::InsufficientScope { missing, .. } => {
                write!(f, "missing scopes: {}", missing.join(" "))
            }
        }
    }
}

impl std::error::Error for TokenError {}

/// A JWS compact token, read and checked but for its signature.
#[derive(Debug, Clone, PartialEq)]
pub struct Jwt<'t> {
    /// The header's algorithm, in the allow-list.
    pub alg: Alg,
    /// The header's key id.
    pub kid: Option<String>,
    /// The claims set.
    pub claims: Map<String, Value>,
    /// What the signature covers: `header.payload` as sent.
    pub signing_input: &'t str,
    /// The signature, base64url as sent.
    pub signature: &'t str,
}

/// Whether a bearer token has the shape of a JWS compact token (three
/// parts), so that it is judged as a JWT and never as an API key.
pub fn looks_like_jwt(token: &str) -> bool {
    token.bytes().filter(|&b| b == b'.').count() == 2
}

/// Reads a token's header and claims (see the module's list of refusals).
pub fn parse_jwt<'t>(token: &'t str, allowed: &[Alg]) -> Result<Jwt<'t>, TokenError> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed("not three parts"));
    };
    let header_json =
        canonical_base64url(header).ok_or(TokenError::Malformed("header encoding"))?;
    let header_map = parse_object(&header_json).ok_or(TokenError::Malformed("header JSON"))?;
    let alg = match header_map.get("alg") {
        Some(Value::String(name)) => Alg::parse(name).map_err(TokenError::Algorithm)?,
        _ => return Err(TokenError::Malformed("no alg")),
    };
    if !allowed.contains(&alg) {
        return Err(TokenError::AlgorithmNotAllowed(alg));
    }
    if header_map.contains_key("crit") {
        return Err(TokenError::Critical);
    }
    if header_map.contains_key("enc") {
        return Err(TokenError::Malformed("an encrypted token"));
    }
    let kid = match header_map.get("kid") {
        None => None,
        Some(Value::String(kid)) => Some(kid.clone()),
        Some(_) => return Err(TokenError::Malformed("kid is not a string")),
    };
    let claims_json =
        canonical_base64url(payload).ok_or(TokenError::Malformed("payload encoding"))?;
    let claims = parse_object(&claims_json).ok_or(TokenError::Malformed("claims JSON"))?;
    if signature.is_empty() || canonical_base64url(signature).is_none() {
        return Err(TokenError::Malformed("signature encoding"));
    }
    Ok(Jwt {
        alg,
        kid,
        claims,
        signing_input: &token[..header.len() + 1 + payload.len()],
        signature,
    })
}

/// Unpadded base64url in its one canonical spelling (no stray bits).
fn canonical_base64url(text: &str) -> Option<Vec<u8>> {
    let bytes = base64::decode_url(text)?;
    (base64::encode_url(&bytes) == text).then_some(bytes)
}

/// What a route expects of a JWT's claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimRules {
    /// `iss`, compared exactly.
    pub issuer: String,
    /// The resource identifier `aud` must name (a string, or one element
    /// of an array), compared exactly.
    pub audience: String,
    /// Clock skew allowed on `exp` and `nbf`, in seconds.
    pub leeway: u64,
    /// Scopes every token must carry.
    pub required_scopes: Vec<String>,
}

/// Checks a signature-verified token's claims at `now` (seconds since the
/// Unix epoch) and makes the caller's identity: `sub` (else `client_id`)
/// is the subject; `client_id` (else `azp`) the client.
pub fn check_claims(
    claims: Map<String, Value>,
    rules: &ClaimRules,
    now: u64,
) -> Result<Identity, TokenError> {
    match claims.get("iss") {
        Some(Value::String(iss)) if *iss == rules.issuer => {}
        Some(Value::String(_)) | None => return Err(TokenError::WrongIssuer),
        Some(_) => return Err(TokenError::BadClaim("iss")),
    }
    let audience_ok = match claims.get("aud") {
        Some(Value::String(aud)) => *aud == rules.audience,
        Some(Value::Array(auds)) => auds
            .iter()
            .any(|a| a.as_str() == Some(rules.audience.as_str())),
        None => false,
        Some(_) => return Err(TokenError::BadClaim("aud")),
    };
    if !audience_ok {
        return Err(TokenError::WrongAudience);
    }
    let exp = time_claim(&claims, "exp")?.ok_or(TokenError::BadClaim("exp"))?;
    if is_expired(exp, now, rules.leeway) {
        return Err(TokenError::Expired);
    }
    if let Some(nbf) = time_claim(&claims, "nbf")?
        && now as f64 + (rules.leeway as f64) < nbf
    {
        return Err(TokenError::NotYetValid);
    }
    let text = |name: &'static str| match claims.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(TokenError::BadClaim(name)),
    };
    let client_id = match text("client_id")? {
        Some(id) => Some(id),
        None => text("azp")?,
    };
    let subject = match text("sub")? {
        Some(sub) => sub,
        None => client_id.clone().ok_or(TokenError::BadClaim("sub"))?,
    };
    let scopes = scopes_of(&claims)?;
    let missing = missing_scopes(&scopes, &rules.required_scopes);
    if !missing.is_empty() {
        return Err(TokenError::InsufficientScope {
            missing,
            required: rules.required_scopes.clone(),
        });
    }
    Ok(Identity {
        scheme: super::Scheme::Jwt,
        subject,
        issuer: Some(rules.issuer.clone()),
        client_id,
        scopes,
        claims: Some(claims),
    })
}

/// Whether a token with this `exp` has expired at `now` (seconds since
/// the Unix epoch), `leeway` seconds of clock skew allowed.
pub fn is_expired(exp: f64, now: u64, leeway: u64) -> bool {
    now as f64 >= exp + leeway as f64
}

/// A NumericDate claim: a finite number, if present.
fn time_claim(claims: &Map<String, Value>, name: &'static str) -> Result<Option<f64>, TokenError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(t) if t.is_finite() => Ok(Some(t)),
            _ => Err(TokenError::BadClaim(name)),
        },
        Some(_) => Err(TokenError::BadClaim(name)),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn b64(v: &[u8]) -> String {
        base64::encode_url(v)
    }

    fn token(header: &str, claims: &str) -> String {
        format!(
            "{}.{}.{}",
            b64(header.as_bytes()),
            b64(claims.as_bytes()),
            b64(b"sig")
        )
    }

    fn rules() -> ClaimRules {
        ClaimRules {
            issuer: "https://as.example".into(),
            audience: "https://mcp.example/mcp".into(),
            leeway: 60,
            required_scopes: vec![],
        }
    }

    fn claims(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    const NOW: u64 = 1_800_000_000;

    fn good() -> Value {
        json!({
            "iss": "https://as.example",
            "aud": "https://mcp.example/mcp",
            "sub": "alice",
            "exp": NOW + 300,
            "nbf": NOW - 10,
            "scope": "read write",
            "client_id": "cli",
        })
    }

    #[test]
    fn algorithms() {
        assert_eq!(Alg::parse("RS256"), Ok(Alg::Rs256));
        assert_eq!(Alg::parse("EdDSA"), Ok(Alg::EdDsa));
        assert_eq!(Alg::parse("none"), Err(AlgError::None));
        assert_eq!(Alg::parse("NONE"), Err(AlgError::None));
        assert_eq!(
            Alg::parse("HS256"),
            Err(AlgError::Symmetric("HS256".into()))
        );
        assert_eq!(
            Alg::parse("hs512"),
            Err(AlgError::Symmetric("hs512".into()))
        );
        assert_eq!(
            Alg::parse("rs256"),
            Err(AlgError::Unsupported("rs256".into()))
        );
        assert_eq!(Alg::Es256.key_type(), KeyType::EcP256);
        assert_eq!(Alg::Ps256.key_type(), KeyType::Rsa);
        for name in Alg::names() {
            assert_eq!(Alg::parse(name).unwrap().name(), name);
        }
    }

    #[test]
    fn parses_a_token() {
        let t = token(
            r#"{"alg":"RS256","kid":"k1","typ":"at+jwt"}"#,
            r#"{"sub":"a"}"#,
        );
        let jwt = parse_jwt(&t, &DEFAULT_ALGS).unwrap();
        assert_eq!(jwt.alg, Alg::Rs256);
        assert_eq!(jwt.kid.as_deref(), Some("k1"));
        assert_eq!(jwt.claims["sub"], "a");
        assert_eq!(jwt.signature, b64(b"sig"));
        assert_eq!(format!("{}.{}", jwt.signing_input, jwt.signature), t);
    }

    #[test]
    fn refuses_dangerous_headers() {
        let claims = r#"{"sub":"a"}"#;
        let refused = |header: &str| parse_jwt(&token(header, claims), &DEFAULT_ALGS).unwrap_err();
        assert_eq!(
            refused(r#"{"alg":"none"}"#),
            TokenError::Algorithm(AlgError::None)
        );
        assert_eq!(
            refused(r#"{"alg":"HS256"}"#),
            TokenError::Algorithm(AlgError::Symmetric("HS256".into()))
        );
        assert_eq!(
            refused(r#"{"alg":"RS384"}"#),
            TokenError::AlgorithmNotAllowed(Alg::Rs384)
        );
        assert_eq!(
            refused(r#"{"alg":"RS256","crit":["b64"]}"#),
            TokenError::Critical
        );
        assert!(matches!(
            refused(r#"{"alg":"RS256","enc":"A128GCM"}"#),
            TokenError::Malformed(_)
        ));
        assert!(matches!(
            refused(r#"{"kid":"x"}"#),
            TokenError::Malformed("no alg")
        ));
        assert!(matches!(
            refused(r#"{"alg":"RS256","kid":7}"#),
            TokenError::Malformed(_)
        ));
        // The same key twice: one reader would see RS256, another none.
        assert!(matches!(
            refused(r#"{"alg":"RS256","alg":"none"}"#),
            TokenError::Malformed("header JSON")
        ));
        assert!(matches!(
            refused(r#"["RS256"]"#),
            TokenError::Malformed("header JSON")
        ));
    }

    #[test]
    fn refuses_malformed_tokens() {
        let h = b64(br#"{"alg":"RS256"}"#);
        let c = b64(br#"{"sub":"a"}"#);
        let s = b64(b"sig");
        for bad in [
            String::new(),
            "a.b".to_string(),
            format!("{h}.{c}.{s}.x"),
            format!("{h}.{c}."),
            format!("{h}=.{c}.{s}"),
            format!("{h}.{c}+.{s}"),
            format!("{h}.{}.{s}", b64(br#"{"sub":"a","sub":"b"}"#)),
            format!("{h}.{}.{s}", b64(b"not json")),
            // "si" is c2k; c2l decodes to the same bytes, with stray bits.
            format!("{h}.{c}.c2l"),
        ] {
            assert!(
                matches!(
                    parse_jwt(&bad, &DEFAULT_ALGS),
                    Err(TokenError::Malformed(_))
                ),
                "{bad}"
            );
        }
        assert_eq!(b64(b"si"), "c2k");
        assert!(parse_jwt(&format!("{h}.{c}.c2k"), &DEFAULT_ALGS).is_ok());
        assert!(looks_like_jwt(&format!("{h}.{c}.{s}")));
        assert!(!looks_like_jwt("sk-live-abc"));
        assert!(!looks_like_jwt("a.b"));
    }

    #[test]
    fn accepts_good_claims() {
        let id = check_claims(claims(good()), &rules(), NOW).unwrap();
        assert_eq!(id.subject, "alice");
        assert_eq!(id.issuer.as_deref(), Some("https://as.example"));
        assert_eq!(id.client_id.as_deref(), Some("cli"));
        assert_eq!(id.scopes, ["read", "write"]);
        assert_eq!(id.claims.unwrap()["sub"], "alice");
    }

    #[test]
    fn audience_as_an_array() {
        let mut c = good();
        c["aud"] = json!(["other", "https://mcp.example/mcp"]);
        assert!(check_claims(claims(c.clone()), &rules(), NOW).is_ok());
        c["aud"] = json!(["other"]);
        assert_eq!(
            check_claims(claims(c), &rules(), NOW),
            Err(TokenError::WrongAudience)
        );
    }

    #[test]
    fn each_claim_rule() {
        let with = |k: &str, v: Value| {
            let mut c = good();
            c[k] = v;
            check_claims(claims(c), &rules(), NOW).unwrap_err()
        };
        let without = |k: &str| {
            let mut c = claims(good());
            c.remove(k);
            check_claims(c, &rules(), NOW)
        };
        assert_eq!(with("iss", json!("https://evil")), TokenError::WrongIssuer);
        assert_eq!(without("iss").unwrap_err(), TokenError::WrongIssuer);
        assert_eq!(
            with("aud", json!("https://mcp.example/other")),
            TokenError::WrongAudience
        );
        assert_eq!(without("aud").unwrap_err(), TokenError::WrongAudience);
        assert_eq!(with("aud", json!(7)), TokenError::BadClaim("aud"));
        assert_eq!(with("exp", json!(NOW - 61)), TokenError::Expired);
        assert_eq!(with("exp", json!(NOW - 60)), TokenError::Expired);
        assert_eq!(with("exp", json!("soon")), TokenError::BadClaim("exp"));
        assert_eq!(without("exp").unwrap_err(), TokenError::BadClaim("exp"));
        assert_eq!(with("nbf", json!(NOW + 61)), TokenError::NotYetValid);
        assert_eq!(
            with("scope", json!(["read"])),
            TokenError::BadClaim("scope")
        );
        // Within the leeway.
        let mut c = good();
        c["exp"] = json!(NOW - 59);
        c["nbf"] = json!(NOW + 60);
        assert!(check_claims(claims(c), &rules(), NOW).is_ok());
        // No sub: the client is the subject; neither: refused.
        assert_eq!(without("sub").unwrap().subject, "cli");
        let mut c = claims(good());
        c.remove("sub");
        c.remove("client_id");
        assert_eq!(
            check_claims(c, &rules(), NOW),
            Err(TokenError::BadClaim("sub"))
        );
    }

    #[test]
    fn required_scopes() {
        let mut r = rules();
        r.required_scopes = vec!["read".into(), "admin".into()];
        let e = check_claims(claims(good()), &r, NOW).unwrap_err();
        assert_eq!(
            e,
            TokenError::InsufficientScope {
                missing: vec!["admin".into()],
                required: vec!["read".into(), "admin".into()],
            }
        );
        assert_eq!(
            e.denial(),
            Denial::InsufficientScope(vec!["read".into(), "admin".into()])
        );
        assert_eq!(TokenError::Expired.denial(), Denial::InvalidToken);
    }
}
