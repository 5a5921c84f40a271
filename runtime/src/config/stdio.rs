//! Command upstreams: an MCP server sluice starts as a child process and
//! talks to on its stdin and stdout (the MCP stdio transport).
//!
//! This is the configuration only: what to run, with which environment, in
//! which directory, under which process limits, and the timing of its life
//! cycle. The rules the front ends share live here too: the command-line
//! splitter (`--upstream-command 'uvx mcp-server-time'`), the checks of a
//! program and of environment variable names, and the user and group
//! lookups of the sandbox.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::ConfigError;

/// A route whose upstream is a child process speaking MCP on stdin/stdout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stdio {
    /// The program: a name looked up in the child's `PATH`, or a path. A
    /// relative path (`./server`) is taken from `cwd` when it is set (the
    /// front ends join them), else from sluice's working directory.
    pub program: PathBuf,
    /// The arguments after the program, passed as they are: no shell sees
    /// them.
    pub args: Vec<String>,
    /// Variables set in the child's environment, over the inherited ones.
    /// Names are unique.
    pub env: Vec<EnvVar>,
    /// Names of sluice's own environment variables the child inherits when
    /// they are set; no other variable of sluice's reaches it. Default
    /// [`Stdio::DEFAULT_INHERIT_ENV`].
    pub inherit_env: Vec<String>,
    /// The child's working directory (a directory that existed when the
    /// configuration was read). `None`: sluice's own.
    pub cwd: Option<PathBuf>,
    /// One child for every client, or one per client session. Default
    /// [`StdioMode::shared`].
    pub mode: StdioMode,
    /// A client session with no request in flight and no GET stream
    /// attached for this long is closed (per-session mode: its child with
    /// it). `None`: never. Default [`Stdio::DEFAULT_SESSION_IDLE`].
    pub session_idle: Option<Duration>,
    /// How long a child gets to exit once its stdin is closed, before
    /// SIGTERM, and again after SIGTERM, before SIGKILL. Zero allowed.
    /// Default [`Stdio::DEFAULT_SHUTDOWN_GRACE`].
    pub shutdown_grace: Duration,
    /// How long a new child has to answer `initialize`. Default
    /// [`Stdio::DEFAULT_INIT_TIMEOUT`].
    pub init_timeout: Duration,
    /// Process limits set on the child before it runs. Default none.
    pub sandbox: Sandbox,
}

impl Stdio {
    /// The variables a child inherits when `inherit_env` is not given.
    pub const DEFAULT_INHERIT_ENV: [&'static str; 3] = ["PATH", "HOME", "LANG"];
    /// The default `session_idle`: 30 minutes.
    pub const DEFAULT_SESSION_IDLE: Duration = sluice_core::stdio::DEFAULT_SESSION_IDLE;
    /// The default `shutdown_grace`: 5 seconds.
    pub const DEFAULT_SHUTDOWN_GRACE: Duration = crate::stdio::DEFAULT_SHUTDOWN_GRACE;
    /// The default `init_timeout`: 60 seconds.
    pub const DEFAULT_INIT_TIMEOUT: Duration = sluice_core::stdio::DEFAULT_INIT_TIMEOUT;
    /// The path a command route is served at when none is given: a command
    /// has no URL path to take it from.
    pub const DEFAULT_PATH: &'static str = "/mcp";

    /// A command with every other setting at its default.
    pub fn new(program: impl Into<PathBuf>, args: Vec<String>) -> Stdio {
        Stdio {
            program: program.into(),
            args,
            env: Vec::new(),
            inherit_env: Self::DEFAULT_INHERIT_ENV.map(String::from).to_vec(),
            cwd: None,
            mode: StdioMode::shared(),
            session_idle: Some(Self::DEFAULT_SESSION_IDLE),
            shutdown_grace: Self::DEFAULT_SHUTDOWN_GRACE,
            init_timeout: Self::DEFAULT_INIT_TIMEOUT,
            sandbox: Sandbox::default(),
        }
    }

    /// The default route name: the program's file name (`uvx` for
    /// `/usr/bin/uvx`).
    pub(crate) fn base_name(&self) -> String {
        self.program
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "command".into())
    }

    /// The child's whole environment, resolved when it starts: every
    /// `inherit_env` variable that `lookup` finds (unset ones are skipped),
    /// then `env`, which wins over an inherited variable of the same name.
    /// `lookup` reads sluice's own environment, e.g.
    /// `|name| std::env::var(name).ok()`.
    ///
    /// A `from_env` variable that is unset, or a `from_file` file that
    /// cannot be read, is an error naming the variable and where its value
    /// should have come from, never a value. The values returned are
    /// secrets: hand them to the child, never to a log.
    pub fn child_env(
        &self,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Vec<(String, String)>, ConfigError> {
        let mut vars = Vec::with_capacity(self.inherit_env.len() + self.env.len());
        for name in &self.inherit_env {
            if self.env.iter().all(|v| &v.name != name)
                && let Some(value) = lookup(name)
            {
                vars.push((name.clone(), value));
            }
        }
        for var in &self.env {
            let refused = |problem: String| {
                ConfigError::invalid(None, None, format!("env.{}", var.name), problem)
            };
            let value = match &var.value {
                EnvValue::Literal(secret) => secret.expose().to_string(),
                EnvValue::FromEnv(from) => lookup(from).ok_or_else(|| {
                    refused(format!("sluice's environment variable {from} is not set"))
                })?,
                EnvValue::FromFile(path) => read_secret(path).map_err(refused)?,
            };
            vars.push((var.name.clone(), value));
        }
        Ok(vars)
    }
}

/// The command, quoted so that `split_command` reads it back (for logs;
/// arguments are not secret, `env` values are).
impl fmt::Display for Stdio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", quote(&self.program.to_string_lossy()))?;
        for arg in &self.args {
            write!(f, " {}", quote(arg))?;
        }
        Ok(())
    }
}

/// How a command route's children map to client sessions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StdioMode {
    /// One child serves every client session of the route; sluice gives
    /// each client request a child id of its own and brings the answer back
    /// to the session that asked.
    Shared {
        /// When the child exits, sluice starts it again, waiting twice as
        /// long after each failed start, at most this long. Default
        /// [`StdioMode::DEFAULT_RESTART_BACKOFF_MAX`].
        restart_backoff_max: Duration,
    },
    /// Each client session gets a child of its own, started by its
    /// `initialize` and stopped when the session ends.
    PerSession {
        /// Most children running at once on the route. Past it, the
        /// `initialize` that would start another is refused. Default
        /// [`StdioMode::DEFAULT_MAX_PROCESSES`].
        max_processes: usize,
    },
}

impl StdioMode {
    /// The default `restart_backoff_max`: 30 seconds.
    pub const DEFAULT_RESTART_BACKOFF_MAX: Duration =
        sluice_core::stdio::DEFAULT_RESTART_BACKOFF_MAX;
    /// The default `max_processes`: 64.
    pub const DEFAULT_MAX_PROCESSES: usize = crate::stdio::DEFAULT_MAX_PROCESSES;

    /// Shared mode with its default restart backoff (the default mode).
    pub fn shared() -> StdioMode {
        StdioMode::Shared {
            restart_backoff_max: Self::DEFAULT_RESTART_BACKOFF_MAX,
        }
    }

    /// Per-session mode with its default process limit.
    pub fn per_session() -> StdioMode {
        StdioMode::PerSession {
            max_processes: Self::DEFAULT_MAX_PROCESSES,
        }
    }
}

/// One variable of a child's environment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnvVar {
    /// The name: letters, digits and `_`, not starting with a digit.
    pub name: String,
    /// Where its value comes from.
    pub value: EnvValue,
}

/// Where a child's environment variable takes its value, when the child
/// starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EnvValue {
    /// The value written in the configuration.
    Literal(Secret),
    /// The value of sluice's own environment variable of this name (it must
    /// be set).
    FromEnv(String),
    /// The content of this file, without one trailing newline (it must be
    /// readable UTF-8 text without NUL bytes).
    FromFile(PathBuf),
}

/// A value that may be a secret: its `Debug` prints `<redacted>`, and it has
/// no `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value itself, for the child's environment only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Process limits set on a child before it runs its program. They are
/// limits of one process (setrlimit, setuid), not a container: the child
/// still sees the same filesystem, network and other processes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sandbox {
    /// `RLIMIT_AS`: most virtual address space, in bytes. `None`: no limit.
    pub max_memory: Option<u64>,
    /// `RLIMIT_CPU`: most CPU time over the child's life, whole seconds
    /// (the kernel sends SIGXCPU, then SIGKILL). `None`: no limit.
    pub max_cpu: Option<Duration>,
    /// `RLIMIT_NOFILE`: most open file descriptors. `None`: sluice's own.
    pub max_open_files: Option<u64>,
    /// The user and group the child runs as. `None`: sluice's own.
    pub run_as: Option<RunAs>,
}

/// The ids a child runs as: its uid, its gid, and no supplementary groups.
/// Changing them needs sluice to run as root (or with CAP_SETUID and
/// CAP_SETGID).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RunAs {
    /// The user id.
    pub uid: u32,
    /// The group id: the `group` given, else the user's primary group.
    pub gid: u32,
}

/// Reads a `from_file` secret: UTF-8 text without NUL, one trailing newline
/// (`\n` or `\r\n`) dropped. The error is the problem.
pub(crate) fn read_secret(path: &Path) -> Result<String, String> {
    let shown = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {shown:?}: {e}"))?;
    let mut text = String::from_utf8(bytes).map_err(|_| format!("{shown:?} is not UTF-8 text"))?;
    if text.contains('\0') {
        return Err(format!("{shown:?} contains a NUL byte"));
    }
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    Ok(text)
}

/// Checks an environment variable name: letters, digits and `_`, not
/// starting with a digit (what every shell accepts). Returns the problem.
pub(crate) fn check_env_name(name: &str) -> Result<(), String> {
    let mut bytes = name.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_');
    if first_ok && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not an environment variable name (letters, digits and _, not starting with a digit)"
        ))
    }
}

/// Checks a command's program. Returns the problem.
pub(crate) fn check_program(program: &str) -> Result<(), String> {
    if program.is_empty() {
        return Err("the program (the command's first word) cannot be empty".into());
    }
    if program.contains('\0') {
        return Err(format!("{program:?} contains a NUL character"));
    }
    if let Some((name, _)) = program.split_once('=')
        && check_env_name(name).is_ok()
    {
        return Err(format!(
            "{program:?} is a variable assignment, not a program: no shell runs the command; set the variable in the child's environment (env, or --stdio-env NAME=VALUE)"
        ));
    }
    Ok(())
}

/// Checks one argument of a command. Returns the problem.
pub(crate) fn check_arg(arg: &str) -> Result<(), String> {
    match arg.contains('\0') {
        true => Err(format!("{arg:?} contains a NUL character")),
        false => Ok(()),
    }
}

/// Splits a command line into words the way a POSIX shell quotes, and no
/// further: `'single'` quotes keep everything, `"double"` quotes keep
/// everything but `\"`, `\\`, `\$`, `` \` `` and backslash-newline, and a
/// backslash outside quotes keeps the next character. Nothing is expanded:
/// `*`, `?` and `~` are passed as written. A shell operator (`|`, `&`,
/// `;`, `<`, `>`, `(`, `)`) outside quotes, and `$` or `` ` `` outside
/// single quotes, are refused rather than passed on, since a reader would
/// expect a shell to act on them. Returns the program and its arguments;
/// the error is the problem.
pub(crate) fn split_command(text: &str) -> Result<(String, Vec<String>), String> {
    let mut words = Vec::new();
    // `Some` once a word has begun, even an empty one (`''`).
    let mut word: Option<String> = None;
    let mut chars = text.chars();
    let unterminated = |q: char| format!("{text:?} has an unterminated {q} quote");
    let expansion = |c: char| {
        format!(
            "{text:?} has {c} outside single quotes: sluice runs the program without a shell and expands no variable or command (write '{c}' for a literal {c}; pass a variable with --stdio-env NAME; for a shell, run sh -c '…')"
        )
    };
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\n' => words.extend(word.take()),
            '\'' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => w.push(c),
                        None => return Err(unterminated('\'')),
                    }
                }
            }
            '"' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some('\n') => {}
                            Some(c @ ('"' | '\\' | '$' | '`')) => w.push(c),
                            Some(c) => w.extend(['\\', c]),
                            None => return Err(unterminated('"')),
                        },
                        Some(c @ ('$' | '`')) => return Err(expansion(c)),
                        Some(c) => w.push(c),
                        None => return Err(unterminated('"')),
                    }
                }
            }
            '\\' => match chars.next() {
                Some('\n') => {}
                Some(c) => word.get_or_insert_with(String::new).push(c),
                None => return Err(format!("{text:?} ends with a lone backslash")),
            },
            '|' | '&' | ';' | '<' | '>' | '(' | ')' => {
                return Err(format!(
                    "{text:?} has the shell operator {c} outside quotes: sluice runs one program without a shell (for a shell, run sh -c '…')"
                ));
            }
            '$' | '`' => return Err(expansion(c)),
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    if words.is_empty() {
        return Err(EMPTY_COMMAND.into());
    }
    let program = words.remove(0);
    Ok((program, words))
}

/// What an empty command is told.
pub(crate) const EMPTY_COMMAND: &str =
    "cannot be empty (give the program to run and its arguments)";

/// The program to start: a relative path (one with a `/`) is taken from the
/// directory the child starts in, `cwd`, as a shell would after `cd`; a
/// name is looked up in the child's `PATH`.
pub(crate) fn program_in(cwd: Option<&Path>, program: &str) -> PathBuf {
    match cwd {
        Some(dir) if program.contains('/') && Path::new(program).is_relative() => dir.join(program),
        _ => PathBuf::from(program),
    }
}

/// A word as [`split_command`] reads it back: as it is when it is plain,
/// else in single quotes.
fn quote(word: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "_@%+=:,./-".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// Where the sandbox's user and group names are looked up.
pub(crate) const PASSWD: &str = "/etc/passwd";
/// See [`PASSWD`].
pub(crate) const GROUP: &str = "/etc/group";

/// A user of an `/etc/passwd` text, by name or by uid: `(uid, primary gid)`.
pub(crate) fn find_user(passwd: &str, user: Account<'_>) -> Option<(u32, u32)> {
    entries(passwd).find_map(|fields| {
        let uid = fields.get(2)?.parse().ok()?;
        let gid = fields.get(3)?.parse().ok()?;
        user.is(fields[0], uid).then_some((uid, gid))
    })
}

/// A group of an `/etc/group` text, by name: its gid.
pub(crate) fn find_group(group: &str, name: &str) -> Option<u32> {
    entries(group).find_map(|fields| {
        let gid = fields.get(2)?.parse().ok()?;
        (fields[0] == name).then_some(gid)
    })
}

/// A user or group as written: a name or a numeric id.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Account<'a> {
    Name(&'a str),
    Id(u32),
}

impl Account<'_> {
    fn is(self, name: &str, id: u32) -> bool {
        match self {
            Account::Name(n) => n == name,
            Account::Id(i) => i == id,
        }
    }
}

/// The colon-separated fields of each entry of a passwd or group file.
fn entries(text: &str) -> impl Iterator<Item = Vec<&str>> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| l.split(':').collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(text: &str) -> Vec<String> {
        let (program, args) = split_command(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
        [vec![program], args].concat()
    }

    #[test]
    fn splits_like_a_shell() {
        let cases: &[(&str, &[&str])] = &[
            ("uvx mcp-server-time", &["uvx", "mcp-server-time"]),
            ("  a \t b\n c  ", &["a", "b", "c"]),
            ("a 'b c' \"d e\"", &["a", "b c", "d e"]),
            ("a 'it'\\''s'", &["a", "it's"]),
            ("a ''", &["a", ""]),
            ("a \"\"x", &["a", "x"]),
            (
                r#"a "q\"uote" "b\\s" "\n""#,
                &["a", "q\"uote", "b\\s", "\\n"],
            ),
            (r"a b\ c \'x\'", &["a", "b c", "'x'"]),
            ("a \\\nb", &["a", "b"]),
            (
                "a 'x|y;z&&w>v' \"(p)<q\" \\|",
                &["a", "x|y;z&&w>v", "(p)<q", "|"],
            ),
            (
                r#"a '$HOME' "\$x" \$y '`c`'"#,
                &["a", "$HOME", "$x", "$y", "`c`"],
            ),
            (
                "npx -y @scope/srv *.json ~/x #c",
                &["npx", "-y", "@scope/srv", "*.json", "~/x", "#c"],
            ),
            ("a=b=c", &["a=b=c"]),
        ];
        for (text, want) in cases {
            assert_eq!(split(text), *want, "{text:?}");
        }
    }

    #[test]
    fn refuses_what_only_a_shell_would_do() {
        for (text, want) in [
            ("", "cannot be empty"),
            ("  \t", "cannot be empty"),
            ("a | b", "has the shell operator | outside quotes"),
            ("a;b", "has the shell operator ; outside quotes"),
            ("a && b", "has the shell operator & outside quotes"),
            ("a > log", "has the shell operator > outside quotes"),
            ("a 2>&1", "has the shell operator > outside quotes"),
            ("a < in", "has the shell operator < outside quotes"),
            ("(a)", "has the shell operator ( outside quotes"),
            ("a $HOME", "has $ outside single quotes"),
            ("a \"$HOME\"", "has $ outside single quotes"),
            ("a `id`", "has ` outside single quotes"),
            ("a 'b", "has an unterminated ' quote"),
            ("a \"b", "has an unterminated \" quote"),
            ("a \"b\\", "has an unterminated \" quote"),
            ("a \\", "ends with a lone backslash"),
        ] {
            let e = split_command(text).unwrap_err();
            assert!(e.contains(want), "{text:?}: {e}");
        }
        let e = split_command("srv | tee log").unwrap_err();
        assert_eq!(
            e,
            "\"srv | tee log\" has the shell operator | outside quotes: sluice runs one program without a shell (for a shell, run sh -c '…')"
        );
    }

    #[test]
    fn display_quotes_back() {
        for text in [
            "uvx mcp-server-time --local-timezone=Europe/Paris",
            "a 'b c' '' 'it'\\''s' '$x' '|'",
        ] {
            let words = split(text);
            let s = Stdio::new(&words[0], words[1..].to_vec());
            assert_eq!(s.to_string(), text);
            assert_eq!(split(&s.to_string()), words);
        }
    }

    #[test]
    fn programs_and_names() {
        check_program("uvx").unwrap();
        check_program("/usr/bin/env").unwrap();
        check_program("./a=b").unwrap();
        assert!(check_program("").is_err());
        assert!(check_program("a\0b").is_err());
        let e = check_program("DEBUG=1").unwrap_err();
        assert!(e.contains("is a variable assignment, not a program"), "{e}");
        for ok in ["PATH", "_x", "a1_B"] {
            check_env_name(ok).unwrap();
        }
        for bad in ["", "1A", "A-B", "A=B", "A B", "Ä"] {
            assert!(check_env_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn passwd_and_group() {
        let passwd = "# comment\nroot:x:0:0:root:/root:/bin/sh\n\nmcp:x:1001:1002::/home/mcp:/bin/false\nbroken:x:no:1\n";
        assert_eq!(find_user(passwd, Account::Name("mcp")), Some((1001, 1002)));
        assert_eq!(find_user(passwd, Account::Id(0)), Some((0, 0)));
        assert_eq!(find_user(passwd, Account::Name("broken")), None);
        assert_eq!(find_user(passwd, Account::Id(7)), None);
        let group = "root:x:0:\nmcp:x:1002:alice,bob\n";
        assert_eq!(find_group(group, "mcp"), Some(1002));
        assert_eq!(find_group(group, "wheel"), None);
    }
}
