//! API keys: bearer tokens the operator hands out, stored as SHA-256
//! hashes so that the config never holds a usable secret.

use sha2::{Digest, Sha256};

use super::Identity;

/// One configured key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// SHA-256 of the key's bytes.
    pub sha256: [u8; 32],
    /// Who presents it.
    pub subject: String,
    /// What it grants.
    pub scopes: Vec<String>,
}

impl ApiKey {
    /// The identity of whoever presents this key.
    pub fn identity(&self) -> Identity {
        Identity {
            scheme: super::Scheme::ApiKey,
            subject: self.subject.clone(),
            issuer: None,
            client_id: None,
            scopes: self.scopes.clone(),
            claims: None,
        }
    }
}

/// Why a `sha256` value is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashError;

impl std::fmt::Display for HashError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("is not a SHA-256 hash: 64 hexadecimal digits (sha256sum of the key)")
    }
}

impl std::error::Error for HashError {}

/// A SHA-256 hash written as 64 hex digits (either case).
pub fn parse_sha256_hex(hex: &str) -> Result<[u8; 32], HashError> {
    let digits = hex.as_bytes();
    if digits.len() != 64 {
        return Err(HashError);
    }
    let mut out = [0u8; 32];
    for (i, pair) in digits.chunks(2).enumerate() {
        let d = |b: u8| (b as char).to_digit(16).ok_or(HashError);
        out[i] = (d(pair[0])? * 16 + d(pair[1])?) as u8;
    }
    Ok(out)
}

/// The SHA-256 of a key.
pub fn sha256(key: &[u8]) -> [u8; 32] {
    Sha256::digest(key).into()
}

/// Equal, in time that depends on the length only.
fn same_hash(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// The configured keys of a route.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApiKeys {
    keys: Vec<ApiKey>,
}

impl ApiKeys {
    /// A table of keys.
    pub fn new(keys: Vec<ApiKey>) -> Self {
        ApiKeys { keys }
    }

    /// No keys.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The keys, in the order configured.
    pub fn iter(&self) -> impl Iterator<Item = &ApiKey> {
        self.keys.iter()
    }

    /// How many keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// The key `presented` is, if any. Every entry is compared in
    /// constant time, and all of them whatever matched, so neither the
    /// comparison nor the loop tells how close a guess was or which entry
    /// it hit.
    pub fn find(&self, presented: &str) -> Option<&ApiKey> {
        let hash = sha256(presented.as_bytes());
        let mut found = None;
        for key in &self.keys {
            if same_hash(&key.sha256, &hash) && found.is_none() {
                found = Some(key);
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_hashes() {
        let h = sha256(b"abc");
        let hex: String = h.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(parse_sha256_hex(&hex), Ok(h));
        assert_eq!(parse_sha256_hex(&hex.to_uppercase()), Ok(h));
        assert_eq!(parse_sha256_hex(&hex[1..]), Err(HashError));
        assert_eq!(parse_sha256_hex(&format!("{}g", &hex[1..])), Err(HashError));
    }

    #[test]
    fn lookup() {
        let keys = ApiKeys::new(vec![
            ApiKey {
                sha256: sha256(b"sk-alice"),
                subject: "alice".into(),
                scopes: vec!["read".into()],
            },
            ApiKey {
                sha256: sha256(b"sk-bob"),
                subject: "bob".into(),
                scopes: vec![],
            },
        ]);
        assert_eq!(keys.find("sk-alice").unwrap().subject, "alice");
        assert_eq!(keys.find("sk-bob").unwrap().subject, "bob");
        assert!(keys.find("sk-carol").is_none());
        assert!(keys.find("").is_none());
        let id = keys.find("sk-alice").unwrap().identity();
        assert_eq!(
            (id.subject.as_str(), id.scopes.as_slice()),
            ("alice", &["read".to_string()][..])
        );
        assert!(id.issuer.is_none() && id.claims.is_none());
    }

    #[test]
    fn constant_time_equality() {
        let a = sha256(b"a");
        let mut b = a;
        assert!(same_hash(&a, &b));
        b[31] ^= 1;
        assert!(!same_hash(&a, &b));
        b = a;
        b[0] ^= 0x80;
        assert!(!same_hash(&a, &b));
    }
}
