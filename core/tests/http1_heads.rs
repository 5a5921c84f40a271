//! Heads, framing and head writers against `vectors/http1_heads.json` and
//! `vectors/http1_framing.json`: every prefix, every feed split through the
//! memoizing scanner, trailing bytes, and parse → write → parse round trips.

mod common;

use common::{for_each_split, vector_bytes as bytes, vector_limits as limits};
use serde_json::Value;
use sluice_core::http1::{
    BodyFraming, HeadError, HeadScanner, Header, Limits, Parsed, RequestHead, ResponseHead,
    Version, WriteError, parse_request_head, parse_response_head, request_framing,
    response_framing, write_request_head, write_response_head,
};

fn load(text: &str) -> Vec<Value> {
    let doc: Value = serde_json::from_str(text).unwrap();
    doc["vectors"].as_array().unwrap().clone()
}

/// Either head kind, so one harness covers both.
#[derive(Debug, Clone, PartialEq)]
enum Head {
    Request(RequestHead),
    Response(ResponseHead),
}

fn parse(kind: &str, buf: &[u8], limits: &Limits) -> Result<Parsed<Head>, HeadError> {
    Ok(match kind {
        "request" => match parse_request_head(buf, limits)? {
            Parsed::Complete { head, len } => Parsed::Complete {
                head: Head::Request(head),
                len,
            },
            Parsed::Partial => Parsed::Partial,
        },
        _ => match parse_response_head(buf, limits)? {
            Parsed::Complete { head, len } => Parsed::Complete {
                head: Head::Response(head),
                len,
            },
            Parsed::Partial => Parsed::Partial,
        },
    })
}

fn scan(
    scanner: &mut HeadScanner,
    kind: &str,
    buf: &[u8],
    limits: &Limits,
) -> Result<Parsed<Head>, HeadError> {
    Ok(match kind {
        "request" => match scanner.parse_request(buf, limits)? {
            Parsed::Complete { head, len } => Parsed::Complete {
                head: Head::Request(head),
                len,
            },
            Parsed::Partial => Parsed::Partial,
        },
        _ => match scanner.parse_response(buf, limits)? {
            Parsed::Complete { head, len } => Parsed::Complete {
                head: Head::Response(head),
                len,
            },
            Parsed::Partial => Parsed::Partial,
        },
    })
}

fn headers_of(v: &Value) -> Vec<Header> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|p| Header {
            name: p[0].as_str().unwrap().to_owned(),
            value: bytes(&p[1]),
        })
        .collect()
}

fn version_of(v: &Value) -> Version {
    match v.as_str().unwrap() {
        "HTTP/1.0" => Version::Http10,
        "HTTP/1.1" => Version::Http11,
        other => panic!("version {other}"),
    }
}

/// The head a complete vector describes.
fn expected_head(v: &Value) -> Head {
    if v["kind"] == "request" {
        Head::Request(RequestHead {
            method: v["method"].as_str().unwrap().to_owned(),
            target: v["target"].as_str().unwrap().to_owned(),
            version: version_of(&v["version"]),
            headers: headers_of(&v["headers"]),
        })
    } else {
        Head::Response(ResponseHead {
            version: version_of(&v["version"]),
            status: v["status_code"].as_u64().unwrap() as u16,
            reason: v["reason"].as_str().unwrap().to_owned(),
            headers: headers_of(&v["headers"]),
        })
    }
}

#[test]
fn head_vectors() {
    let vs = load(include_str!("vectors/http1_heads.json"));
    assert!(vs.len() >= 40);
    for v in &vs {
        let name = v["name"].as_str().unwrap();
        let kind = v["kind"].as_str().unwrap();
        let input = bytes(&v["input"]);
        let limits = limits(v);
        let got = parse(kind, &input, &limits);
        if let Some(e) = v.get("error") {
            let err = got.expect_err(name);
            assert_eq!(format!("{err:?}"), e.as_str().unwrap(), "{name}");
            assert_eq!(
                u64::from(err.status()),
                v["status"].as_u64().unwrap(),
                "{name}"
            );
            assert!(!err.to_string().is_empty());
        } else if v.get("partial").is_some() {
            assert_eq!(got, Ok(Parsed::Partial), "{name}");
        } else {
            let Ok(Parsed::Complete { head, len }) = got else {
                panic!("{name}: {got:?}")
            };
            assert_eq!(head, expected_head(v), "{name}");
            assert_eq!(len, input.len().min(head_len(&input)), "{name}: len");
            if let (Some(form), Head::Request(r)) = (v.get("target_form"), &head) {
                assert_eq!(
                    format!("{:?}", r.target_form().unwrap()),
                    form.as_str().unwrap()
                );
            }
        }
    }
}

/// Where the empty line ends (vectors may carry body bytes after it).
fn head_len(input: &[u8]) -> usize {
    input
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(input.len(), |p| p + 4)
}

#[test]
fn prefixes_of_good_heads_are_partial() {
    for v in load(include_str!("vectors/http1_heads.json")) {
        if v.get("error").is_some() || v.get("partial").is_some() {
            continue;
        }
        let kind = v["kind"].as_str().unwrap();
        let input = bytes(&v["input"]);
        let limits = limits(&v);
        let Ok(Parsed::Complete { len, .. }) = parse(kind, &input, &limits) else {
            panic!()
        };
        for cut in 0..len {
            assert_eq!(
                parse(kind, &input[..cut], &limits),
                Ok(Parsed::Partial),
                "{} cut at {cut}",
                v["name"]
            );
        }
    }
}

#[test]
fn trailing_bytes_do_not_change_the_result() {
    let tails: [&[u8]; 4] = [
        b"GET / HTTP/1.1\r\n",
        b"\n\n\n",
        b"\x00\xff garbage \r\r",
        &[b'x'; 70_000],
    ];
    for v in load(include_str!("vectors/http1_heads.json")) {
        if v.get("partial").is_some() {
            continue;
        }
        let kind = v["kind"].as_str().unwrap();
        let input = bytes(&v["input"]);
        let limits = limits(&v);
        let base = parse(kind, &input, &limits);
        if let Ok(Parsed::Complete { len, .. }) = &base {
            for tail in tails {
                let mut buf = input[..*len].to_vec();
                buf.extend_from_slice(tail);
                assert_eq!(parse(kind, &buf, &limits), base, "{}", v["name"]);
            }
        }
    }
}

#[test]
fn scanner_matches_under_every_split() {
    for v in load(include_str!("vectors/http1_heads.json")) {
        let name = v["name"].as_str().unwrap().to_owned();
        let kind = v["kind"].as_str().unwrap();
        let input = bytes(&v["input"]);
        let limits = limits(&v);
        let expected = parse(kind, &input, &limits);
        for_each_split(&input, |split, chunks| {
            let mut scanner = HeadScanner::new();
            let mut buf = Vec::new();
            let mut last = Ok(Parsed::Partial);
            for chunk in chunks {
                buf.extend_from_slice(chunk);
                last = scan(&mut scanner, kind, &buf, &limits);
                if !matches!(last, Ok(Parsed::Partial)) {
                    break;
                }
            }
            match &expected {
                Ok(_) => assert_eq!(last, expected, "{name} {split:?}"),
                // The scanner may report a malformed head at a different
                // point, but must report it.
                Err(_) => assert!(last.is_err(), "{name} {split:?}: {last:?}"),
            }
        });
    }
}

#[test]
fn scanner_is_linear_for_a_slow_head() {
    // A 1 MiB header arriving byte by byte: rejected at the limit, and the
    // total work stays linear (checked by running at all in debug builds:
    // the quadratic version would scan ~5e8 bytes).
    let limits = Limits::default();
    let mut scanner = HeadScanner::new();
    let mut buf = b"GET / HTTP/1.1\r\nHost: a\r\nX-Slow: ".to_vec();
    let mut verdict = Ok(Parsed::Partial);
    while verdict == Ok(Parsed::Partial) {
        buf.push(b'a');
        verdict = scanner.parse_request(&buf, &limits);
    }
    assert_eq!(verdict, Err(HeadError::TooLarge));
    assert_eq!(buf.len(), limits.max_head_bytes + 1);
}

fn framing_str(f: &BodyFraming) -> String {
    match f {
        BodyFraming::None => "none".into(),
        BodyFraming::Chunked => "chunked".into(),
        BodyFraming::UntilClose => "until-close".into(),
        BodyFraming::ContentLength(n) => format!("length:{n}"),
    }
}

#[test]
fn framing_vectors() {
    let vs = load(include_str!("vectors/http1_framing.json"));
    assert!(vs.len() >= 40);
    let limits = Limits::default();
    for v in &vs {
        let name = v["name"].as_str().unwrap();
        let input = bytes(&v["input"]);
        let got = if v["kind"] == "request" {
            let Ok(Parsed::Complete { head, .. }) = parse_request_head(&input, &limits) else {
                panic!("{name}: head does not parse")
            };
            request_framing(&head)
        } else {
            let Ok(Parsed::Complete { head, .. }) = parse_response_head(&input, &limits) else {
                panic!("{name}: head does not parse")
            };
            response_framing(v["request_method"].as_str().unwrap(), &head)
        };
        let got = match got {
            Ok(f) => framing_str(&f),
            Err(e) => {
                let expected_status =
                    if e == sluice_core::http1::FramingError::UnsupportedTransferCoding {
                        501
                    } else {
                        400
                    };
                assert_eq!(e.status(), expected_status);
                format!("error:{e:?}")
            }
        };
        assert_eq!(got, v["framing"].as_str().unwrap(), "{name}");
    }
}

#[test]
fn write_then_parse_round_trips() {
    let limits = Limits::default();
    for file in [
        include_str!("vectors/http1_heads.json"),
        include_str!("vectors/http1_framing.json"),
    ] {
        for v in load(file) {
            let kind = v["kind"].as_str().unwrap();
            let input = bytes(&v["input"]);
            let Ok(Parsed::Complete { head, .. }) = parse(kind, &input, &limits) else {
                continue;
            };
            // A 1.0 request without Host cannot be re-read as 1.1.
            if let Head::Request(r) = &head
                && r.header("host").is_none()
            {
                continue;
            }
            let mut out = b"prefix".to_vec();
            let reparsed = match &head {
                Head::Request(r) => {
                    write_request_head(r, &mut out).unwrap();
                    parse(kind, &out[6..], &limits)
                }
                Head::Response(r) => {
                    write_response_head(r, &mut out).unwrap();
                    parse(kind, &out[6..], &limits)
                }
            };
            let Ok(Parsed::Complete { head: again, len }) = reparsed else {
                panic!("{}: {reparsed:?}", v["name"])
            };
            assert_eq!(len, out.len() - 6);
            // The writer always speaks HTTP/1.1; all else survives.
            let mut head = head;
            match &mut head {
                Head::Request(r) => r.version = Version::Http11,
                Head::Response(r) => r.version = Version::Http11,
            }
            assert_eq!(again, head, "{}", v["name"]);
        }
    }
}

#[test]
fn writers_refuse_injection() {
    let ok = RequestHead {
        method: "POST".into(),
        target: "/mcp".into(),
        version: Version::Http11,
        headers: vec![Header::new("Host", "a"), Header::new("X", "v")],
    };
    let mut out = b"keep".to_vec();
    let cases: Vec<(RequestHead, WriteError)> = vec![
        (
            RequestHead {
                method: "PO ST".into(),
                ..ok.clone()
            },
            WriteError::InvalidMethod,
        ),
        (
            RequestHead {
                target: "/a b".into(),
                ..ok.clone()
            },
            WriteError::InvalidTarget,
        ),
        (
            RequestHead {
                target: "/a\r\nX: y".into(),
                ..ok.clone()
            },
            WriteError::InvalidTarget,
        ),
        (
            RequestHead {
                headers: vec![Header::new("Host", "a"), Header::new("X", "v\r\nEvil: 1")],
                ..ok.clone()
            },
            WriteError::InvalidHeaderValue { index: 1 },
        ),
        (
            RequestHead {
                headers: vec![Header::new("X", b"a\0b".to_vec())],
                ..ok.clone()
            },
            WriteError::InvalidHeaderValue { index: 0 },
        ),
        (
            RequestHead {
                headers: vec![Header::new("X\n", "a")],
                ..ok.clone()
            },
            WriteError::InvalidHeaderName { index: 0 },
        ),
        (
            RequestHead {
                headers: vec![Header::new("", "a")],
                ..ok.clone()
            },
            WriteError::InvalidHeaderName { index: 0 },
        ),
    ];
    for (head, err) in cases {
        assert_eq!(write_request_head(&head, &mut out), Err(err));
        assert_eq!(out, b"keep", "output touched on error");
    }
    let res = ResponseHead {
        version: Version::Http10,
        status: 200,
        reason: String::new(),
        headers: vec![],
    };
    write_response_head(&res, &mut out).unwrap();
    assert_eq!(out, b"keepHTTP/1.1 200 \r\n\r\n");
    for (status, reason, err) in [
        (99, "", WriteError::InvalidStatus),
        (600, "", WriteError::InvalidStatus),
        (200, "O\rK", WriteError::InvalidReason),
        (200, "O\nK", WriteError::InvalidReason),
    ] {
        let bad = ResponseHead {
            status,
            reason: reason.into(),
            ..res.clone()
        };
        assert_eq!(write_response_head(&bad, &mut out), Err(err));
    }
}

#[test]
fn huge_configured_header_count_does_not_allocate_it() {
    let limits = Limits {
        max_headers: usize::MAX,
        ..Limits::default()
    };
    let got = parse_request_head(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", &limits);
    assert!(matches!(got, Ok(Parsed::Complete { len: 27, .. })));
}
