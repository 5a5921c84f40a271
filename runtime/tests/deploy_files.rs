//! deploy/: the systemd unit is hardened as docs/OPERATIONS.md says and
//! passes `systemd-analyze verify` (no warning) and `security` (exposure at
//! most 3.5); the Dockerfile builds the binary in a Rust stage with the
//! README's command and ships it alone, as a non-root user; the example
//! config is one sluice accepts. (No docker here: the image is not built.)

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The unit's `Key=value` lines, by section, in order.
fn unit_keys(unit: &str) -> Vec<(String, String, String)> {
    let mut section = String::new();
    let mut keys = Vec::new();
    for line in unit.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_owned();
            continue;
        }
        let (key, value) = line.split_once('=').expect("Key=value");
        keys.push((section.clone(), key.to_owned(), value.to_owned()));
    }
    keys
}

#[test]
fn the_systemd_unit_is_hardened_and_restarts_on_failure_only() {
    let keys = unit_keys(&read("deploy/sluice.service"));
    let get = |key: &str| -> Vec<&str> {
        keys.iter()
            .filter(|(s, k, _)| s == "Service" && k == key)
            .map(|(_, _, v)| v.as_str())
            .collect()
    };
    let one = |key: &str| -> &str {
        match get(key)[..] {
            [v] => v,
            ref all => panic!("{key}: {all:?}"),
        }
    };
    assert_eq!(
        one("ExecStart"),
        "/usr/local/bin/sluice --config /etc/sluice/sluice.toml"
    );
    assert_eq!(one("Restart"), "on-failure");
    assert_eq!(one("KillSignal"), "SIGTERM");
    // SIGHUP reloads the config and hooks (docs/OPERATIONS.md, "Reload").
    assert_eq!(one("ExecReload"), "/bin/kill -HUP $MAINPID");
    assert!(one("DynamicUser") == "yes" || !get("User").is_empty());
    for (key, value) in [
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("ReadOnlyPaths", "/etc/sluice"),
        ("CapabilityBoundingSet", ""),
    ] {
        assert_eq!(one(key), value, "{key}");
    }
    let families: Vec<&str> = one("RestrictAddressFamilies").split(' ').collect();
    assert_eq!(families, ["AF_INET", "AF_INET6", "AF_UNIX"]);
    // wasmtime makes compiled hooks executable: this would break them.
    assert!(get("MemoryDenyWriteExecute").is_empty());
}

#[test]
fn systemd_analyze_verifies_the_unit_without_a_warning() {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!(
            "SKIPPED: no systemd-analyze (apt-get install systemd); the unit was not verified"
        );
        return;
    }
    // The unit as installed, its binary where this build put it
    // (verify checks that ExecStart's program is there).
    let dir = std::env::temp_dir().join(format!("sluice-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let unit = read("deploy/sluice.service")
        .replace("/usr/local/bin/sluice", env!("CARGO_BIN_EXE_sluice"));
    let path = dir.join("sluice.service");
    std::fs::write(&path, unit).unwrap();
    let verify = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
    let about_it: Vec<&str> = said
        .lines()
        .filter(|l| l.contains("sluice.service"))
        .collect();
    let security = Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--threshold=35"])
        .arg(&path)
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(verify.status.success(), "{said}");
    assert!(about_it.is_empty(), "systemd-analyze verify: {about_it:#?}");
    let report = String::from_utf8_lossy(&security.stdout);
    assert!(
        security.status.success(),
        "exposure above 3.5:\n{report}{}",
        String::from_utf8_lossy(&security.stderr)
    );
    assert!(report.contains("Overall exposure level"), "{report}");
}

/// The Dockerfile's instructions (continuations joined), by stage.
fn stages(dockerfile: &str) -> Vec<Vec<(String, String)>> {
    let mut joined = Vec::new();
    let mut current = String::new();
    for line in dockerfile.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(part) => current.push_str(part),
            None => {
                current.push_str(line);
                joined.push(std::mem::take(&mut current));
            }
        }
    }
    let mut stages: Vec<Vec<(String, String)>> = Vec::new();
    for instruction in joined {
        let (op, args) = instruction.split_once(' ').unwrap_or((&instruction, ""));
        let op = op.to_ascii_uppercase();
        if op == "FROM" {
            stages.push(Vec::new());
        }
        stages
            .last_mut()
            .expect("FROM first")
            .push((op, args.trim().to_owned()));
    }
    stages
}

#[test]
fn the_dockerfile_builds_in_rust_and_ships_the_binary_alone_as_non_root() {
    let stages = stages(&read("deploy/Dockerfile"));
    assert_eq!(stages.len(), 2, "a builder and a runtime stage: {stages:?}");
    let (build, runtime) = (&stages[0], &stages[1]);

    let from = &build[0].1;
    let (image, name) = from.split_once(" AS ").expect("a named builder stage");
    assert!(image.starts_with("rust:"), "{image}");
    // The image's Rust is the workspace's rust-version.
    let manifest = read("Cargo.toml");
    let pinned = manifest
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = \""))
        .and_then(|v| v.strip_suffix('"'))
        .unwrap();
    assert!(
        image.starts_with(&format!("rust:{pinned}")),
        "{image} vs {pinned}"
    );
    // The build is the README's, to the letter.
    let readme = read("README.md");
    let runs: Vec<&str> = build
        .iter()
        .filter(|(op, _)| op == "RUN")
        .map(|(_, a)| a.as_str())
        .collect();
    assert_eq!(runs, ["cargo build --release --locked -p sluice"]);
    assert!(
        readme.contains(&format!("    {}\n", runs[0])),
        "README.md does not show {:?}",
        runs[0]
    );

    // The runtime stage: no RUN (nothing installed), one COPY (the binary,
    // from the builder), a non-root user, the ports, the binary as entry.
    let ops: Vec<&str> = runtime.iter().map(|(op, _)| op.as_str()).collect();
    assert!(!ops.contains(&"RUN") && !ops.contains(&"ADD"), "{ops:?}");
    let copies: Vec<&str> = runtime
        .iter()
        .filter(|(op, _)| op == "COPY")
        .map(|(_, a)| a.as_str())
        .collect();
    assert_eq!(
        copies,
        [format!(
            "--from={name} /src/target/release/sluice /usr/local/bin/sluice"
        )]
    );
    let user = runtime
        .iter()
        .filter(|(op, _)| op == "USER")
        .map(|(_, a)| a.as_str())
        .next_back()
        .expect("a USER");
    let uid = user.split(':').next().unwrap();
    assert!(!["root", "0"].contains(&uid), "{user}");
    let expose: Vec<&str> = runtime
        .iter()
        .filter(|(op, _)| op == "EXPOSE")
        .flat_map(|(_, a)| a.split(' '))
        .collect();
    assert_eq!(expose, ["8080", "9091"]);
    let entry = runtime.iter().find(|(op, _)| op == "ENTRYPOINT").unwrap();
    assert_eq!(entry.1, r#"["/usr/local/bin/sluice"]"#);

    // The context leaves out build output and history.
    let ignore = read("deploy/Dockerfile.dockerignore");
    for path in ["target", ".git"] {
        assert!(ignore.lines().any(|l| l == path), "{path} not ignored");
    }
}

#[test]
fn the_example_config_is_one_sluice_accepts_and_matches_the_image() {
    let text = read("deploy/sluice.toml");
    let config =
        sluice::config::Config::from_toml(&text, "deploy/sluice.toml", Path::new("/etc/sluice"))
            .unwrap_or_else(|e| panic!("{e}"));
    let json = config.redacted_json();
    // The ports the Dockerfile exposes.
    assert_eq!(json["listen"], "0.0.0.0:8080", "{json}");
    assert_eq!(json["admin"], "0.0.0.0:9091", "{json}");
}
