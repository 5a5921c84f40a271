//! The TOML front end.
//!
//! The file is parsed into toml's spanned document tree and walked by hand
//! rather than deserialised with serde: that way every error — unknown key,
//! wrong type, bad value — carries the full key path (`route[1].upstream`)
//! and the line and column, and every table refuses unknown keys.

use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::duration::{parse_duration, parse_size};
use super::url::parse_listen;
use super::{
    Config, ConfigError, FileKeys, Grants, HookConfig, HookMode, HostRule, Legacy, LegacyMode,
    Limits, Log, LogFormat, LogLevel, MAX_WORKERS, OnError, OriginRule, Pool, Roots, Route,
    Security, Server, Timeouts, Tls, Transport, Upstream, check_method_pattern, check_route_path,
    hook_base_name, unique_names,
};

use crate::hooks::check_header_name;

type Result<T> = std::result::Result<T, ConfigError>;
type Value<'a> = Spanned<DeValue<'a>>;
/// A string value with its span.
type Str<'a> = (&'a str, Range<usize>);

/// How errors about files name their keys in the file form.
pub(super) const FILE_KEYS: FileKeys = FileKeys {
    ca_file: "tls.ca_file",
    hook_path: |i| format!("hook[{i}].path"),
};

/// The default listen address, shared with the command line.
pub(super) const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// The text being parsed, for positions in errors.
struct Cx<'t> {
    text: &'t str,
    origin: &'t str,
}

impl Cx<'_> {
    /// 1-based line and column (in characters) of a byte offset.
    fn position(&self, offset: usize) -> (usize, usize) {
        let before = self.text.get(..offset).unwrap_or(self.text);
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
        (line, column)
    }

    fn err(&self, span: &Range<usize>, key: &str, problem: impl Into<String>) -> ConfigError {
        ConfigError::invalid(
            Some(self.origin),
            Some(self.position(span.start)),
            key,
            problem,
        )
    }

    /// The source text of a value, shortened, for "found ..." messages.
    fn snippet(&self, span: &Range<usize>) -> String {
        let text = self.text.get(span.clone()).unwrap_or("").trim();
        let line = text.lines().next().unwrap_or("");
        if line.chars().count() > 40 || line.len() < text.len() {
            format!("{}…", line.chars().take(40).collect::<String>())
        } else {
            line.to_string()
        }
    }
}

/// One table of the document (or an absent one: every key then reads as
/// missing), with its key path.
struct Tbl<'a> {
    cx: &'a Cx<'a>,
    path: String,
    map: Option<&'a DeTable<'a>>,
    span: Range<usize>,
}

impl<'a> Tbl<'a> {
    fn key(&self, k: &str) -> String {
        if self.path.is_empty() {
            k.to_string()
        } else {
            format!("{}.{k}", self.path)
        }
    }

    /// Refuses keys outside `keys`, reporting the first in file order.
    fn known(&self, keys: &[&str]) -> Result<()> {
        let Some(map) = self.map else { return Ok(()) };
        let unknown = map
            .iter()
            .filter(|(k, _)| !keys.contains(&k.get_ref().as_ref()))
            .min_by_key(|(k, _)| k.span().start);
        match unknown {
            None => Ok(()),
            Some((k, _)) => Err(self.cx.err(
                &k.span(),
                &self.key(k.get_ref()),
                format!("unknown key (expected one of: {})", keys.join(", ")),
            )),
        }
    }

    fn get(&self, k: &str) -> Option<&'a Value<'a>> {
        self.map.and_then(|m| m.get(k))
    }

    fn type_err(&self, k: &str, v: &Value<'_>, want: &str) -> ConfigError {
        let found = match v.get_ref() {
            DeValue::Table(_) => "a table".to_string(),
            DeValue::Array(_) => "an array".to_string(),
            other => {
                let t = other.type_str();
                let article = if t.starts_with(['a', 'e', 'i', 'o', 'u']) {
                    "an"
                } else {
                    "a"
                };
                format!("{article} {t} {}", self.cx.snippet(&v.span()))
            }
        };
        self.cx.err(
            &v.span(),
            &self.key(k),
            format!("expected {want}, found {found}"),
        )
    }

    fn missing(&self, k: &str, why: &str) -> ConfigError {
        self.cx
            .err(&self.span, &self.key(k), format!("missing ({why})"))
    }

    fn string(&self, k: &str) -> Result<Option<Str<'a>>> {
        match self.get(k) {
            None => Ok(None),
            Some(v) => match v.get_ref() {
                DeValue::String(s) => Ok(Some((s.as_ref(), v.span()))),
                _ => Err(self.type_err(k, v, "a string")),
            },
        }
    }

    fn boolean(&self, k: &str, default: bool) -> Result<bool> {
        match self.get(k) {
            None => Ok(default),
            Some(v) => v
                .get_ref()
                .as_bool()
                .ok_or_else(|| self.type_err(k, v, "true or false")),
        }
    }

    /// A whole number at least `min`.
    fn count(&self, k: &str, default: usize, min: usize) -> Result<usize> {
        let Some(v) = self.get(k) else {
            return Ok(default);
        };
        let DeValue::Integer(int) = v.get_ref() else {
            return Err(self.type_err(k, v, "a whole number"));
        };
        let n = i128::from_str_radix(int.as_str(), int.radix()).ok();
        match n.and_then(|n| usize::try_from(n).ok()) {
            Some(n) if n >= min => Ok(n),
            _ => Err(self.cx.err(
                &v.span(),
                &self.key(k),
                format!(
                    "{} is out of range (at least {min})",
                    self.cx.snippet(&v.span())
                ),
            )),
        }
    }

    /// A byte size above zero: a whole number of bytes or a string with a unit.
    fn size(&self, k: &str, default: usize) -> Result<usize> {
        let Some(v) = self.get(k) else {
            return Ok(default);
        };
        let bytes: u64 = match v.get_ref() {
            DeValue::Integer(int) => i128::from_str_radix(int.as_str(), int.radix())
                .ok()
                .and_then(|n| u64::try_from(n).ok())
                .ok_or_else(|| {
                    self.cx
                        .err(&v.span(), &self.key(k), "a size cannot be negative")
                })?,
            DeValue::String(s) => {
                parse_size(s).map_err(|p| self.cx.err(&v.span(), &self.key(k), p))?
            }
            _ => return Err(self.type_err(k, v, "a size (bytes, or a string like \"4 MiB\")")),
        };
        match usize::try_from(bytes) {
            Ok(0) => Err(self
                .cx
                .err(&v.span(), &self.key(k), "must be more than zero")),
            Ok(n) => Ok(n),
            Err(_) => Err(self
                .cx
                .err(&v.span(), &self.key(k), "is too large for this machine")),
        }
    }

    /// A duration string; `Ok(None)` when absent, `Some(None)` for "off".
    #[allow(clippy::option_option)] // absent vs "off" is the point
    fn duration(&self, k: &str) -> Result<Option<(Option<Duration>, Range<usize>)>> {
        let Some(v) = self.get(k) else {
            return Ok(None);
        };
        let DeValue::String(s) = v.get_ref() else {
            return Err(self.type_err(k, v, "a duration string such as \"10s\" or \"off\""));
        };
        let d = parse_duration(s).map_err(|p| self.cx.err(&v.span(), &self.key(k), p))?;
        if d == Some(Duration::ZERO) {
            return Err(self.cx.err(
                &v.span(),
                &self.key(k),
                "must be more than zero (write \"off\" for no limit where that is allowed)",
            ));
        }
        Ok(Some((d, v.span())))
    }

    /// A duration that cannot be "off".
    fn bounded(&self, k: &str, default: Duration) -> Result<Duration> {
        match self.duration(k)? {
            None => Ok(default),
            Some((Some(d), _)) => Ok(d),
            Some((None, span)) => Err(self.cx.err(
                &span,
                &self.key(k),
                "cannot be \"off\"; give a duration such as 10s",
            )),
        }
    }

    /// A duration that may be "off" (`None`).
    fn optional(&self, k: &str, default: Option<Duration>) -> Result<Option<Duration>> {
        Ok(self.duration(k)?.map_or(default, |(d, _)| d))
    }

    /// One of a fixed set of strings.
    fn choice<T: Copy>(&self, k: &str, options: &[(&str, T)], default: T) -> Result<T> {
        let Some((s, span)) = self.string(k)? else {
            return Ok(default);
        };
        options
            .iter()
            .find(|(name, _)| *name == s)
            .map(|(_, t)| *t)
            .ok_or_else(|| {
                let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
                self.cx.err(
                    &span,
                    &self.key(k),
                    format!("{s:?} is not one of: {}", names.join(", ")),
                )
            })
    }

    /// An array of strings, each with its span.
    fn strings(&self, k: &str) -> Result<Option<Vec<Str<'a>>>> {
        let Some(v) = self.get(k) else {
            return Ok(None);
        };
        let DeValue::Array(items) = v.get_ref() else {
            return Err(self.type_err(k, v, "an array of strings"));
        };
        items
            .iter()
            .enumerate()
            .map(|(i, item)| match item.get_ref() {
                DeValue::String(s) => Ok((s.as_ref(), item.span())),
                _ => Err(self.type_err(&format!("{k}[{i}]"), item, "a string")),
            })
            .collect::<Result<Vec<_>>>()
            .map(Some)
    }

    /// A sub-table; an absent one reads as empty.
    fn table(&self, k: &str) -> Result<Tbl<'a>> {
        let (map, span) = match self.get(k) {
            None => (None, self.span.clone()),
            Some(v) => match v.get_ref() {
                DeValue::Table(t) => (Some(t), v.span()),
                _ => return Err(self.type_err(k, v, &format!("a table ([{k}])"))),
            },
        };
        Ok(Tbl {
            cx: self.cx,
            path: self.key(k),
            map,
            span,
        })
    }

    /// An array of tables (`[[k]]`).
    fn tables(&self, k: &str) -> Result<Vec<Tbl<'a>>> {
        let Some(v) = self.get(k) else {
            return Ok(Vec::new());
        };
        let want = format!("an array of tables ([[{k}]])");
        let DeValue::Array(items) = v.get_ref() else {
            return Err(self.type_err(k, v, &want));
        };
        items
            .iter()
            .enumerate()
            .map(|(i, item)| match item.get_ref() {
                DeValue::Table(t) => Ok(Tbl {
                    cx: self.cx,
                    path: format!("{}[{i}]", self.key(k)),
                    map: Some(t),
                    span: item.span(),
                }),
                _ => Err(self.type_err(&format!("{k}[{i}]"), item, "a table")),
            })
            .collect()
    }
}

/// Parses and validates a config file's text.
pub(super) fn parse(text: &str, origin: &str, base_dir: &Path) -> Result<Config> {
    let doc = DeTable::parse(text).map_err(|e| {
        let cx = Cx { text, origin };
        let (line, column) = cx.position(e.span().map_or(0, |s| s.start));
        ConfigError::Syntax {
            origin: origin.to_string(),
            line,
            column,
            message: e.message().to_string(),
        }
    })?;
    let cx = Cx { text, origin };
    let root = Tbl {
        cx: &cx,
        path: String::new(),
        map: Some(doc.get_ref()),
        span: 0..0,
    };
    root.known(&[
        "listen", "route", "limits", "timeouts", "security", "tls", "log", "pool", "server", "hook",
    ])?;

    let listen = match root.string("listen")? {
        None => parse_listen(DEFAULT_LISTEN).unwrap_or_else(|_| unreachable!()),
        Some((s, span)) => parse_listen(s).map_err(|p| cx.err(&span, "listen", p))?,
    };
    Ok(Config {
        listen,
        routes: routes(&root)?,
        limits: limits(&root.table("limits")?)?,
        timeouts: timeouts(&root.table("timeouts")?)?,
        security: security(&root.table("security")?, listen)?,
        tls: tls(&root.table("tls")?, base_dir)?,
        log: log(&root.table("log")?)?,
        pool: pool(&root.table("pool")?)?,
        server: server(&root.table("server")?)?,
        hooks: hooks(&root, base_dir)?,
    })
}

/// Route keys that only mean something for a legacy upstream.
const LEGACY_KEYS: [&str; 4] = [
    "legacy_mode",
    "legacy_max_sessions",
    "legacy_session_idle",
    "legacy_allow_other_origin",
];

fn routes(root: &Tbl<'_>) -> Result<Vec<Route>> {
    let tables = root.tables("route")?;
    if tables.is_empty() {
        return Err(ConfigError::invalid(
            Some(root.cx.origin),
            None,
            "route",
            "at least one [[route]] is required",
        ));
    }
    let mut routes: Vec<Route> = Vec::new();
    let mut names: Vec<(Option<String>, String)> = Vec::new();
    let mut well_known_at: Option<usize> = None;
    for (i, t) in tables.iter().enumerate() {
        t.known(&[
            "name",
            "path",
            "upstream",
            "transport",
            "legacy_mode",
            "legacy_max_sessions",
            "legacy_session_idle",
            "legacy_allow_other_origin",
            "well_known",
        ])?;
        let (url, url_span) = t
            .string("upstream")?
            .ok_or_else(|| t.missing("upstream", "every route needs an upstream URL"))?;
        let upstream =
            Upstream::parse(url).map_err(|p| t.cx.err(&url_span, &t.key("upstream"), p))?;

        let path = match t.string("path")? {
            None => upstream.path.clone(),
            Some((p, span)) => {
                check_route_path(p).map_err(|e| t.cx.err(&span, &t.key("path"), e))?;
                p.to_string()
            }
        };
        let trimmed = path.trim_end_matches('/');
        if let Some(j) = routes
            .iter()
            .position(|r| r.path.trim_end_matches('/') == trimmed)
        {
            let span = t.get("path").map_or(url_span.clone(), |v| v.span());
            return Err(t.cx.err(
                &span,
                &t.key("path"),
                format!("{path:?} is already served by route[{j}]"),
            ));
        }

        let transport = t.choice(
            "transport",
            &[
                ("streamable", Transport::Streamable),
                ("sse", Transport::Sse),
                ("auto", Transport::Auto),
            ],
            Transport::Streamable,
        )?;
        let legacy_mode = t.choice(
            "legacy_mode",
            &[
                ("session", LegacyMode::Session),
                ("per-request", LegacyMode::PerRequest),
            ],
            LegacyMode::Session,
        )?;
        if transport == Transport::Streamable {
            for key in LEGACY_KEYS {
                if let Some(v) = t.get(key) {
                    return Err(t.cx.err(
                        &v.span(),
                        &t.key(key),
                        "only applies to transport = \"sse\" or \"auto\"",
                    ));
                }
            }
        }
        let d = Legacy::default();
        let legacy = Legacy {
            max_sessions: t.count("legacy_max_sessions", d.max_sessions, 1)?,
            session_idle: match t.duration("legacy_session_idle")? {
                None => d.session_idle,
                Some((idle, _)) => idle,
            },
            allow_other_origin: t.boolean("legacy_allow_other_origin", d.allow_other_origin)?,
        };

        let well_known = t.boolean("well_known", i == 0)?;
        if well_known {
            if let Some(j) = well_known_at {
                let span = t.get("well_known").map_or(t.span.clone(), |v| v.span());
                return Err(t.cx.err(
                    &span,
                    &t.key("well_known"),
                    format!("only one route may serve /.well-known/, and route[{j}] already does"),
                ));
            }
            well_known_at = Some(i);
        }

        let name = match t.string("name")? {
            None => None,
            Some((n, span)) => {
                if n.is_empty() {
                    return Err(t.cx.err(&span, &t.key("name"), "cannot be empty"));
                }
                if let Some(j) = names.iter().position(|(m, _)| m.as_deref() == Some(n)) {
                    return Err(t.cx.err(
                        &span,
                        &t.key("name"),
                        format!("{n:?} is already the name of route[{j}]"),
                    ));
                }
                Some(n.to_string())
            }
        };
        names.push((name, default_route_name(&upstream)));
        routes.push(Route {
            name: String::new(),
            path,
            upstream,
            transport,
            legacy_mode,
            legacy,
            well_known,
        });
    }
    for (route, name) in routes.iter_mut().zip(unique_names(&names)) {
        route.name = name;
    }
    Ok(routes)
}

pub(super) fn default_route_name(upstream: &Upstream) -> String {
    match &upstream.host {
        super::Host::Name(n) => n.clone(),
        ip => ip.to_string(),
    }
}

fn limits(t: &Tbl<'_>) -> Result<Limits> {
    t.known(&[
        "max_head_bytes",
        "max_headers",
        "max_request_body_bytes",
        "max_response_head_bytes",
        "max_response_body_bytes",
        "max_sse_event_bytes",
        "max_json_depth",
    ])?;
    let d = Limits::default();
    Ok(Limits {
        max_head_bytes: t.size("max_head_bytes", d.max_head_bytes)?,
        max_headers: t.count("max_headers", d.max_headers, 1)?,
        max_request_body_bytes: t.size("max_request_body_bytes", d.max_request_body_bytes)?,
        max_response_head_bytes: t.size("max_response_head_bytes", d.max_response_head_bytes)?,
        max_response_body_bytes: t.size("max_response_body_bytes", d.max_response_body_bytes)?,
        max_sse_event_bytes: t.size("max_sse_event_bytes", d.max_sse_event_bytes)?,
        max_json_depth: t.count("max_json_depth", d.max_json_depth, 1)?,
    })
}

fn timeouts(t: &Tbl<'_>) -> Result<Timeouts> {
    t.known(&[
        "connect",
        "response_head",
        "stream_idle",
        "sse_keepalive",
        "pool_idle",
        "shutdown_grace",
        "client_head",
        "client_idle",
    ])?;
    let d = Timeouts::default();
    // shutdown_grace alone may be zero ("stop at once").
    let shutdown_grace = match t.get("shutdown_grace").map(|v| v.get_ref()) {
        Some(DeValue::String(s)) if parse_duration(s) == Ok(Some(Duration::ZERO)) => Duration::ZERO,
        _ => t.bounded("shutdown_grace", d.shutdown_grace)?,
    };
    Ok(Timeouts {
        connect: t.bounded("connect", d.connect)?,
        response_head: t.optional("response_head", d.response_head)?,
        stream_idle: t.optional("stream_idle", d.stream_idle)?,
        sse_keepalive: t.optional("sse_keepalive", d.sse_keepalive)?,
        pool_idle: t.bounded("pool_idle", d.pool_idle)?,
        shutdown_grace,
        client_head: t.bounded("client_head", d.client_head)?,
        client_idle: t.bounded("client_idle", d.client_idle)?,
    })
}

fn security(t: &Tbl<'_>, listen: std::net::SocketAddr) -> Result<Security> {
    t.known(&["allowed_hosts", "allowed_origins", "forwarded_headers"])?;
    let mut s = Security::defaults_for(listen);
    if let Some(hosts) = t.strings("allowed_hosts")? {
        if hosts.is_empty() {
            let span = t.get("allowed_hosts").map_or(t.span.clone(), |v| v.span());
            return Err(t.cx.err(
                &span,
                &t.key("allowed_hosts"),
                "an empty list would refuse every request; write [\"*\"] to allow any host",
            ));
        }
        s.allowed_hosts = hosts
            .iter()
            .enumerate()
            .map(|(i, (h, span))| {
                HostRule::parse(h)
                    .map_err(|p| t.cx.err(span, &t.key(&format!("allowed_hosts[{i}]")), p))
            })
            .collect::<Result<_>>()?;
    }
    if let Some(origins) = t.strings("allowed_origins")? {
        s.allowed_origins = origins
            .iter()
            .enumerate()
            .map(|(i, (o, span))| {
                OriginRule::parse(o)
                    .map_err(|p| t.cx.err(span, &t.key(&format!("allowed_origins[{i}]")), p))
            })
            .collect::<Result<_>>()?;
    }
    s.forwarded_headers = t.boolean("forwarded_headers", true)?;
    Ok(s)
}

fn tls(t: &Tbl<'_>, base_dir: &Path) -> Result<Tls> {
    t.known(&["ca_file", "roots"])?;
    let ca_file = match t.string("ca_file")? {
        None => None,
        Some(("", span)) => return Err(t.cx.err(&span, &t.key("ca_file"), "cannot be empty")),
        Some((p, _)) => Some(base_dir.join(p)),
    };
    let roots = t.choice(
        "roots",
        &[
            ("webpki", Roots::Webpki),
            ("system", Roots::System),
            ("none", Roots::None),
        ],
        Roots::Webpki,
    )?;
    if roots == Roots::None && ca_file.is_none() {
        let span = t.get("roots").map_or(t.span.clone(), |v| v.span());
        return Err(t.cx.err(
            &span,
            &t.key("roots"),
            "\"none\" trusts no certificate unless tls.ca_file is set",
        ));
    }
    Ok(Tls { ca_file, roots })
}

pub(super) const LEVELS: [(&str, LogLevel); 6] = [
    ("off", LogLevel::Off),
    ("error", LogLevel::Error),
    ("warn", LogLevel::Warn),
    ("info", LogLevel::Info),
    ("debug", LogLevel::Debug),
    ("trace", LogLevel::Trace),
];

fn log(t: &Tbl<'_>) -> Result<Log> {
    t.known(&["level", "format", "access"])?;
    let d = Log::default();
    Ok(Log {
        level: t.choice("level", &LEVELS, d.level)?,
        format: t.choice(
            "format",
            &[("text", LogFormat::Text), ("json", LogFormat::Json)],
            d.format,
        )?,
        access: t.boolean("access", d.access)?,
    })
}

fn pool(t: &Tbl<'_>) -> Result<Pool> {
    t.known(&["max_idle_per_upstream"])?;
    let d = Pool::default();
    Ok(Pool {
        max_idle_per_upstream: t.count("max_idle_per_upstream", d.max_idle_per_upstream, 0)?,
    })
}

fn server(t: &Tbl<'_>) -> Result<Server> {
    t.known(&["workers"])?;
    let workers = match t.get("workers") {
        None => None,
        Some(v) => {
            let n = t.count("workers", 1, 1)?;
            if n > MAX_WORKERS {
                return Err(t.cx.err(
                    &v.span(),
                    &t.key("workers"),
                    format!("{n} is out of range (at most {MAX_WORKERS})"),
                ));
            }
            Some(n)
        }
    };
    Ok(Server { workers })
}

fn hooks(root: &Tbl<'_>, base_dir: &Path) -> Result<Vec<HookConfig>> {
    let mut hooks: Vec<HookConfig> = Vec::new();
    let mut names: Vec<(Option<String>, String)> = Vec::new();
    for t in root.tables("hook")? {
        t.known(&[
            "name",
            "path",
            "config",
            "methods",
            "on_error",
            "deadline",
            "max_memory",
            "mode",
            "pool",
            "recycle_after",
            "grants",
            "headers",
        ])?;
        let (path, path_span) = t
            .string("path")?
            .ok_or_else(|| t.missing("path", "every hook needs the path of its .wasm component"))?;
        if path.is_empty() {
            return Err(t.cx.err(&path_span, &t.key("path"), "cannot be empty"));
        }
        let path = base_dir.join(path);
        let mut hook = HookConfig::new(String::new(), path);

        let name = match t.string("name")? {
            None => None,
            Some((n, span)) => {
                if n.is_empty() {
                    return Err(t.cx.err(&span, &t.key("name"), "cannot be empty"));
                }
                if let Some(j) = names.iter().position(|(m, _)| m.as_deref() == Some(n)) {
                    return Err(t.cx.err(
                        &span,
                        &t.key("name"),
                        format!("{n:?} is already the name of hook[{j}]"),
                    ));
                }
                Some(n.to_string())
            }
        };
        names.push((name, hook_base_name(&hook.path)));

        if let Some(v) = t.get("config") {
            hook.config = match v.get_ref() {
                DeValue::String(s) => s.to_string(),
                other => {
                    let mut json = String::new();
                    to_json(other, &mut json)
                        .map_err(|p| t.cx.err(&v.span(), &t.key("config"), p))?;
                    json
                }
            };
        }

        if let Some(methods) = t.strings("methods")? {
            if methods.is_empty() {
                let span = t.get("methods").map_or(t.span.clone(), |v| v.span());
                return Err(t.cx.err(
                    &span,
                    &t.key("methods"),
                    "an empty list would hide every message from the hook; remove the hook instead",
                ));
            }
            for (i, (m, span)) in methods.iter().enumerate() {
                check_method_pattern(m)
                    .map_err(|p| t.cx.err(span, &t.key(&format!("methods[{i}]")), p))?;
            }
            hook.methods = Some(methods.iter().map(|(m, _)| m.to_string()).collect());
        }

        hook.on_error = t.choice(
            "on_error",
            &[("reject", OnError::Reject), ("pass", OnError::Pass)],
            hook.on_error,
        )?;
        hook.deadline = t.bounded("deadline", hook.deadline)?;
        hook.max_memory = t.size("max_memory", hook.max_memory)?;

        let warm = t.choice("mode", &[("fresh", false), ("warm", true)], false)?;
        if warm {
            hook.mode = HookMode::Warm {
                pool: t.count("pool", 4, 1)?,
                recycle_after: t.count("recycle_after", 1000, 1)? as u64,
            };
        } else {
            for k in ["pool", "recycle_after"] {
                if let Some(v) = t.get(k) {
                    return Err(t.cx.err(
                        &v.span(),
                        &t.key(k),
                        "only applies with mode = \"warm\"",
                    ));
                }
            }
        }

        if let Some(grants) = t.strings("grants")? {
            let mut g = Grants::default();
            for (i, (name, span)) in grants.iter().enumerate() {
                match *name {
                    "clock" => g.clock = true,
                    "random" => g.random = true,
                    "stdio" => g.stdio = true,
                    other => {
                        return Err(t.cx.err(
                            span,
                            &t.key(&format!("grants[{i}]")),
                            format!("{other:?} is not one of: clock, random, stdio"),
                        ));
                    }
                }
            }
            hook.grants = g;
        }

        if let Some(headers) = t.strings("headers")? {
            for (i, (name, span)) in headers.iter().enumerate() {
                let key = t.key(&format!("headers[{i}]"));
                check_header_name(name).map_err(|p| t.cx.err(span, &key, p))?;
                let lower = name.to_ascii_lowercase();
                if hook.headers.contains(&lower) {
                    return Err(t.cx.err(span, &key, format!("{name:?} is listed twice")));
                }
                hook.headers.push(lower);
            }
        }
        hooks.push(hook);
    }
    for (hook, name) in hooks.iter_mut().zip(unique_names(&names)) {
        hook.name = name;
    }
    Ok(hooks)
}

/// Writes a TOML value as JSON text (tables in file order). Fails on a
/// float JSON cannot carry (nan, inf).
fn to_json(v: &DeValue<'_>, out: &mut String) -> std::result::Result<(), String> {
    match v {
        DeValue::String(s) => json_string(s, out),
        DeValue::Integer(i) => match i128::from_str_radix(i.as_str(), i.radix()) {
            Ok(n) => out.push_str(&n.to_string()),
            Err(_) => return Err(format!("integer {i} is out of range")),
        },
        DeValue::Float(f) => match f.as_str().parse::<f64>() {
            Ok(x) if x.is_finite() => out.push_str(&format!("{x:?}")),
            _ => return Err(format!("{f} has no JSON form")),
        },
        DeValue::Boolean(b) => out.push_str(if *b { "true" } else { "false" }),
        DeValue::Datetime(d) => json_string(&d.to_string(), out),
        DeValue::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                to_json(item.get_ref(), out)?;
            }
            out.push(']');
        }
        DeValue::Table(t) => {
            let mut entries: Vec<_> = t.iter().collect();
            entries.sort_by_key(|(k, _)| k.span().start);
            out.push('{');
            for (i, (k, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                json_string(k.get_ref(), out);
                out.push(':');
                to_json(item.get_ref(), out)?;
            }
            out.push('}');
        }
    }
    Ok(())
}

fn json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}
