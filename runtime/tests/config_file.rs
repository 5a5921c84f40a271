//! The TOML front end: defaults, the documented example, and one test per
//! error message (each names its key path and position).

use std::path::{Path, PathBuf};
use std::time::Duration;

use sluice::config::{
    Config, ConfigError, Enforcement, EnvValue, EnvVar, Grants, HookMode, Host, Limits, LogFormat,
    LogLevel, OnError, Roots, RunAs, Sandbox, Scheme, Secret, Stdio, StdioMode, Timeouts,
    Transport,
};

const ROUTE: &str = "[[route]]\nupstream = \"http://127.0.0.1:3001/mcp\"\n";

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::from_toml(text, "t.toml", Path::new("/etc/sluice"))
}

fn err(text: &str) -> String {
    match parse(text) {
        Ok(c) => panic!("accepted:\n{text}\n{c:#?}"),
        Err(e) => e.to_string(),
    }
}

fn manifest(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

#[test]
fn minimal_file_takes_every_default() {
    let c = parse(ROUTE).unwrap();
    assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(c.routes.len(), 1);
    let r = &c.routes[0];
    assert_eq!((r.name.as_str(), r.path.as_str()), ("127.0.0.1", "/mcp"));
    let h = r.http().unwrap();
    assert_eq!(h.transport, Transport::Auto);
    assert!(h.well_known);
    assert_eq!(h.upstream.scheme, Scheme::Http);
    assert_eq!(h.upstream.port, 3001);
    assert_eq!(h.upstream.authority, "127.0.0.1:3001");

    assert_eq!(c.limits.max_head_bytes, 32 * 1024);
    assert_eq!(c.limits.max_headers, 100);
    assert_eq!(c.limits.max_request_body_bytes, 4 << 20);
    assert_eq!(c.limits.max_response_head_bytes, 64 * 1024);
    assert_eq!(c.limits.max_response_body_bytes, 16 << 20);
    assert_eq!(c.limits.max_sse_event_bytes, 16 << 20);
    assert_eq!(c.limits.max_json_depth, 128);

    let t = &c.timeouts;
    assert_eq!(t.connect, Duration::from_secs(10));
    assert_eq!(t.response_head, Some(Duration::from_secs(300)));
    assert_eq!((t.stream_idle, t.sse_keepalive), (None, None));
    assert_eq!(t.pool_idle, Duration::from_secs(60));
    assert_eq!(t.shutdown_grace, Duration::from_secs(10));
    assert_eq!(t.client_head, Duration::from_secs(30));
    assert_eq!(t.client_idle, Duration::from_secs(60));

    let hosts: Vec<String> = c
        .security
        .allowed_hosts
        .iter()
        .map(|h| h.to_string())
        .collect();
    assert_eq!(hosts, ["127.0.0.1", "localhost", "[::1]"]);
    let origins: Vec<String> = c
        .security
        .allowed_origins
        .iter()
        .map(|o| o.to_string())
        .collect();
    assert_eq!(
        origins,
        [
            "http://localhost:*",
            "http://127.0.0.1:*",
            "http://[::1]:*",
            "https://localhost:*",
            "https://127.0.0.1:*",
            "https://[::1]:*"
        ]
    );
    assert!(c.security.forwarded_headers);
    assert_eq!(
        (c.tls.ca_file.as_deref(), c.tls.roots),
        (None, Roots::Webpki)
    );
    assert_eq!(
        (c.log.level, c.log.format, c.log.access),
        (LogLevel::Info, LogFormat::Text, true)
    );
    assert_eq!(c.pool.max_idle_per_upstream, 64);
    assert_eq!(c.server.workers, None);
    assert!(c.server.worker_threads() >= 1);
    assert!(c.hooks.is_empty());
}

#[test]
fn full_example_parses() {
    let text = std::fs::read_to_string(manifest("tests/fixtures/config/full.toml")).unwrap();
    let c = parse(&text).unwrap();
    assert_eq!(c.routes.len(), 3);
    assert_eq!(c.admin, Some("127.0.0.1:9091".parse().unwrap()));
    assert_eq!(c.server.workers, Some(2));
    assert_eq!(c.routes[0].name, "everything");
    assert_eq!(c.routes[1].name, "api.githubcopilot.com");
    // The command route writes every key that has a default at it.
    let time = &c.routes[2];
    assert_eq!((time.name.as_str(), time.path.as_str()), ("time", "/time"));
    assert_eq!(
        *stdio(&c, 2),
        Stdio {
            env: vec![
                EnvVar {
                    name: "TZ".into(),
                    value: EnvValue::Literal(Secret::new("Europe/Paris"))
                },
                EnvVar {
                    name: "API_TOKEN".into(),
                    value: EnvValue::FromEnv("TIME_API_TOKEN".into())
                },
            ],
            sandbox: Sandbox {
                max_memory: Some(1 << 30),
                max_cpu: Some(Duration::from_secs(3600)),
                max_open_files: Some(1024),
                run_as: None,
            },
            ..Stdio::new("uvx", vec!["mcp-server-time".into()])
        }
    );
    assert_eq!(c.routes[1].http().unwrap().upstream.scheme, Scheme::Https);
    assert_eq!(
        c.routes[1].http().unwrap().upstream.host,
        Host::Name("api.githubcopilot.com".into())
    );
    assert_eq!(c.routes[1].http().unwrap().upstream.port, 443);
    assert!(c.routes[0].well_known() && !c.routes[1].well_known());
    // The documented example writes every limit and timeout at its default.
    assert_eq!(c.limits, Limits::default());
    assert_eq!(c.timeouts, Timeouts::default());
    assert!(c.security.host_allowed("mcp.internal:8080"));
    assert!(c.security.origin_allowed(Some("https://app.example.com")));
    assert!(!c.security.origin_allowed(Some("https://127.0.0.1")));
    assert_eq!(
        c.tls.ca_file,
        Some(PathBuf::from("/etc/sluice/certs/internal-ca.pem"))
    );

    let guard = &c.hooks[0];
    assert_eq!(guard.name, "guard");
    assert_eq!(guard.path, PathBuf::from("/etc/sluice/hooks/guard.wasm"));
    assert_eq!(
        guard.methods.as_deref(),
        Some(&["tools/call".to_string()][..])
    );
    assert_eq!(
        guard.config,
        r#"{"deny":["delete_file"],"log_arguments":false}"#
    );
    assert_eq!(guard.on_error, OnError::Reject);
    assert_eq!(guard.deadline, Duration::from_millis(50));
    assert_eq!(guard.max_memory, 16 << 20);
    assert_eq!(guard.mode, HookMode::Fresh);
    assert_eq!(guard.enforcement, Enforcement::Enforce);
    assert_eq!(guard.order, 0);
    assert_eq!(guard.grants, Grants::default());
    assert_eq!(guard.headers, ["authorization", "x-tenant"]);

    let audit = &c.hooks[1];
    assert_eq!(audit.name, "audit");
    assert!(audit.headers.is_empty());
    assert_eq!(audit.config, r#"{"sink": "stderr"}"#);
    assert_eq!(audit.on_error, OnError::Pass);
    assert_eq!(audit.enforcement, Enforcement::Audit);
    assert_eq!(audit.order, -10);
    assert_eq!(
        audit.mode,
        HookMode::Warm {
            pool: 4,
            recycle_after: 1000
        }
    );
    assert_eq!(
        audit.grants,
        Grants {
            clock: true,
            random: false,
            stdio: true
        }
    );
}

/// Every ```toml block of docs/CONFIG.md is a complete, valid config, and
/// the longest one is the fixture, so the documentation cannot rot.
#[test]
fn doc_examples_parse() {
    let doc = std::fs::read_to_string(manifest("../docs/CONFIG.md")).unwrap();
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in doc.lines() {
        match &mut current {
            None if line.trim_start().starts_with("```toml") => current = Some(String::new()),
            Some(block) if line.trim_start().starts_with("```") => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            Some(block) => {
                block.push_str(line);
                block.push('\n');
            }
            None => {}
        }
    }
    assert!(
        blocks.len() >= 2,
        "docs/CONFIG.md should hold toml examples"
    );
    for block in &blocks {
        if let Err(e) = parse(block) {
            panic!("docs/CONFIG.md example does not parse: {e}\n{block}");
        }
    }
    let longest = blocks.iter().max_by_key(|b| b.len()).unwrap();
    let fixture = std::fs::read_to_string(manifest("tests/fixtures/config/full.toml")).unwrap();
    assert_eq!(
        longest, &fixture,
        "docs/CONFIG.md full example and fixtures/config/full.toml differ"
    );
}

#[test]
fn the_admin_listener_is_off_by_default_and_never_the_proxys_address() {
    assert_eq!(parse(ROUTE).unwrap().admin, None);
    let c = parse(&format!("[admin]\nlisten = \"127.0.0.1:9091\"\n{ROUTE}")).unwrap();
    assert_eq!(c.admin, Some("127.0.0.1:9091".parse().unwrap()));
    assert_eq!(
        err(&format!(
            "listen = \"0.0.0.0:8080\"\n[admin]\nlisten = \"127.0.0.1:8080\"\n{ROUTE}"
        )),
        "t.toml:3:10: admin.listen: 127.0.0.1:8080 is the proxy's own listen address (0.0.0.0:8080); \
         the admin listener needs a port of its own"
    );
    // The default listen address counts too.
    assert!(
        err(&format!("[admin]\nlisten = \"127.0.0.1:8080\"\n{ROUTE}")).contains("admin.listen")
    );
    // Another port on the same address, or port 0, is fine.
    assert!(parse(&format!("[admin]\nlisten = \"127.0.0.1:0\"\n{ROUTE}")).is_ok());
    assert!(err(&format!("[admin]\nport = 9091\n{ROUTE}")).contains("unknown key"));
}

#[test]
fn hook_config_tables_become_json() {
    let c = parse(&format!(
        "{ROUTE}[[hook]]\npath = \"h.wasm\"\n[hook.config]\nz = 1\na = \"q\\\"\\n\\u0001\"\nn = {{ x = [1.5, true, 0xff, 1_000] }}\nd = 1979-05-27\n"
    ))
    .unwrap();
    assert_eq!(
        c.hooks[0].config,
        r#"{"z":1,"a":"q\"\n\u0001","n":{"x":[1.5,true,255,1000]},"d":"1979-05-27"}"#
    );
    assert_eq!(c.hooks[0].config.len(), c.hooks[0].config.trim().len());
    let e = err(&format!(
        "{ROUTE}[[hook]]\npath = \"h.wasm\"\nconfig = {{ x = nan }}\n"
    ));
    assert_eq!(e, "t.toml:5:10: hook[0].config: nan has no JSON form");
}

#[test]
fn default_names_are_unique() {
    let c = parse(
        "[[route]]\nupstream = \"http://a/x\"\n[[route]]\nupstream = \"http://a/y\"\n\
         [[hook]]\npath = \"d/h.wasm\"\n[[hook]]\npath = \"e/h.wasm\"\n[[hook]]\nname = \"h-2\"\npath = \"f.wasm\"\n",
    )
    .unwrap();
    let routes: Vec<&str> = c.routes.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(routes, ["a", "a-2"]);
    let hooks: Vec<&str> = c.hooks.iter().map(|h| h.name.as_str()).collect();
    assert_eq!(hooks, ["h", "h-3", "h-2"]);
}

#[test]
fn sizes_durations_and_off() {
    let c = parse(&format!(
        "{ROUTE}[limits]\nmax_head_bytes = 1000\nmax_request_body_bytes = \"1 GiB\"\n\
         [timeouts]\nconnect = \"250ms\"\nresponse_head = \"off\"\nstream_idle = \"1h\"\nsse_keepalive = \"15s\"\nshutdown_grace = \"0s\"\n"
    ))
    .unwrap();
    assert_eq!(c.limits.max_head_bytes, 1000);
    assert_eq!(c.limits.max_request_body_bytes, 1 << 30);
    assert_eq!(c.timeouts.connect, Duration::from_millis(250));
    assert_eq!(c.timeouts.response_head, None);
    assert_eq!(c.timeouts.stream_idle, Some(Duration::from_secs(3600)));
    assert_eq!(c.timeouts.sse_keepalive, Some(Duration::from_secs(15)));
    assert_eq!(c.timeouts.shutdown_grace, Duration::ZERO);
}

#[test]
fn workers_setting() {
    let c = parse("[[route]]\nupstream = \"http://a/\"\n[server]\nworkers = 3\n").unwrap();
    assert_eq!(c.server.workers, Some(3));
    assert_eq!(c.server.worker_threads(), 3);
    let c = parse("[[route]]\nupstream = \"http://a/\"\n[server]\nworkers = 1024\n").unwrap();
    assert_eq!(c.server.worker_threads(), 1024);
    let c = parse("[server]\n[[route]]\nupstream = \"http://a/\"\n").unwrap();
    assert_eq!(
        c.server.workers, None,
        "an empty [server] keeps the default"
    );
}

#[test]
fn listen_forms() {
    for (text, want) in [
        ("localhost:0", "127.0.0.1:0"),
        ("[::1]:9000", "[::1]:9000"),
        ("0.0.0.0:80", "0.0.0.0:80"),
    ] {
        let c = parse(&format!("listen = \"{text}\"\n{ROUTE}")).unwrap();
        assert_eq!(c.listen.to_string(), want);
    }
    // Listening on all interfaces drops the listen IP from the host defaults.
    let c = parse(&format!("listen = \"0.0.0.0:80\"\n{ROUTE}")).unwrap();
    assert!(!c.security.host_allowed("0.0.0.0"));
}

#[test]
fn routing() {
    let c = parse(
        "[[route]]\npath = \"/\"\nupstream = \"http://a:1/root\"\nwell_known = false\n\
         [[route]]\npath = \"/mcp\"\nupstream = \"https://b/v1/mcp?k=1\"\nwell_known = true\n\
         [[route]]\npath = \"/mcp/deep\"\nupstream = \"http://c:2/\"\n\
         [[route]]\npath = \"/.well-known/special\"\nupstream = \"http://d:3/s\"\n",
    )
    .unwrap();
    let go = |t: &str| {
        let r = c.resolve(t).unwrap();
        (r.route.name.as_str(), r.target, r.well_known)
    };
    assert_eq!(go("/mcp"), ("b", "/v1/mcp?k=1".into(), false));
    assert_eq!(go("/mcp/x?y"), ("b", "/v1/mcp/x?k=1&y".into(), false));
    assert_eq!(go("/mcpx"), ("a", "/root/mcpx".into(), false));
    assert_eq!(go("/mcp/deep/z"), ("c", "/z".into(), false));
    assert_eq!(go("/"), ("a", "/root".into(), false));
    assert_eq!(
        go("/.well-known/oauth-protected-resource/mcp"),
        (
            "b",
            "/.well-known/oauth-protected-resource/mcp".into(),
            true
        )
    );
    assert_eq!(go("/.well-known/special/x"), ("d", "/s/x".into(), false));
    assert!(c.resolve("*").is_none());
    assert!(c.resolve("http://a/").is_none());

    let c = parse(ROUTE).unwrap();
    assert!(c.resolve("/other").is_none());
    assert!(c.resolve("/.well-known/x").unwrap().well_known);
}

/// (file text, the whole error message).
const ERRORS: &[(&str, &str)] = &[
    // Syntax, with line and column.
    ("listen = \n", "t.toml:1:10: TOML syntax error: "),
    (
        "[[route]]\nupstream = \"http://a/\"\nupstream = \"http://b/\"\n",
        "t.toml:3:1: TOML syntax error: duplicate key",
    ),
    // Unknown keys anywhere.
    (
        "lisen = \"127.0.0.1:1\"\n[[route]]\nupstream = \"http://a/\"\n",
        "t.toml:1:1: lisen: unknown key (expected one of: listen, admin, route, limits, timeouts, security, tls, log, pool, server, hook, tracing)",
    ),
    (
        "[[route]]\nupstream = \"http://a/\"\nprefix = \"/x\"\n",
        "t.toml:3:1: route[0].prefix: unknown key (expected one of: name, path, upstream, command, transport, legacy_mode, legacy_max_sessions, legacy_session_idle, legacy_allow_other_origin, well_known, upstream_headers, auth, env, inherit_env, cwd, stdio_mode, max_processes, session_idle, shutdown_grace, init_timeout, restart_backoff_max, sandbox, server, session_keys)",
    ),
    (
        "[[route]]\nupstream = \"http://a/\"\n[limits]\nmax_body = 1\n",
        "t.toml:4:1: limits.max_body: unknown key (expected one of: max_head_bytes, max_headers, max_request_body_bytes, max_response_head_bytes, max_response_body_bytes, max_sse_event_bytes, max_json_depth)",
    ),
    (
        "[[route]]\nupstream = \"http://a/\"\n[[hook]]\npath = \"h.wasm\"\ndeadline_ms = 5\n",
        "t.toml:5:1: hook[0].deadline_ms: unknown key (expected one of: name, path, config, methods, on_error, deadline, max_memory, mode, instances, order, pool, recycle_after, grants, headers)",
    ),
    // listen
    (
        "listen = \"nowhere\"\n[[route]]\nupstream = \"http://a/\"\n",
        "t.toml:1:10: listen: \"nowhere\" is not a listen address (examples: 127.0.0.1:8080, [::1]:8080, localhost:8080, 0.0.0.0:0)",
    ),
    (
        "listen = 8080\n[[route]]\nupstream = \"http://a/\"\n",
        "t.toml:1:10: listen: expected a string, found an integer 8080",
    ),
    // routes
    (
        "listen = \"127.0.0.1:1\"\n",
        "t.toml: route: at least one [[route]] is required",
    ),
    (
        "[route]\nupstream = \"http://a/\"\n",
        "t.toml:1:1: route: expected an array of tables ([[route]]), found a table",
    ),
    (
        "[[route]]\npath = \"/x\"\n",
        "t.toml:1:1: route[0].upstream: missing (every route needs an upstream URL, a command to run, or [[route.server]] members)",
    ),
    (
        "[[route]]\nupstream = \"http://a/\"\n[[route]]\nupstream = \"ftp://x\"\n",
        "t.toml:4:12: route[1].upstream: \"ftp://x\" is not an http or https URL",
    ),
    (
        "[[route]]\nupstream = \"http://u:p@a/\"\n",
        "t.toml:2:12: route[0].upstream: \"http://u:p@a/\" has userinfo (user:password@), which sluice does not send; pass credentials in headers instead",
    ),
    (
        "[[route]]\nupstream = \"http://a/\"\npath = \"mcp\"\n",
        "t.toml:3:8: route[0].path: \"mcp\" must start with /",
    ),
    (
        "[[route]]\nupstream = \"http://a/\"\npath = \"/a/../b\"\n",
        "t.toml:3:8: route[0].path: \"/a/../b\" has a . or .. segment",
    ),
    (
        "[[route]]\nupstream = \"http://a/\"\npath = \"/a?b\"\n",
        "t.toml:3:8: route[0].path: \"/a?b\" is a path prefix; it cannot have a query or fragment",
    ),
    (
        "[[route]]\nupstream = \"http://a/mcp\"\n[[route]]\nupstream = \"http://b/x\"\npath = \"/mcp/\"\n",
        "t.toml:5:8: route[1].path: \"/mcp/\" is already served by route[0]",
    ),
    (
        "[[route]]\nupstream = \"http://a/\"\ntransport = \"streamable\"\nlegacy_mode = \"per-request\"\n",
        "t.toml:4:15: route[0].legacy_mode: only applies to transport = \"sse\" or \"auto\"",
    ),
    (
        "[[route]]\nupstream = \"http://a/\"\ntransport = \"streamable\"\nlegacy_max_sessions = 5\n",
        "t.toml:4:23: route[0].legacy_max_sessions: only applies to transport = \"sse\" or \"auto\"",
    ),
    (
        "[[route]]\nupstream = \"http://a/\"\ntransport = \"sse\"\nlegacy_max_sessions = 0\n",
        "t.toml:4:23: route[0].legacy_max_sessions: 0 is out of range (at least 1)",
    ),
    (
        "[[route]]\nupstream = \"http://a/\"\ntransport = \"sse\"\nlegacy_session_idle = \"0s\"\n",
        "t.toml:4:23: route[0].legacy_session_idle: must be more than zero (write \"off\" for no limit where that is allowed)",
    ),
    (
        "[[route]]\nupstream = \"http://a/\"\ntransport = \"auto\"\nlegacy_allow_other_origin = \"yes\"\n",
        "t.toml:4:29: route[0].legacy_allow_other_origin: ",
    ),
    (
        "[[route]]\nupstream = \"http://a/\"\ntransport = \"sse\"\nlegacy_mode = \"stateless\"\n",
        "t.toml:4:15: route[0].legacy_mode: \"stateless\" is not one of: session, per-request",
    ),
    (
        "[[route]]\nupstream = \"http://a/\"\ntransport = \"websocket\"\n",
        "t.toml:3:13: route[0].transport: \"websocket\" is not one of: streamable, sse, auto",
    ),
    (
        "[[route]]\nupstream = \"http://a/x\"\n[[route]]\nupstream = \"http://b/y\"\nwell_known = true\n",
        "t.toml:5:14: route[1].well_known: only one route may serve /.well-known/, and route[0] already does",
    ),
    (
        "[[route]]\nupstream = \"http://a/x\"\nwell_known = \"yes\"\n",
        "t.toml:3:14: route[0].well_known: expected true or false, found a string \"yes\"",
    ),
    (
        "[[route]]\nname = \"n\"\nupstream = \"http://a/x\"\n[[route]]\nname = \"n\"\nupstream = \"http://b/y\"\n",
        "t.toml:5:8: route[1].name: \"n\" is already the name of route[0]",
    ),
    // limits
    (
        "[[route]]\nupstream = \"http://a/\"\n[limits]\nmax_headers = 0\n",
        "t.toml:4:15: limits.max_headers: 0 is out of range (at least 1)",
    ),
    (
        "[[route]]\nupstream = \"http://a/\"\n[limits]\nmax_headers = \"100\"\n",
        "t.toml:4:15: limits.max_headers: expected a whole number, found a string \"100\"",
    ),
    (
        "[[route]]\nupstream = \"http://a/\"\n[limits]\nmax_head_bytes = 0\n",
        "t.toml:4:18: limits.max_head_bytes: must be more than zero",
    ),
    (
        "[[route]]\nupstream = \"http://a/\"\n[limits]\nmax_head_bytes = -1\n",
        "t.toml:4:18: limits.max_head_bytes: a size cannot be negative",
    ),
    (
        "[[route]]\nupstream = \"http://a/\"\n[limits]\nmax_request_body_bytes = \"4 megs\"\n",
        "t.toml:4:26: limits.max_request_body_bytes: \"4 megs\" is not a size (examples: 65536, \"64 KiB\", \"4 MiB\", \"1 GiB\")",
    ),
    (
        "[[route]]\nupstream = \"http://a/\"\n[limits]\nmax_sse_event_bytes = 1.5\n",
        "t.toml:4:23: limits.max_sse_event_bytes: expected a size (bytes, or a string like \"4 MiB\"), found a float 1.5",
    ),
    (
        "limits = 5\n[[route]]\nupstream = \"http://a/\"\n",
        "t.toml:1:10: limits: expected a table ([limits]), found an integer 5",
    ),
    // A key after [[route]] belongs to the route: the classic TOML slip.
    (
        "[[route]]\nupstream = \"http://a/\"\nlimits = 5\n",
        "t.toml:3:1: route[0].limits: unknown key (expected one of: name, path, upstream, command, transport, legacy_mode, legacy_max_sessions, legacy_session_idle, legacy_allow_other_origin, well_known, upstream_headers, auth, env, inherit_env, cwd, stdio_mode, max_processes, session_idle, shutdown_grace, init_timeout, restart_backoff_max, sandbox, server, session_keys)",
    ),
    // timeouts
    (
        "[[route]]\nupstream = \"http://a/\"\n[timeouts]\nconnect = \"10 parsecs\"\n",
        "t.toml:4:11: timeouts.connect: \"10 parsecs\" is not a duration (examples: 250ms, 10s, 5m, 1h, off)",
    ),
    (
        "[[route]]\nupstream = \"http://a/\"\n[timeouts]\nconnect = 10\n",
        "t.toml:4:11: timeouts.connect: expected a duration string such as \"10s\" or \"off\", found an integer 10",
    ),
    (
        "[[route]]\nupstream = \"http://a/\"\n[timeouts]\nconnect = \"off\"\n",
        "t.toml:4:11: timeouts.connect: cannot be \"off\"; give a duration such as 10s",
    ),
    (
        "[[route]]\nupstream = \"http://a/\"\n[timeouts]\nstream_idle = \"0s\"\n",
        "t.toml:4:15: timeouts.stream_idle: must be more than zero (write \"off\" for no limit where that is allowed)",
    ),
    (
        "[[route]]\nupstream = \"http://a/\"\n[timeouts]\nshutdown_grace = \"off\"\n",
        "t.toml:4:18: timeouts.shutdown_grace: cannot be \"off\"; give a duration such as 10s",
    ),
    // security
    (
        "[[route]]\nupstream = \"http://a/\"\n[security]\nallowed_hosts = []\n",
        "t.toml:4:17: security.allowed_hosts: an empty list would refuse every request; write [\"*\"] to allow any host",
    ),
    (
        "[[route]]\nupstream = \"http://a/\"\n[security]\nallowed_hosts = [\"ok\", \"example.com:8080\"]\n",
        "t.toml:4:24: security.allowed_hosts[1]: \"example.com:8080\" has a port; hosts are matched without their port",
    ),
    (
        "[[route]]\nupstream = \"http://a/\"\n[security]\nallowed_hosts = [\"ok\", 5]\n",
        "t.toml:4:24: security.allowed_hosts[1]: expected a string, found an integer 5",
    ),
    (
        "[[route]]\nupstream = \"http://a/\"\n[security]\nallowed_origins = [\"example.com\"]\n",
        "t.toml:4:20: security.allowed_origins[0]: \"example.com\" is not an origin (no scheme://; examples: https://app.example.com, http://localhost:*, null, *)",
    ),
    (
        "[[route]]\nupstream = \"http://a/\"\n[security]\nforwarded_headers = 1\n",
        "t.toml:4:21: security.forwarded_headers: expected true or false, found an integer 1",
    ),
    // tls
    (
        "[[route]]\nupstream = \"http://a/\"\n[tls]\nroots = \"none\"\n",
        "t.toml:4:9: tls.roots: \"none\" trusts no certificate unless tls.ca_file is set",
    ),
    (
        "[[route]]\nupstream = \"http://a/\"\n[tls]\nroots = \"mozilla\"\n",
        "t.toml:4:9: tls.roots: \"mozilla\" is not one of: webpki, system, none",
    ),
    // log, pool
    (
        "[[route]]\nupstream = \"http://a/\"\n[log]\nlevel = \"verbose\"\n",
        "t.toml:4:9: log.level: \"verbose\" is not one of: off, error, warn, info, debug, trace",
    ),
    (
        "[[route]]\nupstream = \"http://a/\"\n[log]\nformat = \"yaml\"\n",
        "t.toml:4:10: log.format: \"yaml\" is not one of: text, json",
    ),
    (
        "[[route]]\nupstream = \"http://a/\"\n[pool]\nmax_idle_per_upstream = -1\n",
        "t.toml:4:25: pool.max_idle_per_upstream: -1 is out of range (at least 0)",
    ),
    // server
    (
        "[[route]]\nupstream = \"http://a/\"\n[server]\nworkers = 0\n",
        "t.toml:4:11: server.workers: 0 is out of range (at least 1)",
    ),
    (
        "[[route]]\nupstream = \"http://a/\"\n[server]\nworkers = 1025\n",
        "t.toml:4:11: server.workers: 1025 is out of range (at most 1024)",
    ),
    (
        "[[route]]\nupstream = \"http://a/\"\n[server]\nworkers = \"2\"\n",
        "t.toml:4:11: server.workers: expected a whole number, found a string \"2\"",
    ),
    (
        "[[route]]\nupstream = \"http://a/\"\n[server]\nthreads = 2\n",
        "t.toml:4:1: server.threads: unknown key (expected one of: workers)",
    ),
    // hooks
    (
        "[[route]]\nupstream = \"http://a/\"\n[[hook]]\nname = \"x\"\n",
        "t.toml:3:1: hook[0].path: missing (every hook needs the path of its .wasm component)",
    ),
    (
        "[[route]]\nupstream = \"http://a/\"\n[[hook]]\npath = \"h.wasm\"\npool = 2\n",
        "t.toml:5:8: hook[0].pool: only applies with instances = \"warm\"",
    ),
    (
        "[[route]]\nupstream = \"http://a/\"\n[[hook]]\npath = \"h.wasm\"\nmode = \"warm\"\ninstances = \"fresh\"\n",
        "t.toml:5:8: hook[0].mode: the instance life cycle is given by `instances`; `mode` is \"enforce\" or \"audit\" here",
    ),
    (
        "[[route]]\nupstream = \"http://a/\"\n[[hook]]\npath = \"h.wasm\"\nmode = \"shadow\"\n",
        "t.toml:5:8: hook[0].mode: \"shadow\" is not one of: enforce, audit, fresh, warm",
    ),
    (
        "[[route]]\nupstream = \"http://a/\"\n[[hook]]\npath = \"h.wasm\"\norder = 2147483648\n",
        "t.toml:5:9: hook[0].order: 2147483648 is out of range",
    ),
    (
        "[[route]]\nupstream = \"http://a/\"\n[[hook]]\npath = \"h.wasm\"\nmode = \"warm\"\nrecycle_after = 0\n",
        "t.toml:6:17: hook[0].recycle_after: 0 is out of range (at least 1)",
    ),
    (
        "[[route]]\nupstream = \"http://a/\"\n[[hook]]\npath = \"h.wasm\"\nmode = \"warm\"\nrecycle_after = 4294967296\n",
        "t.toml:6:17: hook[0].recycle_after: 4294967296 is out of range (at most 4294967295)",
    ),
    (
        "[[route]]\nupstream = \"http://a/\"\n[[hook]]\npath = \"h.wasm\"\ngrants = [\"clock\", \"network\"]\n",
        "t.toml:5:20: hook[0].grants[1]: \"network\" is not one of: clock, random, stdio",
    ),
    (
        "[[route]]\nupstream = \"http://a/\"\n[[hook]]\npath = \"h.wasm\"\nmethods = []\n",
        "t.toml:5:11: hook[0].methods: an empty list would hide every message from the hook; remove the hook instead",
    ),
    (
        "[[route]]\nupstream = \"http://a/\"\n[[hook]]\npath = \"h.wasm\"\nmethods = [\"tools*\"]\n",
        "t.toml:5:12: hook[0].methods[0]: \"tools*\": '*' may only be the whole pattern or a final \"/*\"",
    ),
    (
        "[[route]]\nupstream = \"http://a/\"\n[[hook]]\npath = \"h.wasm\"\nmethods = [\"tools/call@request\", \"tools/list@later\"]\n",
        "t.toml:5:34: hook[0].methods[1]: \"tools/list@later\": a phase is \"@request\", \"@response\", \"@server-message\" or \"@client-answer\" at the end",
    ),
    (
        "[[route]]\nupstream = \"http://a/\"\n[[hook]]\npath = \"h.wasm\"\non_error = \"ignore\"\n",
        "t.toml:5:12: hook[0].on_error: \"ignore\" is not one of: reject, pass",
    ),
    (
        "[[route]]\nupstream = \"http://a/\"\n[[hook]]\npath = \"h.wasm\"\ndeadline = \"off\"\n",
        "t.toml:5:12: hook[0].deadline: cannot be \"off\"; give a duration such as 10s",
    ),
    (
        "[[route]]\nupstream = \"http://a/\"\n[[hook]]\npath = \"h.wasm\"\nmax_memory = \"lots\"\n",
        "t.toml:5:14: hook[0].max_memory: \"lots\" is not a size (examples: 65536, \"64 KiB\", \"4 MiB\", \"1 GiB\")",
    ),
    (
        "[[route]]\nupstream = \"http://a/\"\n[[hook]]\npath = \"a.wasm\"\n[[hook]]\nname = \"a\"\npath = \"b.wasm\"\n[[hook]]\nname = \"a\"\npath = \"c.wasm\"\n",
        "t.toml:9:8: hook[2].name: \"a\" is already the name of hook[1]",
    ),
    (
        "[[route]]\nupstream = \"http://a/\"\n[[hook]]\npath = \"h.wasm\"\nheaders = [\"x-ok\", \"bad name\"]\n",
        "t.toml:5:20: hook[0].headers[1]: \"bad name\" is not a header name (' ' is not allowed)",
    ),
    (
        "[[route]]\nupstream = \"http://a/\"\n[[hook]]\npath = \"h.wasm\"\nheaders = [\"*\"]\n",
        "t.toml:5:12: hook[0].headers[0]: there is no wildcard: list each header a hook may see",
    ),
    (
        "[[route]]\nupstream = \"http://a/\"\n[[hook]]\npath = \"h.wasm\"\nheaders = [\"X-Tenant\", \"x-tenant\"]\n",
        "t.toml:5:24: hook[0].headers[1]: \"x-tenant\" is listed twice",
    ),
    (
        "[[route]]\nupstream = \"http://a/\"\n[[hook]]\npath = \"h.wasm\"\nheaders = [\"\"]\n",
        "t.toml:5:12: hook[0].headers[0]: a header name cannot be empty",
    ),
    // command routes
    (
        "[[route]]\nupstream = \"http://a/\"\ncommand = [\"srv\"]\n",
        "t.toml:3:11: route[0].command: a route has an upstream URL or a command, not both",
    ),
    (
        "[[route]]\ncommand = [\"srv\"]\nupstream = \"http://a/\"\n",
        "t.toml:3:12: route[0].upstream: a route has an upstream URL or a command, not both",
    ),
    (
        "[[route]]\ncommand = []\n",
        "t.toml:2:11: route[0].command: cannot be empty (give the program to run and its arguments)",
    ),
    (
        "[[route]]\ncommand = \"uvx mcp-server-time\"\n",
        "t.toml:2:11: route[0].command: expected an array of strings (the program, then its arguments: [\"uvx\", \"mcp-server-time\"]), found a string \"uvx mcp-server-time\"",
    ),
    (
        "[[route]]\ncommand = [\"\", \"x\"]\n",
        "t.toml:2:12: route[0].command[0]: the program (the command's first word) cannot be empty",
    ),
    (
        "[[route]]\ncommand = [\"srv\", 5]\n",
        "t.toml:2:19: route[0].command[1]: expected a string, found an integer 5",
    ),
    (
        "[[route]]\ncommand = [\"srv\", \"a\\u0000b\"]\n",
        "t.toml:2:19: route[0].command[1]: \"a\\0b\" contains a NUL character",
    ),
    (
        "[[route]]\ncommand = [\"DEBUG=1\", \"node\"]\n",
        "t.toml:2:12: route[0].command[0]: \"DEBUG=1\" is a variable assignment, not a program: no shell runs the command; set the variable in the child's environment (env, or --stdio-env NAME=VALUE)",
    ),
    (
        "[[route]]\ncommand = [\"srv\"]\ntransport = \"sse\"\n",
        "t.toml:3:13: route[0].transport: only applies to a route with an upstream URL",
    ),
    (
        "[[route]]\ncommand = [\"srv\"]\nlegacy_session_idle = \"5m\"\n",
        "t.toml:3:23: route[0].legacy_session_idle: only applies to a route with an upstream URL",
    ),
    (
        "[[route]]\ncommand = [\"srv\"]\nwell_known = false\n",
        "t.toml:3:14: route[0].well_known: only applies to a route with an upstream URL",
    ),
    (
        "[[route]]\nupstream = \"http://a/\"\nenv = { A = \"1\" }\n",
        "t.toml:3:7: route[0].env: only applies to a route with a command",
    ),
    (
        "[[route]]\nupstream = \"http://a/\"\nstdio_mode = \"shared\"\n",
        "t.toml:3:14: route[0].stdio_mode: only applies to a route with a command",
    ),
    (
        "[[route]]\nupstream = \"http://a/\"\n[route.sandbox]\nmax_open_files = 64\n",
        "t.toml:3:1: route[0].sandbox: only applies to a route with a command",
    ),
    (
        "[[route]]\ncommand = [\"srv\"]\nmax_processes = 8\n",
        "t.toml:3:17: route[0].max_processes: only applies with stdio_mode = \"per-session\"",
    ),
    (
        "[[route]]\ncommand = [\"srv\"]\nstdio_mode = \"per-session\"\nrestart_backoff_max = \"1m\"\n",
        "t.toml:4:23: route[0].restart_backoff_max: only applies with stdio_mode = \"shared\"",
    ),
    (
        "[[route]]\ncommand = [\"srv\"]\nstdio_mode = \"pooled\"\n",
        "t.toml:3:14: route[0].stdio_mode: \"pooled\" is not one of: shared, per-session",
    ),
    (
        "[[route]]\ncommand = [\"srv\"]\nstdio_mode = \"per-session\"\nmax_processes = 0\n",
        "t.toml:4:17: route[0].max_processes: 0 is out of range (at least 1)",
    ),
    (
        "[[route]]\ncommand = [\"srv\"]\nsession_idle = \"0s\"\n",
        "t.toml:3:16: route[0].session_idle: must be more than zero (write \"off\" for no limit where that is allowed)",
    ),
    (
        "[[route]]\ncommand = [\"srv\"]\nshutdown_grace = \"off\"\n",
        "t.toml:3:18: route[0].shutdown_grace: cannot be \"off\"; give a duration such as 10s",
    ),
    (
        "[[route]]\ncommand = [\"srv\"]\ninit_timeout = \"off\"\n",
        "t.toml:3:16: route[0].init_timeout: cannot be \"off\"; give a duration such as 10s",
    ),
    (
        "[[route]]\ncommand = [\"srv\"]\nrestart_backoff_max = 30\n",
        "t.toml:3:23: route[0].restart_backoff_max: expected a duration string such as \"10s\" or \"off\", found an integer 30",
    ),
    (
        "[[route]]\ncommand = [\"srv\"]\ncwd = \"\"\n",
        "t.toml:3:7: route[0].cwd: cannot be empty",
    ),
    (
        "[[route]]\ncommand = [\"srv\"]\nenv = \"A=1\"\n",
        "t.toml:3:7: route[0].env: expected a table of environment variables ({ NAME = \"value\", TOKEN = { from_env = \"MY_TOKEN\" } }), found a string \"A=1\"",
    ),
    (
        "[[route]]\ncommand = [\"srv\"]\nenv = { \"MY-TOKEN\" = \"x\" }\n",
        "t.toml:3:22: route[0].env.MY-TOKEN: \"MY-TOKEN\" is not an environment variable name (letters, digits and _, not starting with a digit)",
    ),
    (
        "[[route]]\ncommand = [\"srv\"]\nenv = { A = 5 }\n",
        "t.toml:3:13: route[0].env.A: expected a string, or a table { from_env = \"NAME\" } or { from_file = \"PATH\" }, found an integer 5",
    ),
    (
        "[[route]]\ncommand = [\"srv\"]\nenv = { A = \"x\\u0000\" }\n",
        "t.toml:3:13: route[0].env.A: contains a NUL character",
    ),
    (
        "[[route]]\ncommand = [\"srv\"]\nenv = { A = {} }\n",
        "t.toml:3:13: route[0].env.A: an empty table: give { from_env = \"NAME\" } or { from_file = \"PATH\" }",
    ),
    (
        "[[route]]\ncommand = [\"srv\"]\nenv = { A = { from_env = \"X\", from_file = \"f\" } }\n",
        "t.toml:3:43: route[0].env.A.from_file: give from_env or from_file, not both",
    ),
    (
        "[[route]]\ncommand = [\"srv\"]\nenv = { A = { form_env = \"X\" } }\n",
        "t.toml:3:15: route[0].env.A.form_env: unknown key (expected one of: from_env, from_file)",
    ),
    (
        "[[route]]\ncommand = [\"srv\"]\nenv = { A = { from_env = \"1X\" } }\n",
        "t.toml:3:26: route[0].env.A.from_env: \"1X\" is not an environment variable name (letters, digits and _, not starting with a digit)",
    ),
    (
        "[[route]]\ncommand = [\"srv\"]\n[route.env]\nTOKEN = { from_env = 7 }\n",
        "t.toml:4:22: route[0].env.TOKEN.from_env: expected a string, found an integer 7",
    ),
    (
        "[[route]]\ncommand = [\"srv\"]\ninherit_env = [\"PATH\", \"HOME\", \"PATH\"]\n",
        "t.toml:3:32: route[0].inherit_env[2]: \"PATH\" is listed twice",
    ),
    (
        "[[route]]\ncommand = [\"srv\"]\ninherit_env = [\"A B\"]\n",
        "t.toml:3:16: route[0].inherit_env[0]: \"A B\" is not an environment variable name (letters, digits and _, not starting with a digit)",
    ),
    (
        "[[route]]\ncommand = [\"srv\"]\ninherit_env = \"PATH\"\n",
        "t.toml:3:15: route[0].inherit_env: expected an array of strings, found a string \"PATH\"",
    ),
    (
        "[[route]]\ncommand = [\"srv\"]\n[route.sandbox]\nmemory = 1\n",
        "t.toml:4:1: route[0].sandbox.memory: unknown key (expected one of: max_memory, max_cpu, max_open_files, user, group)",
    ),
    (
        "[[route]]\ncommand = [\"srv\"]\n[route.sandbox]\nmax_memory = 0\n",
        "t.toml:4:14: route[0].sandbox.max_memory: must be more than zero",
    ),
    (
        "[[route]]\ncommand = [\"srv\"]\n[route.sandbox]\nmax_memory = \"lots\"\n",
        "t.toml:4:14: route[0].sandbox.max_memory: \"lots\" is not a size (examples: 65536, \"64 KiB\", \"4 MiB\", \"1 GiB\")",
    ),
    (
        "[[route]]\ncommand = [\"srv\"]\n[route.sandbox]\nmax_cpu = \"1500ms\"\n",
        "t.toml:4:11: route[0].sandbox.max_cpu: RLIMIT_CPU counts whole seconds; give a duration such as 10s or 5m",
    ),
    (
        "[[route]]\ncommand = [\"srv\"]\n[route.sandbox]\nmax_cpu = \"off\"\n",
        "t.toml:4:11: route[0].sandbox.max_cpu: cannot be \"off\"; give a duration such as 10s",
    ),
    (
        "[[route]]\ncommand = [\"srv\"]\n[route.sandbox]\nmax_open_files = 0\n",
        "t.toml:4:18: route[0].sandbox.max_open_files: 0 is out of range (at least 1)",
    ),
    (
        "[[route]]\ncommand = [\"srv\"]\n[route.sandbox]\ngroup = 100\n",
        "t.toml:4:9: route[0].sandbox.group: only applies with user (without it the child keeps sluice's user and group)",
    ),
    (
        "[[route]]\ncommand = [\"srv\"]\n[route.sandbox]\nuser = -1\n",
        "t.toml:4:8: route[0].sandbox.user: -1 is out of range (0 to 4294967294)",
    ),
    (
        "[[route]]\ncommand = [\"srv\"]\n[route.sandbox]\nuser = 4294967295\ngroup = 1\n",
        "t.toml:4:8: route[0].sandbox.user: 4294967295 is out of range (0 to 4294967294)",
    ),
    (
        "[[route]]\ncommand = [\"srv\"]\n[route.sandbox]\nuser = \"99999999999\"\n",
        "t.toml:4:8: route[0].sandbox.user: 99999999999 is out of range (0 to 4294967294)",
    ),
    (
        "[[route]]\ncommand = [\"srv\"]\n[route.sandbox]\nuser = 1.5\n",
        "t.toml:4:8: route[0].sandbox.user: expected a name or a numeric id, found a float 1.5",
    ),
    (
        "[[route]]\ncommand = [\"srv\"]\n[route.sandbox]\nuser = \"\"\n",
        "t.toml:4:8: route[0].sandbox.user: cannot be empty",
    ),
    (
        "[[route]]\ncommand = [\"srv\"]\n[route.sandbox]\nuser = \"no-such-user-sluice\"\n",
        "t.toml:4:8: route[0].sandbox.user: no user \"no-such-user-sluice\" in /etc/passwd",
    ),
    (
        "[[route]]\ncommand = [\"srv\"]\n[route.sandbox]\nuser = 0\ngroup = \"no-such-group-sluice\"\n",
        "t.toml:5:9: route[0].sandbox.group: no group \"no-such-group-sluice\" in /etc/group",
    ),
    (
        "[[route]]\ncommand = [\"srv\"]\n[route.sandbox]\nuser = 3999999999\n",
        "t.toml:4:8: route[0].sandbox.user: uid 3999999999 has no entry in /etc/passwd to take its primary group from; set group too",
    ),
    (
        "[[route]]\ncommand = [\"a\"]\n[[route]]\ncommand = [\"b\"]\n",
        "t.toml:4:11: route[1].path: \"/mcp\" is already served by route[0]",
    ),
    // A URL route's credentials for its upstream.
    (
        "[[route]]\nupstream = \"http://a/\"\nupstream_headers = { \"Bad Name\" = \"x\" }\n",
        "t.toml:3:35: route[0].upstream_headers.Bad Name: \"Bad Name\" is not a header field name",
    ),
    (
        "[[route]]\nupstream = \"http://a/\"\nupstream_headers = { Host = \"x\" }\n",
        "t.toml:3:29: route[0].upstream_headers.Host: Host is sluice's to set, or the client's",
    ),
    (
        "[[route]]\nupstream = \"http://a/\"\nupstream_headers = { A = \"x\", a = \"y\" }\n",
        "t.toml:3:35: route[0].upstream_headers.a: a is given twice",
    ),
    (
        "[[route]]\ncommand = [\"x\"]\nupstream_headers = { A = \"x\" }\n",
        "t.toml:3:20: route[0].upstream_headers: only applies to a route with an upstream URL",
    ),
    // A federation's member's credentials: URL members only.
    (
        "[[route]]\n[[route.server]]\nname = \"a\"\ncommand = [\"x\"]\nupstream_headers = { A = \"x\" }\n",
        "t.toml:5:20: route[0].server[0].upstream_headers: only applies to a server with an upstream URL (a command's credentials go in its env)",
    ),
    (
        "[[route]]\n[[route.server]]\nname = \"a\"\nupstream = \"http://b/sse\"\ntransport = \"sse\"\nupstream_headers = { A = \"x\" }\n",
        "t.toml:6:20: route[0].server[0].upstream_headers: a legacy (transport = \"sse\") server cannot take upstream_headers yet",
    ),
    (
        "[[route]]\n[[route.server]]\nname = \"a\"\nupstream = \"http://b/\"\nupstream_headers = { Mcp-Session-Id = \"x\" }\n",
        "t.toml:5:39: route[0].server[0].upstream_headers.Mcp-Session-Id: Mcp-Session-Id is sluice's to set, or the client's",
    ),
    (
        "[[route]]\n[[route.server]]\nname = \"a\"\nupstream = \"http://b/\"\nupstream_headers = { Accept-Encoding = \"gzip\" }\n",
        "t.toml:2:1: route[0].server[0].upstream_headers.Accept-Encoding: sluice reads a member's answer, so it asks for it uncompressed",
    ),
    // Federated routes.
    (
        "[[route]]\nupstream = \"http://a/\"\n[[route.server]]\nname = \"a\"\nupstream = \"http://b/\"\n",
        "t.toml:2:12: route[0].upstream: a route has an upstream URL, a command or servers ([[route.server]]), one of them",
    ),
    (
        "[[route]]\nsession_keys = [{ from_env = \"K\" }]\nupstream = \"http://a/\"\n",
        "t.toml:2:16: route[0].session_keys: only applies to a route with servers ([[route.server]])",
    ),
    (
        "[[route]]\nenv = { A = \"1\" }\n[[route.server]]\nname = \"a\"\nupstream = \"http://b/\"\n",
        "t.toml:2:7: route[0].env: a route with servers takes this key per server, in [[route.server]]",
    ),
    (
        "[[route]]\nserver = []\n",
        "t.toml:2:10: route[0].server: at least one server is required",
    ),
    (
        "[[route]]\n[[route.server]]\nupstream = \"http://b/\"\n",
        "t.toml:2:1: route[0].server[0].name: missing (every server needs a name)",
    ),
    (
        "[[route]]\n[[route.server]]\nname = \"git hub\"\nupstream = \"http://b/\"\n",
        "t.toml:3:8: route[0].server[0].name: ",
    ),
    (
        "[[route]]\n[[route.server]]\nname = \"a\"\nupstream = \"http://b/\"\n[[route.server]]\nname = \"a\"\ncommand = [\"x\"]\n",
        "t.toml:6:8: route[0].server[1].name: \"a\" is already the name of server[0]",
    ),
    (
        "[[route]]\n[[route.server]]\nname = \"a\"\nupstream = \"http://b/\"\ncommand = [\"x\"]\n",
        "t.toml:5:11: route[0].server[0].command: a server has an upstream URL or a command, not both",
    ),
    (
        "[[route]]\n[[route.server]]\nname = \"a\"\n",
        "t.toml:2:1: route[0].server[0].upstream: missing (every server needs an upstream URL, or a command to run)",
    ),
    (
        "[[route]]\n[[route.server]]\nname = \"a\"\nupstream = \"http://b/\"\ntransport = \"auto\"\n",
        "t.toml:5:13: route[0].server[0].transport: a server's transport is \"streamable\" (the default) or \"sse\" (legacy HTTP+SSE); it is not found out",
    ),
    (
        "[[route]]\n[[route.server]]\nname = \"a\"\nupstream = \"http://b/\"\ncwd = \"/tmp\"\n",
        "t.toml:5:7: route[0].server[0].cwd: only applies to a server with a command",
    ),
    (
        "[[route]]\n[[route.server]]\nname = \"a\"\ncommand = [\"x\"]\nlegacy_mode = \"session\"\n",
        "t.toml:5:1: route[0].server[0].legacy_mode: unknown key (expected one of: ",
    ),
    (
        "[[route]]\n[[route.server]]\nname = \"a\"\nupstream = \"http://b/\"\non_unavailable = \"skip\"\n",
        "t.toml:5:18: route[0].server[0].on_unavailable: \"skip\" is not one of: omit, fail",
    ),
    (
        "[[route]]\n[[route.server]]\nname = \"a\"\nupstream = \"http://b/\"\nprefix = \"a/b\"\n",
        "t.toml:5:10: route[0].server[0].prefix: prefix \"a/b\" has '/'; names are letters, digits, '_', '-' and '.'",
    ),
    (
        "[[route]]\n[[route.server]]\nname = \"a\"\nupstream = \"http://b/\"\nseparator = \"::\"\n",
        "t.toml:5:13: route[0].server[0].separator: up to 8 of the characters a name may hold (A-Z a-z 0-9 _ - .)",
    ),
    (
        "[[route]]\n[[route.server]]\nname = \"a\"\nupstream = \"http://b/\"\ntools.aliases = { x = \"z\", y = \"z\" }\n",
        "t.toml:5:32: route[0].server[0].tools.aliases.y: \"z\" is the new name of another alias too",
    ),
    (
        "[[route]]\n[[route.server]]\nname = \"a\"\nupstream = \"http://b/\"\nprefix = \"p\"\n[[route.server]]\nname = \"b\"\nupstream = \"http://c/\"\nprefix = \"p\"\n",
        "t.toml:2:1: route[0].server: members 0 and 1 have one prefix, \"p\": give one of them another",
    ),
    (
        "[[route]]\nsession_keys = [{}]\n[[route.server]]\nname = \"a\"\nupstream = \"http://b/\"\n",
        "t.toml:2:17: route[0].session_keys[0]: an empty table: give { from_env = \"NAME\" } or { from_file = \"PATH\" }",
    ),
];

#[test]
fn every_error_names_its_key_and_position() {
    let mut failures = Vec::new();
    for (text, want) in ERRORS {
        let got = err(text);
        let ok = if want.ends_with(": ") {
            got.starts_with(want)
        } else {
            &got == want
        };
        if !ok {
            failures.push(format!("input:\n{text}\n  want: {want}\n  got:  {got}\n"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn error_structure() {
    match parse("[[route]]\nupstream = \"ftp://x\"\n").unwrap_err() {
        ConfigError::Invalid {
            origin,
            position,
            key,
            problem,
        } => {
            assert_eq!(origin.as_deref(), Some("t.toml"));
            assert_eq!(position, Some((2, 12)));
            assert_eq!(key, "route[0].upstream");
            assert_eq!(problem, "\"ftp://x\" is not an http or https URL");
        }
        other => panic!("{other:?}"),
    }
    match parse("a = 1\nb = = 2\n").unwrap_err() {
        ConfigError::Syntax { origin, line, .. } => {
            assert_eq!((origin.as_str(), line), ("t.toml", 2))
        }
        other => panic!("{other:?}"),
    }
    let e = parse("x = 1").unwrap_err();
    assert_eq!(e.exit_code(), 2);
}

/// A scratch directory under the target dir, unique per test.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn from_file_resolves_and_checks_paths() {
    let dir = scratch("config_from_file");
    std::fs::create_dir_all(dir.join("hooks")).unwrap();
    std::fs::write(dir.join("hooks/g.wasm"), b"\0asm").unwrap();
    std::fs::write(dir.join("ca.pem"), b"").unwrap();
    let file = dir.join("sluice.toml");
    std::fs::write(
        &file,
        format!("{ROUTE}[tls]\nca_file = \"ca.pem\"\n[[hook]]\npath = \"hooks/g.wasm\"\n"),
    )
    .unwrap();
    let c = Config::from_file(&file).unwrap();
    assert_eq!(c.tls.ca_file, Some(dir.join("ca.pem")));
    assert_eq!(c.hooks[0].path, dir.join("hooks/g.wasm"));
    assert_eq!(c.hooks[0].name, "g");

    std::fs::write(
        &file,
        format!("{ROUTE}[[hook]]\npath = \"hooks/missing.wasm\"\n"),
    )
    .unwrap();
    let e = Config::from_file(&file).unwrap_err().to_string();
    let want = format!(
        "{}: hook[0].path: {:?}: ",
        file.display(),
        dir.join("hooks/missing.wasm").display().to_string()
    );
    assert!(e.starts_with(&want), "{e}");

    std::fs::write(&file, format!("{ROUTE}[tls]\nca_file = \"hooks\"\n")).unwrap();
    let e = Config::from_file(&file).unwrap_err().to_string();
    assert!(
        e.contains(": tls.ca_file: ") && e.ends_with("is not a file"),
        "{e}"
    );

    let e = Config::from_file(&dir.join("nope.toml")).unwrap_err();
    assert!(matches!(e, ConfigError::Read { .. }));
    assert!(e.to_string().starts_with("cannot read config file "), "{e}");
}

#[test]
fn legacy_transport_and_mode() {
    use sluice::config::LegacyMode;
    let c = parse("[[route]]\nupstream = \"http://a/sse\"\ntransport = \"sse\"\nlegacy_mode = \"per-request\"\n[[route]]\nupstream = \"http://b/mcp\"\ntransport = \"auto\"\n").unwrap();
    assert_eq!(c.routes[0].http().unwrap().transport, Transport::Sse);
    assert_eq!(
        c.routes[0].http().unwrap().legacy_mode,
        LegacyMode::PerRequest
    );
    assert_eq!(c.routes[1].http().unwrap().transport, Transport::Auto);
    assert_eq!(c.routes[1].http().unwrap().legacy_mode, LegacyMode::Session);
    let s = sluice::settings::proxy_settings(&c).unwrap();
    assert!(
        matches!(s.upstreams[0].transport, sluice::legacy::UpstreamTransport::Sse(ref b) if b.mode == sluice_core::legacy::Mode::PerRequest && b.target == "/sse" && b.authority == "a")
    );
    assert!(matches!(
        s.upstreams[1].transport,
        sluice::legacy::UpstreamTransport::Auto(_)
    ));
    // Defaults, then every legacy key set.
    assert_eq!(
        c.routes[0].http().unwrap().legacy,
        sluice::config::Legacy::default()
    );
    let c = parse("[[route]]\nupstream = \"http://a/sse\"\ntransport = \"sse\"\nlegacy_max_sessions = 7\nlegacy_session_idle = \"off\"\nlegacy_allow_other_origin = true\n[[route]]\nupstream = \"http://b/sse2\"\ntransport = \"auto\"\nlegacy_session_idle = \"90s\"\n").unwrap();
    assert_eq!(c.routes[0].http().unwrap().legacy.max_sessions, 7);
    assert_eq!(c.routes[0].http().unwrap().legacy.session_idle, None);
    assert!(c.routes[0].http().unwrap().legacy.allow_other_origin);
    assert_eq!(
        c.routes[1].http().unwrap().legacy.session_idle,
        Some(std::time::Duration::from_secs(90))
    );
    let s = sluice::settings::proxy_settings(&c).unwrap();
    let sluice::legacy::UpstreamTransport::Sse(b) = &s.upstreams[0].transport else {
        panic!("route 0 is bridged");
    };
    assert_eq!(b.max_sessions, 7);
    assert_eq!(b.config.timeouts.session_idle, None);
    assert!(b.config.allow_other_origin);
}

fn stdio(c: &Config, i: usize) -> &Stdio {
    c.routes[i].stdio().expect("a command route")
}

#[test]
fn command_route_takes_every_default() {
    let c = parse("[[route]]\ncommand = [\"uvx\", \"mcp-server-time\"]\n").unwrap();
    let r = &c.routes[0];
    assert_eq!((r.name.as_str(), r.path.as_str()), ("uvx", "/mcp"));
    assert!(r.http().is_none() && !r.well_known());
    let s = stdio(&c, 0);
    assert_eq!(*s, Stdio::new("uvx", vec!["mcp-server-time".into()]));
    // What docs/CONFIG.md states, spelled out.
    assert_eq!(s.program, Path::new("uvx"));
    assert_eq!(s.args, ["mcp-server-time"]);
    assert!(s.env.is_empty());
    assert_eq!(s.inherit_env, ["PATH", "HOME", "LANG"]);
    assert_eq!(s.cwd, None);
    assert_eq!(
        s.mode,
        StdioMode::Shared {
            restart_backoff_max: Duration::from_secs(30)
        }
    );
    assert_eq!(s.session_idle, Some(Duration::from_secs(30 * 60)));
    assert_eq!(s.shutdown_grace, Duration::from_secs(5));
    assert_eq!(s.init_timeout, Duration::from_secs(60));
    assert_eq!(s.sandbox, Sandbox::default());
    assert_eq!(
        StdioMode::per_session(),
        StdioMode::PerSession { max_processes: 64 }
    );
    // Routing: the prefix serves the command; no /.well-known route.
    assert_eq!(c.resolve("/mcp/x").unwrap().route.name, "uvx");
    assert!(c.resolve("/.well-known/oauth-protected-resource").is_none());
}

#[test]
fn command_route_every_key() {
    let c = parse(
        r#"[[route]]
name = "time"
path = "/time"
command = ["uvx", "mcp-server-time", "--local-timezone=Europe/Paris", ""]
env = { LOG = "debug", TOKEN = { from_env = "MY_TOKEN" }, KEY = { from_file = "secrets/key" } }
inherit_env = []
cwd = "work"
stdio_mode = "per-session"
max_processes = 8
session_idle = "off"
shutdown_grace = "0s"
init_timeout = "1m"
[route.sandbox]
max_memory = "512 MiB"
max_cpu = "1h"
max_open_files = 256
user = 1234
group = "5678"
"#,
    )
    .unwrap();
    let r = &c.routes[0];
    assert_eq!((r.name.as_str(), r.path.as_str()), ("time", "/time"));
    let s = stdio(&c, 0);
    assert_eq!(s.program, Path::new("uvx"), "a name is not a path");
    assert_eq!(
        s.args,
        ["mcp-server-time", "--local-timezone=Europe/Paris", ""]
    );
    assert_eq!(
        s.env,
        [
            EnvVar {
                name: "LOG".into(),
                value: EnvValue::Literal(Secret::new("debug"))
            },
            EnvVar {
                name: "TOKEN".into(),
                value: EnvValue::FromEnv("MY_TOKEN".into())
            },
            EnvVar {
                name: "KEY".into(),
                value: EnvValue::FromFile("/etc/sluice/secrets/key".into())
            },
        ]
    );
    assert!(s.inherit_env.is_empty());
    assert_eq!(s.cwd.as_deref(), Some(Path::new("/etc/sluice/work")));
    assert_eq!(s.mode, StdioMode::PerSession { max_processes: 8 });
    assert_eq!(s.session_idle, None);
    assert_eq!(s.shutdown_grace, Duration::ZERO);
    assert_eq!(s.init_timeout, Duration::from_secs(60));
    assert_eq!(
        s.sandbox,
        Sandbox {
            max_memory: Some(512 << 20),
            max_cpu: Some(Duration::from_secs(3600)),
            max_open_files: Some(256),
            run_as: Some(RunAs {
                uid: 1234,
                gid: 5678
            }),
        }
    );

    // Shared mode's own key.
    let c = parse(
        "[[route]]\ncommand = [\"srv\"]\nstdio_mode = \"shared\"\nrestart_backoff_max = \"2m\"\n",
    )
    .unwrap();
    assert_eq!(
        stdio(&c, 0).mode,
        StdioMode::Shared {
            restart_backoff_max: Duration::from_secs(120)
        }
    );
}

/// A relative program path is taken from the child's `cwd`, as a shell
/// would after `cd`; `cwd` itself from the config file's directory.
#[test]
fn command_program_paths() {
    let program = |text: &str| stdio(&parse(text).unwrap(), 0).program.clone();
    let route = "[[route]]\n";
    assert_eq!(
        program(&format!(
            "{route}command = [\"./server.py\"]\ncwd = \"/srv/app\"\n"
        )),
        Path::new("/srv/app/./server.py")
    );
    assert_eq!(
        program(&format!(
            "{route}command = [\"bin/server\"]\ncwd = \"app\"\n"
        )),
        Path::new("/etc/sluice/app/bin/server")
    );
    assert_eq!(
        program(&format!(
            "{route}command = [\"/usr/bin/srv\"]\ncwd = \"app\"\n"
        )),
        Path::new("/usr/bin/srv")
    );
    assert_eq!(
        program(&format!(
            "{route}command = [\"python3\", \"server.py\"]\ncwd = \"app\"\n"
        )),
        Path::new("python3"),
        "a name is looked up in PATH; arguments are the program's business"
    );
    assert_eq!(
        program(&format!("{route}command = [\"./server\"]\n")),
        Path::new("./server"),
        "without cwd: from sluice's working directory"
    );
}

#[test]
fn command_and_url_routes_together() {
    let c = parse(
        "[[route]]\ncommand = [\"/usr/bin/uvx\", \"a\"]\n\
         [[route]]\npath = \"/b\"\ncommand = [\"uvx\", \"b\"]\n\
         [[route]]\nupstream = \"http://h/x\"\n\
         [[route]]\nupstream = \"http://h/y\"\n",
    )
    .unwrap();
    let names: Vec<&str> = c.routes.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["uvx", "uvx-2", "h", "h-2"]);
    // /.well-known goes to the first URL route, by default.
    let well_known: Vec<bool> = c.routes.iter().map(|r| r.well_known()).collect();
    assert_eq!(well_known, [false, false, true, false]);
    assert_eq!(
        c.resolve("/.well-known/oauth-protected-resource")
            .unwrap()
            .route
            .name,
        "h"
    );
    assert_eq!(c.resolve("/b").unwrap().route.name, "uvx-2");
    assert_eq!(c.routes[0].backend.to_string(), "/usr/bin/uvx a");
    assert_eq!(c.routes[2].backend.to_string(), "http://h/x");
}

#[test]
fn sandbox_users_and_groups_by_name() {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    let Some(root) = passwd.lines().find(|l| l.starts_with("root:")) else {
        return; // a system without a root entry: nothing to check against
    };
    let f: Vec<&str> = root.split(':').collect();
    let (uid, gid): (u32, u32) = (f[2].parse().unwrap(), f[3].parse().unwrap());
    let run_as = |sandbox: &str| {
        let text = format!("[[route]]\ncommand = [\"srv\"]\n[route.sandbox]\n{sandbox}");
        stdio(&parse(&text).unwrap(), 0).sandbox.run_as
    };
    // A name, a number with an entry: the primary group comes along.
    assert_eq!(run_as("user = \"root\"\n"), Some(RunAs { uid, gid }));
    assert_eq!(run_as(&format!("user = {uid}\n")), Some(RunAs { uid, gid }));
    assert_eq!(
        run_as("user = \"root\"\ngroup = 4321\n"),
        Some(RunAs { uid, gid: 4321 })
    );
    let group = std::fs::read_to_string("/etc/group").unwrap();
    if let Some(line) = group.lines().find(|l| l.starts_with("root:")) {
        let gid: u32 = line.split(':').nth(2).unwrap().parse().unwrap();
        assert_eq!(
            run_as("user = 4242\ngroup = \"root\"\n"),
            Some(RunAs { uid: 4242, gid })
        );
    }
    assert_eq!(run_as(""), None);
}

#[test]
fn child_env_inherits_sets_and_reads_secrets() {
    let dir = scratch("config_child_env");
    std::fs::write(dir.join("key"), "s3cret-from-file\r\n").unwrap();
    let c = Config::from_toml(
        r#"[[route]]
command = ["srv"]
inherit_env = ["PATH", "HOME", "UNSET_ONE"]
env = { LOG = "hunter2", TOKEN = { from_env = "MY_TOKEN" }, KEY = { from_file = "key" }, PATH = "/opt/bin" }
"#,
        "t.toml",
        &dir,
    )
    .unwrap();
    let s = stdio(&c, 0);
    let sluice_env = |name: &str| match name {
        "PATH" => Some("/usr/bin".to_string()),
        "HOME" => Some("/home/mcp".to_string()),
        "MY_TOKEN" => Some("tok-123".to_string()),
        "OTHER" => Some("never passed".to_string()),
        _ => None,
    };
    let env = s.child_env(sluice_env).unwrap();
    let pairs: Vec<(&str, &str)> = env.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    assert_eq!(
        pairs,
        [
            // Inherited when set (PATH is overridden by env; UNSET_ONE is skipped).
            ("HOME", "/home/mcp"),
            ("LOG", "hunter2"),
            ("TOKEN", "tok-123"),
            ("KEY", "s3cret-from-file"),
            ("PATH", "/opt/bin"),
        ]
    );

    // The default inherit list.
    let d = Stdio::new("srv", vec![]);
    let env = d.child_env(sluice_env).unwrap();
    assert_eq!(
        env,
        [
            ("PATH".to_string(), "/usr/bin".to_string()),
            ("HOME".to_string(), "/home/mcp".to_string())
        ]
    );
    assert!(d.child_env(|_| None).unwrap().is_empty());

    // An unset from_env names the variable; a missing file names the file.
    let e = s
        .child_env(|n| (n != "MY_TOKEN").then(|| "x".into()))
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "env.TOKEN: sluice's environment variable MY_TOKEN is not set"
    );
    std::fs::remove_file(dir.join("key")).unwrap();
    let e = s.child_env(sluice_env).unwrap_err().to_string();
    let want = format!(
        "env.KEY: cannot read {:?}: ",
        dir.join("key").display().to_string()
    );
    assert!(e.starts_with(&want), "{e}");
    std::fs::write(dir.join("key"), b"\xff\xfe").unwrap();
    let e = s.child_env(sluice_env).unwrap_err().to_string();
    assert!(e.ends_with("is not UTF-8 text"), "{e}");
    std::fs::write(dir.join("key"), b"a\0b").unwrap();
    let e = s.child_env(sluice_env).unwrap_err().to_string();
    assert!(e.ends_with("contains a NUL byte"), "{e}");

    // A literal value is never shown: not by Debug, not in an error.
    assert_eq!(format!("{:?}", Secret::new("hunter2")), "<redacted>");
    let shown = format!("{c:?} {c:#?}");
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(shown.contains("Literal(<redacted>)"), "{shown}");
    assert!(shown.contains("FromEnv(\"MY_TOKEN\")"), "{shown}");
}

#[test]
fn from_file_checks_what_a_command_names() {
    let dir = scratch("config_from_file_stdio");
    std::fs::create_dir_all(dir.join("work")).unwrap();
    std::fs::write(dir.join("key"), "k").unwrap();
    let file = dir.join("sluice.toml");
    let write = |route: &str| {
        std::fs::write(&file, format!("[[route]]\ncommand = [\"srv\"]\n{route}")).unwrap();
    };
    write("cwd = \"work\"\nenv = { KEY = { from_file = \"key\" }, P = { from_env = \"PATH\" } }\n");
    let c = Config::from_file(&file).unwrap();
    assert_eq!(stdio(&c, 0).cwd, Some(dir.join("work")));

    let origin = file.display().to_string();
    write("cwd = \"nope\"\n");
    let e = Config::from_file(&file).unwrap_err().to_string();
    let want = format!(
        "{origin}: route[0].cwd: {:?}: ",
        dir.join("nope").display().to_string()
    );
    assert!(e.starts_with(&want), "{e}");

    write("cwd = \"key\"\n");
    let e = Config::from_file(&file).unwrap_err().to_string();
    assert_eq!(
        e,
        format!(
            "{origin}: route[0].cwd: {:?} is not a directory",
            dir.join("key").display().to_string()
        )
    );

    write("env = { KEY = { from_file = \"missing\" } }\n");
    let e = Config::from_file(&file).unwrap_err().to_string();
    let want = format!(
        "{origin}: route[0].env.KEY.from_file: {:?}: ",
        dir.join("missing").display().to_string()
    );
    assert!(e.starts_with(&want), "{e}");

    write("env = { TOKEN = { from_env = \"SLUICE_TEST_NEVER_SET_3F9A\" } }\n");
    let e = Config::from_file(&file).unwrap_err().to_string();
    assert_eq!(
        e,
        format!(
            "{origin}: route[0].env.TOKEN.from_env: sluice's environment variable SLUICE_TEST_NEVER_SET_3F9A is not set"
        )
    );
}

#[test]
fn federated_route_every_key() {
    let c = parse(
        r#"
[[route]]
name = "tools"
path = "/mcp"
session_keys = [{ from_env = "SLUICE_KEY" }, { from_file = "old.key" }]

[[route.server]]
name = "github"
upstream = "https://gh.example/mcp?x=1"
timeout = "15s"
on_unavailable = "fail"
prefix = "gh"
prefix_mode = "always"
separator = "-"
tools.include = ["get_*", "search_*"]
tools.exclude = ["get_secret"]
tools.aliases = { search_code = "find_code" }
tools.descriptions = { get_issue = "Read one issue." }
prompts.exclude = ["*"]

[[route.server]]
name = "old"
upstream = "http://127.0.0.1:3002/sse"
transport = "sse"

[[route.server]]
name = "time"
command = ["uvx", "mcp-server-time"]
stdio_mode = "per-session"
max_processes = 4
env = { TZ = "UTC" }
"#,
    )
    .unwrap();
    let r = &c.routes[0];
    assert_eq!((r.name.as_str(), r.path.as_str()), ("tools", "/mcp"));
    let sluice::config::Backend::Federation(f) = &r.backend else {
        panic!("a federation: {:?}", r.backend)
    };
    assert_eq!(
        f.session_keys,
        [
            sluice::config::KeySource::Env("SLUICE_KEY".into()),
            sluice::config::KeySource::File("/etc/sluice/old.key".into()),
        ]
    );
    let [gh, old, time] = f.members.as_slice() else {
        panic!("three members")
    };
    assert!(matches!(&old.server, sluice::config::MemberServer::Legacy(u) if u.path == "/sse"));
    assert_eq!(gh.name, "github");
    let sluice::config::MemberServer::Http(u) = &gh.server else {
        panic!("a URL member")
    };
    assert_eq!(
        (u.authority.as_str(), u.path.as_str(), u.query.as_deref()),
        ("gh.example", "/mcp", Some("x=1"))
    );
    assert_eq!(gh.policy.timeout, Duration::from_secs(15));
    assert_eq!(
        gh.policy.on_unavailable,
        sluice_core::federation::OnUnavailable::Fail
    );
    assert_eq!(
        gh.tools.expose("get_issue", 2).as_deref(),
        Some("gh-get_issue")
    );
    assert_eq!(
        gh.tools.expose("search_code", 2).as_deref(),
        Some("gh-find_code")
    );
    assert_eq!(gh.tools.expose("get_secret", 2), None);
    assert_eq!(gh.tools.expose("delete_repo", 2), None);
    assert_eq!(gh.tools.description("get_issue"), Some("Read one issue."));
    assert_eq!(gh.prompts.expose("anything", 2), None);
    assert_eq!(gh.prompts.prefix, "gh", "the prefix is the member's");

    assert_eq!(time.policy.timeout, Duration::from_secs(60));
    assert_eq!(
        time.policy.on_unavailable,
        sluice_core::federation::OnUnavailable::Omit
    );
    let s = time.server.stdio().expect("a command member");
    assert_eq!(s.args, ["mcp-server-time"]);
    assert_eq!(s.mode, StdioMode::PerSession { max_processes: 4 });
    assert_eq!(time.tools.expose("now", 3).as_deref(), Some("time__now"));
    assert_eq!(time.tools.expose("now", 1).as_deref(), Some("now"));

    // The view shows where the keys come from, never a key.
    let view = c.redacted_json();
    let fed = &view["routes"][0];
    assert_eq!(fed["session_keys"][0]["from_env"], "SLUICE_KEY");
    assert_eq!(fed["members"][0]["on_unavailable"], "fail");
    assert_eq!(
        fed["members"][0]["tools"]["aliases"]["search_code"],
        "find_code"
    );
}

#[test]
fn upstream_headers_keep_their_sources_and_the_view_shows_no_value() {
    let c = parse(
        "[[route]]\nupstream = \"http://a/\"\nupstream_headers = { Authorization = { from_file = \"tok\" }, X-Key = { from_env = \"K\" }, X-Tenant = \"secret-tenant\" }\n",
    )
    .unwrap();
    let h = &c.routes[0].http().unwrap().upstream_headers;
    let names: Vec<&str> = h.iter().map(|h| h.name.as_str()).collect();
    assert_eq!(names, ["Authorization", "X-Key", "X-Tenant"]);
    assert_eq!(h[0].value, EnvValue::FromFile("/etc/sluice/tok".into()));
    assert_eq!(h[1].value, EnvValue::FromEnv("K".into()));
    let view = c.redacted_json().to_string();
    assert!(!view.contains("secret-tenant"), "{view}");
    assert!(view.contains("\"from_env\":\"K\""), "{view}");
}

#[test]
fn tracing_is_off_by_default_and_needs_an_http_endpoint() {
    assert_eq!(parse(ROUTE).unwrap().tracing, None);
    let c = parse(&format!(
        "{ROUTE}\n[tracing]\nendpoint = \"http://collector:4318/v1/traces?k=v\"\n"
    ))
    .unwrap();
    let t = c.tracing.expect("on");
    assert_eq!(t.endpoint.authority, "collector:4318");
    assert_eq!(t.sample_ratio.get(), 1.0);
    assert_eq!(t.service_name, "sluice");
    assert_eq!(t.queue_spans, 2048);
    let c = parse(&format!(
        "{ROUTE}\n[tracing]\nendpoint = \"http://127.0.0.1:4318/v1/traces\"\nsample_ratio = 0\nservice_name = \"edge\"\nqueue_spans = 8\n"
    ))
    .unwrap();
    let t = c.tracing.unwrap();
    assert_eq!(
        (t.sample_ratio.get(), t.service_name.as_str(), t.queue_spans),
        (0.0, "edge", 8)
    );
    for (table, needle) in [
        ("sample_ratio = 1.5", "tracing.sample_ratio"),
        ("sample_ratio = \"all\"", "tracing.sample_ratio"),
        ("", "tracing.endpoint"),
        ("queue_spans = 0", "tracing.queue_spans"),
        ("endpoint = \"http://x/\"\nbatch = 3", "batch"),
    ] {
        let e = err(&format!("{ROUTE}\n[tracing]\n{table}\n"));
        assert!(e.contains(needle), "{table:?}: {e}");
    }
}
