//! sluice hook: mask API keys and tokens in tool results before they reach
//! the client (and the model behind it).
//!
//! It scans the response's JSON text directly — secrets never contain `"`
//! or `\`, so a match cannot leave a string literal — and replaces each
//! secret with a mask, leaving every other byte as it was. No JSON parse, no
//! re-serialisation: fast, and the message keeps its exact shape.
//!
//! Shapes: OpenAI-style `sk-…`, GitHub `ghp_/gho_/ghu_/ghs_/ghr_…` and
//! `github_pat_…`, AWS access key ids `AKIA…/ASIA…`, Slack `xox?-…`,
//! `Bearer <token>`, and JWT-like `eyJ….….…`.
//!
//! Config (optional JSON): `{"mask": "[REDACTED]", "methods": ["tools/call"]}`.
//! Limitation: a secret written with JSON escapes (`\u0041KIA…`, `\/`) is
//! not recognised (or only up to the escape).

wit_bindgen::generate!({
    path: "wit",
    world: "sluice:hook/hook",
});

use exports::sluice::hook::handler::Guest;
use sluice::hook::host;
use sluice::hook::types::{Context, Message, Verdict};

const DEFAULT_MASK: &str = "[REDACTED]";

/// Tiny config reader: avoids pulling a JSON library into the guest.
struct Config {
    mask: String,
    methods: Vec<String>,
}

impl Config {
    fn load() -> Config {
        let text = host::config();
        Config {
            mask: string_field(&text, "mask").unwrap_or_else(|| DEFAULT_MASK.into()),
            methods: string_list_field(&text, "methods")
                .unwrap_or_else(|| vec!["tools/call".into()]),
        }
    }
}

/// The string value of `"key": "…"` in a flat JSON object (no escapes).
fn string_field(json: &str, key: &str) -> Option<String> {
    let rest = after_key(json, key)?;
    let rest = rest.strip_prefix('"')?;
    Some(rest[..rest.find('"')?].to_string())
}

/// The strings of `"key": ["…", …]` in a flat JSON object (no escapes).
fn string_list_field(json: &str, key: &str) -> Option<Vec<String>> {
    let rest = after_key(json, key)?.strip_prefix('[')?;
    let body = &rest[..rest.find(']')?];
    Some(
        body.split(',')
            .map(|s| s.trim().trim_matches('"').to_string())
            .filter(|s| !s.is_empty())
            .collect(),
    )
}

fn after_key<'a>(json: &'a str, key: &str) -> Option<&'a str> {
    let at = json.find(&format!("\"{key}\""))?;
    let rest = json[at + key.len() + 2..].trim_start().strip_prefix(':')?;
    Some(rest.trim_start())
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

fn is_b64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~+/=".contains(&b)
}

fn run(s: &[u8], from: usize, ok: impl Fn(u8) -> bool) -> usize {
    s[from..].iter().take_while(|&&b| ok(b)).count()
}

/// If a secret starts at `i` (a word boundary), its length.
fn secret_at(s: &[u8], i: usize) -> Option<usize> {
    let rest = &s[i..];
    let prefixed = |p: &[u8], min: usize, ok: fn(u8) -> bool| {
        rest.starts_with(p)
            .then(|| run(s, i + p.len(), ok))
            .filter(|&n| n >= min)
            .map(|n| p.len() + n)
    };
    match rest.first()? {
        b's' => prefixed(b"sk-", 20, is_word),
        b'g' => [&b"ghp_"[..], b"gho_", b"ghu_", b"ghs_", b"ghr_"]
            .iter()
            .find_map(|p| prefixed(p, 30, |b| b.is_ascii_alphanumeric()))
            .or_else(|| prefixed(b"github_pat_", 22, is_word)),
        b'A' => [&b"AKIA"[..], b"ASIA"].iter().find_map(|p| {
            prefixed(p, 16, |b| b.is_ascii_uppercase() || b.is_ascii_digit()).filter(|&n| n == 20)
        }),
        b'x' => {
            let kinds = b"baprs";
            (rest.len() > 4
                && rest.starts_with(b"xox")
                && kinds.contains(&rest[3])
                && rest[4] == b'-')
                .then(|| run(s, i + 5, is_word))
                .filter(|&n| n >= 10)
                .map(|n| 5 + n)
        }
        b'B' => prefixed(b"Bearer ", 8, is_token),
        b'e' => {
            // header.payload.signature, each base64url; header starts eyJ.
            if !rest.starts_with(b"eyJ") {
                return None;
            }
            let h = run(s, i, is_b64url);
            if h < 10 || s.get(i + h) != Some(&b'.') {
                return None;
            }
            let p = run(s, i + h + 1, is_b64url);
            if p < 10 || s.get(i + h + 1 + p) != Some(&b'.') {
                return None;
            }
            let sig = run(s, i + h + 2 + p, is_b64url);
            Some(h + 2 + p + sig)
        }
        _ => None,
    }
}

/// `text` with every secret replaced by `mask`; `None` if there was none.
pub fn redact(text: &str, mask: &str) -> Option<String> {
    let s = text.as_bytes();
    let mut out: Option<String> = None;
    let mut copied = 0;
    let mut i = 0;
    while i < s.len() {
        let boundary = i == 0 || !is_word(s[i - 1]);
        if boundary && let Some(n) = secret_at(s, i) {
            let o = out.get_or_insert_with(|| String::with_capacity(text.len()));
            o.push_str(&text[copied..i]);
            o.push_str(mask);
            i += n;
            copied = i;
            continue;
        }
        i += 1;
    }
    out.map(|mut o| {
        o.push_str(&text[copied..]);
        o
    })
}

struct Redact;

impl Guest for Redact {
    fn methods() -> Vec<String> {
        // Only answers are redacted: ask for the response phase alone.
        Config::load()
            .methods
            .into_iter()
            .map(|m| if m.contains('@') { m } else { m + "@response" })
            .collect()
    }

    fn on_request(_ctx: Context, _request: Message) -> Verdict {
        Verdict::Continue
    }

    fn on_response(_ctx: Context, _request: Message, response: Message) -> Verdict {
        let mask = Config::load().mask;
        match redact(&response.json, &mask) {
            Some(clean) => Verdict::Replace(clean),
            None => Verdict::Continue,
        }
    }
}

export!(Redact);

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn masks_shapes() {
        let m = "[R]";
        let cases = [
            ("key sk-proj-abcdefghijklmnopqrstuvwx end", "key [R] end"),
            ("ghp_abcdefghijklmnopqrstuvwxyz0123456789", "[R]"),
            ("AKIAIOSFODNN7EXAMPLE!", "[R]!"),
            (
                "Authorization: Bearer abc.def-ghi_123",
                "Authorization: [R]",
            ),
            (
                "t=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.sig_nature",
                "t=[R]",
            ),
            ("xoxb-1234567890-abcdef", "[R]"),
        ];
        for (input, want) in cases {
            assert_eq!(redact(input, m).as_deref(), Some(want), "{input}");
        }
    }

    #[test]
    fn leaves_look_alikes() {
        for s in [
            "task-abcdefghijklmnopqrstuvwxyz",
            "sk-short",
            "AKIA123",
            "Bearer x",
            "eyJ.x.y",
            "plain",
        ] {
            assert_eq!(redact(s, "[R]"), None, "{s}");
        }
    }
}
