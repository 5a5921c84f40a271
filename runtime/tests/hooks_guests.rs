//! The JavaScript, Python and C example hooks (hook-examples/js-*,
//! python-*, c-*), built by their build scripts and run through the host on
//! MCP-shaped messages, in fresh and warm instance mode.
//!
//! The first run installs the pinned toolchains (npm, PyPI, cargo, apt) and
//! compiles the components; later runs reuse the built components and the
//! precompiled artifacts under `target/`. See `guests/mod.rs` for
//! `SLUICE_SKIP_GUEST_TOOLCHAINS`.

mod guests;

use guests::{Example, MODES, build, load, spec};
use serde_json::{Value, json};
use sluice::hooks::*;

fn ctx() -> HookContext {
    HookContext {
        upstream: "everything".into(),
        session_id: Some("s-1".into()),
        protocol_version: Some("2025-06-18".into()),
        headers: Vec::new(),
        identity: None,
    }
}

fn parse(json: &str) -> Value {
    serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {json}"))
}

fn tools_call(id: u32, tool: &str, arguments: Value) -> String {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
           "params": {"name": tool, "arguments": arguments}})
    .to_string()
}

// ---- JavaScript: the tools/list rewriter ----

const REWRITE: &str = r#"{"prefix":"acme_","describe":{"echo":"Echo text back (via sluice)"}}"#;

fn tools_list_response() -> String {
    json!({"jsonrpc": "2.0", "id": 9, "result": {
        "tools": [
            {"name": "echo", "description": "Echoes", "inputSchema": {"type": "object",
             "properties": {"text": {"type": "string"}}}},
            {"name": "add", "description": "Adds two numbers",
             "inputSchema": {"type": "object"}, "annotations": {"readOnlyHint": true}}
        ],
        "nextCursor": "page-2",
        "resultType": "complete",
        "ttlMs": 60000,
        "cacheScope": "session",
        "_meta": {"x": 1}
    }})
    .to_string()
}

fn js_rewriter(ex: Example) {
    let Some(wasm) = build(ex) else { return };
    let req = r#"{"jsonrpc":"2.0","id":9,"method":"tools/list","params":{"cursor":"page-1"}}"#;
    for mode in MODES {
        let (h, _) = load(spec(ex, &wasm, REWRITE, mode)).expect("rewriter loads");
        assert!(h.wants("tools/list") && h.wants("tools/call"));
        assert!(!h.wants("resources/list"));
        // Twice: a warm instance serves the second call.
        for _ in 0..2 {
            let r = h.run_response(&ctx(), "tools/list", req, &tools_list_response());
            let ChainOutcome::Replaced(json) = r.outcome else {
                panic!("{mode:?}: {r:?}")
            };
            let got = parse(&json);
            let mut want = parse(&tools_list_response());
            want["result"]["tools"][0]["name"] = "acme_echo".into();
            want["result"]["tools"][0]["description"] = "Echo text back (via sluice)".into();
            want["result"]["tools"][1]["name"] = "acme_add".into();
            assert_eq!(got, want, "{mode:?}");
        }
        // A call by the advertised name reaches the upstream by its own name.
        let call = tools_call(3, "acme_echo", json!({"text": "hi"}));
        match h.run_request(&ctx(), "tools/call", &call).outcome {
            ChainOutcome::Replaced(json) => {
                assert_eq!(
                    parse(&json),
                    parse(&tools_call(3, "echo", json!({"text": "hi"})))
                );
            }
            other => panic!("{mode:?}: {other:?}"),
        }
        let plain = tools_call(4, "echo", json!({}));
        assert_eq!(
            h.run_request(&ctx(), "tools/call", &plain).outcome,
            ChainOutcome::Continue
        );
        // An error response has no tools: left alone.
        let err = r#"{"jsonrpc":"2.0","id":9,"error":{"code":-32603,"message":"down"}}"#;
        assert_eq!(
            h.run_response(&ctx(), "tools/list", req, err).outcome,
            ChainOutcome::Continue
        );
    }
    // Only descriptions: names stay, the cursor too.
    let (h, _) = load(spec(
        ex,
        &wasm,
        r#"{"describe":{"add":"Sum"}}"#,
        InstanceMode::Fresh,
    ))
    .unwrap();
    let ChainOutcome::Replaced(json) = h
        .run_response(&ctx(), "tools/list", req, &tools_list_response())
        .outcome
    else {
        panic!("no rewrite")
    };
    let got = parse(&json);
    assert_eq!(got["result"]["tools"][0]["name"], "echo");
    assert_eq!(got["result"]["tools"][1]["description"], "Sum");
    assert_eq!(got["result"]["nextCursor"], "page-2");
    // A bad config fails the load (methods() checks it), naming the hook.
    let err = load(spec(ex, &wasm, r#"{"prefix":7}"#, InstanceMode::Fresh))
        .err()
        .expect("bad config refused");
    let err = format!("{err:#}");
    assert!(
        err.contains(ex.name()) && err.contains("methods()"),
        "{err}"
    );
}

#[test]
fn js_quickjs_rewriter_prefixes_tools_and_keeps_the_cursor() {
    js_rewriter(Example::JsQuickJs);
}

#[test]
fn js_starlingmonkey_rewriter_prefixes_tools_and_keeps_the_cursor() {
    js_rewriter(Example::JsStarlingMonkey);
}

/// A fresh directory under the test's temp dir holding a copy of
/// js-tools-rewriter as a user makes one (`cp -rL`: its SDK, `wit/` and
/// `build-cache.sh` are links into the repository); the directory and the
/// copy in it.
fn rewriter_copy(tag: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let tmp = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).unwrap();
    let copy = tmp.join("example");
    let cp = std::process::Command::new("cp")
        .arg("-rL")
        .arg(guests::repo().join("hook-examples/js-tools-rewriter"))
        .arg(&copy)
        .status()
        .unwrap();
    assert!(cp.success());
    (tmp, copy)
}

/// The rewriter's build-cache key holds the SDK module it imports: an edit of
/// the SDK alone builds the component again rather than serving the one
/// built before it. A copy with its own build cache, QuickJS (seconds).
#[test]
fn js_sdk_edit_rebuilds_the_rewriter() {
    let (tmp, copy) = rewriter_copy("js-sdk-key");
    let build = || {
        let out = std::process::Command::new("bash")
            .arg(copy.join("build.sh"))
            .env("SLUICE_HOOK_OUT", tmp.join("out"))
            .env("SLUICE_HOOK_BUILD_CACHE", tmp.join("cache"))
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, log) = build();
    if code == Some(3) && guests::skip_allowed("js") {
        eprintln!("\n==== SKIPPED: no npm here (SLUICE_SKIP_GUEST_TOOLCHAINS is set) ====\n{log}");
        let _ = std::fs::remove_dir_all(&tmp);
        return;
    }
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("not in the build cache"), "{log}");
    let (code, log) = build();
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("is up to date"), "unchanged: {log}");

    let sdk = copy.join("sluice-hook/sluice-hook.js");
    let mut text = std::fs::read_to_string(&sdk).unwrap();
    text.push_str("\n// an edit of the SDK\n");
    std::fs::write(&sdk, text).unwrap();
    let (code, log) = build();
    assert_eq!(code, Some(0), "{log}");
    assert!(
        log.contains("not in the build cache") && log.contains("built "),
        "the SDK changed, the component is built again: {log}"
    );
    let _ = std::fs::remove_dir_all(&tmp);
}

/// A lock that npm refuses is exit status 4, which `guests::build` never
/// skips, with npm's reason printed. The broken lock is the one of issue 11:
/// an optional platform package missing, which npm 11 refuses and an older
/// npm installed, so a toolchain cached before hid it. The copy has its own
/// empty toolchain cache and no build cache.
#[test]
fn js_lock_refused_by_npm_is_a_failure_not_a_skip() {
    let (tmp, copy) = rewriter_copy("js-refused-lock");
    let lock_path = copy.join("package-lock.json");
    let mut lock = parse(&std::fs::read_to_string(&lock_path).unwrap());
    let gone = "@rolldown/binding-win32-x64-msvc";
    let packages = lock["packages"].as_object_mut().unwrap();
    assert!(packages.remove(&format!("node_modules/{gone}")).is_some());
    std::fs::write(&lock_path, serde_json::to_string_pretty(&lock).unwrap()).unwrap();

    let out = std::process::Command::new("bash")
        .arg(copy.join("build.sh"))
        .env("SLUICE_HOOK_OUT", tmp.join("out"))
        .env("SLUICE_TOOLCHAIN_CACHE", tmp.join("toolchains"))
        .env("SLUICE_HOOK_BUILD_CACHE", "off")
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    if out.status.code() == Some(3) && guests::skip_allowed("js") {
        eprintln!("\n==== SKIPPED: no npm here (SLUICE_SKIP_GUEST_TOOLCHAINS is set) ====\n{log}");
    } else {
        assert_eq!(out.status.code(), Some(4), "{log}");
        // npm's own words, and the reason again on the lines a tail shows.
        assert!(log.contains(&format!("Missing: {gone}@")), "{log}");
        let tail: Vec<&str> = log.lines().rev().take(2).collect();
        assert!(
            tail[1].contains("refused the pinned toolchain (EUSAGE)"),
            "{log}"
        );
    }
    let _ = std::fs::remove_dir_all(&tmp);
}

// ---- Python: the argument validator ----

const RULES: &str = r#"{"rules":{
    "add": {"a": {"type": "number", "max": 1000}, "b": {"type": "number", "required": true}},
    "mode": {"level": {"enum": ["low", "high"]}, "tag": {"pattern": "[a-z]+"},
             "additional_arguments": false},
    "*": {"max_string_length": 10000}
}}"#;

fn expect_reject(h: &HookHost, call: &str) -> Value {
    match h.run_request(&ctx(), "tools/call", call).outcome {
        ChainOutcome::Reject {
            code,
            message,
            data,
        } => {
            assert_eq!(code, -32602, "{message}");
            let data = parse(data.as_deref().expect("data"));
            let arg = data["argument"].as_str().unwrap_or("-");
            assert!(message.contains(arg), "{message} should name {arg}");
            data
        }
        other => panic!("{call}: {other:?}"),
    }
}

#[test]
fn python_validator_rejects_bad_arguments_and_passes_good_ones() {
    let ex = Example::Python;
    let Some(wasm) = build(ex) else { return };
    for mode in MODES {
        let (h, logs) = load(spec(ex, &wasm, RULES, mode)).expect("validator loads");
        assert!(h.wants("tools/call") && !h.wants("tools/list"));
        // Written on the Python SDK, for the newest world.
        assert_eq!(h.hooks()[0].world, "sluice:hook@0.2.0");
        for _ in 0..2 {
            let ok = tools_call(1, "add", json!({"a": 999.5, "b": -3}));
            assert_eq!(
                h.run_request(&ctx(), "tools/call", &ok).outcome,
                ChainOutcome::Continue,
                "{mode:?}"
            );
            let data = expect_reject(&h, &tools_call(2, "add", json!({"a": 1001, "b": 1})));
            assert_eq!(
                data,
                json!({"tool": "add", "argument": "a", "rule": "max", "expected": 1000})
            );
        }
        let data = expect_reject(&h, &tools_call(3, "add", json!({"a": "12", "b": 1})));
        assert_eq!(
            (data["argument"].as_str(), data["rule"].as_str()),
            (Some("a"), Some("type"))
        );
        // A JSON true is not a number, even though Python's bool is an int.
        let data = expect_reject(&h, &tools_call(3, "add", json!({"a": true, "b": 1})));
        assert_eq!(data["rule"], "type");
        let data = expect_reject(&h, &tools_call(4, "add", json!({"a": 1})));
        assert_eq!(
            (data["argument"].as_str(), data["rule"].as_str()),
            (Some("b"), Some("required"))
        );
        // The "*" rule applies to every tool, nested strings included.
        let long = "x".repeat(10_001);
        let data = expect_reject(
            &h,
            &tools_call(5, "echo", json!({"msg": {"parts": ["a", long]}})),
        );
        assert_eq!(
            data,
            json!({"tool": "echo", "argument": "msg", "rule": "max_string_length",
                   "expected": 10000, "path": "/msg/parts/1"})
        );
        let fine = tools_call(6, "echo", json!({"text": "x".repeat(10_000)}));
        assert_eq!(
            h.run_request(&ctx(), "tools/call", &fine).outcome,
            ChainOutcome::Continue
        );
        let data = expect_reject(&h, &tools_call(7, "mode", json!({"level": "mid"})));
        assert_eq!(data["rule"], "enum");
        let data = expect_reject(&h, &tools_call(7, "mode", json!({"tag": "ABC"})));
        assert_eq!(data["rule"], "pattern");
        let data = expect_reject(&h, &tools_call(7, "mode", json!({"level": "low", "x": 1})));
        assert_eq!(
            (data["argument"].as_str(), data["rule"].as_str()),
            (Some("x"), Some("additional_arguments"))
        );
        let ok = tools_call(8, "mode", json!({"level": "high", "tag": "abc"}));
        assert_eq!(
            h.run_request(&ctx(), "tools/call", &ok).outcome,
            ChainOutcome::Continue
        );
        // Responses pass.
        let resp = r#"{"jsonrpc":"2.0","id":8,"result":{"content":[]}}"#;
        assert_eq!(
            h.run_response(&ctx(), "tools/call", &ok, resp).outcome,
            ChainOutcome::Continue
        );
        let logs = logs.lock().unwrap();
        assert!(
            logs.iter().any(|(hook, level, line)| hook == ex.name()
                && *level == LogLevel::Info
                && line.contains("rejected tools/call add")),
            "{logs:?}"
        );
    }
    let err = load(spec(
        ex,
        &wasm,
        r#"{"rules":{"add":{"a":{"type":"float"}}}}"#,
        InstanceMode::Fresh,
    ))
    .err()
    .expect("bad config refused");
    let err = format!("{err:#}");
    assert!(
        err.contains(ex.name()) && err.contains("methods()"),
        "{err}"
    );
}

// ---- C: the audit logger ----

fn audit_lines(logs: &guests::Logs) -> Vec<(LogLevel, String)> {
    let mut logs = logs.lock().unwrap();
    logs.drain(..)
        .map(|(hook, level, line)| {
            assert_eq!(hook, Example::C.name());
            (level, line)
        })
        .collect()
}

#[test]
fn c_audit_log_logs_each_call_and_always_continues() {
    let ex = Example::C;
    let Some(wasm) = build(ex) else { return };
    for mode in MODES {
        let (h, logs) = load(spec(ex, &wasm, "", mode)).expect("audit log loads");
        assert!(h.wants("tools/call") && !h.wants("tools/list"));
        // Raw text: argument names are logged in message order.
        let call = r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hi","loud":true}}}"#;
        assert_eq!(
            h.run_request(&ctx(), "tools/call", call).outcome,
            ChainOutcome::Continue
        );
        let ok = r#"{"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"text","text":"hi"}]}}"#;
        let tool_err = r#"{"jsonrpc":"2.0","id":7,"result":{"content":[],"isError":true}}"#;
        let rpc_err = r#"{"jsonrpc":"2.0","id":7,"error":{"code":-32602,"message":"bad"}}"#;
        for resp in [ok, tool_err, rpc_err] {
            assert_eq!(
                h.run_response(&ctx(), "tools/call", call, resp).outcome,
                ChainOutcome::Continue
            );
        }
        // Keys hidden behind escapes are still found; names are logged as
        // raw JSON, so a newline in one cannot start a forged line.
        let sneaky = r#"{"jsonrpc":"2.0","id":"a\nb","method":"tools/call","params":{"n\u0061me":"r\nm","arguments":{}}}"#;
        assert_eq!(
            h.run_request(&ctx(), "tools/call", sneaky).outcome,
            ChainOutcome::Continue
        );
        let no_args = r#"{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"ping"}}"#;
        assert_eq!(
            h.run_request(&ctx(), "tools/call", no_args).outcome,
            ChainOutcome::Continue
        );
        let many: serde_json::Map<String, Value> =
            (0..40).map(|i| (format!("k{i:02}"), json!(i))).collect();
        let wide = tools_call(9, "wide", Value::Object(many));
        assert_eq!(
            h.run_request(&ctx(), "tools/call", &wide).outcome,
            ChainOutcome::Continue
        );

        let lines = audit_lines(&logs);
        let keys: Vec<String> = (0..32).map(|i| format!("\"k{i:02}\"")).collect();
        let wide_line = format!(
            "audit call id=9 tool=\"wide\" args=[{},+8 more] upstream=everything",
            keys.join(",")
        );
        let want = [
            r#"audit call id=7 tool="echo" args=["text","loud"] upstream=everything"#,
            r#"audit done id=7 tool="echo" outcome=ok"#,
            r#"audit done id=7 tool="echo" outcome=tool_error"#,
            r#"audit done id=7 tool="echo" outcome=rpc_error code=-32602"#,
            r#"audit call id="a\nb" tool="r\nm" args=[] upstream=everything"#,
            r#"audit call id=8 tool="ping" args=- upstream=everything"#,
            &wide_line,
        ];
        let got: Vec<&str> = lines.iter().map(|(_, l)| l.as_str()).collect();
        assert_eq!(got, want, "{mode:?}");
        assert!(lines.iter().all(|(level, _)| *level == LogLevel::Info));
    }
    // The config picks the level.
    let (h, logs) = load(spec(ex, &wasm, "debug", InstanceMode::Fresh)).unwrap();
    h.run_request(&ctx(), "tools/call", &tools_call(1, "echo", json!({})));
    assert_eq!(audit_lines(&logs)[0].0, LogLevel::Debug);
}
