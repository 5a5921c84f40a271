//! The command-line front end: zero-config defaults, equivalence with the
//! file form, the demo subcommand, help, and every flag's error message.

use std::path::{Path, PathBuf};

use sluice::config::{
    Command, Config, ConfigError, Demo, EnvValue, EnvVar, LogFormat, LogLevel, Roots, Secret,
    Stdio, StdioMode,
};

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

#[test]
fn admin_is_off_unless_asked_for_and_takes_a_listen_address() {
    assert_eq!(proxy(&["--upstream", "http://a/"]).admin, None);
    let c = proxy(&["--upstream", "http://a/", "--admin", "localhost:9091"]);
    assert_eq!(c.admin, Some("127.0.0.1:9091".parse().unwrap()));
    let e = err(&["--upstream", "http://a/", "--admin", "nowhere"]);
    assert!(e.to_string().starts_with("--admin: "), "{e}");
    let e = err(&[
        "--upstream",
        "http://a/",
        "--listen",
        "[::]:7000",
        "--admin",
        "[::1]:7000",
    ]);
    assert!(
        e.to_string().contains("the proxy's own listen address"),
        "{e}"
    );
    assert!(matches!(
        err(&["demo", "--admin", "127.0.0.1:9091"]),
        ConfigError::Cli(_)
    ));
}

#[test]
fn watch_takes_an_optional_interval_and_says_what_a_reload_reads() {
    use sluice::config::ReloadOptions;
    use std::time::Duration;
    let options = |args: &[&str]| {
        Config::reload_options(std::iter::once("sluice").chain(args.iter().copied()))
    };
    proxy(&["--upstream", "http://a/", "--watch"]);
    assert_eq!(
        options(&["--upstream", "http://a/", "--watch"]),
        Some(ReloadOptions {
            config_file: None,
            watch: Some(Duration::from_secs(2)),
        })
    );
    assert_eq!(
        options(&["--config", "/etc/sluice.toml", "--watch=250ms"]),
        Some(ReloadOptions {
            config_file: Some("/etc/sluice.toml".into()),
            watch: Some(Duration::from_millis(250)),
        })
    );
    assert_eq!(
        options(&["--upstream", "http://a/"]),
        Some(ReloadOptions::default())
    );
    assert_eq!(options(&["demo"]), None);
    for bad in ["--watch=0s", "--watch=1ms", "--watch=soon"] {
        let e = err(&["--upstream", "http://a/", bad]);
        assert!(e.to_string().starts_with("--watch: "), "{bad}: {e}");
    }
    assert!(matches!(err(&["demo", "--watch"]), ConfigError::Cli(_)));
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
    // --admin too, checked against the file's listen address.
    assert_eq!(
        proxy(&["--config", p, "--admin", "127.0.0.1:9091"]).admin,
        Some("127.0.0.1:9091".parse().unwrap())
    );
    let e = err(&["--config", p, "--admin", "127.0.0.1:8080"]);
    assert!(
        e.to_string()
            .starts_with("--admin: 127.0.0.1:8080 is the proxy's own listen address"),
        "{e}"
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
        "--upstream-command <CMD>",
        "--stdio-mode <MODE>",
        "[default: shared]",
        "--stdio-env <NAME[=VALUE]>",
        "--stdio-cwd <DIR>",
        "--workers <N>",
        "[default: one per CPU]",
        "--admin <ADDR>",
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

fn stdio(c: &Config) -> &Stdio {
    c.routes[0].stdio().expect("a command route")
}

#[test]
fn upstream_command_zero_config() {
    let c = proxy(&["--upstream-command", "uvx mcp-server-time"]);
    assert_eq!(c.routes.len(), 1);
    let r = &c.routes[0];
    assert_eq!((r.name.as_str(), r.path.as_str()), ("uvx", "/mcp"));
    assert!(!r.well_known());
    assert_eq!(
        *stdio(&c),
        Stdio::new("uvx", vec!["mcp-server-time".into()])
    );
    assert_eq!(r.backend.to_string(), "uvx mcp-server-time");
    assert_eq!(c.resolve("/mcp/x").unwrap().route.name, "uvx");
    assert!(c.resolve("/.well-known/oauth-protected-resource").is_none());
    // Every other setting is the file form's default.
    assert_eq!(
        c,
        file("[[route]]\ncommand = [\"uvx\", \"mcp-server-time\"]\n")
    );
}

#[test]
fn upstream_command_flags_equal_file_form() {
    let dir = scratch("config_cli_stdio");
    let d = dir.to_str().unwrap();
    let c = proxy(&[
        "--upstream-command",
        "./srv --name 'a b' \"c\\\"d\" e\\ f",
        "--stdio-mode",
        "per-session",
        "--stdio-env",
        "PATH",
        "--stdio-env",
        "LOG=debug=yes",
        "--stdio-env",
        "EMPTY=",
        "--stdio-cwd",
        d,
        "--path",
        "/tools",
        "--listen",
        "127.0.0.1:0",
    ]);
    let toml = format!(
        r#"listen = "127.0.0.1:0"
[[route]]
path = "/tools"
command = ["./srv", "--name", "a b", 'c"d', "e f"]
cwd = {d:?}
stdio_mode = "per-session"
env = {{ PATH = {{ from_env = "PATH" }}, LOG = "debug=yes", EMPTY = "" }}
"#
    );
    assert_eq!(c, file(&toml));
    let s = stdio(&c);
    assert_eq!(c.routes[0].name, "srv");
    assert_eq!(s.program, dir.join("./srv"), "taken from the child's cwd");
    assert_eq!(s.args, ["--name", "a b", "c\"d", "e f"]);
    assert_eq!(s.cwd.as_deref(), Some(dir.as_path()));
    assert_eq!(
        s.mode,
        StdioMode::PerSession {
            max_processes: StdioMode::DEFAULT_MAX_PROCESSES
        }
    );
    assert_eq!(
        s.env,
        [
            EnvVar {
                name: "PATH".into(),
                value: EnvValue::FromEnv("PATH".into())
            },
            EnvVar {
                name: "LOG".into(),
                value: EnvValue::Literal(Secret::new("debug=yes"))
            },
            EnvVar {
                name: "EMPTY".into(),
                value: EnvValue::Literal(Secret::new(""))
            },
        ]
    );
    // Without --stdio-cwd a relative program stays relative to sluice's own
    // working directory; a bare name is looked up in PATH.
    let c = proxy(&["--upstream-command", "./srv", "--stdio-mode", "shared"]);
    assert_eq!(stdio(&c).program, Path::new("./srv"));
    assert_eq!(stdio(&c).mode, StdioMode::shared());
}

/// How `--upstream-command` splits its string: shell quoting, no expansion.
#[test]
fn upstream_command_splits_like_a_shell_without_one() {
    let cases: &[(&str, &[&str])] = &[
        ("uvx mcp-server-time", &["uvx", "mcp-server-time"]),
        (
            "  npx  -y\t@scope/server  ",
            &["npx", "-y", "@scope/server"],
        ),
        (
            "srv 'single quoted' \"double quoted\"",
            &["srv", "single quoted", "double quoted"],
        ),
        (
            "srv 'it'\\''s' \"say \\\"hi\\\"\" a\\ b",
            &["srv", "it's", "say \"hi\"", "a b"],
        ),
        ("srv '' \"\"", &["srv", "", ""]),
        (
            "srv \"back\\slash\" 'raw\\n'",
            &["srv", "back\\slash", "raw\\n"],
        ),
        (
            "srv '$HOME' \\$HOME \"\\$HOME\"",
            &["srv", "$HOME", "$HOME", "$HOME"],
        ),
        (
            "srv 'a|b' \"c;d\" e\\&\\&f '>'",
            &["srv", "a|b", "c;d", "e&&f", ">"],
        ),
        (
            "srv *.json ~/x #not-a-comment",
            &["srv", "*.json", "~/x", "#not-a-comment"],
        ),
        ("sh -c 'echo hi | cat'", &["sh", "-c", "echo hi | cat"]),
    ];
    for (command, want) in cases {
        let c = proxy(&["--upstream-command", command]);
        let s = stdio(&c);
        let mut got = vec![s.program.to_str().unwrap().to_string()];
        got.extend(s.args.iter().cloned());
        assert_eq!(got, *want, "{command:?}");
    }
}

/// (arguments, the whole error message).
#[test]
fn upstream_command_errors_name_their_flag() {
    let dir = scratch("config_cli_stdio_errors");
    let a_file = dir.join("f");
    std::fs::write(&a_file, b"").unwrap();
    let a_file = a_file.to_str().unwrap();
    let not_a_dir = format!("--stdio-cwd: {a_file:?} is not a directory");
    let shell = "sluice runs one program without a shell (for a shell, run sh -c '…')";
    let expands = "sluice runs the program without a shell and expands no variable or command";
    let cases: &[(&[&str], String)] = &[
        (
            &["--upstream-command", ""],
            "--upstream-command: cannot be empty (give the program to run and its arguments)".into(),
        ),
        (
            &["--upstream-command", " \t "],
            "--upstream-command: cannot be empty (give the program to run and its arguments)".into(),
        ),
        (
            &["--upstream-command", "srv | tee log"],
            format!("--upstream-command: \"srv | tee log\" has the shell operator | outside quotes: {shell}"),
        ),
        (
            &["--upstream-command", "srv; rm x"],
            format!("--upstream-command: \"srv; rm x\" has the shell operator ; outside quotes: {shell}"),
        ),
        (
            &["--upstream-command", "a && b"],
            format!("--upstream-command: \"a && b\" has the shell operator & outside quotes: {shell}"),
        ),
        (
            &["--upstream-command", "srv > log"],
            format!("--upstream-command: \"srv > log\" has the shell operator > outside quotes: {shell}"),
        ),
        (
            &["--upstream-command", "srv < in"],
            format!("--upstream-command: \"srv < in\" has the shell operator < outside quotes: {shell}"),
        ),
        (
            &["--upstream-command", "srv --token $TOKEN"],
            format!("--upstream-command: \"srv --token $TOKEN\" has $ outside single quotes: {expands} (write '$' for a literal $; pass a variable with --stdio-env NAME; for a shell, run sh -c '…')"),
        ),
        (
            &["--upstream-command", "srv \"$HOME\""],
            format!("--upstream-command: \"srv \\\"$HOME\\\"\" has $ outside single quotes: {expands} (write '$' for a literal $; pass a variable with --stdio-env NAME; for a shell, run sh -c '…')"),
        ),
        (
            &["--upstream-command", "srv `id`"],
            format!("--upstream-command: \"srv `id`\" has ` outside single quotes: {expands} (write '`' for a literal `; pass a variable with --stdio-env NAME; for a shell, run sh -c '…')"),
        ),
        (
            &["--upstream-command", "srv 'open"],
            "--upstream-command: \"srv 'open\" has an unterminated ' quote".into(),
        ),
        (
            &["--upstream-command", "srv \"open"],
            "--upstream-command: \"srv \\\"open\" has an unterminated \" quote".into(),
        ),
        (
            &["--upstream-command", "srv \\"],
            "--upstream-command: \"srv \\\\\" ends with a lone backslash".into(),
        ),
        (
            &["--upstream-command", "'' srv"],
            "--upstream-command: the program (the command's first word) cannot be empty".into(),
        ),
        (
            &["--upstream-command", "DEBUG=1 node server.js"],
            "--upstream-command: \"DEBUG=1\" is a variable assignment, not a program: no shell runs the command; set the variable in the child's environment (env, or --stdio-env NAME=VALUE)".into(),
        ),
        (
            &["--upstream-command", "srv", "--path", "mcp"],
            "--path: \"mcp\" must start with /".into(),
        ),
        (
            &["--upstream-command", "srv", "--stdio-env", "1BAD=x"],
            "--stdio-env: \"1BAD\" is not an environment variable name (letters, digits and _, not starting with a digit)".into(),
        ),
        (
            &["--upstream-command", "srv", "--stdio-env", "=x"],
            "--stdio-env: \"\" is not an environment variable name (letters, digits and _, not starting with a digit)".into(),
        ),
        (
            &["--upstream-command", "srv", "--stdio-env", "A=1", "--stdio-env", "A"],
            "--stdio-env: \"A\" is given twice".into(),
        ),
        (
            &["--upstream-command", "srv", "--stdio-env", "SLUICE_TEST_NEVER_SET_3F9A"],
            "--stdio-env: sluice's environment variable SLUICE_TEST_NEVER_SET_3F9A is not set".into(),
        ),
        (&["--upstream-command", "srv", "--stdio-cwd", a_file], not_a_dir),
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
    let e = err(&[
        "--upstream-command",
        "srv",
        "--stdio-cwd",
        "/nonexistent/dir",
    ])
    .to_string();
    assert!(e.starts_with("--stdio-cwd: \"/nonexistent/dir\": "), "{e}");
}

#[test]
fn upstream_command_shape_errors_come_from_clap() {
    for (args, want) in [
        (
            &["--upstream", "http://a/", "--upstream-command", "srv"][..],
            "cannot be used with",
        ),
        (
            &["--upstream-command", "srv", "--upstream-transport", "sse"],
            "cannot be used with",
        ),
        (
            &["--upstream-command", "srv", "--legacy-session-idle", "5m"],
            "cannot be used with",
        ),
        (
            &["--config", "s.toml", "--upstream-command", "srv"],
            "cannot be used with",
        ),
        (
            &["--config", "s.toml", "--stdio-env", "A"],
            "cannot be used with",
        ),
        (
            &["--upstream", "http://a/", "--stdio-mode", "shared"],
            "'--upstream <URL>' cannot be used with",
        ),
        (
            &["--upstream", "http://a/", "--stdio-env", "A"],
            "'--upstream <URL>' cannot be used with",
        ),
        (
            &["--upstream", "http://a/", "--stdio-cwd", "/"],
            "'--upstream <URL>' cannot be used with",
        ),
        (&["--stdio-mode", "shared"], "--upstream-command <CMD>"),
        (
            &["--upstream-command", "srv", "--stdio-cwd", ""],
            "--stdio-cwd <DIR>",
        ),
        (
            &["--upstream-command", "srv", "--stdio-mode", "pooled"],
            "pooled",
        ),
        (
            &["--upstream-command", "srv", "demo"],
            "cannot be used with `sluice demo`",
        ),
        (
            &["--stdio-mode", "shared", "demo"],
            "cannot be used with `sluice demo`",
        ),
        (&["demo", "--upstream-command", "srv"], "--upstream-command"),
    ] {
        let e = err(args);
        assert!(matches!(e, ConfigError::Cli(_)), "{args:?}: {e}");
        assert!(e.to_string().contains(want), "{args:?}: {e}");
        assert_eq!(e.exit_code(), 2, "{args:?}");
    }
    let none = err(&[]).to_string();
    for flag in [
        "--upstream <URL>",
        "--upstream-command <CMD>",
        "--config <FILE>",
    ] {
        assert!(none.contains(flag), "{none}");
    }
}

#[test]
fn stdio_routes_run_what_the_flags_say() {
    let c = proxy(&[
        "--upstream-command",
        "uvx 'mcp-server-time' --local-timezone=UTC",
        "--stdio-mode",
        "per-session",
        "--stdio-env",
        "TZ_TOKEN=abc",
        "--stdio-cwd",
        "/tmp",
    ]);
    let settings = sluice::settings::proxy_settings(&c).expect("a stdio route starts");
    let sluice::legacy::UpstreamTransport::Stdio(up) = &settings.upstreams[0].transport else {
        panic!(
            "not a stdio upstream: {:?}",
            settings.upstreams[0].transport
        );
    };
    assert_eq!(
        up.command,
        ["uvx", "mcp-server-time", "--local-timezone=UTC"]
    );
    assert_eq!(up.config.mode, sluice_core::stdio::StdioMode::PerSession);
    assert_eq!(up.cwd.as_deref(), Some(std::path::Path::new("/tmp")));
    assert!(up.env.contains(&("TZ_TOKEN".into(), "abc".into())));
    // Of sluice's own environment, only the default few (PATH is set here).
    let names: Vec<&str> = up.env.iter().map(|(k, _)| k.as_str()).collect();
    assert!(names.contains(&"PATH"));
    assert!(
        names
            .iter()
            .all(|n| ["PATH", "HOME", "LANG", "TZ_TOKEN"].contains(n)),
        "{names:?}"
    );
    assert_eq!(up.max_processes, sluice::stdio::DEFAULT_MAX_PROCESSES);
    assert_eq!(
        up.config.init_timeout,
        sluice_core::stdio::DEFAULT_INIT_TIMEOUT
    );
}

#[test]
fn members_are_commands_or_urls() {
    let c = proxy(&[
        "--member",
        "a=python3 -m srv",
        "--member",
        "b=http://127.0.0.1:3001/mcp",
    ]);
    let sluice::config::Backend::Federation(f) = &c.routes[0].backend else {
        panic!("a federation")
    };
    assert_eq!(f.members[0].server.stdio().unwrap().args, ["-m", "srv"]);
    match &f.members[1].server {
        sluice::config::MemberServer::Http(u) => {
            assert_eq!(u.to_string(), "http://127.0.0.1:3001/mcp")
        }
        other => panic!("a URL member: {other:?}"),
    }
    let e = err(&["--member", "a=http://u:p@x/"]);
    assert!(e.to_string().starts_with("--member: a: "), "{e}");
    let e = err(&["--member", "a=x", "--member", "a=y"]);
    assert!(e.to_string().contains("given twice"), "{e}");
}

#[test]
fn hook_subcommands_read_their_flags_with_the_hosts_parsers() {
    use sluice::hook_cli::{HookCommand, Lang};
    use sluice::hooks::OnError;
    let req = r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
    let Ok(Command::Hook(HookCommand::Test(t))) = run(&[
        "hook",
        "test",
        "h.wasm",
        "--request",
        req,
        "--header",
        "X-Team=a=b",
        "--grant",
        "clock",
        "--methods",
        "tools/call, ping@request",
        "--on-error",
        "pass",
        "--identity",
        r#"{"scheme":"api-key","subject":"k1","scopes":["s"]}"#,
        "--repeat",
        "5",
        "--instances",
        "warm",
        "--mode",
        "audit",
    ]) else {
        panic!("hook test not read");
    };
    assert_eq!(t.headers, [("X-Team".to_string(), "a=b".to_string())]);
    assert_eq!(
        t.load.headers,
        ["X-Team"],
        "a header given is a header allowed"
    );
    assert!(t.load.grants.clock && !t.load.grants.random);
    assert_eq!(
        t.load.methods.as_deref(),
        Some(&["tools/call".to_string(), "ping@request".to_string()][..])
    );
    assert_eq!(t.load.on_error, OnError::Pass);
    let id = t.identity.expect("identity");
    assert_eq!(
        (id.subject.as_str(), id.scopes.len(), id.claims),
        ("k1", 1, None)
    );
    assert_eq!(t.repeat, 5);
    assert_eq!(t.load.enforcement, sluice::hooks::Enforcement::Audit);
    assert_eq!(
        t.load.instances,
        sluice::hooks::InstanceMode::Warm {
            pool: sluice::config::DEFAULT_WARM_POOL,
            recycle_after: sluice::config::DEFAULT_RECYCLE_AFTER
        }
    );

    let Ok(Command::Hook(HookCommand::New(n))) =
        run(&["hook", "new", "my-hook", "--lang", "python"])
    else {
        panic!("hook new not read");
    };
    assert_eq!(
        (n.name.as_str(), n.lang, n.dir),
        ("my-hook", Lang::Python, None)
    );

    for (args, flag) in [
        (
            &[
                "hook",
                "test",
                "h.wasm",
                "--request",
                req,
                "--header",
                "novalue",
            ][..],
            "--header",
        ),
        (
            &[
                "hook",
                "test",
                "h.wasm",
                "--request",
                req,
                "--header",
                "a b=1",
            ],
            "--header",
        ),
        (
            &[
                "hook",
                "test",
                "h.wasm",
                "--request",
                req,
                "--identity",
                "{}",
            ],
            "--identity",
        ),
        (
            &[
                "hook",
                "test",
                "h.wasm",
                "--request",
                req,
                "--identity",
                r#"{"subject":"a","x":1}"#,
            ],
            "--identity",
        ),
        (
            &["hook", "check", "h.wasm", "--grant", "network"],
            "--grant",
        ),
        (&["hook", "new", "a/b", "--lang", "rust"], "NAME"),
    ] {
        let e = err(args).to_string();
        assert!(e.starts_with(flag), "{args:?}: {e}");
    }
    let e = err(&["--upstream", "http://a/", "hook", "check", "h.wasm"]);
    assert!(
        e.to_string().contains("cannot be used with `sluice hook`"),
        "{e}"
    );
    // --request is required.
    assert!(matches!(
        err(&["hook", "test", "h.wasm"]),
        ConfigError::Cli(_)
    ));
}
