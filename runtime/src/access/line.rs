//! The access line written straight into the log queue, in the same text
//! and JSON forms `tracing_subscriber::fmt` gives every other line, at a
//! fraction of its cost: the generic path (field visitors, `fmt::Debug`
//! per value, a timestamp formatted from scratch) was 17k instructions per
//! line, half of all a proxied request cost (docs/BENCHMARKS.md).
//!
//! Here the fields are known, so the line is a run of copies: each field's
//! opening (` status=`, `,"status":`) is one constant; a route's name and
//! upstream are quoted once, when the configuration is read
//! ([`RouteLine`]); a value is checked for bytes that need escaping with a
//! table and copied whole when none do (the escaping itself, rare, stays
//! with `{:?}` and serde_json, the code `tracing` runs); the timestamp's
//! date and time are formatted once a second per thread; numbers go
//! through `itoa` or a table of two-digit pairs.
//!
//! Unit tests hold both forms to what `tracing_subscriber` writes for the
//! same event, byte for byte, hostile values included.

use std::cell::Cell;
use std::time::SystemTime;

use super::RouteLabel;

/// When a line is written: Unix seconds and microseconds, UTC.
#[derive(Clone, Copy, Debug)]
pub(super) struct Stamp {
    secs: u64,
    micros: u32,
}

impl Stamp {
    /// The wall clock now.
    pub(super) fn now() -> Self {
        SystemTime::now().into()
    }
}

impl From<SystemTime> for Stamp {
    fn from(t: SystemTime) -> Self {
        let since = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
        Stamp {
            secs: since.as_secs(),
            micros: since.subsec_micros(),
        }
    }
}

/// One access line's fields, in the order they are written. `None` fields
/// are left out, as `tracing` leaves out an absent `Option`.
pub(super) struct Fields<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub rpc: Option<&'a str>,
    pub name: Option<&'a str>,
    pub status: Option<u16>,
    /// `route` and `upstream`.
    pub route: Option<&'a RouteLine>,
    pub session: Option<&'a str>,
    pub subject: Option<&'a str>,
    /// One of sluice's own words (`metrics::outcome_label`).
    pub outcome: &'static str,
    pub reason: Option<&'a str>,
    /// One of sluice's own words (`ExchangeError::side`).
    pub fault: Option<&'static str>,
    pub head_us: Option<u64>,
    pub total_us: Option<u64>,
    pub bytes: u64,
    pub reused: bool,
    pub hooks_us: Option<u64>,
}

/// A route as its access lines name it, with its `route` and `upstream`
/// fields written out once in both forms.
pub(crate) struct RouteLine {
    pub(super) label: RouteLabel,
    /// ` route="…" upstream="…"`
    text: Box<[u8]>,
    /// `,"route":"…","upstream":"…"`
    json: Box<[u8]>,
}

impl RouteLine {
    pub(super) fn new(label: RouteLabel) -> Self {
        let both = |open: [&[u8]; 2], string: fn(&str, &mut Vec<u8>)| {
            let mut out = Vec::new();
            out.extend_from_slice(open[0]);
            string(&label.name, &mut out);
            out.extend_from_slice(open[1]);
            string(&label.upstream, &mut out);
            out.into_boxed_slice()
        };
        let text = both([b" route=", b" upstream="], Text::string);
        let json = both([b",\"route\":", b",\"upstream\":"], Json::string);
        RouteLine { label, text, json }
    }
}

/// Where the text and JSON forms differ; the fields and their order are
/// written once, in [`write`].
trait Form {
    /// Everything before the first field's value: the timestamp, the
    /// level, (text) the target, and the opening of `method`, the first
    /// field.
    fn open(now: Stamp, out: &mut Vec<u8>);
    /// Of a field's two openings, ` key=` (text) or `,"key":` (JSON), this
    /// form's.
    fn pick(text: &'static [u8], json: &'static [u8]) -> &'static [u8];
    /// A `%value` field: as is (text) or a JSON string.
    fn display(open: Open, v: &str, out: &mut Vec<u8>);
    /// `v` has nothing this form escapes.
    fn plain(v: &str) -> bool;
    /// `v` escaped and quoted, for a value that is not [`Form::plain`].
    fn escaped(v: &str, out: &mut Vec<u8>);
    /// A `&str` value: Rust-debug-quoted (text) or a JSON string.
    #[inline(always)]
    fn string(v: &str, out: &mut Vec<u8>) {
        if Self::plain(v) {
            out.push(b'"');
            out.extend_from_slice(v.as_bytes());
            out.push(b'"');
        } else {
            Self::escaped(v, out);
        }
    }
    /// This form's `route` and `upstream`.
    fn route(r: &RouteLine) -> &[u8];
    /// Everything after the last field, the newline included.
    fn close(out: &mut Vec<u8>);
}

/// `2026-12-04T19:44:57.482415Z  INFO sluice::access: method=GET ...`
struct Text;

/// `{"timestamp":"…","level":"INFO","method":"GET",…,"target":"sluice::access"}`
struct Json;

impl Form for Text {
    fn open(now: Stamp, out: &mut Vec<u8>) {
        timestamp(now, out);
        out.extend_from_slice(b"  INFO sluice::access: method=");
    }
    #[inline(always)]
    fn pick(text: &'static [u8], _: &'static [u8]) -> &'static [u8] {
        text
    }
    #[inline(always)]
    fn display(open: Open, v: &str, out: &mut Vec<u8>) {
        out.extend_from_slice(open.bare);
        out.extend_from_slice(v.as_bytes());
    }
    /// `{:?}` of a `str` writes printable ASCII but `"` and `\` as is.
    #[inline(always)]
    fn plain(v: &str) -> bool {
        plain::<true>(v.as_bytes(), &AS_IS_TEXT)
    }
    /// `{:?}` of a `str`: quoted, and escaped the way Rust escapes it.
    #[cold]
    #[inline(never)]
    fn escaped(v: &str, out: &mut Vec<u8>) {
        use std::io::Write as _;
        // Writing into a Vec cannot fail.
        let _ = write!(out, "{v:?}");
    }
    #[inline(always)]
    fn route(r: &RouteLine) -> &[u8] {
        &r.text
    }
    fn close(out: &mut Vec<u8>) {
        out.push(b'\n');
    }
}

impl Form for Json {
    fn open(now: Stamp, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"timestamp\":\"");
        timestamp(now, out);
        out.extend_from_slice(b"\",\"level\":\"INFO\",\"method\":");
    }
    #[inline(always)]
    fn pick(_: &'static [u8], json: &'static [u8]) -> &'static [u8] {
        json
    }
    #[inline(always)]
    fn display(open: Open, v: &str, out: &mut Vec<u8>) {
        string_field::<Self>(open, v, out);
    }
    /// serde_json writes all but controls, `"` and `\` as is.
    #[inline(always)]
    fn plain(v: &str) -> bool {
        plain::<false>(v.as_bytes(), &AS_IS_JSON)
    }
    /// A JSON string as serde_json writes it (what tracing's JSON form
    /// uses).
    #[cold]
    #[inline(never)]
    fn escaped(v: &str, out: &mut Vec<u8>) {
        // Writing into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, v);
    }
    #[inline(always)]
    fn route(r: &RouteLine) -> &[u8] {
        &r.json
    }
    fn close(out: &mut Vec<u8>) {
        out.extend_from_slice(b",\"target\":\"sluice::access\"}\n");
    }
}

/// Bytes `{:?}` writes as they are: printable ASCII but `"` and `\`.
static AS_IS_TEXT: [bool; 256] = as_is(0x7f);
/// Bytes serde_json writes as they are: all but controls, `"` and `\`.
static AS_IS_JSON: [bool; 256] = as_is(0x100);

const fn as_is(end: usize) -> [bool; 256] {
    let mut table = [false; 256];
    let mut b = 0x20;
    while b < end {
        table[b] = b != b'"' as usize && b != b'\\' as usize;
        b += 1;
    }
    table
}

/// `v` has no byte that `table` says needs escaping. Eight bytes at a
/// time (`word_plain`) when there are eight, the table for a shorter value.
#[inline(always)]
fn plain<const TEXT: bool>(v: &[u8], table: &[bool; 256]) -> bool {
    if v.len() < 8 {
        return v.iter().all(|&b| table[b as usize]);
    }
    let word = |at: usize| u64::from_le_bytes(v[at..at + 8].try_into().unwrap_or_default());
    let mut at = 0;
    while at + 8 <= v.len() {
        if !word_plain::<TEXT>(word(at)) {
            return false;
        }
        at += 8;
    }
    // The last eight bytes again, overlapping: the tail without a loop.
    at == v.len() || word_plain::<TEXT>(word(v.len() - 8))
}

/// Eight bytes, none of which needs escaping: no control (below 0x20), no
/// `"` or `\`, and for the text form nothing from 0x7f up. Bit tricks from
/// "Bit Twiddling Hacks" (`hasless`, `hasmore`, `haszero`): each can flag a
/// byte wrongly only above one it flagged rightly, so "any" is exact.
#[inline(always)]
fn word_plain<const TEXT: bool>(x: u64) -> bool {
    const ONES: u64 = u64::from_le_bytes([1; 8]);
    const HIGH: u64 = ONES * 0x80;
    let zero_in = |y: u64| y.wrapping_sub(ONES) & !y & HIGH;
    let control = x.wrapping_sub(ONES * 0x20) & !x & HIGH;
    let quote = zero_in(x ^ (ONES * u64::from(b'"')));
    let backslash = zero_in(x ^ (ONES * u64::from(b'\\')));
    // 0x7f and up: adding one sets bit 7 of 0x7f; `| x` catches the rest.
    let high = if TEXT {
        (x.wrapping_add(ONES) | x) & HIGH
    } else {
        0
    };
    control | quote | backslash | high == 0
}

/// A field's opening in this form, without and with the quote a string
/// value opens with.
#[derive(Clone, Copy)]
struct Open {
    bare: &'static [u8],
    quoted: &'static [u8],
}

/// A `&str` field: its opening and the value, quoted and escaped (the
/// opening and the quote are one copy when there is nothing to escape).
#[inline(always)]
fn string_field<F: Form>(open: Open, v: &str, out: &mut Vec<u8>) {
    if F::plain(v) {
        out.extend_from_slice(open.quoted);
        out.extend_from_slice(v.as_bytes());
        out.push(b'"');
    } else {
        out.extend_from_slice(open.bare);
        F::escaped(v, out);
    }
}

/// A field whose value is one of sluice's own words (an outcome, a side):
/// nothing in them to escape, so none is looked for.
#[inline(always)]
fn label_field<F: Form>(open: Open, v: &'static str, out: &mut Vec<u8>) {
    debug_assert!(F::plain(v) && Text::plain(v) && Json::plain(v), "{v:?}");
    out.extend_from_slice(open.quoted);
    out.extend_from_slice(v.as_bytes());
    out.push(b'"');
}

#[inline(always)]
fn number(n: u64, out: &mut Vec<u8>) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// `00` to `99`.
static TWO_DIGITS: [[u8; 2]; 100] = {
    let mut table = [[0; 2]; 100];
    let mut i = 0;
    while i < 100 {
        table[i] = [b'0' + (i / 10) as u8, b'0' + (i % 10) as u8];
        i += 1;
    }
    table
};

/// `n` (below 100) as two digits.
#[inline(always)]
fn two_digits(n: u32) -> [u8; 2] {
    TWO_DIGITS[(n % 100) as usize]
}

/// A field's opening in both forms, from its name.
macro_rules! key {
    ($form:ty, $name:literal) => {
        <$form>::pick(
            concat!(" ", $name, "=").as_bytes(),
            concat!(",\"", $name, "\":").as_bytes(),
        )
    };
}

/// A string field's [`Open`], from its name.
macro_rules! open {
    ($form:ty, $name:literal) => {
        Open {
            bare: key!($form, $name),
            quoted: <$form>::pick(
                concat!(" ", $name, "=\"").as_bytes(),
                concat!(",\"", $name, "\":\"").as_bytes(),
            ),
        }
    };
}

/// The `status` field: its opening and three digits in one copy (any
/// other status, in two).
#[inline(always)]
fn status_field<F: Form>(v: u16, out: &mut Vec<u8>) {
    let key = key!(F, "status");
    if (100..1000).contains(&v) {
        let (hundreds, rest) = (v / 100, v % 100);
        let [tens, ones] = two_digits(rest.into());
        let mut field = [0; 16];
        field[..key.len()].copy_from_slice(key);
        field[key.len()..key.len() + 3].copy_from_slice(&[b'0' + hundreds as u8, tens, ones]);
        out.extend_from_slice(&field[..key.len() + 3]);
    } else {
        out.extend_from_slice(key);
        number(v.into(), out);
    }
}

/// The line in form `F`: every field, in the documented order.
#[inline(always)]
fn write<F: Form>(f: &Fields<'_>, now: Stamp, out: &mut Vec<u8>) {
    // Most lines fit: one capacity check instead of a growth mid-line.
    out.reserve(320);
    F::open(now, out);
    // `method`'s opening ends `open`.
    let method = Open {
        bare: b"",
        quoted: F::pick(b"", b"\""),
    };
    F::display(method, f.method, out);
    F::display(open!(F, "path"), f.path, out);
    if let Some(v) = f.rpc {
        string_field::<F>(open!(F, "rpc"), v, out);
    }
    if let Some(v) = f.name {
        string_field::<F>(open!(F, "name"), v, out);
    }
    if let Some(v) = f.status {
        status_field::<F>(v, out);
    }
    if let Some(r) = f.route {
        out.extend_from_slice(F::route(r));
    }
    if let Some(v) = f.session {
        string_field::<F>(open!(F, "session"), v, out);
    }
    if let Some(v) = f.subject {
        string_field::<F>(open!(F, "subject"), v, out);
    }
    label_field::<F>(open!(F, "outcome"), f.outcome, out);
    if let Some(v) = f.reason {
        string_field::<F>(open!(F, "reason"), v, out);
    }
    if let Some(v) = f.fault {
        label_field::<F>(open!(F, "fault"), v, out);
    }
    if let Some(v) = f.head_us {
        out.extend_from_slice(key!(F, "head_us"));
        number(v, out);
    }
    if let Some(v) = f.total_us {
        out.extend_from_slice(key!(F, "total_us"));
        number(v, out);
    }
    out.extend_from_slice(key!(F, "bytes"));
    number(f.bytes, out);
    match f.hooks_us {
        Some(v) => {
            out.extend_from_slice(match f.reused {
                true => F::pick(b" reused=true", b",\"reused\":true"),
                false => F::pick(b" reused=false", b",\"reused\":false"),
            });
            out.extend_from_slice(key!(F, "hooks_us"));
            number(v, out);
            F::close(out);
        }
        // The usual end, one copy: `reused`, then the line's close.
        None => out.extend_from_slice(match f.reused {
            true => F::pick(
                b" reused=true\n",
                b",\"reused\":true,\"target\":\"sluice::access\"}\n",
            ),
            false => F::pick(
                b" reused=false\n",
                b",\"reused\":false,\"target\":\"sluice::access\"}\n",
            ),
        }),
    }
}

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
        route = f.route.map(|r| r.label.name.as_str()),
        upstream = f.route.map(|r| r.label.upstream.as_str()),
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
pub(super) fn text(fields: &Fields<'_>, now: Stamp, out: &mut Vec<u8>) {
    write::<Text>(fields, now, out);
}

/// `{"timestamp":"…","level":"INFO","method":"GET",…,"target":"sluice::access"}`
pub(super) fn json(fields: &Fields<'_>, now: Stamp, out: &mut Vec<u8>) {
    write::<Json>(fields, now, out);
}

/// RFC 3339 in UTC with microseconds, as tracing's default timer writes it:
/// `2026-12-04T19:44:57.482415Z`. The date and time of day are formatted
/// once per second per thread.
fn timestamp(now: Stamp, out: &mut Vec<u8>) {
    thread_local! {
        /// The second `DATE_TIME` shows.
        static SECOND: Cell<u64> = const { Cell::new(u64::MAX) };
        static DATE_TIME: Cell<[u8; 19]> = const { Cell::new([0; 19]) };
    }
    if SECOND.get() != now.secs {
        DATE_TIME.set(date_time(now.secs));
        SECOND.set(now.secs);
    }
    out.extend_from_slice(&DATE_TIME.get());
    let micros = now.micros % 1_000_000;
    let [a, b] = two_digits(micros / 10_000);
    let [c, d] = two_digits(micros / 100);
    let [e, f] = two_digits(micros);
    out.extend_from_slice(&[b'.', a, b, c, d, e, f, b'Z']);
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

    fn route_line(name: &str, upstream: &str) -> &'static RouteLine {
        Box::leak(Box::new(RouteLine::new(RouteLabel {
            name: name.into(),
            upstream: upstream.into(),
        })))
    }

    fn fields() -> Fields<'static> {
        Fields {
            method: "POST",
            path: "/mcp",
            rpc: Some("tools/call"),
            name: Some("say \"hi\"\n\u{7f}é"),
            status: Some(200),
            route: Some(route_line("up-1", "10.0.0.7:8080")),
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
        text(&fields(), Stamp::now(), &mut out);
        let ours = String::from_utf8(out).unwrap();
        let theirs = through_tracing(&fields(), false);
        assert_eq!(after_timestamp(&ours), after_timestamp(&theirs));
    }

    #[test]
    fn the_json_line_is_what_tracing_writes() {
        let mut out = Vec::new();
        json(&fields(), Stamp::now(), &mut out);
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
        text(f, fixed_time().into(), &mut out);
        String::from_utf8(out).unwrap()
    }

    fn json_line(f: &Fields<'_>) -> String {
        let mut out = Vec::new();
        json(f, fixed_time().into(), &mut out);
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

    /// The eight-at-a-time check says what the table says, for every byte
    /// at every place in values of every length up to three words, amid
    /// neighbours of every kind (the bit tricks carry and borrow between
    /// bytes).
    #[test]
    fn the_word_check_agrees_with_the_table() {
        let around = [
            b'a', b' ', b'!', b'#', b'[', b']', 0x7e, 0x7f, 0x80, 0xff, 0x00,
        ];
        for len in 0..=24 {
            for &fill in &around {
                let mut v = vec![fill; len];
                for at in 0..len.max(1) {
                    for byte in 0..=255u8 {
                        if let Some(b) = v.get_mut(at) {
                            *b = byte;
                        }
                        let table = |t: &[bool; 256]| v.iter().all(|&b| t[b as usize]);
                        assert_eq!(
                            plain::<true>(&v, &AS_IS_TEXT),
                            table(&AS_IS_TEXT),
                            "text {v:x?}"
                        );
                        assert_eq!(
                            plain::<false>(&v, &AS_IS_JSON),
                            table(&AS_IS_JSON),
                            "json {v:x?}"
                        );
                    }
                    if let Some(b) = v.get_mut(at) {
                        *b = fill;
                    }
                }
            }
        }
    }

    /// Every hostile value in every string field, both forms, byte for byte
    /// against what tracing's fmt layer writes for the same event.
    #[test]
    fn hostile_values_are_escaped_as_tracing_escapes_them() {
        for &v in HOSTILE {
            let hostile = Fields {
                rpc: Some(v),
                name: Some(v),
                route: Some(route_line(v, v)),
                session: Some(v),
                subject: Some(v),
                reason: Some(v),
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
        json(&all, Stamp::now(), &mut out);
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

    /// `outcome` and `fault` are written without looking for anything to
    /// escape: every word they can hold must need none.
    #[test]
    fn sluices_own_words_need_no_escaping() {
        use sluice_core::exchange::{ExchangeError, Outcome, TimedOut, UpstreamError};
        let outcomes = [
            Outcome::Pending,
            Outcome::Complete,
            Outcome::Answered,
            Outcome::Aborted,
            Outcome::ClientGone,
        ]
        .map(crate::metrics::outcome_label);
        let sides = [
            ExchangeError::Upstream(UpstreamError::ConnectFailed).side(),
            ExchangeError::Timeout(TimedOut::Request).side(),
            ExchangeError::ShuttingDown.side(),
            // ExchangeError::Client's, whose error takes more to build.
            "client",
        ];
        for v in outcomes.into_iter().chain(sides) {
            assert!(Text::plain(v) && Json::plain(v), "{v:?}");
        }
    }

    #[test]
    fn numbers_are_written_as_their_digits() {
        let edges = (0..20).flat_map(|p| {
            let ten = 10u64.pow(p);
            [ten - 1, ten, ten + 1, ten.saturating_mul(2) - 1]
        });
        let all_small = 0..=100_000;
        for n in edges
            .chain(all_small)
            .chain([u64::MAX, 99_999_999, 100_000_000])
        {
            let mut out = b"x".to_vec();
            number(n, &mut out);
            assert_eq!(out, format!("x{n}").into_bytes());
        }
    }

    #[test]
    fn statuses_are_written_as_their_digits() {
        for v in [
            0, 1, 9, 10, 99, 100, 101, 110, 200, 204, 404, 599, 909, 999, 1000, 65535,
        ] {
            let mut out = Vec::new();
            status_field::<Text>(v, &mut out);
            status_field::<Json>(v, &mut out);
            let written = String::from_utf8(out).unwrap();
            assert_eq!(written, format!(" status={v},\"status\":{v}"));
        }
    }

    #[test]
    fn timestamps_are_rfc3339_with_microseconds() {
        let at = |secs: u64, micros: u64| {
            let mut out = Vec::new();
            let t =
                SystemTime::UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_micros(micros);
            timestamp(t.into(), &mut out);
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
