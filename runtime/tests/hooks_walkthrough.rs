//! The "Write your own hook" walkthrough of docs/HOOKS.md, for Rust,
//! followed step by step as a user would: copy the rust-tool-policy example
//! out of the repository, change its rule, build it with its build script,
//! add three lines to a sluice config, and see the `sluice` binary enforce
//! it against a real MCP server (the demo server). The commands, the edit
//! and the config lines are checked to be the ones the document shows.
//! On the way it checks the build cache: the unchanged copy is a hit, the
//! edited one a miss.
//! Skipped, with a message, when the wasm32-wasip2 target is missing.

mod common;

use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{Response, connect, read_response, sluice_command, start_sluice};
use serde_json::{Value, json};
use sluice::demo::DemoServer;

/// Step 1, run in a directory of one's own, `$SLUICE` the sluice checkout.
const COPY: &str = r#"cp -rL "$SLUICE"/hook-examples/rust-tool-policy my-policy"#;
/// Step 2: the line the rule's function starts with, and what goes after it.
const RULE_AT: &str = "    fn allows(&self, tool: &str) -> bool {\n";
const RULE: &str = "        if tool.starts_with(\"count\") {\n            return false; // my rule: no count* tool, whatever the config says\n        }\n";
/// Step 3.
const BUILD: &str = "my-policy/build.sh";
/// Step 4: the three lines added to sluice.toml.
const HOOK_LINES: &str = "[[hook]]\npath = \"my-policy/dist/rust-tool-policy.wasm\"\nconfig = '{\"deny\": [\"crash\"]}'\n";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn wasm_target_installed() -> bool {
    let Ok(out) = Command::new("rustc").args(["--print", "sysroot"]).output() else {
        return false;
    };
    let sysroot = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    sysroot.join("lib/rustlib/wasm32-wasip2").is_dir()
}

/// Run `line` in `dir`; its stderr.
fn sh(dir: &Path, line: &str) -> String {
    let out = Command::new("sh")
        .args(["-c", line])
        .current_dir(dir)
        .env("SLUICE", repo())
        // Flags meant for the host build must not leak into the guest's.
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        // A target dir that survives between runs keeps rebuilds quick.
        .env(
            "CARGO_TARGET_DIR",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("walkthrough-target"),
        )
        // A build cache of this run's own: the edited example must be a
        // miss, which it is only the first time the cache sees it.
        .env("SLUICE_HOOK_BUILD_CACHE", dir.join("build-cache"))
        .output()
        .expect("sh runs");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{line}: {}\n{stderr}", out.status);
    stderr
}

/// Whether `doc` has the lines of `text` one after the other (indentation
/// aside: the walkthrough's blocks sit in a numbered list).
fn shows(doc: &str, text: &str) -> bool {
    let want: Vec<&str> = text.lines().map(str::trim).collect();
    let have: Vec<&str> = doc.lines().map(str::trim).collect();
    have.windows(want.len()).any(|w| w == want.as_slice())
}

fn post(addr: std::net::SocketAddr, session: Option<&str>, body: &Value) -> Response {
    let body = body.to_string();
    let session = session.map_or(String::new(), |s| {
        format!("Mcp-Session-Id: {s}\r\nMCP-Protocol-Version: 2025-11-25\r\n")
    });
    let mut c = connect(addr);
    c.write_all(
        format!(
            "POST /mcp HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
             Accept: application/json, text/event-stream\r\n{session}Content-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
    .unwrap();
    read_response(&mut c, "POST")
}

/// The JSON-RPC answer in a JSON or SSE response.
fn answer(r: &Response) -> Value {
    let text = r.text();
    if r.head.to_ascii_lowercase().contains("text/event-stream") {
        let data = text
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .filter_map(|d| serde_json::from_str::<Value>(d).ok())
            .find(|v| v.get("id").is_some());
        return data.unwrap_or_else(|| panic!("no answer in {text:?}"));
    }
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text:?}"))
}

#[test]
fn the_rust_walkthrough_works_as_documented() {
    let doc = std::fs::read_to_string(repo().join("docs/HOOKS.md")).unwrap();
    for (what, text) in [
        ("the copy command", COPY),
        ("the rule's function", RULE_AT),
        ("the edit", RULE),
        ("the build command", BUILD),
        ("the three config lines", HOOK_LINES),
    ] {
        assert!(
            shows(&doc, text),
            "docs/HOOKS.md no longer shows {what}:\n{text}"
        );
    }
    if !wasm_target_installed() {
        eprintln!(
            "SKIPPED: the wasm32-wasip2 target is not installed \
             (rustup target add wasm32-wasip2); the walkthrough was not followed"
        );
        return;
    }

    // Outside any Cargo workspace, as a user's own directory would be (one
    // under sluice's target/ would belong to sluice's workspace).
    let dir = std::env::temp_dir().join(format!("sluice-walkthrough-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();

    // 1. Copy the example.
    sh(&dir, COPY);
    // The build cache (hook-examples/build-cache.sh) keys a component by its
    // inputs, not by where they are: the unchanged copy is a hit once the
    // example was built in the repository...
    let log = sh(
        &dir,
        // In the repository's own target dir: cargo names a cdylib's file
        // without a hash, so two crates of one name sharing a target dir
        // could hand each other a stale component.
        r#"env -u CARGO_TARGET_DIR SLUICE_HOOK_OUT=repo-build "$SLUICE"/hook-examples/rust-tool-policy/build.sh"#,
    );
    assert!(log.contains("not in the build cache"), "{log}");
    let log = sh(&dir, BUILD);
    assert!(log.contains("from the build cache"), "{log}");
    let unchanged = std::fs::read(dir.join("my-policy/dist/rust-tool-policy.wasm")).unwrap();
    assert!(
        unchanged == std::fs::read(dir.join("repo-build/rust-tool-policy.wasm")).unwrap(),
        "the copy's component is not the repository's"
    );
    // 2. Change its rule.
    let lib = dir.join("my-policy/src/lib.rs");
    let source = std::fs::read_to_string(&lib).unwrap();
    assert_eq!(
        source.matches(RULE_AT).count(),
        1,
        "the rule's function moved"
    );
    std::fs::write(&lib, source.replace(RULE_AT, &format!("{RULE_AT}{RULE}"))).unwrap();
    // 3. Build it: ...and a changed source is a miss, built afresh (the
    // rule enforced below shows the new component is the one in dist/).
    let log = sh(&dir, BUILD);
    assert!(log.contains("not in the build cache"), "{log}");
    let changed = std::fs::read(dir.join("my-policy/dist/rust-tool-policy.wasm")).unwrap();
    assert!(
        changed != unchanged,
        "the edit did not change the component"
    );
    // 4. Three lines of config, next to a route to a real MCP server.
    let server = DemoServer::start().unwrap();
    std::fs::write(
        dir.join("sluice.toml"),
        format!(
            "listen = \"127.0.0.1:0\"\n[[route]]\nupstream = \"{}\"\n\n{HOOK_LINES}",
            server.url()
        ),
    )
    .unwrap();
    // 5. Run sluice and see the rule enforced.
    let mut cmd = sluice_command(&["--config", "sluice.toml"]);
    cmd.current_dir(&dir).stderr(Stdio::piped());
    let (mut child, addr) = start_sluice(cmd);

    let init = post(
        addr,
        None,
        &json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "walkthrough", "version": "0"}}}),
    );
    assert_eq!(init.status, 200, "{}", init.text());
    let session = init
        .head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("mcp-session-id")
                .then(|| value.trim().to_string())
        })
        .expect("a session");
    let s = Some(session.as_str());
    let r = post(
        addr,
        s,
        &json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    );
    assert_eq!(r.status, 202);

    let call = |id: u32, tool: &str, args: Value| {
        answer(&post(
            addr,
            s,
            &json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                    "params": {"name": tool, "arguments": args}}),
        ))
    };
    let refused = |v: &Value, tool: &str| {
        assert_eq!(v["error"]["code"], -32602, "{tool}: {v}");
        assert_eq!(
            v["error"]["message"],
            format!("tool {tool:?} is not allowed by policy"),
            "{v}"
        );
    };
    // The changed rule.
    refused(&call(1, "countdown", json!({"n": 1})), "countdown");
    // The config.
    refused(&call(2, "crash", json!({})), "crash");
    // Everything else reaches the server.
    let v = call(3, "echo", json!({"text": "hi"}));
    assert_eq!(v["result"]["content"][0]["text"], "hi", "{v}");
    let v = answer(&post(
        addr,
        s,
        &json!({"jsonrpc": "2.0", "id": 4, "method": "tools/list"}),
    ));
    let names: Vec<&str> = v["result"]["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["echo", "add", "fail"], "tools/list is filtered too");

    // The access log carries the time spent in hooks. SIGTERM, by pid, lets
    // sluice finish and write every line before it exits.
    let stderr = child.0.stderr.take().unwrap();
    let status = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let mut log = String::new();
    BufReader::new(stderr).read_to_string(&mut log).unwrap();
    assert!(child.0.wait().unwrap().success(), "{log}");
    assert!(
        log.lines().any(|l| l.contains("sluice::access")
            && l.contains("tools/call")
            && l.contains("hooks_us=")),
        "no hook time in the access log:\n{log}"
    );
    server.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
}
