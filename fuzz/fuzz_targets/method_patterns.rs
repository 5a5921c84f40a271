//! The hook method-pattern grammar on arbitrary entries and methods. Never
//! panic, and for every entry `parse` accepts:
//! - it prints back to the same text, which parses to the same pattern;
//! - it matches a method exactly as the grammar says, checked against an
//!   independent reading: `*` everything, `p/*` every method that starts
//!   with `p/`, anything else one method; `@request`, `@response`,
//!   `@server-message`, `@client-answer` one phase; without a phase, every
//!   phase the method travels in (the two server-to-client ones only for
//!   `ping`, notifications, and sampling, elicitation, roots and tasks).
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use sluice_core::exchange::methods::{MethodPattern, Phase};

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    entry: &'a str,
    method: &'a str,
    phase: u8,
}

const PHASES: [(&str, Phase); 4] = [
    ("@request", Phase::Request),
    ("@response", Phase::Response),
    ("@server-message", Phase::ServerMessage),
    ("@client-answer", Phase::ClientAnswer),
];

fuzz_target!(|input: Input<'_>| {
    let Ok(pattern) = MethodPattern::parse(input.entry) else {
        return;
    };
    assert_eq!(pattern.to_string(), input.entry);
    assert_eq!(
        MethodPattern::parse(&pattern.to_string()),
        Ok(pattern.clone())
    );
    let phase = PHASES[usize::from(input.phase) % PHASES.len()].1;
    let (body, only) = PHASES
        .iter()
        .find_map(|(suffix, p)| input.entry.strip_suffix(suffix).map(|b| (b, Some(*p))))
        .unwrap_or((input.entry, None));
    assert!(!body.is_empty() && !body.contains('@'));
    let covers = if body == "*" {
        true
    } else if let Some(prefix) = body.strip_suffix("/*") {
        assert!(!prefix.contains('*'));
        input.method.len() > prefix.len()
            && input.method.starts_with(prefix)
            && input.method.as_bytes()[prefix.len()] == b'/'
    } else {
        assert!(!body.contains('*'));
        input.method == body
    };
    let server_to_client = matches!(phase, Phase::ServerMessage | Phase::ClientAnswer);
    let travels = !server_to_client
        || input.method == "ping"
        || ["notifications/", "sampling/", "elicitation/", "roots/", "tasks/"]
            .iter()
            .any(|p| input.method.starts_with(p));
    let expected = covers
        && match only {
            Some(p) => p == phase,
            None => travels,
        };
    assert_eq!(
        pattern.matches(input.method, phase),
        expected,
        "{pattern} {:?}",
        input.method
    );
});
