//! Cost of a federated route's sealed session id (issue 14, part 7): seal
//! (JSON of each member's session, a random nonce, ChaCha20-Poly1305,
//! base64url) at `initialize`, and open (the reverse) on every later
//! request of the session.
//!
//! `cargo bench -p sluice --bench seal`. Two members (what
//! `bench/federation` runs) and five (the five real servers), each
//! member session a 36-character UUID as the TypeScript and Python SDK
//! servers give; opening also with two keys where the token was sealed by
//! the second (a rotation), and a token of another key (refused).

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use sluice::federation::seal::Sealer;
use sluice_core::federation::MemberSession;

fn members(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("member{i}")).collect()
}

fn sessions(n: usize) -> Vec<Option<MemberSession>> {
    (0..n)
        .map(|i| {
            Some(MemberSession {
                id: Some(format!("8c5f0b2e-4d1a-4c3b-9e7f-{i:012x}")),
                version: "2025-06-18".into(),
            })
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let (key, old) = ([7u8; 32], [9u8; 32]);
    for n in [2, 5] {
        let names = members(n);
        let sealer = Sealer::new(&[key], "mcp", &names).expect("a sealer");
        let s = sessions(n);
        let token = sealer.seal(&s).expect("sealed");
        println!(
            "{n} members: token {} bytes, opens to {} sessions",
            token.len(),
            sealer.open(&token, n).map_or(0, |v| v.len())
        );
        c.bench_function(&format!("seal/{n} members"), |b| {
            b.iter(|| sealer.seal(black_box(&s)))
        });
        c.bench_function(&format!("open/{n} members"), |b| {
            b.iter(|| sealer.open(black_box(&token), n))
        });
        // Rotation: the old key sealed, the new one seals now; both open.
        let rotated = Sealer::new(&[key, old], "mcp", &names).expect("a sealer");
        let old_token = Sealer::new(&[old], "mcp", &names)
            .expect("a sealer")
            .seal(&s)
            .expect("sealed");
        assert!(rotated.open(&old_token, n).is_ok());
        c.bench_function(&format!("open/{n} members, second key"), |b| {
            b.iter(|| rotated.open(black_box(&old_token), n))
        });
        let foreign = Sealer::new(&[[1u8; 32]], "mcp", &names)
            .expect("a sealer")
            .seal(&s)
            .expect("sealed");
        assert!(sealer.open(&foreign, n).is_err());
        c.bench_function(&format!("open/{n} members, foreign (refused)"), |b| {
            b.iter(|| sealer.open(black_box(&foreign), n))
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
