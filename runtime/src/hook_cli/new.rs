//! `sluice hook new`: a project that builds a hook for the current WIT.
//!
//! The templates are files beside this one (`templates/<lang>/`), and the
//! WIT written into the project is the repository's `wit/hook.wit`, both
//! compiled into the binary: what `hook new` writes cannot drift from the
//! world the host serves.

use std::path::PathBuf;

use anyhow::{Context as _, bail};

/// The WIT package the host serves as its newest world.
const WIT: &str = include_str!("../../../wit/hook.wit");

/// The Rust template.
mod rust {
    pub const CARGO_TOML: &str = include_str!("templates/rust/Cargo.toml.in");
    pub const CARGO_CONFIG: &str = include_str!("templates/rust/cargo-config.toml.in");
    pub const LIB_RS: &str = include_str!("templates/rust/lib.rs.in");
    pub const README: &str = include_str!("templates/rust/README.md.in");
    /// The examples' lock file: the project resolves to crates the
    /// repository already builds with (and builds offline where they are in
    /// the cargo cache).
    pub const LOCK: &str = include_str!("../../../hook-examples/Cargo.lock");
}

/// The Rust template on sluice's SDK (`hook-examples/sluice-hook`, copied
/// into the project byte for byte, with the repository's WIT).
mod rust_sdk {
    pub const CARGO_TOML: &str = include_str!("templates/rust-sdk/Cargo.toml.in");
    pub const LIB_RS: &str = include_str!("templates/rust-sdk/lib.rs.in");
    pub const SDK_CARGO_TOML: &str = include_str!("../../../hook-examples/sluice-hook/Cargo.toml");
    pub const SDK_FILES: [(&str, &str); 3] = [
        (
            "lib.rs",
            include_str!("../../../hook-examples/sluice-hook/src/lib.rs"),
        ),
        (
            "message.rs",
            include_str!("../../../hook-examples/sluice-hook/src/message.rs"),
        ),
        (
            "testing.rs",
            include_str!("../../../hook-examples/sluice-hook/src/testing.rs"),
        ),
    ];
    /// The SDK's package name, as its lock entry names it.
    pub const SDK: &str = "sluice-hook";
}

/// The Python template (componentize-py).
mod python {
    pub const APP_PY: &str = include_str!("templates/python/app.py.in");
    pub const BUILD_SH: &str = include_str!("templates/python/build.sh.in");
    pub const README: &str = include_str!("templates/python/README.md.in");
    /// The example's pin, byte for byte: the toolchain cache is keyed by
    /// its hash, so a machine that built the example builds this offline.
    pub const REQUIREMENTS: &str =
        include_str!("../../../hook-examples/python-arg-validator/requirements.txt");
}

/// The Python template on sluice's SDK (`hook-examples/sluice-hook-py`,
/// copied into the project byte for byte, with the repository's WIT).
mod python_sdk {
    pub const APP_PY: &str = include_str!("templates/python-sdk/app.py.in");
    pub const TEST_APP_PY: &str = include_str!("templates/python-sdk/test_app.py.in");
    pub const BUILD_SH: &str = include_str!("templates/python-sdk/build.sh.in");
    pub const README: &str = include_str!("templates/python-sdk/README.md.in");
    /// The SDK's files, under `sluice-hook-py/` in the project (its tests
    /// too: `sluice-hook-py/test.sh` runs them there).
    pub const SDK_FILES: [(&str, &str); 8] = [
        (
            "sluice_hook/__init__.py",
            include_str!("../../../hook-examples/sluice-hook-py/sluice_hook/__init__.py"),
        ),
        (
            "sluice_hook/_wit.py",
            include_str!("../../../hook-examples/sluice-hook-py/sluice_hook/_wit.py"),
        ),
        (
            "sluice_hook/host.py",
            include_str!("../../../hook-examples/sluice-hook-py/sluice_hook/host.py"),
        ),
        (
            "sluice_hook/message.py",
            include_str!("../../../hook-examples/sluice-hook-py/sluice_hook/message.py"),
        ),
        (
            "sluice_hook/testing.py",
            include_str!("../../../hook-examples/sluice-hook-py/sluice_hook/testing.py"),
        ),
        (
            "sluice_hook/verdict.py",
            include_str!("../../../hook-examples/sluice-hook-py/sluice_hook/verdict.py"),
        ),
        (
            "test.sh",
            include_str!("../../../hook-examples/sluice-hook-py/test.sh"),
        ),
        (
            "tests/test_sdk.py",
            include_str!("../../../hook-examples/sluice-hook-py/tests/test_sdk.py"),
        ),
    ];
}

/// The JavaScript template (jco, QuickJS backend).
mod js {
    pub const HOOK_JS: &str = include_str!("templates/js/hook.js.in");
    pub const BUILD_SH: &str = include_str!("templates/js/build.sh.in");
    pub const README: &str = include_str!("templates/js/README.md.in");
    /// The example's toolchain pin, byte for byte: the toolchain cache is
    /// keyed by the hash of both files.
    pub const PACKAGE_JSON: &str =
        include_str!("../../../hook-examples/js-tools-rewriter/package.json");
    pub const PACKAGE_LOCK: &str =
        include_str!("../../../hook-examples/js-tools-rewriter/package-lock.json");
}

/// The JavaScript template on sluice's SDK (`hook-examples/sluice-hook-js`,
/// copied into the project byte for byte); built as the bare one is.
mod js_sdk {
    pub const HOOK_JS: &str = include_str!("templates/js-sdk/hook.js.in");
    pub const HOOK_TEST_JS: &str = include_str!("templates/js-sdk/hook.test.js.in");
    pub const TEST_SH: &str = include_str!("templates/js-sdk/test.sh.in");
    pub const README: &str = include_str!("templates/js-sdk/README.md.in");
    pub const SDK_FILES: [(&str, &str); 4] = [
        (
            "sluice-hook.js",
            include_str!("../../../hook-examples/sluice-hook-js/sluice-hook.js"),
        ),
        (
            "testing.js",
            include_str!("../../../hook-examples/sluice-hook-js/testing.js"),
        ),
        (
            "test.sh",
            include_str!("../../../hook-examples/sluice-hook-js/test.sh"),
        ),
        (
            "package.json",
            include_str!("../../../hook-examples/sluice-hook-js/package.json"),
        ),
    ];
}

/// The C template (wit-bindgen c, clang for wasm32-wasi, and the C
/// example's wrapper tool, copied byte for byte).
mod c {
    pub const HOOK_C: &str = include_str!("templates/c/hook.c.in");
    pub const BUILD_SH: &str = include_str!("templates/c/build.sh.in");
    pub const README: &str = include_str!("templates/c/README.md.in");
    pub const WRAP_CARGO_TOML: &str =
        include_str!("../../../hook-examples/c-audit-log/wrap/Cargo.toml");
    pub const WRAP_CARGO_LOCK: &str =
        include_str!("../../../hook-examples/c-audit-log/wrap/Cargo.lock");
    pub const WRAP_MAIN_RS: &str =
        include_str!("../../../hook-examples/c-audit-log/wrap/src/main.rs");
}

/// A language `hook new` knows of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// Rust, wit-bindgen, wasm32-wasip2.
    Rust,
    /// JavaScript, jco's QuickJS backend.
    Js,
    /// Python, componentize-py.
    Python,
    /// C, wit-bindgen c + clang/wasi-libc.
    C,
}

/// `sluice hook new NAME --lang LANG [--dir PATH]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewArgs {
    /// The project's (and the crate's) name.
    pub name: String,
    /// Its language.
    pub lang: Lang,
    /// Where to write it [default: ./NAME].
    pub dir: Option<PathBuf>,
    /// Rust, JavaScript and Python: build on sluice's SDK (copied into the project).
    pub sdk: bool,
}

/// Whether `name` can name a project: a Cargo package name that is also a
/// file name everywhere (ASCII letters, digits, `-`, `_`; a letter first).
pub fn check_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    if !chars.next().is_some_and(|c| c.is_ascii_alphabetic()) {
        return Err(format!("{name:?} must start with an ASCII letter"));
    }
    if name.len() > 64 {
        return Err(format!("{name:?} is longer than 64 characters"));
    }
    if let Some(c) = chars.find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_')) {
        return Err(format!(
            "{name:?} may hold only ASCII letters, digits, - and _ ({c:?} is not allowed)"
        ));
    }
    Ok(())
}

pub(super) fn run(args: &NewArgs) -> anyhow::Result<()> {
    let files = match args.lang {
        Lang::Rust if args.sdk => rust_sdk_files(&args.name),
        Lang::Rust => rust_files(&args.name),
        Lang::Js if args.sdk => js_sdk_files(&args.name),
        Lang::Python if args.sdk => python_sdk_files(&args.name),
        _ if args.sdk => bail!("--sdk: only --lang rust, js and python have an SDK here yet"),
        Lang::Python => python_files(&args.name),
        Lang::Js => js_files(&args.name),
        Lang::C => c_files(&args.name),
    };
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(&args.name));
    if dir.exists()
        && std::fs::read_dir(&dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .next()
            .is_some()
    {
        bail!("{} exists and is not empty", dir.display());
    }
    for (path, text) in &files {
        let path = dir.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    for (path, _) in &files {
        if path.extension().is_some_and(|e| e == "sh") {
            use std::os::unix::fs::PermissionsExt as _;
            let path = dir.join(path);
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
                .with_context(|| format!("making {} executable", path.display()))?;
        }
    }
    let crate_name = args.name.replace('-', "_");
    println!(
        "wrote a {} hook project in {}",
        lang_name(args.lang),
        dir.display()
    );
    for (path, _) in &files {
        println!("  {}", path.display());
    }
    let (build, wasm) = match args.lang {
        Lang::Rust => (
            format!(
                "(cd {} && cargo build --release --target wasm32-wasip2)",
                dir.display()
            ),
            dir.join("target/wasm32-wasip2/release"),
        ),
        _ => (
            format!("{}", dir.join("build.sh").display()),
            dir.join("dist"),
        ),
    };
    println!("build it:  {build}");
    // The SDK projects carry tests that run natively, without building.
    match args.lang {
        Lang::Rust if args.sdk => println!("test it:   (cd {} && cargo test)", dir.display()),
        Lang::Js if args.sdk => println!("test it:   {}", dir.join("test.sh").display()),
        Lang::Python if args.sdk => {
            println!(
                "test it:   (cd {} && sluice-hook-py/test.sh .)",
                dir.display()
            )
        }
        _ => {}
    }
    // The C hook refuses by config alone; the others by tool name.
    let config = if args.lang == Lang::C {
        " --config closed"
    } else {
        ""
    };
    println!(
        "try it:    sluice hook test {}{config} --request '{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{{\"name\":\"delete_everything\",\"arguments\":{{}}}}}}'",
        wasm.join(format!("{crate_name}.wasm")).display()
    );
    Ok(())
}

fn lang_name(lang: Lang) -> &'static str {
    match lang {
        Lang::Rust => "rust",
        Lang::Js => "js",
        Lang::Python => "python",
        Lang::C => "c",
    }
}

fn fill(template: &str, name: &str) -> String {
    template
        .replace("{{name}}", name)
        .replace("{{crate}}", &name.replace('-', "_"))
}

fn rust_files(name: &str) -> Vec<(PathBuf, String)> {
    vec![
        ("Cargo.toml".into(), fill(rust::CARGO_TOML, name)),
        (
            "Cargo.lock".into(),
            lock_for(name, &["serde", "serde_json", "wit-bindgen"], &[]),
        ),
        (".cargo/config.toml".into(), rust::CARGO_CONFIG.to_owned()),
        ("src/lib.rs".into(), fill(rust::LIB_RS, name)),
        ("wit/hook.wit".into(), WIT.to_owned()),
        ("README.md".into(), fill(rust::README, name)),
        (".gitignore".into(), "/target\n".to_owned()),
    ]
}

fn rust_sdk_files(name: &str) -> Vec<(PathBuf, String)> {
    let mut files = vec![
        ("Cargo.toml".into(), fill(rust_sdk::CARGO_TOML, name)),
        (
            "Cargo.lock".into(),
            lock_for(name, &[rust_sdk::SDK], &[rust_sdk::SDK]),
        ),
        (".cargo/config.toml".into(), rust::CARGO_CONFIG.to_owned()),
        ("src/lib.rs".into(), fill(rust_sdk::LIB_RS, name)),
        (
            "sluice-hook/Cargo.toml".into(),
            rust_sdk::SDK_CARGO_TOML.to_owned(),
        ),
        ("sluice-hook/wit/hook.wit".into(), WIT.to_owned()),
    ];
    for (file, text) in rust_sdk::SDK_FILES {
        files.push((PathBuf::from("sluice-hook/src").join(file), text.to_owned()));
    }
    files.push(("README.md".into(), fill(rust::README, name)));
    files.push((".gitignore".into(), "/target\n".to_owned()));
    files
}

fn c_files(name: &str) -> Vec<(PathBuf, String)> {
    vec![
        ("hook.c".into(), fill(c::HOOK_C, name)),
        ("build.sh".into(), fill(c::BUILD_SH, name)),
        ("wrap/Cargo.toml".into(), c::WRAP_CARGO_TOML.to_owned()),
        ("wrap/Cargo.lock".into(), c::WRAP_CARGO_LOCK.to_owned()),
        ("wrap/src/main.rs".into(), c::WRAP_MAIN_RS.to_owned()),
        ("wit/hook.wit".into(), WIT.to_owned()),
        ("README.md".into(), fill(c::README, name)),
        (".gitignore".into(), "/dist\n".to_owned()),
    ]
}

fn js_files(name: &str) -> Vec<(PathBuf, String)> {
    vec![
        ("hook.js".into(), fill(js::HOOK_JS, name)),
        ("package.json".into(), js::PACKAGE_JSON.to_owned()),
        ("package-lock.json".into(), js::PACKAGE_LOCK.to_owned()),
        ("build.sh".into(), fill(js::BUILD_SH, name)),
        ("wit/hook.wit".into(), WIT.to_owned()),
        ("README.md".into(), fill(js::README, name)),
        (".gitignore".into(), "/dist\n/node_modules\n".to_owned()),
    ]
}

fn js_sdk_files(name: &str) -> Vec<(PathBuf, String)> {
    let mut files = vec![
        ("hook.js".into(), fill(js_sdk::HOOK_JS, name)),
        ("hook.test.js".into(), fill(js_sdk::HOOK_TEST_JS, name)),
        ("test.sh".into(), fill(js_sdk::TEST_SH, name)),
        ("package.json".into(), js::PACKAGE_JSON.to_owned()),
        ("package-lock.json".into(), js::PACKAGE_LOCK.to_owned()),
        ("build.sh".into(), fill(js::BUILD_SH, name)),
        ("wit/hook.wit".into(), WIT.to_owned()),
    ];
    for (file, text) in js_sdk::SDK_FILES {
        files.push((PathBuf::from("sluice-hook").join(file), text.to_owned()));
    }
    files.push(("README.md".into(), fill(js_sdk::README, name)));
    files.push((".gitignore".into(), "/dist\n/node_modules\n".to_owned()));
    files
}

fn python_files(name: &str) -> Vec<(PathBuf, String)> {
    vec![
        ("app.py".into(), fill(python::APP_PY, name)),
        ("requirements.txt".into(), python::REQUIREMENTS.to_owned()),
        ("build.sh".into(), fill(python::BUILD_SH, name)),
        ("wit/hook.wit".into(), WIT.to_owned()),
        ("README.md".into(), fill(python::README, name)),
        (".gitignore".into(), "/dist\n__pycache__/\n".to_owned()),
    ]
}

fn python_sdk_files(name: &str) -> Vec<(PathBuf, String)> {
    let mut files = vec![
        ("app.py".into(), fill(python_sdk::APP_PY, name)),
        ("test_app.py".into(), fill(python_sdk::TEST_APP_PY, name)),
        ("requirements.txt".into(), python::REQUIREMENTS.to_owned()),
        ("build.sh".into(), fill(python_sdk::BUILD_SH, name)),
    ];
    for (file, text) in python_sdk::SDK_FILES {
        files.push((PathBuf::from("sluice-hook-py").join(file), text.to_owned()));
    }
    files.push(("sluice-hook-py/wit/hook.wit".into(), WIT.to_owned()));
    files.push(("README.md".into(), fill(python_sdk::README, name)));
    files.push((".gitignore".into(), "/dist\n__pycache__/\n".to_owned()));
    files
}

/// The examples' lock file made the project's: its registry packages (the
/// crates the examples build with), the path packages of `keep` (the SDK)
/// as the examples' lock has them, and the project's own package `name`
/// depending on `deps` (sorted), all in Cargo's order (by name), so that
/// the project resolves to the same crates and `cargo build --locked`
/// accepts it.
fn lock_for(name: &str, deps: &[&str], keep: &[&str]) -> String {
    let (head, body) = rust::LOCK
        .split_once("\n[[package]]\n")
        .expect("a lock file with packages");
    let key = |p: &str| {
        p.lines()
            .next()
            .and_then(|l| l.strip_prefix("name = \""))
            .map(|n| n.trim_end_matches('"').to_owned())
            .unwrap_or_default()
    };
    let mut packages: Vec<String> = body
        .split("\n[[package]]\n")
        .map(|p| p.trim_end())
        .filter(|p| p.contains("\nsource = ") || keep.contains(&key(p).as_str()))
        .map(str::to_owned)
        .collect();
    let mut deps = deps.to_vec();
    deps.sort_unstable();
    let mut root = format!("name = \"{name}\"\nversion = \"0.1.0\"\ndependencies = [\n");
    for d in deps {
        root.push_str(&format!(" \"{d}\",\n"));
    }
    root.push(']');
    packages.push(root);
    packages.sort_by_key(|p| key(p));
    let mut out = format!("{}\n", head.trim_end());
    for p in packages {
        out.push_str("\n[[package]]\n");
        out.push_str(&p);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(check_name("my-hook").is_ok() && check_name("h_1").is_ok());
        for bad in ["", "1hook", "-x", "a b", "a/b", "é", ".."] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_lock_names_the_project_and_keeps_every_other_package() {
        let lock = lock_for("my-hook", &["serde", "serde_json", "wit-bindgen"], &[]);
        assert!(lock.contains("name = \"my-hook\"\n"));
        assert!(
            !lock.contains("name = \"rust-"),
            "the examples' own packages are gone"
        );
        let registry = rust::LOCK.matches("\nsource = ").count();
        assert_eq!(lock.matches("\nsource = ").count(), registry);
        assert_eq!(lock.matches("[[package]]").count(), registry + 1);
        assert!(lock.starts_with("# This file is automatically @generated by Cargo."));
        assert!(lock.contains("version = 4\n\n[[package]]\nname = \"anyhow\""));
    }

    #[test]
    fn the_sdk_lock_holds_the_sdk_as_the_examples_lock_does() {
        let lock = lock_for("h", &[rust_sdk::SDK], &[rust_sdk::SDK]);
        assert!(
            lock.contains(
                "name = \"h\"\nversion = \"0.1.0\"\ndependencies = [\n \"sluice-hook\",\n]"
            )
        );
        assert!(
            lock.contains("name = \"sluice-hook\"\nversion = "),
            "{lock}"
        );
        assert!(!lock.contains("name = \"rust-"));
    }

    #[test]
    fn the_python_sdk_is_copied_whole() {
        // Every Python file of the SDK's package and tests: one added there
        // and not here would be missing from every generated project.
        let sdk = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../hook-examples/sluice-hook-py");
        let mut on_disk: Vec<String> = ["sluice_hook", "tests"]
            .iter()
            .flat_map(|d| {
                std::fs::read_dir(sdk.join(d))
                    .unwrap()
                    .map(move |e| format!("{d}/{}", e.unwrap().file_name().to_string_lossy()))
            })
            .filter(|n| n.ends_with(".py"))
            .collect();
        on_disk.sort();
        let copied: Vec<&str> = python_sdk::SDK_FILES
            .iter()
            .map(|(f, _)| *f)
            .filter(|f| f.ends_with(".py"))
            .collect();
        assert_eq!(on_disk, copied);
        let files = python_sdk_files("py-hook");
        let app = &files.iter().find(|(p, _)| p.ends_with("app.py")).unwrap().1;
        assert!(
            app.contains("\"\"\"py-hook: a sluice hook") && app.contains("Handler = export_hook(")
        );
    }

    #[test]
    fn the_template_depends_on_what_the_lock_holds() {
        let toml = fill(rust::CARGO_TOML, "x");
        for dep in ["wit-bindgen", "serde", "serde_json"] {
            assert!(toml.contains(&format!("\n{dep} = ")), "{dep}");
            assert!(rust::LOCK.contains(&format!("name = \"{dep}\"")), "{dep}");
        }
    }
}
