//! The access line written straight into the log queue, in the same text
//! and JSON forms `tracing_subscriber::fmt` gives every other line, at a
//! fraction of its cost: the generic path (field visitors, `fmt::Debug`
//! per value, a timestamp formatted from scratch) was 17k instructions per
//! line, half of all a proxied request cost (docs/BENCHMARKS.md). Here the
//! fields are known, the timestamp's date and time are formatted once a
//! second per thread, and numbers go through `itoa`.
//!
//! A unit test holds both forms to what `tracing_subscriber` writes for the
//! same event.

use std::cell::RefCell;
use std::time::SystemTime;

/// One access line's fields, in the order they are written. `None` fields
/// are left out, as `tracing` leaves out an absent `Option`.
pub(super) struct Fields<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub rpc: Option<&'a str>,
    pub name: Option<&'a str>,
    pub status: Option<u16>,
    pub route: Option<&'a str>,
    pub upstream: Option<&'a str>,
    pub session: Option<&'a str>,
    pub subject: Option<&'a str>,
    pub outcome: &'a str,
    pub reason: Option<&'a str>,
    pub fault: Option<&'a str>,
    pub head_us: Option<u64>,
    pub total_us: Option<u64>,
    pub bytes: u64,
    pub reused: bool,
    pub hooks_us: Option<u64>,
}

/// How a field's value is written.
enum Value<'a> {
    /// `%value` in tracing: as is (text) or a JSON string.
    Display(&'a str),
    /// A `&str` value: Rust-debug-quoted (text) or a JSON string.
    Str(&'a str),
    Number(u64),
    Bool(bool),
}

impl Fields<'_> {
    fn each(&self, mut f: impl FnMut(&str, Value<'_>)) {
        f("method", Value::Display(self.method));
        f("path", Value::Display(self.path));
        let strs = [("rpc", self.rpc), ("name", self.name)];
        for (key, v) in strs {
            if let Some(v) = v {
                f(key, Value::Str(v));
            }
        }
        if let Some(status) = self.status {
            f("status", Value::Number(status.into()));
        }
        let strs = [
            ("route", self.route),
            ("upstream", self.upstream),
            ("session", self.session),
            ("subject", self.subject),
        ];
        for (key, v) in strs {
            if let Some(v) = v {
                f(key, Value::Str(v));
            }
        }
        f("outcome", Value::Str(self.outcome));
        let strs = [("reason", self.reason), ("fault", self.fault)];
        for (key, v) in strs {
            if let Some(v) = v {
                f(key, Value::Str(v));
            }
        }
        let times = [("head_us", self.head_us), ("total_us", self.total_us)];
        for (key, v) in times {
            if let Some(v) = v {
                f(key, Value::Number(v));
            }
        }
        f("bytes", Value::Number(self.bytes));
        f("reused", Value::Bool(self.reused));
        if let Some(hooks) = self.hooks_us {
            f("hooks_us", Value::Number(hooks));
        }
    }
}

/// The target every access line names.
const TARGET: &str = "sluice::access";

/// The line as a `tracing` event (the sink on a terminal, where the fmt
/// layer colours it); [`text`] and [`json`] write the same fields.
pub(super) fn through_subscriber(f: &Fields<'_>) {
    tracing::info!(
        target: "sluice::access",
        method = %f.method,
        path = %f.path,
        rpc = f.rpc,
        name = f.name,
        status = f.status,
        route = f.route,
        upstream = f.upstream,
        session = f.session,
        subject = f.subject,
        outcome = f.outcome,
        reason = f.reason,
        fault = f.fault,
        head_us = f.head_us,
        total_us = f.total_us,
        bytes = f.bytes,
        reused = f.reused,
        hooks_us = f.hooks_us,
    );
}

/// `2026-12-04T19:44:57.482415Z  INFO sluice::access: method=GET ...`
pub(super) fn text(fields: &Fields<'_>, now: SystemTime, out: &mut Vec<u8>) {
    timestamp(now, out);
    out.extend_from_slice(b"  INFO ");
    out.extend_from_slice(TARGET.as_bytes());
    out.push(b':');
    fields.each(|key, value| {
        out.push(b' ');
        out.extend_from_slice(key.as_bytes());
        out.push(b'=');
        match value {
            Value::Display(v) => out.extend_from_slice(v.as_bytes()),
            Value::Str(v) => debug_str(v, out),
            Value::Number(n) => out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes()),
            Value::Bool(b) => out.extend_from_slice(if b { b"true" } else { b"false" }),
        }
    });
    out.push(b'\n');
}

/// `{"timestamp":"…","level":"INFO","method":"GET",…,"target":"sluice::access"}`
pub(super) fn json(fields: &Fields<'_>, now: SystemTime, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"timestamp\":\"");
    timestamp(now, out);
    out.extend_from_slice(b"\",\"level\":\"INFO\"");
    fields.each(|key, value| {
        out.extend_from_slice(b",\"");
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(b"\":");
        match value {
            Value::Display(v) | Value::Str(v) => json_str(v, out),
            Value::Number(n) => out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes()),
            Value::Bool(b) => out.extend_from_slice(if b { b"true" } else { b"false" }),
        }
    });
    out.extend_from_slice(b",\"target\":\"");
    out.extend_from_slice(TARGET.as_bytes());
    out.extend_from_slice(b"\"}\n");
}

/// `{:?}` of a `str`: quoted, and escaped the way Rust escapes it; the
/// common case (printable ASCII, no quote or backslash) is copied as is.
fn debug_str(v: &str, out: &mut Vec<u8>) {
    if v.bytes()
        .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
    {
        out.push(b'"');
        out.extend_from_slice(v.as_bytes());
        out.push(b'"');
    } else {
        use std::io::Write as _;
        let _ = write!(out, "{v:?}");
    }
}

/// A JSON string, escaped by serde_json (what tracing's JSON form uses).
fn json_str(v: &str, out: &mut Vec<u8>) {
    // Writing into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, v);
}

/// RFC 3339 in UTC with microseconds, as tracing's default timer writes it:
/// `2026-12-04T19:44:57.482415Z`. The date and time of day are formatted
/// once per second per thread.
fn timestamp(now: SystemTime, out: &mut Vec<u8>) {
    thread_local! {
        static SECOND: RefCell<(u64, [u8; 19])> = const { RefCell::new((u64::MAX, [0; 19])) };
    }
    let since = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = since.as_secs();
    SECOND.with_borrow_mut(|(cached, text)| {
        if *cached != secs {
            *text = date_time(secs);
            *cached = secs;
        }
        out.extend_from_slice(text);
    });
    let micros = since.subsec_micros();
    out.push(b'.');
    let digits = itoa::Buffer::new().format(micros).len();
    out.extend(std::iter::repeat_n(b'0', 6 - digits));
    out.extend_from_slice(itoa::Buffer::new().format(micros).as_bytes());
    out.push(b'Z');
}

/// `YYYY-MM-DDTHH:MM:SS` of a Unix time (proleptic Gregorian, UTC).
fn date_time(secs: u64) -> [u8; 19] {
    let days = (secs / 86_400) as i64;
    let day_secs = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let mut text = [0u8; 19];
    let mut put = |at: usize, value: u64, width: usize| {
        let mut v = value;
        for i in (0..width).rev() {
            text[at + i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, year.clamp(0, 9999) as u64, 4);
    put(5, month as u64, 2);
    put(8, day as u64, 2);
    put(11, day_secs / 3600, 2);
    put(14, day_secs / 60 % 60, 2);
    put(17, day_secs % 60, 2);
    for (at, sep) in [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')] {
        text[at] = sep;
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    fn fields() -> Fields<'static> {
        Fields {
            method: "POST",
            path: "/mcp",
            rpc: Some("tools/call"),
            name: Some("say \"hi\"\n\u{7f}é"),
            status: Some(200),
            route: Some("up-1"),
            upstream: Some("10.0.0.7:8080"),
            session: Some("00c0ffee00c0ffee"),
            subject: Some("alice@example.com"),
            outcome: "complete",
            reason: None,
            fault: Some("upstream"),
            head_us: Some(312),
            total_us: Some(1_045),
            bytes: 1024,
            reused: true,
            hooks_us: Some(9),
        }
    }

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// What tracing's fmt layer writes for the same event (the access
    /// log's former path).
    fn through_tracing(f: &Fields<'_>, json: bool) -> String {
        let buffer = Buffer::default();
        let writer = {
            let buffer = buffer.clone();
            move || buffer.clone()
        };
        let builder = tracing_subscriber::fmt()
            .with_writer(writer)
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO);
        let event = || through_subscriber(f);
        if json {
            let subscriber = builder.json().flatten_event(true).finish();
            tracing::subscriber::with_default(subscriber, event);
        } else {
            let subscriber = builder.with_target(true).finish();
            tracing::subscriber::with_default(subscriber, event);
        }
        String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap()
    }

    /// The line without its timestamp (the two were written at different
    /// times).
    fn after_timestamp(line: &str) -> &str {
        line.split_once('Z').unwrap().1
    }

    #[test]
    fn the_text_line_is_what_tracing_writes() {
        let mut out = Vec::new();
        text(&fields(), SystemTime::now(), &mut out);
        let ours = String::from_utf8(out).unwrap();
        let theirs = through_tracing(&fields(), false);
        assert_eq!(after_timestamp(&ours), after_timestamp(&theirs));
    }

    #[test]
    fn the_json_line_is_what_tracing_writes() {
        let mut out = Vec::new();
        json(&fields(), SystemTime::now(), &mut out);
        let ours = String::from_utf8(out).unwrap();
        let theirs = through_tracing(&fields(), true);
        assert!(ours.ends_with('\n'));
        let parse = |s: &str| -> serde_json::Map<String, serde_json::Value> {
            let mut v: serde_json::Value = serde_json::from_str(s).unwrap();
            v.as_object_mut().unwrap().remove("timestamp");
            v.as_object().unwrap().clone()
        };
        let (ours_map, theirs_map) = (parse(&ours), parse(&theirs));
        assert_eq!(ours_map, theirs_map);
        // The same keys in the same order.
        assert_eq!(
            ours_map.keys().collect::<Vec<_>>(),
            theirs_map.keys().collect::<Vec<_>>()
        );
    }

    /// 2026-12-04T19:44:57.482415Z
    fn fixed_time() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_micros(1_796_413_497_482_415)
    }

    fn text_line(f: &Fields<'_>) -> String {
        let mut out = Vec::new();
        text(f, fixed_time(), &mut out);
        String::from_utf8(out).unwrap()
    }

    fn json_line(f: &Fields<'_>) -> String {
        let mut out = Vec::new();
        json(f, fixed_time(), &mut out);
        String::from_utf8(out).unwrap()
    }

    /// Only what must be there: every optional field absent.
    fn bare() -> Fields<'static> {
        Fields {
            method: "GET",
            path: "/",
            rpc: None,
            name: None,
            status: None,
            route: None,
            upstream: None,
            session: None,
            subject: None,
            outcome: "client-gone",
            reason: None,
            fault: None,
            head_us: None,
            total_us: None,
            bytes: 0,
            reused: false,
            hooks_us: None,
        }
    }

    /// The exact bytes, pinned: the line is a documented contract, and
    /// every change to how it is written must keep them.
    #[test]
    fn the_text_line_byte_for_byte() {
        assert_eq!(
            text_line(&fields()),
            "2026-12-04T19:44:57.482415Z  INFO sluice::access: method=POST path=/mcp \
             rpc=\"tools/call\" name=\"say \\\"hi\\\"\\n\\u{7f}é\" status=200 \
             route=\"up-1\" upstream=\"10.0.0.7:8080\" session=\"00c0ffee00c0ffee\" \
             subject=\"alice@example.com\" outcome=\"complete\" fault=\"upstream\" \
             head_us=312 total_us=1045 bytes=1024 reused=true hooks_us=9\n"
        );
        assert_eq!(
            text_line(&bare()),
            "2026-12-04T19:44:57.482415Z  INFO sluice::access: method=GET path=/ \
             outcome=\"client-gone\" bytes=0 reused=false\n"
        );
        let widest = Fields {
            reason: Some("upstream refused"),
            status: Some(502),
            head_us: Some(0),
            total_us: Some(u64::MAX),
            bytes: 18_446_744_073_709_551_615,
            reused: false,
            ..fields()
        };
        assert!(text_line(&widest).ends_with(
            " outcome=\"complete\" reason=\"upstream refused\" fault=\"upstream\" \
             head_us=0 total_us=18446744073709551615 bytes=18446744073709551615 \
             reused=false hooks_us=9\n"
        ));
    }

    #[test]
    fn the_json_line_byte_for_byte() {
        assert_eq!(
            json_line(&fields()),
            "{\"timestamp\":\"2026-12-04T19:44:57.482415Z\",\"level\":\"INFO\",\
             \"method\":\"POST\",\"path\":\"/mcp\",\"rpc\":\"tools/call\",\
             \"name\":\"say \\\"hi\\\"\\n\u{7f}é\",\"status\":200,\"route\":\"up-1\",\
             \"upstream\":\"10.0.0.7:8080\",\"session\":\"00c0ffee00c0ffee\",\
             \"subject\":\"alice@example.com\",\"outcome\":\"complete\",\
             \"fault\":\"upstream\",\"head_us\":312,\"total_us\":1045,\"bytes\":1024,\
             \"reused\":true,\"hooks_us\":9,\"target\":\"sluice::access\"}\n"
        );
        assert_eq!(
            json_line(&bare()),
            "{\"timestamp\":\"2026-12-04T19:44:57.482415Z\",\"level\":\"INFO\",\
             \"method\":\"GET\",\"path\":\"/\",\"outcome\":\"client-gone\",\
             \"bytes\":0,\"reused\":false,\"target\":\"sluice::access\"}\n"
        );
    }

    /// Values a client, a token or a configuration chose, each of which
    /// must come out escaped (a log line an attacker can end early or
    /// forge is an injection).
    const HOSTILE: &[&str] = &[
        "",
        "plain",
        "a\nINFO sluice::access: method=GET forged=1",
        "cr\rlf\n",
        "tab\there",
        "nul\0byte",
        "quote\"inside",
        "back\\slash",
        "\\\"",
        "esc\u{1b}[31mred",
        "del\u{7f}",
        "bell\u{7}",
        "\u{1f}unit",
        "é and ü",
        "zero\u{200b}width",
        "combining e\u{301}",
        "\u{301}leading combining",
        "line\u{2028}separator",
        "bidi \u{202e}evil",
        "bom\u{feff}",
        "private \u{e000}",
        "astral 🦀 \u{10ffff}",
        "\u{80}\u{9f}c1 controls",
        "{\"json\":\"in a value\"}",
        "' single",
        "\\u0000 spelled out",
        "\u{fffd} replacement (what a non-UTF-8 byte becomes upstream)",
    ];

    /// Every hostile value in every string field, both forms, byte for byte
    /// against what tracing's fmt layer writes for the same event.
    #[test]
    fn hostile_values_are_escaped_as_tracing_escapes_them() {
        for &v in HOSTILE {
            let hostile = Fields {
                rpc: Some(v),
                name: Some(v),
                route: Some(v),
                upstream: Some(v),
                session: Some(v),
                subject: Some(v),
                reason: Some(v),
                fault: Some(v),
                ..fields()
            };
            assert_eq!(
                after_timestamp(&text_line(&hostile)),
                after_timestamp(&through_tracing(&hostile, false)),
                "text, {v:?}"
            );
            assert_eq!(
                after_timestamp(&json_line(&hostile)),
                after_timestamp(&through_tracing(&hostile, true)),
                "json, {v:?}"
            );
            // One line each, whatever the value.
            for line in [text_line(&hostile), json_line(&hostile)] {
                assert_eq!(line.matches('\n').count(), 1, "{line:?}");
                assert!(line.ends_with('\n'));
                assert!(!line.contains('\r'), "{line:?}");
                assert!(!line.bytes().any(|b| b < 0x20 && b != b'\n'), "{line:?}");
            }
            let parsed: serde_json::Value = serde_json::from_str(&json_line(&hostile)).unwrap();
            assert_eq!(parsed["name"], v);
        }
    }

    /// The first column of the table under `heading` in
    /// docs/OPERATIONS.md, backticks stripped.
    fn documented(heading: &str) -> Vec<String> {
        let doc = include_str!("../../../docs/OPERATIONS.md");
        let (_, after) = doc.split_once(heading).expect("the heading is in the doc");
        after
            .lines()
            .skip_while(|l| !l.starts_with('|'))
            .take_while(|l| l.starts_with('|'))
            .skip(2)
            .map(|l| {
                l.split('|')
                    .nth(1)
                    .unwrap()
                    .trim()
                    .trim_matches('`')
                    .to_owned()
            })
            .collect()
    }

    #[test]
    fn every_field_of_the_json_line_is_documented_in_order() {
        // Every optional field present: the widest line sluice writes.
        let all = Fields {
            reason: Some("upstream refused"),
            ..fields()
        };
        let mut out = Vec::new();
        json(&all, SystemTime::now(), &mut out);
        let line: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(&out).unwrap();
        let mut keys: Vec<&String> = line.keys().collect();
        let doc = documented("#### The access line");
        let mut documented: Vec<&String> = doc.iter().collect();
        keys.sort();
        documented.sort();
        assert_eq!(
            keys, documented,
            "the line's fields and the doc's table differ"
        );
        // And the table lists them in the order the line writes them.
        let text = String::from_utf8(out).unwrap();
        let at = |key: &str| text.find(&format!("\"{key}\":")).unwrap();
        assert!(
            doc.windows(2).all(|w| at(&w[0]) < at(&w[1])),
            "the doc's order is not the line's: {doc:?}\n{text}"
        );
    }

    #[test]
    fn timestamps_are_rfc3339_with_microseconds() {
        let at = |secs: u64, micros: u64| {
            let mut out = Vec::new();
            let t =
                SystemTime::UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_micros(micros);
            timestamp(t, &mut out);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(at(951_782_400, 7), "2000-02-29T00:00:00.000007Z");
        assert_eq!(at(1_796_413_497, 482_415), "2026-12-04T19:44:57.482415Z");
        assert_eq!(at(4_102_444_799, 999_999), "2099-12-31T23:59:59.999999Z");
        // The per-second cache follows the clock both ways.
        assert_eq!(at(1_796_413_498, 1), "2026-12-04T19:44:58.000001Z");
        assert_eq!(at(1_796_413_497, 1), "2026-12-04T19:44:57.000001Z");
    }
}
