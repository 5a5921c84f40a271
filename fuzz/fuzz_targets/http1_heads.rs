//! Request and response heads plus framing: never panic; bytes after a
//! complete head never change the result; the memoizing scanner agrees with
//! the stateless parser; a parsed head writes and re-parses to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_core::http1::{
    HeadScanner, Limits, Parsed, Version, parse_request_head, parse_response_head,
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
