//! The command-line front end: zero-config defaults, equivalence with the
//! file form, the demo subcommand, help, and every flag's error message.

use std::path::{Path, PathBuf};

use sluice::config::{Command, Config, ConfigError, Demo, LogFormat, LogLevel, Roots};

fn run(args: &[&str]) -> Result<Command, ConfigError> {
    Config::from_args(std::iter::once("sluice").chain(args.iter().copied()))
}

fn proxy(args: &[&str]) -> Config {
    match run(args) {
        Ok(Command::Proxy(c)) => c,
        other => panic!("{args:?}: {other:?}"),
    }
}

fn err(args: &[&str]) -> ConfigError {
    match run(args) {
        Ok(c) => panic!("{args:?} accepted: {c:?}"),
        Err(e) => e,
    }
}

fn file(text: &str) -> Config {
    Config::from_toml(text, "t.toml", Path::new("/")).unwrap()
}

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn zero_config() {
    let c = proxy(&["--upstream", "http://127.0.0.1:3001/mcp"]);
    assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(c.routes.len(), 1);
    assert_eq!(c.routes[0].path, "/mcp");
    assert!(c.routes[0].well_known());
    let r = c.resolve("/mcp").unwrap();
    assert_eq!(r.target, "/mcp");
    let r = c
        .resolve("/.well-known/oauth-protected-resource/mcp")
        .unwrap();
    assert!(r.well_known);
    assert_eq!(
        r.route.http().unwrap().upstream.origin(),
        "http://127.0.0.1:3001"
    );
    // Every other setting is the file form's default.
    assert_eq!(
        c,
        file("[[route]]\nupstream = \"http://127.0.0.1:3001/mcp\"\n")
    );
}

#[test]
fn cli_equals_file_form() {
    let dir = scratch("config_cli_equiv");
    let ca = dir.join("ca.pem");
    let hook = dir.join("g.wasm");
    std::fs::write(&ca, b"").unwrap();
    std::fs::write(&hook, b"\0asm").unwrap();
    let hook_config = format!("{}={{\"deny\":[\"rm\"]}}", hook.display());
    let hook_headers = format!("{}=Authorization, x-tenant", hook.display());
    let c = proxy(&[
        "--upstream",
        "https://MCP.example.com:8443/v1/mcp?tenant=a",
        "--listen",
        "localhost:0",
        "--path",
        "/mcp",
        "--allow-host",
        "proxy.internal",
        "--allow-host",
        "localhost",
        "--allow-origin",
        "https://app.example.com",
        "--ca-file",
        ca.to_str().unwrap(),
        "--hook",
        hook.to_str().unwrap(),
        "--hook-config",
        &hook_config,
        "--hook-headers",
        &hook_headers,
        "--log-level",
        "debug",
        "--log-format",
        "json",
    ]);
    let toml = format!(
        r#"listen = "127.0.0.1:0"
[[route]]
path = "/mcp"
upstream = "https://mcp.example.com:8443/v1/mcp?tenant=a"
[security]
allowed_hosts = ["proxy.internal", "localhost"]
allowed_origins = ["https://app.example.com"]
[tls]
ca_file = {ca:?}
[log]
level = "debug"
format = "json"
[[hook]]
path = {hook:?}
config = '{{"deny":["rm"]}}'
headers = ["authorization", "X-Tenant"]
"#
    );
    assert_eq!(c, file(&toml));
    assert_eq!(c.routes[0].name, "mcp.example.com");
    assert_eq!(
        c.routes[0].http().unwrap().upstream.authority,
        "mcp.example.com:8443"
    );
    assert_eq!(c.tls.roots, Roots::Webpki);
    assert_eq!(c.hooks[0].name, "g");
    assert_eq!(c.hooks[0].config, r#"{"deny":["rm"]}"#);
    assert_eq!(c.hooks[0].headers, ["authorization", "x-tenant"]);
    assert_eq!(
        c.resolve("/mcp/x?y=1").unwrap().target,
        "/v1/mcp/x?tenant=a&y=1"
    );
}

#[test]
fn config_file_and_log_overrides() {
    let dir = scratch("config_cli_file");
    let path = dir.join("s.toml");
    std::fs::write(&path, "[[route]]\nupstream = \"http://a/\"\n[log]\nlevel = \"warn\"\nformat = \"json\"\naccess = false\n").unwrap();
    let p = path.to_str().unwrap();
    let c = proxy(&["--config", p]);
    assert_eq!(
        (c.log.level, c.log.format, c.log.access),
        (LogLevel::Warn, LogFormat::Json, false)
    );
    let c = proxy(&["-c", p, "--log-level", "trace", "--log-format", "text"]);
    assert_eq!(
        (c.log.level, c.log.format, c.log.access),
        (LogLevel::Trace, LogFormat::Text, false)
    );

    // The file's errors come through with the file name.
    std::fs::write(&path, "[[route]]\nupstream = \"ftp://x\"\n").unwrap();
    assert_eq!(
        err(&["--config", p]).to_string(),
        format!("{p}:2:12: route[0].upstream: \"ftp://x\" is not an http or https URL")
    );
}

#[test]
fn workers_flag() {
    assert_eq!(proxy(&["--upstream", "http://a/"]).server.workers, None);
    let c = proxy(&["--upstream", "http://a/", "--workers", "2"]);
    assert_eq!(c.server.workers, Some(2));
    assert_eq!(c.server.worker_threads(), 2);

    // With --config it overrides the file.
    let dir = scratch("config_cli_workers");
    let path = dir.join("s.toml");
    std::fs::write(
        &path,
        "[server]\nworkers = 4\n[[route]]\nupstream = \"http://a/\"\n",
    )
    .unwrap();
    let p = path.to_str().unwrap();
    assert_eq!(proxy(&["--config", p]).server.workers, Some(4));
    assert_eq!(
        proxy(&["--config", p, "--workers", "1"]).server.workers,
        Some(1)
    );

    for bad in ["0", "1025", "two"] {
        let e = err(&["--upstream", "http://a/", "--workers", bad]);
        assert!(matches!(e, ConfigError::Cli(_)), "{bad}: {e}");
        assert!(e.to_string().contains("--workers"), "{bad}: {e}");
        assert_eq!(e.exit_code(), 2);
    }
    let e = err(&["--workers", "2", "demo"]);
    assert!(
        e.to_string()
            .contains("--workers cannot be used with `sluice demo`"),
        "{e}"
    );
}

#[test]
fn config_excludes_proxy_flags() {
    for extra in [
        &["--upstream", "http://a/"][..],
        &["--listen", "127.0.0.1:1"],
        &["--allow-host", "x"],
        &["--allow-origin", "http://x"],
        &["--upstream-transport", "streamable"],
        &["--ca-file", "x.pem"],
        &["--hook", "x.wasm"],
        &["--hook-config", "x.wasm=1"],
        &["--hook-headers", "x.wasm=a"],
    ] {
        let mut args = vec!["--config", "s.toml"];
        args.extend_from_slice(extra);
        let e = err(&args);
        assert!(matches!(e, ConfigError::Cli(_)), "{args:?}: {e}");
        assert!(
            e.to_string().contains("cannot be used with"),
            "{args:?}: {e}"
        );
        assert_eq!(e.exit_code(), 2);
    }
}

#[test]
fn shape_errors_come_from_clap() {
    for args in [
        &[][..],
        &["--path", "/x"],
        &["--upstream"],
        &["--upstream", "http://a/", "--log-level", "loud"],
        &["--upstream", "http://a/", "--upstream-transport", "ws"],
        &["--upstream", "http://a/", "--bogus"],
        &["demo", "--upstream", "http://a/"],
    ] {
        let e = err(args);
        assert!(matches!(e, ConfigError::Cli(_)), "{args:?}: {e}");
        assert_eq!(e.exit_code(), 2, "{args:?}");
    }
    assert!(err(&[]).to_string().contains("--upstream <URL>"));
}

/// (arguments, the whole error message).
#[test]
fn every_flag_error_names_its_flag() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["--upstream", "ftp://x"],
            "--upstream: \"ftp://x\" is not an http or https URL",
        ),
        (
            &["--upstream", "localhost:3000"],
            "--upstream: \"localhost:3000\" is not an http or https URL",
        ),
        (
            &["--upstream", "http://a/", "--listen", "nowhere"],
            "--listen: \"nowhere\" is not a listen address (examples: 127.0.0.1:8080, [::1]:8080, localhost:8080, 0.0.0.0:0)",
        ),
        (
            &["--upstream", "http://a/", "--path", "mcp"],
            "--path: \"mcp\" must start with /",
        ),
        (
            &["--upstream", "http://a/", "--allow-host", "a.com:80"],
            "--allow-host: \"a.com:80\" has a port; hosts are matched without their port",
        ),
        (
            &["--upstream", "http://a/", "--allow-origin", "a.com"],
            "--allow-origin: \"a.com\" is not an origin (no scheme://; examples: https://app.example.com, http://localhost:*, null, *)",
        ),
        (
            &["--upstream", "http://a/", "--hook-config", "x.wasm={}"],
            "--hook-config: \"x.wasm={}\" does not start with FILE= for any --hook FILE (hooks: none)",
        ),
        (
            &[
                "--upstream",
                "http://a/",
                "--hook",
                "a.wasm",
                "--hook-config",
                "b.wasm={}",
            ],
            "--hook-config: \"b.wasm={}\" does not start with FILE= for any --hook FILE (hooks: a.wasm)",
        ),
        (
            &[
                "--upstream",
                "http://a/",
                "--hook",
                "a.wasm",
                "--hook",
                "a.wasm",
            ],
            "--hook: \"a.wasm\" is given twice",
        ),
        (
            &[
                "--upstream",
                "http://a/",
                "--hook",
                "a.wasm",
                "--hook-config",
                "a.wasm=1",
                "--hook-config",
                "a.wasm=2",
            ],
            "--hook-config: is given twice for \"a.wasm\"",
        ),
        (
            &["--upstream", "http://a/", "--hook-headers", "x.wasm=a"],
            "--hook-headers: \"x.wasm=a\" does not start with FILE= for any --hook FILE (hooks: none)",
        ),
        (
            &[
                "--upstream",
                "http://a/",
                "--hook",
                "a.wasm",
                "--hook-headers",
                "a.wasm=x-a,",
            ],
            "--hook-headers: a header name cannot be empty",
        ),
        (
            &[
                "--upstream",
                "http://a/",
                "--hook",
                "a.wasm",
                "--hook-headers",
                "a.wasm=x-a,X-A",
            ],
            "--hook-headers: \"X-A\" is listed twice",
        ),
        (
            &[
                "--upstream",
                "http://a/",
                "--hook",
                "a.wasm",
                "--hook-headers",
                "a.wasm=x:y",
            ],
            "--hook-headers: \"x:y\" is not a header name (':' is not allowed)",
        ),
        (
            &[
                "--upstream",
                "http://a/",
                "--hook",
                "a.wasm",
                "--hook-headers",
                "a.wasm=x",
                "--hook-headers",
                "a.wasm=y",
            ],
            "--hook-headers: is given twice for \"a.wasm\"",
        ),
    ];
    for (args, want) in cases {
        let e = err(args);
        assert_eq!(e.to_string(), *want, "{args:?}");
        assert!(matches!(
            e,
            ConfigError::Invalid {
                origin: None,
                position: None,
                ..
            }
        ));
    }
}

#[test]
fn missing_files_are_reported() {
    let e = err(&[
        "--upstream",
        "http://a/",
        "--ca-file",
        "/nonexistent/ca.pem",
    ])
    .to_string();
    assert!(e.starts_with("--ca-file: \"/nonexistent/ca.pem\": "), "{e}");
    let e = err(&["--upstream", "http://a/", "--hook", "/nonexistent/h.wasm"]).to_string();
    assert!(e.starts_with("--hook: \"/nonexistent/h.wasm\": "), "{e}");
    let e = err(&["demo", "--hook", "/nonexistent/h.wasm"]).to_string();
    assert!(e.starts_with("--hook: \"/nonexistent/h.wasm\": "), "{e}");
    let e = err(&["--config", "/nonexistent/s.toml"]);
    assert!(matches!(e, ConfigError::Read { .. }), "{e}");
}

#[test]
fn hook_config_matches_paths_with_equals_signs() {
    let dir = scratch("config_cli_hooks");
    let odd = dir.join("a=b.wasm");
    let plain = dir.join("a.wasm");
    std::fs::write(&odd, b"").unwrap();
    std::fs::write(&plain, b"").unwrap();
    let (odd_s, plain_s) = (odd.to_str().unwrap(), plain.to_str().unwrap());
    let c1 = format!("{odd_s}=one");
    let c2 = format!("{plain_s}=two=2");
    let c = proxy(&[
        "--upstream",
        "http://a/",
        "--hook",
        odd_s,
        "--hook",
        plain_s,
        "--hook-config",
        &c1,
        "--hook-config",
        &c2,
    ]);
    assert_eq!(c.hooks[0].config, "one");
    assert_eq!(c.hooks[1].config, "two=2");
    assert_eq!(c.hooks[0].name, "a=b");
    assert_eq!(c.hooks[1].name, "a");
}

#[test]
fn demo() {
    let demo = match run(&["demo"]).unwrap() {
        Command::Demo(d) => d,
        other => panic!("{other:?}"),
    };
    assert_eq!(demo.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(demo.log.level, LogLevel::Info);
    assert!(demo.hooks.is_empty());

    for args in [
        &["demo", "--listen", "localhost:0", "--log-level", "debug"][..],
        &["--log-level", "debug", "demo", "--listen", "localhost:0"],
    ] {
        let Command::Demo(d) = run(args).unwrap() else {
            panic!()
        };
        assert_eq!(
            (d.listen.to_string().as_str(), d.log.level),
            ("127.0.0.1:0", LogLevel::Debug)
        );
    }

    for args in [
        &["--upstream", "http://a/", "demo"][..],
        &["--listen", "127.0.0.1:1", "demo"],
        &["--hook", "h.wasm", "demo"],
        &["--config", "s.toml", "demo"],
    ] {
        let e = err(args);
        assert!(matches!(e, ConfigError::Cli(_)), "{args:?}: {e}");
        assert!(
            e.to_string().contains("cannot be used with `sluice demo`"),
            "{args:?}: {e}"
        );
    }

    let e = err(&["demo", "--listen", "x"]).to_string();
    assert!(
        e.starts_with("--listen: \"x\" is not a listen address"),
        "{e}"
    );

    let config = demo.proxy_config("127.0.0.1:45678".parse().unwrap());
    assert_eq!(config.listen, demo.listen);
    assert_eq!(config.routes[0].name, "demo");
    assert_eq!(config.routes[0].path, Demo::PATH);
    assert_eq!(
        config.routes[0].http().unwrap().upstream.to_string(),
        "http://127.0.0.1:45678/mcp"
    );
    assert_eq!(config.resolve("/mcp").unwrap().target, "/mcp");
    let v6 = demo.proxy_config("[::1]:80".parse().unwrap());
    assert_eq!(v6.routes[0].http().unwrap().upstream.authority, "[::1]");
}

#[test]
fn help_explains_every_option() {
    let e = err(&["--help"]);
    assert_eq!(e.exit_code(), 0);
    let help = e.to_string();
    for needle in [
        "--upstream <URL>",
        "--listen <ADDR>",
        "[default: 127.0.0.1:8080]",
        "--path <PATH>",
        "--config <FILE>",
        "--allow-host <HOST>",
        "--allow-origin <ORIGIN>",
        "--upstream-transport <TRANSPORT>",
        "[default: auto]",
        "bridged",
        "--legacy-max-sessions <N>",
        "--legacy-session-idle <DURATION>",
        "--ca-file <PEM>",
        "--hook <FILE.wasm>",
        "--hook-config <FILE.wasm=JSON>",
        "--log-level <LEVEL>",
        "[default: info]",
        "--log-format <FORMAT>",
        "[default: text]",
        "--workers <N>",
        "[default: one per CPU]",
        "demo",
        "docs/CONFIG.md",
        "Examples:",
    ] {
        assert!(help.contains(needle), "--help lacks {needle:?}:\n{help}");
    }
    let demo_help = err(&["demo", "--help"]).to_string();
    for needle in [
        "--listen <ADDR>",
        "--hook <FILE.wasm>",
        "--log-level <LEVEL>",
    ] {
        assert!(
            demo_help.contains(needle),
            "demo --help lacks {needle:?}:\n{demo_help}"
        );
    }
    let version = err(&["--version"]);
    assert_eq!(version.exit_code(), 0);
    assert!(version.to_string().starts_with("sluice "));
}

#[test]
fn print_help_for_review() {
    // `cargo test -p sluice --test config_cli print_help -- --nocapture` shows it.
    println!("{}", err(&["--help"]));
    println!("{}", err(&["-h"]));
}

#[test]
fn legacy_transports_are_accepted() {
    use sluice::config::{LegacyMode, Transport};
    for (flag, want) in [
        ("sse", Transport::Sse),
        ("auto", Transport::Auto),
        ("streamable", Transport::Streamable),
    ] {
        let c = proxy(&["--upstream", "http://a/sse", "--upstream-transport", flag]);
        assert_eq!(c.routes[0].http().unwrap().transport, want);
        assert_eq!(c.routes[0].http().unwrap().legacy_mode, LegacyMode::Session);
    }
    // No flag: found out from the upstream's first answer.
    let c = proxy(&["--upstream", "http://a/sse"]);
    assert_eq!(c.routes[0].http().unwrap().transport, Transport::Auto);
    let c = file("[[route]]\npath = \"/mcp\"\nupstream = \"http://a/sse\"\n");
    assert_eq!(c.routes[0].http().unwrap().transport, Transport::Auto);
}

#[test]
fn legacy_session_flags() {
    let c = proxy(&[
        "--upstream",
        "http://a/sse",
        "--upstream-transport",
        "sse",
        "--legacy-max-sessions",
        "3",
        "--legacy-session-idle",
        "5m",
    ]);
    assert_eq!(c.routes[0].http().unwrap().legacy.max_sessions, 3);
    assert_eq!(
        c.routes[0].http().unwrap().legacy.session_idle,
        Some(std::time::Duration::from_secs(300))
    );
    let c = proxy(&[
        "--upstream",
        "http://a/sse",
        "--upstream-transport",
        "auto",
        "--legacy-session-idle",
        "off",
    ]);
    assert_eq!(c.routes[0].http().unwrap().legacy.session_idle, None);
    let cases: [(&[&str], &str); 4] = [
        (
            &[
                "--upstream",
                "http://a/",
                "--upstream-transport",
                "streamable",
                "--legacy-max-sessions",
                "3",
            ],
            "--legacy-max-sessions: only applies with --upstream-transport sse or auto",
        ),
        (
            &[
                "--upstream",
                "http://a/",
                "--upstream-transport",
                "sse",
                "--legacy-max-sessions",
                "0",
            ],
            "--legacy-max-sessions: \"0\" is not a whole number above zero",
        ),
        (
            &[
                "--upstream",
                "http://a/",
                "--upstream-transport",
                "sse",
                "--legacy-session-idle",
                "0s",
            ],
            "--legacy-session-idle: must be more than zero (or \"off\")",
        ),
        (
            &[
                "--upstream",
                "http://a/",
                "--upstream-transport",
                "sse",
                "--legacy-session-idle",
                "soon",
            ],
            "--legacy-session-idle: ",
        ),
    ];
    for (args, want) in cases {
        let got = err(args).to_string();
        assert!(got.starts_with(want), "{args:?}: {got}");
    }
}
