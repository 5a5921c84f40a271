//! Request and response heads plus framing: never panic; bytes after a
//! complete head never change the result; the memoizing scanner agrees with
//! the stateless parser; a parsed head writes and re-parses to itself; a
//! request refused for its version (505) has a well-formed request line
//! (`method SP target SP HTTP/d.d`, single spaces), so a malformed line is
//! never answered as a version sluice does not speak.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_core::http1::{
    HeadError, HeadScanner, Limits, Parsed, Version, parse_request_head, parse_response_head,
    remove_hop_by_hop, request_framing, response_framing, write_request_head, write_response_head,
};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, input)) = data.split_first() else {
        return;
    };
    let mut limits = Limits::default();
    if mode & 1 == 1 {
        limits.max_head_bytes = 64 + usize::from(mode >> 2);
        limits.max_headers = usize::from(mode >> 5);
    }
    let split = if input.is_empty() {
        0
    } else {
        usize::from(mode) % input.len()
    };

    // Requests.
    let req = parse_request_head(input, &limits);
    if req == Err(HeadError::UnsupportedVersion) {
        // The parser reads no further than the head limit.
        assert_well_formed_request_line(&input[..input.len().min(limits.max_head_bytes)]);
    }
    scanner_agrees(&req, |s, b| s.parse_request(b, &limits), input, split);
    if let Ok(Parsed::Complete { head, len }) = &req {
        let mut more = input[..*len].to_vec();
        more.extend_from_slice(b"\r\n\r\nGET / HTTP/1.1\r\n\n\x00");
        assert_eq!(&parse_request_head(&more, &limits), &req);
        let _ = request_framing(head);
        let _ = head.connection_close();
        let _ = head.target_form().expect("parsed target has a form");
        let mut out = Vec::new();
        write_request_head(head, &mut out).expect("a parsed head writes");
        if head.version == Version::Http11 || head.header("host").is_some() {
            match parse_request_head(
                &out,
                &Limits {
                    max_head_bytes: usize::MAX,
                    ..limits.clone()
                },
            ) {
                Ok(Parsed::Complete { head: again, len }) => {
                    assert_eq!(len, out.len());
                    assert_eq!(again.method, head.method);
                    assert_eq!(again.target, head.target);
                    assert_eq!(again.headers, head.headers);
                }
                other => panic!("written head does not re-parse: {other:?}"),
            }
        }
        let mut headers = head.headers.clone();
        remove_hop_by_hop(&mut headers);
        assert!(
            headers
                .iter()
                .all(|h| !h.is("connection") && !h.is("transfer-encoding"))
        );
    }

    // Responses.
    let res = parse_response_head(input, &limits);
    scanner_agrees(&res, |s, b| s.parse_response(b, &limits), input, split);
    if let Ok(Parsed::Complete { head, len }) = &res {
        let mut more = input[..*len].to_vec();
        more.extend_from_slice(b"HTTP/1.1 200 OK\r\n\r\n\r\r\n");
        assert_eq!(&parse_response_head(&more, &limits), &res);
        for method in ["GET", "HEAD", "CONNECT", "POST"] {
            let _ = response_framing(method, head);
        }
        let mut out = Vec::new();
        write_response_head(head, &mut out).expect("a parsed head writes");
        match parse_response_head(
            &out,
            &Limits {
                max_head_bytes: usize::MAX,
                ..limits.clone()
            },
        ) {
            Ok(Parsed::Complete { head: again, .. }) => {
                assert_eq!(again.status, head.status);
                assert_eq!(again.reason, head.reason);
                assert_eq!(again.headers, head.headers);
            }
            other => panic!("written head does not re-parse: {other:?}"),
        }
    }
});

/// Feeding the input in two pieces through a `HeadScanner` ends where the
/// stateless parser does when it found a head, and never in a head when the
/// stateless parser refused.
fn scanner_agrees<T: PartialEq + std::fmt::Debug>(
    whole: &Result<Parsed<T>, sluice_core::http1::HeadError>,
    mut scan: impl FnMut(&mut HeadScanner, &[u8]) -> Result<Parsed<T>, sluice_core::http1::HeadError>,
    input: &[u8],
    split: usize,
) {
    let mut scanner = HeadScanner::new();
    let mut last = scan(&mut scanner, &input[..split]);
    if matches!(last, Ok(Parsed::Partial)) {
        last = scan(&mut scanner, input);
    }
    match whole {
        Ok(Parsed::Complete { .. }) => assert_eq!(&last, whole),
        // The scanner may wait for the empty line before it looks, but it
        // must never accept what the stateless parser refuses.
        Err(_) => assert!(!matches!(last, Ok(Parsed::Complete { .. })), "{last:?}"),
        Ok(Parsed::Partial) => {}
    }
}

/// The request line that starts `input` (after empty lines) is `token SP
/// target SP HTTP/d.d`; an unfinished line may end inside the version.
fn assert_well_formed_request_line(input: &[u8]) {
    let mut rest = input;
    while let Some(r) = rest
        .strip_prefix(b"\r\n")
        .or_else(|| rest.strip_prefix(b"\n"))
    {
        rest = r;
    }
    let end = rest.iter().position(|&b| b == b'\r' || b == b'\n');
    let line = &rest[..end.unwrap_or(rest.len())];
    let fields: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
    let ok = match fields[..] {
        [method, target, version] => {
            !method.is_empty()
                && method.iter().all(|&b| b.is_ascii_graphic())
                && !target.is_empty()
                && match (version, end.is_some()) {
                    ([b'H', b'T', b'T', b'P', b'/', a, b'.', b], _) => {
                        a.is_ascii_digit() && b.is_ascii_digit()
                    }
                    ([b'H', b'T', b'T', b'P', b'/', a, tail @ ..], false) => {
                        a.is_ascii_digit() && matches!(tail, [] | [b'.'])
                    }
                    _ => false,
                }
        }
        _ => false,
    };
    assert!(
        ok,
        "505 for a malformed request line: {:?}",
        String::from_utf8_lossy(line)
    );
}
