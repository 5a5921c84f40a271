//! `sluice hook check|test|new`, run as the built binary: what they print and
//! the exit status that tells the verdict (docs/HOOKS.md, "Testing a hook
//! offline"). The Rust examples and the `hook new` project are built for
//! wasm32-wasip2 (skipped, with a message, when the target is missing); the
//! other guests are WAT fixtures built at test time.

#[path = "fixtures/hooks/support.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use support::{Guest, body, rust_examples, temp_dir};

const SLUICE: &str = env!("CARGO_BIN_EXE_sluice");

fn sluice(args: &[&str]) -> Output {
    // The compiled-hook cache: out of the user's home, one per test run.
    static CACHE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    Command::new(SLUICE)
        .args(args)
        .env(
            "XDG_CACHE_HOME",
            CACHE.get_or_init(|| temp_dir("cli-cache")),
        )
        .output()
        .expect("sluice runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn status(o: &Output) -> i32 {
    o.status.code().expect("an exit status")
}

fn json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(o)))
}

/// Write `wasm` to a file of its own.
fn file(name: &str, wasm: &[u8]) -> PathBuf {
    let path = temp_dir(name).join(format!("{name}.wasm"));
    std::fs::write(&path, wasm).unwrap();
    path
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

const CALL_DEPLOY: &str =
    r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"deploy","arguments":{}}}"#;
const CALLER_POLICY: &str = r#"{"tools":{"deploy":{"scope":"tools:deploy"}}}"#;

#[test]
fn check_says_what_a_loadable_hook_is() {
    let Some(dir) = rust_examples() else { return };
    let wasm = dir.join("rust-caller-policy.wasm");
    let o = sluice(&["hook", "check", s(&wasm)]);
    let out = stdout(&o);
    assert_eq!(status(&o), 0, "{out}");
    assert!(out.contains("loadable"), "{out}");
    assert!(out.contains("sluice:hook@0.2.0"), "{out}");
    assert!(out.contains("tools/call  request"), "{out}");
    assert!(out.contains("tools/list  response"), "{out}");

    let o = sluice(&[
        "hook",
        "check",
        s(&wasm),
        "--json",
        "--methods",
        "tools/call",
    ]);
    assert_eq!(status(&o), 0);
    let v = json(&o);
    assert_eq!(v["world"], "sluice:hook@0.2.0");
    assert_eq!(v["methods"][0], "tools/call@request");
    assert_eq!(v["narrowed_by"][0], "tools/call");
    assert_eq!(v["sees"][1]["phases"][0], "response");
    let imports = v["imports"].as_array().unwrap();
    assert!(
        imports
            .iter()
            .any(|i| i["name"] == "sluice:hook/host@0.2.0" && i["served"] == "host")
    );
    // Rust std imports WASI, which the host links and denies.
    assert!(imports.iter().any(|i| i["served"] == "wasi"));

    // A 0.1.0 hook; methods() covers the request and response phases only.
    let o = sluice(&["hook", "check", s(&dir.join("rust-tool-policy.wasm"))]);
    assert_eq!(status(&o), 0);
    assert!(stdout(&o).contains("sluice:hook@0.1.0"));
}

#[test]
fn check_refuses_what_the_proxy_would_not_load() {
    let not_wasm = file("not-wasm", b"hello, I am text");
    let o = sluice(&["hook", "check", s(&not_wasm)]);
    assert_eq!(status(&o), 1);
    assert!(stdout(&o).contains("NOT loadable"));
    assert!(
        stdout(&o).contains("not a WebAssembly binary"),
        "{}",
        stdout(&o)
    );

    let core = file("core-module", &wat::parse_str("(module)").unwrap());
    let o = sluice(&["hook", "check", s(&core)]);
    assert_eq!(status(&o), 1);
    assert!(
        stdout(&o).contains("a core WebAssembly module, not a component"),
        "{}",
        stdout(&o)
    );

    // A component that exports nothing: the host's own error.
    let empty = file("empty-component", &wat::parse_str("(component)").unwrap());
    let o = sluice(&["hook", "check", s(&empty), "--json"]);
    assert_eq!(status(&o), 1);
    let v = json(&o);
    assert_eq!(v["loadable"], false);
    let error = v["error"].as_str().unwrap();
    assert!(
        error.contains("implements neither sluice:hook/hook@0.2.0 nor sluice:hook/hook@0.1.0"),
        "{error}"
    );

    // methods() that does not parse fails the load, naming the entry.
    let bad = file(
        "bad-methods",
        &Guest::new(&["x@later"], body::cont()).component(),
    );
    let o = sluice(&["hook", "check", s(&bad)]);
    assert_eq!(status(&o), 1);
    assert!(
        stdout(&o).contains("bad method pattern \"x@later\""),
        "{}",
        stdout(&o)
    );

    // So does a bad narrowing.
    let good = file("good", &Guest::new(&["*"], body::cont()).component());
    assert_eq!(status(&sluice(&["hook", "check", s(&good)])), 0);
    let o = sluice(&["hook", "check", s(&good), "--methods", "a*b"]);
    assert_eq!(status(&o), 1);
    assert!(stdout(&o).contains("operator methods"), "{}", stdout(&o));

    let o = sluice(&["hook", "check", "/nonexistent/hook.wasm"]);
    assert_eq!(status(&o), 1);
}

#[test]
fn test_runs_a_0_2_0_hook_with_an_identity() {
    let Some(dir) = rust_examples() else { return };
    let wasm = dir.join("rust-caller-policy.wasm");
    let run = |identity: &str, extra: &[&str]| {
        let mut args = vec![
            "hook",
            "test",
            s(&wasm),
            "--config",
            CALLER_POLICY,
            "--request",
            CALL_DEPLOY,
            "--identity",
            identity,
        ];
        args.extend_from_slice(extra);
        sluice(&args)
    };
    // Without the scope: rejected, with the error the client would get.
    let o = run(r#"{"subject":"bob","scopes":["tools:read"]}"#, &[]);
    let out = stdout(&o);
    assert_eq!(status(&o), 4, "{out}");
    assert!(out.contains("verdict reject code -31001"), "{out}");
    assert!(
        out.contains(
            r#"the client is answered with: {"jsonrpc":"2.0","id":7,"error":{"code":-31001"#
        ),
        "{out}"
    );
    assert!(
        out.contains("refused \"deploy\" to bob"),
        "the hook's log line: {out}"
    );
    assert!(out.contains("time    cold"), "{out}");

    // With it: continue, forwarded unchanged; then the response phase,
    // which this hook does not ask for on tools/call.
    let o = run(
        r#"{"scheme":"jwt","subject":"alice","issuer":"https://idp","client_id":"app","scopes":["tools:deploy"],"claims":{"roles":["x"]}}"#,
        &[
            "--response",
            r#"{"jsonrpc":"2.0","id":7,"result":{}}"#,
            "--json",
            "--repeat",
            "3",
        ],
    );
    assert_eq!(status(&o), 0, "{}", stdout(&o));
    let v = json(&o);
    assert_eq!(v["phases"][0]["verdict"]["verdict"], "continue");
    assert_eq!(v["phases"][0]["then"]["action"], "forward");
    assert_eq!(v["phases"][0]["then"]["message"], CALL_DEPLOY);
    assert_eq!(v["phases"][0]["warm"]["calls"], 3);
    assert!(v["phases"][0]["cold_us"].as_f64().unwrap() > 0.0);
    assert_eq!(v["phases"][1]["called"], false);
    assert!(
        v["phases"][1]["not_called"]
            .as_str()
            .unwrap()
            .contains("methods()")
    );

    // The response phase it does ask for: tools/list answers filtered.
    let o = sluice(&[
        "hook",
        "test",
        s(&wasm),
        "--config",
        CALLER_POLICY,
        "--json",
        "--request",
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#,
        "--response",
        r#"{"jsonrpc":"2.0","id":2,"result":{"tools":[{"name":"deploy"},{"name":"echo"}]}}"#,
        "--identity",
        r#"{"subject":"carol"}"#,
    ]);
    assert_eq!(status(&o), 3, "{}", stdout(&o));
    let v = json(&o);
    assert_eq!(v["phases"][0]["called"], false);
    assert_eq!(v["phases"][1]["verdict"]["verdict"], "replace");
    let replaced: Value =
        serde_json::from_str(v["phases"][1]["then"]["message"].as_str().unwrap()).unwrap();
    assert_eq!(
        replaced["result"]["tools"],
        serde_json::json!([{"name": "echo"}])
    );

    // Flags the host would refuse are usage errors.
    let o = run(r#"{"scheme":"magic","subject":"x"}"#, &[]);
    assert_eq!(status(&o), 2);
    assert!(String::from_utf8_lossy(&o.stderr).contains("--identity"));
}

/// A `tools/call` of `tool`, no arguments.
/// Run a generated project's `build.sh`; `false` when its toolchain is
/// missing here (exit status 3: skipped, with the script's reason).
fn built(build_sh: &mut Command) -> bool {
    let build = build_sh.output().expect("build.sh runs");
    if build.status.code() == Some(3) {
        eprintln!("SKIPPED: {}", String::from_utf8_lossy(&build.stderr).trim());
        return false;
    }
    assert!(
        build.status.success(),
        "{}",
        String::from_utf8_lossy(&build.stderr)
    );
    true
}

/// `hook check` loads it; what it says.
fn checked(wasm: &Path) -> String {
    let o = sluice(&["hook", "check", s(wasm)]);
    assert_eq!(status(&o), 0, "{}", stdout(&o));
    stdout(&o)
}

/// `hook check --json` loads it as a 0.2.0 hook that imports nothing but
/// sluice's host interface; what it says.
fn checked_0_2_0_without_wasi(wasm: &Path) -> Value {
    let o = sluice(&["hook", "check", s(wasm), "--json"]);
    assert_eq!(status(&o), 0, "{}", stdout(&o));
    let v = json(&o);
    assert_eq!(v["world"], "sluice:hook@0.2.0");
    let imports = v["imports"].as_array().expect("imports");
    assert!(
        imports.iter().all(|i| i["served"] == "host"),
        "no WASI: {v}"
    );
    v
}

/// The generated deny-list hook refuses a tool its config names (exit 4).
fn refuses_echo_by_config(wasm: &Path) {
    let o = sluice(&[
        "hook",
        "test",
        s(wasm),
        "--config",
        r#"{"deny":["echo"]}"#,
        "--request",
        &call("echo"),
    ]);
    assert_eq!(status(&o), 4, "{}", stdout(&o));
}

fn call(tool: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"{tool}","arguments":{{}}}}}}"#
    )
}

/// What every generated Rust and JS project does out of the box: refuse
/// `delete_everything` (naming the caller) and let `echo` through.
fn refuses_delete_for_alice_and_lets_echo_through(wasm: &Path) {
    let o = sluice(&[
        "hook",
        "test",
        s(wasm),
        "--request",
        &call("delete_everything"),
        "--identity",
        r#"{"subject":"alice"}"#,
    ]);
    let out = stdout(&o);
    assert_eq!(status(&o), 4, "{out}");
    assert!(
        out.contains("refused \"delete_everything\" for alice"),
        "{out}"
    );
    let o = sluice(&["hook", "test", s(wasm), "--request", &call("echo")]);
    assert_eq!(status(&o), 0, "{}", stdout(&o));
}

#[test]
fn test_runs_a_0_1_0_hook() {
    let Some(dir) = rust_examples() else { return };
    let wasm = dir.join("rust-tool-policy.wasm");
    let o = sluice(&[
        "hook",
        "test",
        s(&wasm),
        "--config",
        r#"{"deny":["rm"]}"#,
        "--request",
        &call("rm"),
        "--identity",
        r#"{"subject":"a"}"#,
    ]);
    let out = stdout(&o);
    assert_eq!(status(&o), 4, "{out}");
    assert!(out.contains("sluice:hook@0.1.0"), "{out}");
    assert!(
        out.contains("--identity is not given to sluice:hook@0.1.0 hooks"),
        "{out}"
    );
    let o = sluice(&[
        "hook",
        "test",
        s(&wasm),
        "--config",
        r#"{"deny":["rm"]}"#,
        "--request",
        &call("echo"),
    ]);
    assert_eq!(status(&o), 0, "{}", stdout(&o));
    assert!(stdout(&o).contains("verdict continue"));
}

#[test]
fn test_shows_every_verdict_class_and_the_proxys_answer() {
    let req = r#"{"jsonrpc":"2.0","id":"a","method":"tools/call","params":{"name":"x"}}"#;
    let note = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
    let run = |guest: Guest, extra: &[&str]| {
        let wasm = file("verdicts", &guest.component());
        let mut args = vec!["hook", "test", s(&wasm), "--json"];
        args.extend_from_slice(extra);
        let o = sluice(&args);
        (status(&o), json(&o))
    };

    // respond: the client gets a result under the request's id.
    let (code, v) = run(
        Guest::new(&["*"], body::respond(support::ECHO)),
        &["--request", req],
    );
    assert_eq!(code, 5);
    assert_eq!(
        v["phases"][0]["verdict"]["result"],
        serde_json::json!({"echo": true})
    );
    assert_eq!(
        v["phases"][0]["then"]["message"],
        r#"{"jsonrpc":"2.0","id":"a","result":{"echo":true}}"#
    );
    // ... and a notification answered so is consumed.
    let (code, v) = run(
        Guest::new(&["*"], body::respond(support::ECHO)),
        &["--request", note],
    );
    assert_eq!(code, 5);
    assert_eq!(v["phases"][0]["then"]["action"], "consume-notification");

    // replace, checked by the proxy's rules: a replacement with another
    // method is an invalid verdict, a failure of the hook.
    let (code, v) = run(
        Guest::new(&["*"], body::replace(support::REPLACED_REQ)),
        &["--request", req],
    );
    assert_eq!(code, 6);
    assert_eq!(v["phases"][0]["verdict"]["verdict"], "failed");
    assert!(
        v["phases"][0]["verdict"]["error"]
            .as_str()
            .unwrap()
            .contains("invalid verdict")
    );
    assert!(
        v["phases"][0]["then"]["message"]
            .as_str()
            .unwrap()
            .contains("-32010")
    );

    // A trap: on_error reject answers -32010; pass forwards unchanged.
    let (code, v) = run(Guest::new(&["*"], body::trap()), &["--request", req]);
    assert_eq!(code, 6);
    assert_eq!(v["phases"][0]["verdict"]["on_error"], "reject");
    assert_eq!(v["phases"][0]["then"]["action"], "answer");
    let (code, v) = run(
        Guest::new(&["*"], body::trap()),
        &["--request", req, "--on-error", "pass"],
    );
    assert_eq!(code, 6);
    assert_eq!(v["phases"][0]["then"]["action"], "forward");
    assert_eq!(v["phases"][0]["then"]["message"], req);

    // Audit mode: the verdict it would have given, never applied.
    let (code, v) = run(
        Guest::new(&["*"], body::reject(-1, support::DENIED)),
        &["--request", req, "--mode", "audit"],
    );
    assert_eq!(code, 4);
    assert_eq!(v["mode"], "audit");
    assert_eq!(
        v["phases"][0]["verdict"],
        serde_json::json!({"verdict": "reject", "audit": true})
    );
    assert_eq!(v["phases"][0]["then"]["action"], "forward");
    assert_eq!(v["phases"][0]["then"]["message"], req);
    let (code, v) = run(
        Guest::new(&["*"], body::trap()),
        &["--request", req, "--mode", "audit"],
    );
    assert_eq!(code, 6);
    assert_eq!(
        v["phases"][0]["then"]["action"], "forward",
        "a failure stops nothing"
    );

    // A refused notification: HTTP 400 with a null id.
    let (code, v) = run(
        Guest::new(&["*"], body::reject(-1, support::DENIED)),
        &["--request", note],
    );
    assert_eq!(code, 4);
    assert_eq!(v["phases"][0]["then"]["http_status"], 400);
    assert!(
        v["phases"][0]["then"]["message"]
            .as_str()
            .unwrap()
            .contains(r#""id":null"#)
    );

    // The context: session, protocol version and the headers given.
    let (code, v) = run(
        Guest::new(&["*"], body::reject_with_headers(false)),
        &[
            "--request",
            req,
            "--header",
            "X-Team=blue",
            "--header",
            "x-env=prod",
        ],
    );
    assert_eq!(code, 4);
    assert_eq!(v["phases"][0]["verdict"]["code"], 4002);
    assert_eq!(
        v["phases"][0]["verdict"]["message"],
        "x-team=blue;x-env=prod;"
    );
    let (_, v) = run(
        Guest::new(&["*"], body::reject_with_context()),
        &[
            "--request",
            req,
            "--session",
            "s1",
            "--protocol-version",
            "2025-11-25",
            "--upstream",
            "tools",
        ],
    );
    assert_eq!(v["phases"][0]["verdict"]["code"], 1010);
    assert_eq!(v["phases"][0]["verdict"]["message"], "tools");

    // Log lines, every level.
    let (code, v) = run(
        Guest::new(&["*"], body::log_then_continue()),
        &["--request", req],
    );
    assert_eq!(code, 0);
    assert_eq!(v["phases"][0]["logs"][0]["line"], support::HELLO.1);

    // Not called: methods(), or the operator's narrowing.
    let (code, v) = run(
        Guest::new(&["resources/*"], body::trap()),
        &["--request", req],
    );
    assert_eq!(code, 7);
    assert!(
        v["phases"][0]["not_called"]
            .as_str()
            .unwrap()
            .contains("methods()")
    );
    let (code, v) = run(
        Guest::new(&["*"], body::trap()),
        &["--request", req, "--methods", "tools/list"],
    );
    assert_eq!(code, 7);
    assert!(
        v["phases"][0]["not_called"]
            .as_str()
            .unwrap()
            .contains("--methods")
    );
}

#[test]
fn test_runs_a_server_message_hook() {
    let Some(dir) = rust_examples() else { return };
    let wasm = dir.join("rust-server-guard.wasm");
    let sampling = r#"{"jsonrpc":"2.0","id":5,"method":"sampling/createMessage","params":{"messages":[],"maxTokens":10}}"#;
    // A refused server request: answered to the upstream, never shown.
    let o = sluice(&["hook", "test", s(&wasm), "--server-message", sampling]);
    let out = stdout(&o);
    assert_eq!(status(&o), 4, "{out}");
    assert!(out.contains("server-message:"), "{out}");
    assert!(
        out.contains(r#"the client never sees it; the upstream is answered with: {"jsonrpc":"2.0","id":5,"error":{"code":-31002"#),
        "{out}"
    );
    // A redacted log notification: replaced on its way to the client.
    let log = r#"{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"key sk-123"}}"#;
    let o = sluice(&[
        "hook",
        "test",
        s(&wasm),
        "--config",
        r#"{"redact":["sk-"]}"#,
        "--server-message",
        log,
        "--json",
    ]);
    assert_eq!(status(&o), 3, "{}", stdout(&o));
    let v = json(&o);
    assert_eq!(v["phases"][0]["phase"], "server-message");
    assert_eq!(v["phases"][0]["then"]["to"], "client");
    assert!(
        v["phases"][0]["then"]["message"]
            .as_str()
            .unwrap()
            .contains("[redacted by sluice]")
    );
    // What it does not ask for passes.
    let progress = r#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":1,"progress":1}}"#;
    assert_eq!(
        status(&sluice(&[
            "hook",
            "test",
            s(&wasm),
            "--server-message",
            progress
        ])),
        7
    );
    // A server message is a request or a notification.
    let o = sluice(&[
        "hook",
        "test",
        s(&wasm),
        "--server-message",
        r#"{"jsonrpc":"2.0","id":1,"result":{}}"#,
    ]);
    assert_eq!(status(&o), 1);
    assert!(String::from_utf8_lossy(&o.stderr).contains("--server-message"));
    // The client's answer to a server request: withheld, the server gets an
    // error in the client's stead.
    let elicit = r#"{"jsonrpc":"2.0","id":3,"method":"elicitation/create","params":{"message":"name?","requestedSchema":{"type":"object","properties":{}}}}"#;
    let answer =
        r#"{"jsonrpc":"2.0","id":3,"result":{"action":"accept","content":{"name":"a secret"}}}"#;
    let withhold = r#"{"refuse":[],"withhold":["secret"]}"#;
    let o = sluice(&[
        "hook",
        "test",
        s(&wasm),
        "--config",
        withhold,
        "--server-message",
        elicit,
        "--client-answer",
        answer,
        "--json",
    ]);
    assert_eq!(status(&o), 4, "{}", stdout(&o));
    let v = json(&o);
    assert_eq!(
        v["phases"][0]["called"], false,
        "no @server-message for elicitation"
    );
    assert_eq!(v["phases"][1]["phase"], "client-answer");
    assert_eq!(v["phases"][1]["verdict"]["code"], -31004);
    assert_eq!(v["phases"][1]["then"]["to"], "upstream");
    assert!(
        v["phases"][1]["then"]["message"]
            .as_str()
            .unwrap()
            .starts_with(r#"{"jsonrpc":"2.0","id":3,"error":{"code":-31004"#)
    );
    // A refused server request never reaches the client: no answer to run.
    let sampling_answer = r#"{"jsonrpc":"2.0","id":5,"result":{"role":"assistant","content":{"type":"text","text":"hi"},"model":"m"}}"#;
    let o = sluice(&[
        "hook",
        "test",
        s(&wasm),
        "--server-message",
        sampling,
        "--client-answer",
        sampling_answer,
        "--json",
    ]);
    assert_eq!(status(&o), 4, "{}", stdout(&o));
    let v = json(&o);
    assert_eq!(v["not_run"]["phase"], "client-answer");
    assert_eq!(v["phases"].as_array().unwrap().len(), 1);
    // An answer answers the server's request: same id; and needs one.
    let o = sluice(&[
        "hook",
        "test",
        s(&wasm),
        "--server-message",
        elicit,
        "--client-answer",
        sampling_answer,
    ]);
    assert_eq!(status(&o), 1);
    assert!(String::from_utf8_lossy(&o.stderr).contains("--client-answer"));
    assert_eq!(
        status(&sluice(&[
            "hook",
            "test",
            s(&wasm),
            "--request",
            elicit,
            "--client-answer",
            answer
        ])),
        2
    );

    // Not with --request.
    let o = sluice(&[
        "hook",
        "test",
        s(&wasm),
        "--server-message",
        progress,
        "--request",
        progress,
    ]);
    assert_eq!(status(&o), 2);
}

#[test]
fn check_shows_the_phases_each_entry_covers_by_cores_rule() {
    let entries = &["*", "tools/call", "notifications/*@server-message"];
    let new = file(
        "phases-0-2",
        &Guest::new(entries, body::cont()).component_0_2(body::cont()),
    );
    let o = sluice(&["hook", "check", s(&new), "--json"]);
    assert_eq!(status(&o), 0, "{}", stdout(&o));
    let v = json(&o);
    let sees = |i: usize, key: &str| -> Vec<String> {
        v["sees"][i][key]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        sees(0, "phases"),
        ["request", "response", "server-message", "client-answer"]
    );
    assert_eq!(
        sees(0, "server_messages_only"),
        ["server-message", "client-answer"]
    );
    assert_eq!(
        sees(1, "phases"),
        ["request", "response"],
        "tools/call never comes from a server"
    );
    assert_eq!(sees(2, "phases"), ["server-message"]);
    let old = file("phases-0-1", &Guest::new(&["*"], body::cont()).component());
    let v = json(&sluice(&["hook", "check", s(&old), "--json"]));
    assert_eq!(
        v["sees"][0]["phases"],
        serde_json::json!(["request", "response"])
    );
}

#[test]
fn test_on_a_server_message_answers_the_upstream_or_drops_a_notification() {
    let wasm = file(
        "respond-0-2",
        &Guest::new(&["*"], body::cont()).component_0_2(body::respond(support::ECHO)),
    );
    let ping = r#"{"jsonrpc":"2.0","id":9,"method":"ping"}"#;
    let o = sluice(&["hook", "test", s(&wasm), "--server-message", ping, "--json"]);
    assert_eq!(status(&o), 5, "{}", stdout(&o));
    let v = json(&o);
    assert_eq!(v["phases"][0]["then"]["to"], "upstream");
    assert_eq!(
        v["phases"][0]["then"]["message"],
        r#"{"jsonrpc":"2.0","id":9,"result":{"echo":true}}"#
    );
    // respond on a notification is an invalid verdict: a failure, and
    // on_error = reject stops (drops) the notification.
    let note = r#"{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"x"}}"#;
    let o = sluice(&["hook", "test", s(&wasm), "--server-message", note, "--json"]);
    assert_eq!(status(&o), 6, "{}", stdout(&o));
    let v = json(&o);
    assert!(
        v["phases"][0]["verdict"]["error"]
            .as_str()
            .unwrap()
            .contains("notification")
    );
    assert_eq!(v["phases"][0]["then"]["action"], "drop-notification");
}

#[test]
fn a_0_1_0_hook_is_not_called_on_server_messages() {
    // "*" covers every phase of the hook's world; a 0.1.0 world has no
    // server-message phase, so the proxy passes server messages by it.
    let wasm = file("old-star", &Guest::new(&["*"], body::trap()).component());
    let ping = r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
    let o = sluice(&["hook", "test", s(&wasm), "--server-message", ping]);
    assert_eq!(status(&o), 7, "{}", stdout(&o));
    assert!(stdout(&o).contains("a sluice:hook@0.1.0 hook has no server-message phase"));
    // Nor when the operator's narrowing names no phase.
    let o = sluice(&[
        "hook",
        "test",
        s(&wasm),
        "--server-message",
        ping,
        "--methods",
        "ping",
    ]);
    assert_eq!(status(&o), 7, "{}", stdout(&o));
    // Its client phases are untouched.
    let o = sluice(&[
        "hook",
        "test",
        s(&wasm),
        "--request",
        ping,
        "--methods",
        "ping",
    ]);
    assert_eq!(status(&o), 6, "the trap: {}", stdout(&o));
}

#[test]
fn test_refuses_input_the_proxy_would_not_read() {
    let wasm = file("inputs", &Guest::new(&["*"], body::cont()).component());
    let run = |extra: &[&str]| {
        let mut args = vec!["hook", "test", s(&wasm)];
        args.extend_from_slice(extra);
        let o = sluice(&args);
        (status(&o), String::from_utf8_lossy(&o.stderr).into_owned())
    };
    let (code, err) = run(&["--request", "{not json"]);
    assert_eq!(code, 1);
    assert!(err.contains("--request"), "{err}");
    let (code, err) = run(&["--request", r#"{"jsonrpc":"2.0","id":1,"result":{}}"#]);
    assert_eq!(code, 1);
    assert!(err.contains("--request"), "{err}");
    let req = r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
    let (code, err) = run(&[
        "--request",
        req,
        "--response",
        r#"{"jsonrpc":"2.0","id":2,"result":{}}"#,
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("id"), "{err}");
    // @FILE and @- (standard input) for the messages.
    let req_file = temp_dir("req-file").join("req.json");
    std::fs::write(&req_file, format!("{req}\n")).unwrap();
    let at = format!("@{}", req_file.display());
    let o = sluice(&["hook", "test", s(&wasm), "--request", &at]);
    assert_eq!(status(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    let (code, err) = run(&["--request", "@/nonexistent/req.json"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("--request: reading /nonexistent/req.json"),
        "{err}"
    );
    let mut child = Command::new(SLUICE)
        .args(["hook", "test", s(&wasm), "--request", "@-", "--no-cache"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(req.as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(status(&o), 0, "{}", stdout(&o));
    assert!(stdout(&o).contains("verdict continue"), "{}", stdout(&o));
    let not_wasm = file("inputs-not-wasm", b"text");
    let o = sluice(&["hook", "test", s(&not_wasm), "--request", req, "--json"]);
    assert_eq!(status(&o), 1);
    assert_eq!(json(&o)["loadable"], false);
    let (code, err) = run(&["--request", req, "--header", "bad header=1"]);
    assert_eq!(code, 2);
    assert!(err.contains("--header"), "{err}");
}

/// `cargo build --release --target wasm32-wasip2 --locked` of a generated
/// project into `target`: offline first (the lock is the examples', whose
/// crates are in the cargo cache once they were built here), online when
/// they are not. --locked either way: the lock `hook new` writes must be
/// the one Cargo would write.
fn cargo_build(dir: &Path, target: &Path) -> Output {
    let cargo = |offline: bool| {
        let mut cmd = Command::new("cargo");
        cmd.args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--locked",
        ])
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", target)
        // Flags meant for the host build must not leak into the guest's.
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET");
        if offline {
            cmd.arg("--offline");
        }
        cmd.output().expect("cargo runs")
    };
    let build = cargo(true);
    if !build.status.success() && String::from_utf8_lossy(&build.stderr).contains("offline") {
        eprintln!("the examples' crates are not in the cargo cache: building online");
        return cargo(false);
    }
    build
}

/// `hook new --lang rust`, built offline for wasm32-wasip2 with the lock it
/// writes, then checked and tested with the commands its README gives.
#[test]
fn new_rust_project_builds_and_passes_check_and_test() {
    if rust_examples().is_none() {
        return;
    }
    let dir = temp_dir("new-rust").join("my-hook");
    let o = sluice(&["hook", "new", "my-hook", "--lang", "rust", "--dir", s(&dir)]);
    assert_eq!(status(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        std::fs::read_to_string(dir.join("wit/hook.wit")).unwrap(),
        include_str!("../../wit/hook.wit")
    );
    let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
    assert!(readme.contains("cargo build --release --target wasm32-wasip2"));
    assert!(readme.contains("sluice hook test target/wasm32-wasip2/release/my_hook.wasm"));
    // Once written, never overwritten.
    let o = sluice(&["hook", "new", "my-hook", "--lang", "rust", "--dir", s(&dir)]);
    assert_eq!(status(&o), 1);

    // Kept between runs: the dependencies build once.
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("hook-new-target");
    let build = cargo_build(&dir, &target);
    assert!(
        build.status.success(),
        "{}",
        String::from_utf8_lossy(&build.stderr)
    );
    let wasm = target.join("wasm32-wasip2/release/my_hook.wasm");

    let report = checked(&wasm);
    assert!(report.contains("sluice:hook@0.2.0"));
    assert!(report.contains("tools/call  request"));

    refuses_delete_for_alice_and_lets_echo_through(&wasm);
    refuses_echo_by_config(&wasm);

    // The same hook on sluice's SDK, copied in by --sdk; one target dir, so
    // only the SDK and the hook compile.
    let sdk_dir = temp_dir("new-rust-sdk").join("sdk-hook");
    let o = sluice(&[
        "hook",
        "new",
        "sdk-hook",
        "--lang",
        "rust",
        "--sdk",
        "--dir",
        s(&sdk_dir),
    ]);
    assert_eq!(status(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        std::fs::read_to_string(sdk_dir.join("sluice-hook/src/lib.rs")).unwrap(),
        include_str!("../../hook-examples/sluice-hook/src/lib.rs")
    );
    let build = cargo_build(&sdk_dir, &target);
    assert!(
        build.status.success(),
        "{}",
        String::from_utf8_lossy(&build.stderr)
    );
    let wasm = target.join("wasm32-wasip2/release/sdk_hook.wasm");
    checked(&wasm);
    refuses_delete_for_alice_and_lets_echo_through(&wasm);
}

/// `hook new --lang js`, bare and `--sdk`, built with its build.sh (the
/// toolchain the JavaScript example pins, from the same cache), then checked
/// and tested (the `--sdk` one natively first, with its own test.sh).
/// Skipped when node or npm is missing.
#[test]
fn new_js_project_builds_and_passes_check_and_test() {
    let dir = temp_dir("new-js").join("js-hook");
    let o = sluice(&["hook", "new", "js-hook", "--lang", "js", "--dir", s(&dir)]);
    assert_eq!(status(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../hook-examples/js-tools-rewriter");
    for pin in ["package.json", "package-lock.json"] {
        assert_eq!(
            std::fs::read(dir.join(pin)).unwrap(),
            std::fs::read(example.join(pin)).unwrap(),
            "{pin}: the example's, so the toolchain cache serves both"
        );
    }
    if !built(&mut Command::new(dir.join("build.sh"))) {
        return;
    }
    let wasm = dir.join("dist/js_hook.wasm");
    assert!(checked(&wasm).contains("sluice:hook@0.2.0"));
    refuses_delete_for_alice_and_lets_echo_through(&wasm);
    // Warm instances, as an interpreted guest runs in production.
    let o = sluice(&[
        "hook",
        "test",
        s(&wasm),
        "--request",
        &call("echo"),
        "--instances",
        "warm",
        "--repeat",
        "3",
        "--json",
    ]);
    assert_eq!(status(&o), 0, "{}", stdout(&o));
    let v = json(&o);
    assert_eq!(v["instances"], "warm");
    assert_eq!(v["phases"][0]["warm"]["calls"], 3);

    // The same hook on sluice's JavaScript SDK, copied in by --sdk: its
    // native tests pass under node, and its component (jco bundles the SDK
    // module the hook imports) behaves as the bare one.
    let sdk_dir = temp_dir("new-js-sdk").join("js-sdk-hook");
    let o = sluice(&[
        "hook",
        "new",
        "js-sdk-hook",
        "--lang",
        "js",
        "--sdk",
        "--dir",
        s(&sdk_dir),
    ]);
    assert_eq!(status(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        stdout(&o).contains(&format!("test it:   {}", s(&sdk_dir.join("test.sh")))),
        "{}",
        stdout(&o)
    );
    for file in ["sluice-hook.js", "testing.js", "test.sh", "package.json"] {
        assert_eq!(
            std::fs::read(sdk_dir.join("sluice-hook").join(file)).unwrap(),
            std::fs::read(example.join("sluice-hook").join(file)).unwrap(),
            "{file}: the SDK's, byte for byte"
        );
    }
    let test = Command::new(sdk_dir.join("test.sh"))
        .output()
        .expect("test.sh runs");
    let out = format!(
        "{}{}",
        String::from_utf8_lossy(&test.stdout),
        String::from_utf8_lossy(&test.stderr)
    );
    if test.status.code() == Some(3) {
        eprintln!("SKIPPED the native tests: {}", out.trim());
    } else {
        assert!(test.status.success(), "{out}");
        assert!(out.contains("pass 2") && out.contains("fail 0"), "{out}");
    }
    let build = Command::new(sdk_dir.join("build.sh"))
        .output()
        .expect("build.sh runs");
    assert!(
        build.status.success(),
        "{}",
        String::from_utf8_lossy(&build.stderr)
    );
    let wasm = sdk_dir.join("dist/js_sdk_hook.wasm");
    let report = checked(&wasm);
    assert!(report.contains("tools/call  request"), "{report}");
    refuses_delete_for_alice_and_lets_echo_through(&wasm);
    refuses_echo_by_config(&wasm);
}

/// `hook new --lang python` writes its project (building it needs
/// componentize-py and a minute or more of compiling in a debug sluice:
/// checked by hand, see docs/HOOKS.md).
#[test]
fn new_python_project_is_written_with_the_examples_pin() {
    let dir = temp_dir("new-py").join("py-hook");
    let o = sluice(&[
        "hook",
        "new",
        "py-hook",
        "--lang",
        "python",
        "--dir",
        s(&dir),
    ]);
    assert_eq!(status(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        std::fs::read_to_string(dir.join("requirements.txt")).unwrap(),
        include_str!("../../hook-examples/python-arg-validator/requirements.txt")
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("wit/hook.wit")).unwrap(),
        include_str!("../../wit/hook.wit")
    );
    let app = std::fs::read_to_string(dir.join("app.py")).unwrap();
    assert!(app.contains("class Handler(exports.Handler)") && app.contains("def on_client_answer"));
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(dir.join("build.sh"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o111, 0o111, "build.sh is executable");
    assert!(stdout(&o).contains("py_hook.wasm"));
}

/// `hook new --lang python --sdk`: the SDK copied in byte for byte, the
/// project's own tests run natively (no component), then built with its
/// build.sh (the Python example's pinned componentize-py, from the same
/// toolchain cache) and checked and tested as a component. Skipped, loudly,
/// when python3 3.10+ or its venv is missing (exit status 3). The component
/// is ~18 MB of CPython: compiling it takes this debug build of sluice a
/// minute or more, so it is compiled once, by `check`, into the artifact
/// cache that the `test` runs then load from.
#[test]
fn new_python_sdk_project_passes_its_tests_builds_and_passes_check_and_test() {
    let dir = temp_dir("new-py-sdk").join("py-sdk-hook");
    let o = sluice(&[
        "hook",
        "new",
        "py-sdk-hook",
        "--lang",
        "python",
        "--sdk",
        "--dir",
        s(&dir),
    ]);
    assert_eq!(status(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    let sdk = Path::new(env!("CARGO_MANIFEST_DIR")).join("../hook-examples/sluice-hook-py");
    for file in [
        "sluice_hook/__init__.py",
        "sluice_hook/testing.py",
        "test.sh",
    ] {
        assert_eq!(
            std::fs::read(dir.join("sluice-hook-py").join(file)).unwrap(),
            std::fs::read(sdk.join(file)).unwrap(),
            "{file}: the SDK's, byte for byte"
        );
    }
    assert_eq!(
        std::fs::read_to_string(dir.join("sluice-hook-py/wit/hook.wit")).unwrap(),
        include_str!("../../wit/hook.wit")
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("requirements.txt")).unwrap(),
        include_str!("../../hook-examples/python-arg-validator/requirements.txt")
    );

    // Its tests, as its README runs them; then the SDK's own, copied too.
    let tests = Command::new(dir.join("sluice-hook-py/test.sh"))
        .arg(".")
        .current_dir(&dir)
        .output()
        .expect("test.sh runs");
    let log = String::from_utf8_lossy(&tests.stderr);
    if tests.status.code() == Some(3) {
        eprintln!("SKIPPED: {}", log.trim());
        return;
    }
    assert!(tests.status.success(), "{log}");
    assert!(log.contains("Ran 2 tests") && log.contains("\nOK"), "{log}");
    let sdk_tests = Command::new(dir.join("sluice-hook-py/test.sh"))
        .output()
        .expect("test.sh runs");
    let log = String::from_utf8_lossy(&sdk_tests.stderr);
    assert!(sdk_tests.status.success() && log.contains("\nOK"), "{log}");

    if !built(&mut Command::new(dir.join("build.sh"))) {
        return;
    }
    let wasm = dir.join("dist/py_sdk_hook.wasm");
    // --stub-wasi: nothing but sluice's host interface.
    let v = checked_0_2_0_without_wasi(&wasm);
    assert_eq!(v["methods"], serde_json::json!(["tools/call@request"]));
    refuses_delete_for_alice_and_lets_echo_through(&wasm);
    // The SDK's edges in the component: data built by the SDK, a config
    // read through the host import, a bad one failing closed.
    let o = sluice(&[
        "hook",
        "test",
        s(&wasm),
        "--config",
        r#"{"deny":["echo"]}"#,
        "--request",
        &call("echo"),
        "--json",
    ]);
    assert_eq!(status(&o), 4, "{}", stdout(&o));
    let v = json(&o);
    assert_eq!(v["phases"][0]["verdict"]["code"], -31000);
    assert_eq!(
        v["phases"][0]["verdict"]["data"],
        serde_json::json!({"tool": "echo"})
    );
    let o = sluice(&[
        "hook",
        "test",
        s(&wasm),
        "--config",
        "{not json",
        "--request",
        &call("echo"),
    ]);
    assert_eq!(status(&o), 4, "{}", stdout(&o));
    assert!(stdout(&o).contains("bad config"), "{}", stdout(&o));
}

/// `hook new --lang c`, built with its build.sh (wit-bindgen c, clang,
/// the C example's wrapper), then checked and tested. Skipped when clang
/// for wasm32-wasi or cargo is missing.
#[test]
fn new_c_project_builds_and_passes_check_and_test() {
    let dir = temp_dir("new-c").join("c-hook");
    let o = sluice(&["hook", "new", "c-hook", "--lang", "c", "--dir", s(&dir)]);
    assert_eq!(status(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    assert!(stdout(&o).contains("--config closed"));
    if !built(Command::new(dir.join("build.sh")).env_remove("CARGO_TARGET_DIR")) {
        return;
    }
    let wasm = dir.join("dist/c_hook.wasm");
    checked_0_2_0_without_wasi(&wasm);
    let call =
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{}}}"#;
    let o = sluice(&[
        "hook",
        "test",
        s(&wasm),
        "--config",
        "closed",
        "--request",
        call,
        "--identity",
        r#"{"subject":"alice"}"#,
    ]);
    let out = stdout(&o);
    assert_eq!(status(&o), 4, "{out}");
    assert!(out.contains("tools are closed for maintenance"), "{out}");
    assert!(
        out.contains("refused a tool call (closed) for alice"),
        "{out}"
    );
    let o = sluice(&["hook", "test", s(&wasm), "--request", call]);
    assert_eq!(status(&o), 0, "{}", stdout(&o));
}

#[test]
fn new_refuses_bad_names_and_full_directories() {
    let dir = temp_dir("new-full");
    std::fs::write(dir.join("keep"), "mine").unwrap();
    let o = sluice(&["hook", "new", "p", "--lang", "rust", "--dir", s(&dir)]);
    assert_eq!(status(&o), 1);
    assert!(String::from_utf8_lossy(&o.stderr).contains("is not empty"));
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        1,
        "nothing written"
    );
    let o = sluice(&[
        "hook",
        "new",
        "p",
        "--lang",
        "c",
        "--sdk",
        "--dir",
        s(&dir.join("c")),
    ]);
    assert_eq!(status(&o), 1);
    assert!(String::from_utf8_lossy(&o.stderr).contains("--sdk: only --lang rust, js and python"));
    assert!(!dir.join("c").exists());
    let o = sluice(&["hook", "new", "../escape", "--lang", "rust"]);
    assert_eq!(status(&o), 2);
}
