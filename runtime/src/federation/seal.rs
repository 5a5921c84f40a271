//! The client-facing session id of a federated route: each member's
//! session, sealed (ChaCha20-Poly1305 from ring, already in the tree
//! through rustls), so that a replica holding the key can serve the
//! session without having seen it, and a client can neither read nor
//! forge one.
//!
//! A token is base64url of: the key's id (one byte), a random 96-bit nonce,
//! and the sealed JSON `[[id or null, version] or null, …]`, one entry per
//! member. Keys rotate: the first key seals, every key opens (by its id).
//! No key derivation per request: the key is used as configured.

use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use serde_json::{Value, json};
use sluice_core::base64;
use sluice_core::federation::MemberSession;

/// Binds a token to its use: a sealed text made for anything else does
/// not open as a session. The route's name and its members' follow, so a
/// key shared by several routes opens each route's sessions only there.
const AAD: &[u8] = b"sluice federated session v1";

/// The longest token read: far more than any federation's sessions take.
const MAX_TOKEN: usize = 4096;

/// The keys of one route.
pub struct Sealer {
    /// (id, key), the sealing one first.
    keys: Vec<(u8, LessSafeKey)>,
    /// What every token of this route is bound to.
    aad: Vec<u8>,
}

/// A token that does not open: another key's, altered, or not a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsealable;

impl Sealer {
    /// A sealer for the route `route` of `members` with `keys` (the
    /// sealing one first); `None` without keys.
    pub fn new(keys: &[[u8; 32]], route: &str, members: &[String]) -> Option<Self> {
        let keys = keys
            .iter()
            .map(|k| {
                let id = key_id(k);
                UnboundKey::new(&CHACHA20_POLY1305, k)
                    .ok()
                    .map(|k| (id, LessSafeKey::new(k)))
            })
            .collect::<Option<Vec<_>>>()?;
        let mut aad = AAD.to_vec();
        for name in std::iter::once(route).chain(members.iter().map(String::as_str)) {
            aad.push(0);
            aad.extend_from_slice(name.as_bytes());
        }
        (!keys.is_empty()).then_some(Sealer { keys, aad })
    }

    /// A sealer with a key made now, from the OS's CSPRNG: sessions live
    /// as long as this process (one replica).
    pub fn ephemeral(route: &str, members: &[String]) -> Option<Self> {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).ok()?;
        Sealer::new(&[key], route, members)
    }

    /// `sessions` as a token; `None` without randomness for the nonce.
    pub fn seal(&self, sessions: &[Option<MemberSession>]) -> Option<String> {
        let plain: Vec<Value> = sessions
            .iter()
            .map(|s| match s {
                Some(s) => json!([s.id, s.version]),
                None => Value::Null,
            })
            .collect();
        let mut data = Value::Array(plain).to_string().into_bytes();
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).ok()?;
        let (id, key) = &self.keys[0];
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(&self.aad),
            &mut data,
        )
        .ok()?;
        let mut token = Vec::with_capacity(1 + NONCE_LEN + data.len());
        token.push(*id);
        token.extend_from_slice(&nonce);
        token.extend_from_slice(&data);
        Some(base64::encode_url(&token))
    }

    /// The member sessions in `token`, for a federation of `members`.
    pub fn open(
        &self,
        token: &str,
        members: usize,
    ) -> Result<Vec<Option<MemberSession>>, Unsealable> {
        if token.len() > MAX_TOKEN {
            return Err(Unsealable);
        }
        let bytes = base64::decode_url(token).ok_or(Unsealable)?;
        if bytes.len() < 1 + NONCE_LEN {
            return Err(Unsealable);
        }
        let (id, rest) = (bytes[0], &bytes[1..]);
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        // Two keys may share an id byte: each is tried.
        let mut opened = None;
        for (_, key) in self.keys.iter().filter(|(k, _)| *k == id) {
            let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| Unsealable)?;
            let mut buf = sealed.to_vec();
            if let Ok(plain) = key.open_in_place(nonce, Aad::from(&self.aad), &mut buf) {
                let len = plain.len();
                buf.truncate(len);
                opened = Some(buf);
                break;
            }
        }
        let plain = opened.ok_or(Unsealable)?;
        let plain = plain.as_slice();
        let v: Vec<Value> = serde_json::from_slice(plain).map_err(|_| Unsealable)?;
        if v.len() != members {
            return Err(Unsealable);
        }
        v.into_iter()
            .map(|s| match s {
                Value::Null => Ok(None),
                Value::Array(pair) => match pair.as_slice() {
                    [id, Value::String(version)] => Ok(Some(MemberSession {
                        id: id.as_str().map(str::to_owned),
                        version: version.clone(),
                    })),
                    _ => Err(Unsealable),
                },
                _ => Err(Unsealable),
            })
            .collect()
    }
}

/// A key's id: its first byte of a SHA-256 would do, but a key's own
/// bytes must not show; a byte of the sealed nothing under it does.
fn key_id(key: &[u8; 32]) -> u8 {
    use sha2::{Digest, Sha256};
    let digest = Sha256::new()
        .chain_update(b"sluice key id")
        .chain_update(key)
        .finalize();
    digest[0]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members() -> Vec<String> {
        vec!["gh".into(), "fs".into(), "t".into()]
    }

    fn sessions() -> Vec<Option<MemberSession>> {
        vec![
            Some(MemberSession {
                id: Some("abc".into()),
                version: "2025-06-18".into(),
            }),
            None,
            Some(MemberSession {
                id: None,
                version: "2025-11-25".into(),
            }),
        ]
    }

    #[test]
    fn a_token_opens_to_what_was_sealed_and_to_nothing_else() {
        let s = Sealer::new(&[[7; 32]], "r", &members()).unwrap();
        let token = s.seal(&sessions()).unwrap();
        assert!(
            token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert!(!token.contains("abc"), "sealed, not encoded");
        assert_eq!(s.open(&token, 3), Ok(sessions()));
        assert_ne!(s.seal(&sessions()).unwrap(), token, "a nonce each time");
        assert_eq!(s.open(&token, 2), Err(Unsealable), "another federation's");
        // Any byte changed: refused.
        let mut bytes = base64::decode_url(&token).unwrap();
        for i in [0, 5, bytes.len() - 1] {
            bytes[i] ^= 1;
            assert_eq!(
                s.open(&base64::encode_url(&bytes), 3),
                Err(Unsealable),
                "byte {i}"
            );
            bytes[i] ^= 1;
        }
        for junk in ["", "x", "!!!!", &"A".repeat(5000)] {
            assert_eq!(s.open(junk, 3), Err(Unsealable));
        }
    }

    #[test]
    fn keys_rotate_the_first_seals_every_one_opens() {
        let old = Sealer::new(&[[1; 32]], "r", &members()).unwrap();
        let token = old.seal(&sessions()).unwrap();
        let rotated = Sealer::new(&[[2; 32], [1; 32]], "r", &members()).unwrap();
        assert_eq!(
            rotated.open(&token, 3),
            Ok(sessions()),
            "the old key still opens"
        );
        let new_token = rotated.seal(&sessions()).unwrap();
        assert_eq!(
            old.open(&new_token, 3),
            Err(Unsealable),
            "the new key seals"
        );
        let other = Sealer::new(&[[3; 32]], "r", &members()).unwrap();
        assert_eq!(other.open(&token, 3), Err(Unsealable));
        assert!(Sealer::ephemeral("r", &members()).is_some());
    }

    #[test]
    fn a_key_shared_by_two_routes_opens_each_routes_sessions_only_there() {
        let a = Sealer::new(&[[9; 32]], "a", &members()).unwrap();
        let b = Sealer::new(&[[9; 32]], "b", &members()).unwrap();
        let token = a.seal(&sessions()).unwrap();
        assert_eq!(a.open(&token, 3), Ok(sessions()));
        assert_eq!(b.open(&token, 3), Err(Unsealable));
        let other_members = vec!["x".into(), "y".into(), "z".into()];
        let a2 = Sealer::new(&[[9; 32]], "a", &other_members).unwrap();
        assert_eq!(a2.open(&token, 3), Err(Unsealable), "other members");
    }
}
