//! What the exchange needs to run operator hooks: which methods are hooked,
//! the call it hands the caller, the verdict it gets back, and the rules for
//! applying a verdict (batches, 2026-07-28 mirror headers).

use std::fmt;
use std::sync::Arc;

use super::asked::{Asked, AskedBook};
use super::methods::HookMethods;
use crate::http1::Header;
use crate::jsonrpc::{self, Classified, Kind};
use crate::modern::{decode_header_value, encode_header_value};

/// Which JSON-RPC methods some hook wants to see, per phase (only these
/// are parsed), and which client request headers some hook may see.
#[derive(Debug, Clone, Default)]
pub struct HookFilter {
    /// One entry per hook of the chain; empty: no hooks.
    hooks: Arc<[HookMethods]>,
    /// Lower-case header names; empty: hooks see no headers.
    headers: Arc<[String]>,
    /// The server requests clients were asked, when some hook wants
    /// client answers.
    asked: Option<Arc<AskedBook>>,
    /// What a client's answer to a server request this process never
    /// forwarded gets (see [`HookFilter::refusing_unseen_answers`]).
    refuse_unseen: bool,
}

impl HookFilter {
    /// No hooks: nothing is ever parsed for them.
    pub fn none() -> Self {
        HookFilter::default()
    }

    /// A chain of hooks, each seeing the methods its [`HookMethods`] cover.
    pub fn new(hooks: Vec<HookMethods>) -> Self {
        let answers = hooks
            .iter()
            .any(|h| h.covers_phase(HookPhase::ClientAnswer));
        HookFilter {
            hooks: hooks.into(),
            headers: Arc::from([]),
            asked: answers.then(Arc::default),
            refuse_unseen: false,
        }
    }

    /// With client-answer hooks, refuse a client's answer to a server
    /// request this process never forwarded (another replica did, it
    /// expired, or the server never sent it): no hook can judge it, so the
    /// server gets a [`jsonrpc::codes::HOOK_FAILED`] error in its place,
    /// as when a hook fails closed. Without it such an answer goes on
    /// unjudged. The caller sets it when some enforced client-answer hook
    /// fails closed.
    pub fn refusing_unseen_answers(mut self, refuse: bool) -> Self {
        self.refuse_unseen = refuse && self.asked.is_some();
        self
    }

    /// Whether an answer to an unseen server request is refused.
    pub fn refuses_unseen_answers(&self) -> bool {
        self.refuse_unseen
    }

    /// Let hooks see the client's request headers named in `names` (compared
    /// case-insensitively). Every other header stays hidden from them.
    pub fn with_headers<S: AsRef<str>>(mut self, names: &[S]) -> Self {
        let mut lower: Vec<String> = names
            .iter()
            .map(|n| n.as_ref().to_ascii_lowercase())
            .collect();
        lower.sort();
        lower.dedup();
        self.headers = lower.into();
        self
    }

    /// Whether `method` is hooked, in either phase.
    pub fn wants(&self, method: &str) -> bool {
        self.wants_request(method) || self.wants_response(method)
    }

    /// Whether a request (or notification) of `method` is hooked.
    pub fn wants_request(&self, method: &str) -> bool {
        self.hooks
            .iter()
            .any(|h| h.wants(method, HookPhase::Request))
    }

    /// Whether the response to a request of `method` is hooked.
    pub fn wants_response(&self, method: &str) -> bool {
        self.hooks
            .iter()
            .any(|h| h.wants(method, HookPhase::Response))
    }

    /// Whether a server request or notification of `method` is hooked.
    pub fn wants_server_message(&self, method: &str) -> bool {
        self.hooks
            .iter()
            .any(|h| h.wants(method, HookPhase::ServerMessage))
    }

    /// Whether some hook may want server messages: then every SSE answer
    /// is read event by event, and the ones it wants are held.
    pub fn watches_server_messages(&self) -> bool {
        self.hooks
            .iter()
            .any(|h| h.covers_phase(HookPhase::ServerMessage))
    }

    /// Whether the client's answer to a server request of `method` is hooked.
    pub fn wants_client_answer(&self, method: &str) -> bool {
        self.hooks
            .iter()
            .any(|h| h.wants(method, HookPhase::ClientAnswer))
    }

    /// Whether every SSE answer and GET stream is read event by event: some
    /// hook may want server messages, or the server requests whose answers
    /// it wants must be remembered.
    pub fn reads_server_streams(&self) -> bool {
        self.watches_server_messages() || self.asked.is_some()
    }

    /// The server requests clients were asked, when some hook wants client
    /// answers.
    pub fn asked(&self) -> Option<&AskedBook> {
        self.asked.as_deref()
    }

    /// Whether any hook exists at all.
    pub fn is_active(&self) -> bool {
        !self.hooks.is_empty()
    }

    /// The client's headers hooks may see, as (lower-case name, value) in
    /// arrival order. A value that is not UTF-8 has its bad bytes replaced
    /// with U+FFFD.
    pub fn visible_headers(&self, headers: &[Header]) -> Vec<(String, String)> {
        if self.headers.is_empty() || !self.is_active() {
            return Vec::new();
        }
        headers
            .iter()
            .filter_map(|h| {
                let name = h.name.to_ascii_lowercase();
                self.headers.binary_search(&name).ok()?;
                Some((name, String::from_utf8_lossy(&h.value).into_owned()))
            })
            .collect()
    }
}

/// Which way the hooked message travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookPhase {
    /// A client request or notification, before it goes upstream.
    Request,
    /// The upstream's response to a hooked request, before it goes to the client.
    Response,
    /// A server request or notification, before it goes to the client (on
    /// a POST's answer stream or the GET stream).
    ServerMessage,
    /// The client's answer to a server request, before it goes upstream
    /// (see `exchange::asked`: the request it answers is remembered).
    ClientAnswer,
}

/// A hook chain run the caller must perform, then answer with
/// [`super::Exchange::hook_done`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookCall {
    /// Request or response.
    pub phase: HookPhase,
    /// The JSON-RPC method (of the request, for a response).
    pub method: String,
    /// The request message as JSON text (as it will be or was forwarded),
    /// exactly as core classified it: valid UTF-8 JSON-RPC.
    pub request: Arc<str>,
    /// The response message, for [`HookPhase::Response`], likewise.
    pub response: Option<Arc<str>>,
    /// The client's `Mcp-Session-Id`.
    pub session_id: Option<String>,
    /// The client's `MCP-Protocol-Version`.
    pub protocol_version: Option<String>,
    /// The route the exchange uses.
    pub route: usize,
    /// The client's request headers the operator lets hooks see, as
    /// (lower-case name, value) in arrival order (see [`HookFilter::with_headers`]).
    pub headers: Vec<(String, String)>,
}

/// The outcome of a hook chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookVerdict {
    /// Forward the message unchanged.
    Continue,
    /// Forward this message instead (whole JSON-RPC message).
    Replace(Vec<u8>),
    /// Answer the client with this JSON-RPC error.
    Reject {
        /// Error code.
        code: i64,
        /// Error message.
        message: String,
        /// Optional `data` (JSON text).
        data: Option<Vec<u8>>,
    },
    /// Answer the client with a result (JSON text of `result`).
    Respond(Vec<u8>),
}

pub use crate::jsonrpc::codes::BATCH_REFUSED;

/// Why a hook's replacement cannot stand in for the message it replaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplacementError {
    /// Not one JSON-RPC message as core reads it (core's classifier refused
    /// it: not JSON, not UTF-8, a duplicate key, a bad shape...). What the
    /// classifier refuses, other parsers read differently.
    Unreadable(jsonrpc::ClassifyError),
    /// A batch, where one message was hooked.
    Batch,
    /// Another kind of message: a request must stay a request, a
    /// notification a notification, an answer a result or an error.
    Kind {
        /// What the replaced message was.
        was: Kind,
        /// What the replacement is.
        now: Kind,
    },
    /// A request or notification with another method (hooks are chosen by
    /// method, and the `Mcp-Method` header must match the body).
    Method {
        /// The method of the replaced message.
        was: String,
    },
    /// Another id, or the same id spelled otherwise: the client and the
    /// proxy's bookkeeping match answers to requests by the id's exact text.
    Id,
}

impl fmt::Display for ReplacementError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplacementError::Unreadable(e) => {
                write!(
                    f,
                    "the replacement is not a JSON-RPC message sluice reads: {e}"
                )
            }
            ReplacementError::Batch => f.write_str("the replacement is a batch, not one message"),
            ReplacementError::Kind { was, now } => write!(
                f,
                "the replacement is a {} where the message was a {}",
                kind_name(*now),
                kind_name(*was)
            ),
            ReplacementError::Method { was } => {
                write!(f, "the replacement must keep the method {was:?}")
            }
            ReplacementError::Id => f.write_str(
                "the replacement must keep the id, byte for byte as the message spelled it",
            ),
        }
    }
}

impl std::error::Error for ReplacementError {}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Request => "request",
        Kind::Notification => "notification",
        Kind::Response => "result",
        Kind::Error => "error",
    }
}

/// Checks a hook's replacement for `current` (the message as that hook saw
/// it) in `phase`: one message core reads, of the same kind (an answer may
/// turn from result to error and back), the same method for a request or
/// notification, and the same id text. Drivers that run hook chains check
/// each hook's replacement with it; [`super::Exchange::hook_done`] checks
/// the chain's final one again and treats a refusal as a failed hook.
pub fn check_replacement(
    phase: HookPhase,
    current: &[u8],
    replacement: &[u8],
    limits: &jsonrpc::Limits,
) -> Result<(), ReplacementError> {
    let single = |json| match jsonrpc::classify(json, limits) {
        Ok(Classified::Single(m)) => Ok(m),
        Ok(Classified::Batch(_)) => Err(ReplacementError::Batch),
        Err(e) => Err(ReplacementError::Unreadable(e)),
    };
    let new = single(replacement)?;
    // `current` is what core handed out or a replacement checked before;
    // were it unreadable, nothing could be shown to match it.
    let old = single(current)?;
    let answer = |k| matches!(k, Kind::Response | Kind::Error);
    // A message that travels on its own keeps its kind and method; an
    // answer may turn from a result into an error and back.
    let is_answer = matches!(phase, HookPhase::Response | HookPhase::ClientAnswer);
    let same_kind = if is_answer {
        answer(old.kind) && answer(new.kind)
    } else {
        new.kind == old.kind
    };
    if !same_kind {
        return Err(ReplacementError::Kind {
            was: old.kind,
            now: new.kind,
        });
    }
    if !is_answer && new.method != old.method {
        return Err(ReplacementError::Method {
            was: old.method.as_deref().unwrap_or_default().to_owned(),
        });
    }
    match (old.id, new.id) {
        (None, None) => Ok(()),
        (Some(a), Some(b)) if jsonrpc::same_id(a, b) => Ok(()),
        _ => Err(ReplacementError::Id),
    }
}

/// `replacement` with its id written as `current` writes it, when the two
/// ids are one string spelled two ways (`"\u0031"` written back as `"1"` by
/// a hook that parsed the message and serialised it again); `None` when
/// there is nothing to respell. Clients and servers match ids by their
/// text, so a replacement keeps the text: drivers respell before
/// [`check_replacement`], which would refuse another spelling. Numbers are
/// left alone: `1` and `1.0` are not one id to every peer.
pub fn respell_id(current: &[u8], replacement: &[u8], limits: &jsonrpc::Limits) -> Option<Vec<u8>> {
    let id = |json| match jsonrpc::classify(json, limits) {
        Ok(Classified::Single(m)) => m.id.filter(|id| id.first() == Some(&b'"')),
        _ => None,
    };
    let (was, now) = (id(current)?, id(replacement)?);
    let text = |raw| serde_json::from_slice::<String>(raw).ok();
    if was == now || text(was)? != text(now)? {
        return None;
    }
    // The id is a slice of `replacement`: where it sits.
    let at = (now.as_ptr() as usize).checked_sub(replacement.as_ptr() as usize)?;
    if replacement.get(at..at + now.len()) != Some(now) {
        return None;
    }
    let mut out = Vec::with_capacity(replacement.len() - now.len() + was.len());
    out.extend_from_slice(&replacement[..at]);
    out.extend_from_slice(was);
    out.extend_from_slice(&replacement[at + now.len()..]);
    Some(out)
}

/// One hooked message inside a request body.
#[derive(Debug, Clone)]
pub(super) struct Hooked {
    /// Index in the batch, `None` for a single message.
    pub element: Option<usize>,
    pub method: String,
    pub message: Arc<str>,
    /// Raw id, for requests and answers.
    pub id: Option<Vec<u8>>,
    /// For the client's answer to a server request: that request (the
    /// hooks run in the client-answer phase).
    pub answers: Option<Asked>,
    /// A client's answer to a server request this process never forwarded,
    /// refused without running a hook (see
    /// [`HookFilter::refusing_unseen_answers`]).
    pub unseen: bool,
}

/// The hooked messages of a request body, in order. A body the classifier
/// refuses is an error: with hooks active it must not go upstream unseen
/// (see [`crate::jsonrpc`]: what it refuses, parsers read differently, so a
/// `tools/call` with two `name` keys would reach a tool the policy hook
/// never saw).
pub(super) fn hooked_messages(
    body: &[u8],
    filter: &HookFilter,
    limits: &jsonrpc::Limits,
    asked_in: (usize, Option<&str>),
    now: std::time::Instant,
) -> Result<Vec<Hooked>, jsonrpc::ClassifyError> {
    if !filter.is_active() {
        return Ok(Vec::new());
    }
    let hooked = |element, m: &jsonrpc::Message<'_>| {
        if matches!(m.kind, Kind::Response | Kind::Error) {
            // The client's answer to a server request it was asked here.
            let book = filter.asked()?;
            let id = m.id?.to_vec();
            let key = (asked_in.0, asked_in.1.map(str::to_owned), id.clone());
            let (method, answers, unseen) = match book.take(&key, now) {
                // Every server request is noted; only wanted ones are judged.
                Some(asked) if filter.wants_client_answer(&asked.method) => {
                    (asked.method.clone(), Some(asked), false)
                }
                Some(_) => return None,
                None if filter.refuses_unseen_answers() => (String::new(), None, true),
                None => return None,
            };
            return Some(Hooked {
                element,
                method,
                message: Arc::from(m.text),
                id: Some(id),
                answers,
                unseen,
            });
        }
        let method = m.method.as_deref().filter(|m| filter.wants_request(m))?;
        Some(Hooked {
            element,
            method: method.to_owned(),
            message: Arc::from(m.text),
            id: if m.kind == Kind::Request {
                m.id.map(<[u8]>::to_vec)
            } else {
                None
            },
            answers: None,
            unseen: false,
        })
    };
    Ok(match jsonrpc::classify(body, limits)? {
        Classified::Single(m) => hooked(None, &m).into_iter().collect(),
        Classified::Batch(ms) => ms
            .iter()
            .enumerate()
            .filter_map(|(i, m)| hooked(Some(i), m))
            .collect(),
    })
}

/// A JSON array of `elements` (exact texts), with the element at each index
/// `replaced` names swapped for its new text.
pub(super) fn rebuild_array<'e>(
    elements: impl Iterator<Item = &'e [u8]>,
    replaced: &[(Option<usize>, Vec<u8>)],
) -> Vec<u8> {
    let mut out = vec![b'['];
    for (i, element) in elements.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        match replaced.iter().find(|(j, _)| *j == Some(i)) {
            Some((_, new)) => out.extend_from_slice(new),
            None => out.extend_from_slice(element),
        }
    }
    out.push(b']');
    out
}

/// The ids of every request in a batch body, in order.
pub(super) fn batch_request_ids(body: &[u8], limits: &jsonrpc::Limits) -> Vec<Vec<u8>> {
    match jsonrpc::classify(body, limits) {
        Ok(Classified::Batch(ms)) => ms
            .into_iter()
            .filter(|m| m.kind == Kind::Request)
            .filter_map(|m| m.id.map(<[u8]>::to_vec))
            .collect(),
        _ => Vec::new(),
    }
}

/// After a hook replaced a 2026-07-28 request, keep the mirror headers equal
/// to the body, as the backend checks them (400, -32020 otherwise):
/// `Mcp-Name` follows the new name; each `Mcp-Param-{X}` follows the argument
/// it mirrored in the original body (found by its original value, preferring
/// an argument named `X`), and is dropped when that argument is gone or null.
pub(super) fn rewrite_mirror_headers(
    headers: &mut Vec<Header>,
    old_body: &[u8],
    new_body: &[u8],
    limits: &jsonrpc::Limits,
) {
    let has_mirror = headers.iter().any(|h| {
        h.name.eq_ignore_ascii_case("mcp-name") || starts_with_ignore_case(&h.name, "mcp-param-")
    });
    if !has_mirror {
        return;
    }
    if let Ok(Classified::Single(m)) = jsonrpc::classify(new_body, limits)
        && let Some(name) = m.name
    {
        for h in headers
            .iter_mut()
            .filter(|h| h.name.eq_ignore_ascii_case("mcp-name"))
        {
            h.value = encode_header_value(&name).into_bytes();
        }
    }
    let old_args = arguments(old_body);
    let new_args = arguments(new_body);
    headers.retain_mut(|h| {
        let Some(param) = strip_prefix_ignore_case(&h.name, "mcp-param-") else {
            return true;
        };
        let Some(old_args) = &old_args else {
            return true;
        };
        let value = String::from_utf8_lossy(&h.value).into_owned();
        let Some(path) = find_mirrored(
            old_args,
            &decode_header_value(&value).unwrap_or(value.clone()),
            param,
        ) else {
            return true;
        };
        match new_args.as_ref().and_then(|a| lookup(a, &path)) {
            Some(v) if !v.is_null() => {
                if let Some(text) = scalar_text(v) {
                    h.value = encode_header_value(&text).into_bytes();
                }
                true
            }
            // The argument is gone: so is its header (the spec's rule for absent values).
            _ => false,
        }
    });
}

fn starts_with_ignore_case(s: &str, prefix: &str) -> bool {
    strip_prefix_ignore_case(s, prefix).is_some()
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    (s.len() >= prefix.len()
        && s.is_char_boundary(prefix.len())
        && s[..prefix.len()].eq_ignore_ascii_case(prefix))
    .then(|| &s[prefix.len()..])
}

fn arguments(body: &[u8]) -> Option<serde_json::Value> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    v.get("params")?.get("arguments").cloned()
}

/// The path of the primitive argument whose text equals `value`; an
/// argument named like the header wins a tie.
fn find_mirrored(args: &serde_json::Value, value: &str, param: &str) -> Option<Vec<String>> {
    let mut found = Vec::new();
    walk(args, &mut Vec::new(), &mut |path, v| {
        if scalar_text(v).as_deref() == Some(value) {
            found.push(path.to_vec());
        }
    });
    found
        .iter()
        .find(|p| p.last().is_some_and(|k| k.eq_ignore_ascii_case(param)))
        .or_else(|| found.first())
        .cloned()
}

fn walk(
    v: &serde_json::Value,
    path: &mut Vec<String>,
    visit: &mut dyn FnMut(&[String], &serde_json::Value),
) {
    if let serde_json::Value::Object(map) = v {
        for (k, child) in map {
            path.push(k.clone());
            walk(child, path, visit);
            path.pop();
        }
    } else {
        visit(path, v);
    }
}

fn lookup<'v>(v: &'v serde_json::Value, path: &[String]) -> Option<&'v serde_json::Value> {
    path.iter().try_fold(v, |v, k| v.get(k))
}

fn scalar_text(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_string_id_written_back_another_way_is_respelled_as_it_came() {
        let limits = jsonrpc::Limits::default();
        let msg = |id: &str, name: &str| {
            format!(
                r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"{name}"}}}}"#
            )
        };
        let respell = |old: &str, new: &str| {
            respell_id(old.as_bytes(), new.as_bytes(), &limits)
                .map(|b| String::from_utf8(b).unwrap())
        };
        for (was, now) in [
            (r#""\u0031""#, r#""1""#),
            (r#""a\/b""#, r#""a/b""#),
            (r#""é""#, r#""\u00e9""#),
        ] {
            let old = msg(was, "a");
            let got = respell(&old, &msg(now, "b")).unwrap_or_else(|| panic!("{was} {now}"));
            assert_eq!(got, msg(was, "b"));
            assert_eq!(
                check_replacement(HookPhase::Request, old.as_bytes(), got.as_bytes(), &limits),
                Ok(())
            );
        }
        // Nothing to respell: the same text, another string, numbers, no id.
        for (was, now) in [
            (r#""1""#, r#""1""#),
            (r#""1""#, r#""2""#),
            ("1", "1.0"),
            ("1", r#""1""#),
            (r#""1""#, "1"),
        ] {
            assert_eq!(respell(&msg(was, "a"), &msg(now, "b")), None, "{was} {now}");
        }
        let note = r#"{"jsonrpc":"2.0","method":"notifications/x"}"#;
        assert_eq!(respell(note, note), None);
        // An answer's id too (a response hook's `edited`).
        let answer = |id: &str| format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{{}}}}"#);
        assert_eq!(
            respell(&answer(r#""\u0031""#), &answer(r#""1""#)),
            Some(answer(r#""\u0031""#))
        );
    }

    #[test]
    fn replacements_keep_kind_method_and_id_text() {
        let limits = jsonrpc::Limits::default();
        let check = |phase, old: &str, new: &str| {
            check_replacement(phase, old.as_bytes(), new.as_bytes(), &limits)
        };
        let call = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a"}}"#;
        let ok = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"b"}}"#;
        assert_eq!(check(HookPhase::Request, call, ok), Ok(()));
        // A duplicate key: parsers disagree on which one counts.
        let dup = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","method":"tools/call","params":{"name":"b"}}"#;
        assert!(matches!(
            check(HookPhase::Request, call, dup),
            Err(ReplacementError::Unreadable(
                jsonrpc::ClassifyError::DuplicateKey { .. }
            ))
        ));
        let renamed = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
        assert!(matches!(
            check(HookPhase::Request, call, renamed),
            Err(ReplacementError::Method { .. })
        ));
        for id in ["1.0", r#""1""#, "2"] {
            let other = ok.replace(r#""id":1"#, &format!(r#""id":{id}"#));
            assert_eq!(
                check(HookPhase::Request, call, &other),
                Err(ReplacementError::Id),
                "{id}"
            );
        }
        let note = r#"{"jsonrpc":"2.0","method":"tools/call","params":{"name":"b"}}"#;
        assert!(matches!(
            check(HookPhase::Request, call, note),
            Err(ReplacementError::Kind { .. })
        ));
        assert_eq!(
            check(HookPhase::Request, call, &format!("[{ok}]")),
            Err(ReplacementError::Batch)
        );

        let answer = r#"{"jsonrpc":"2.0","id":"r-1","result":{"content":[]}}"#;
        let error = r#"{"jsonrpc":"2.0","id":"r-1","error":{"code":1,"message":"no"}}"#;
        assert_eq!(check(HookPhase::Response, answer, error), Ok(()));
        assert_eq!(check(HookPhase::Response, error, answer), Ok(()));
        let escaped = answer.replace("r-1", "\\u0072-1");
        assert_eq!(
            check(HookPhase::Response, answer, &escaped),
            Err(ReplacementError::Id)
        );
        let as_request = r#"{"jsonrpc":"2.0","id":"r-1","method":"x"}"#;
        assert!(matches!(
            check(HookPhase::Response, answer, as_request),
            Err(ReplacementError::Kind { .. })
        ));
        let null_id = r#"{"jsonrpc":"2.0","id":null,"error":{"code":1,"message":"no"}}"#;
        assert_eq!(
            check(HookPhase::Response, answer, null_id),
            Err(ReplacementError::Id)
        );
    }

    #[test]
    fn mirror_headers_follow_a_replaced_body() {
        let limits = jsonrpc::Limits::default();
        let old = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"query","arguments":{"region":"eu","q":"x","n":3}}}"#;
        let new = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"safe_query","arguments":{"region":"us","q":"x"}}}"#;
        let mut headers = vec![
            Header::new("Mcp-Method", "tools/call"),
            Header::new("Mcp-Name", "query"),
            Header::new("Mcp-Param-Region", "eu"),
            Header::new("Mcp-Param-Count", "3"),
            Header::new("Other", "kept"),
        ];
        rewrite_mirror_headers(&mut headers, old, new, &limits);
        let get = |n: &str| {
            headers
                .iter()
                .find(|h| h.name == n)
                .map(|h| String::from_utf8_lossy(&h.value).into_owned())
        };
        assert_eq!(get("Mcp-Name").as_deref(), Some("safe_query"));
        assert_eq!(get("Mcp-Param-Region").as_deref(), Some("us"));
        assert_eq!(
            get("Mcp-Param-Count"),
            None,
            "argument removed, header removed"
        );
        assert_eq!(get("Other").as_deref(), Some("kept"));
    }

    #[test]
    fn batches_rebuild_with_exact_element_text() {
        let body = br#"[{"jsonrpc":"2.0","id":1.0,"method":"a"} , {"jsonrpc":"2.0","id":"x","method":"b"}]"#;
        let limits = jsonrpc::Limits::default();
        let Ok(Classified::Batch(ms)) = jsonrpc::classify(body, &limits) else {
            panic!("a batch");
        };
        let out = rebuild_array(
            ms.iter().map(|m| m.text.as_bytes()),
            &[(
                Some(1),
                br#"{"jsonrpc":"2.0","id":"x","method":"b","params":{}}"#.to_vec(),
            )],
        );
        assert_eq!(
            out,
            br#"[{"jsonrpc":"2.0","id":1.0,"method":"a"},{"jsonrpc":"2.0","id":"x","method":"b","params":{}}]"#
        );
        assert_eq!(
            batch_request_ids(body, &limits),
            vec![b"1.0".to_vec(), b"\"x\"".to_vec()]
        );
    }
}
