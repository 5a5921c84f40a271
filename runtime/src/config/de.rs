//! How one value of the config file is read, and how a failed read becomes
//! a [`ConfigError`].
//!
//! The file is deserialised with serde into the structs of `file.rs`, whose
//! fields are [`Key`]s: an optional [`At`], a value with the span it was
//! written at. Every value type implements [`Leaf`] and is read through one
//! visitor, so a value of the wrong kind is refused in the same words
//! everywhere ("expected a string, found an integer 8080"), and a value that
//! must parse (a URL, a duration, a host rule) is checked as it is read,
//! while serde still knows the key path and toml the span.

use std::fmt;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{self, Deserialize, DeserializeOwned, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_path_to_error::Segment;
use sluice_core::federation::{OnUnavailable, PrefixMode};

use super::duration::{parse_duration, parse_size};
use super::stdio::{Account, check_env_name};
use super::url::parse_listen;
use super::{
    ConfigError, HostRule, LegacyMode, LogFormat, LogLevel, OnError, OriginRule, Roots, Transport,
    Upstream, check_method_pattern, check_route_path,
};

/// The file's text and name, for positions in errors.
pub(super) struct Source<'a> {
    pub(super) text: &'a str,
    pub(super) origin: &'a str,
}

impl Source<'_> {
    /// 1-based line and column (in characters) of a byte offset.
    fn position(&self, offset: usize) -> (usize, usize) {
        let before = self.text.get(..offset).unwrap_or(self.text);
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
        (line, column)
    }

    /// An error about the value written at `span`.
    pub(super) fn err(
        &self,
        span: &Range<usize>,
        key: impl Into<String>,
        problem: impl Into<String>,
    ) -> ConfigError {
        ConfigError::invalid(
            Some(self.origin),
            Some(self.position(span.start)),
            key,
            problem,
        )
    }

    /// Parses the text into `T`, or the first error with its key path and
    /// position.
    pub(super) fn read<T: DeserializeOwned>(&self) -> Result<T, ConfigError> {
        let doc = toml::de::DeTable::parse(self.text).map_err(|e| {
            let (line, column) = self.position(e.span().map_or(0, |s| s.start));
            ConfigError::Syntax {
                origin: self.origin.to_string(),
                line,
                column,
                message: e.message().to_string(),
            }
        })?;
        serde_path_to_error::deserialize(toml::de::Deserializer::from(doc)).map_err(|e| {
            let key = key_path(e.path());
            let e = e.into_inner();
            ConfigError::Invalid {
                origin: Some(self.origin.to_string()),
                position: e.span().map(|s| self.position(s.start)),
                key,
                problem: unknown_key(e.message()).unwrap_or_else(|| e.message().to_string()),
            }
        })
    }
}

/// `route[1].upstream`, without the segments of toml's span wrapper
/// (`$__serde_spanned_private_value`).
fn key_path(path: &serde_path_to_error::Path) -> String {
    let mut key = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => key.push_str(&format!("[{index}]")),
            Segment::Map { key: k } | Segment::Enum { variant: k } if !k.starts_with("$__") => {
                if !key.is_empty() {
                    key.push('.');
                }
                key.push_str(k);
            }
            _ => {}
        }
    }
    key
}

/// serde's words for a key that `deny_unknown_fields` refuses, in ours:
/// "unknown field `x`, expected one of `a`, `b`" becomes "unknown key
/// (expected one of: a, b)". The key itself is already in the path.
fn unknown_key(message: &str) -> Option<String> {
    let (_, expected) = message
        .strip_prefix("unknown field `")?
        .split_once("`, expected ")?;
    // serde: "`a`" for one key, "`a` or `b`" for two, "one of `a`, `b`, `c`".
    let names = expected.strip_prefix("one of ").unwrap_or(expected);
    Some(format!(
        "unknown key (expected one of: {})",
        names.replace("` or `", ", ").replace('`', "")
    ))
}

/// A value as written in the file, and the byte span it was written at.
#[derive(Debug)]
pub(super) struct At<T> {
    pub(super) value: T,
    pub(super) span: Range<usize>,
}

/// An optional key of a table.
pub(super) type Key<T> = Option<At<T>>;

/// An array.
pub(super) type List<T> = Vec<At<T>>;

/// The value of an optional key, converted, or `default`.
pub(super) fn or<T: Into<U>, U>(key: Key<T>, default: U) -> U {
    key.map_or(default, |k| k.value.into())
}

/// The value of an optional key, if it was written.
pub(super) fn value<T>(key: Key<T>) -> Option<T> {
    key.map(|k| k.value)
}

/// The values of an array.
pub(super) fn values<T>(list: List<T>) -> Vec<T> {
    list.into_iter().map(|item| item.value).collect()
}

/// Where an optional key was written, if it was.
pub(super) fn span<T>(key: &Key<T>) -> Option<&Range<usize>> {
    key.as_ref().map(|k| &k.span)
}

/// A scalar TOML value.
#[derive(Clone, Copy)]
pub(super) enum Scalar<'a> {
    Str(&'a str),
    Int(i128),
    Float(f64),
    Bool(bool),
}

/// What was found, for "expected …, found an integer 8080".
impl fmt::Display for Scalar<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scalar::Str(s) if s.chars().count() > 40 || s.contains('\n') => {
                let head: String = s.lines().next().unwrap_or("").chars().take(40).collect();
                write!(f, "a string {:?}", format!("{head}…"))
            }
            Scalar::Str(s) => write!(f, "a string {s:?}"),
            Scalar::Int(n) => write!(f, "an integer {n}"),
            Scalar::Float(x) => write!(f, "a float {x}"),
            Scalar::Bool(b) => write!(f, "a boolean {b}"),
        }
    }
}

/// Why a [`Leaf`] refused a scalar.
pub(super) enum Refused {
    /// A value of another kind: "expected {EXPECTED}, found {value}".
    Kind,
    /// The right kind, but wrong: the problem, as a sentence fragment.
    Value(String),
}

impl From<String> for Refused {
    fn from(problem: String) -> Self {
        Refused::Value(problem)
    }
}

impl From<&str> for Refused {
    fn from(problem: &str) -> Self {
        Refused::Value(problem.to_string())
    }
}

/// A type read from one value of the file. What it does not take is
/// refused as "expected {EXPECTED}, found …".
pub(super) trait Leaf<'de>: Sized {
    /// What the value should be, after "expected".
    const EXPECTED: &'static str;
    /// What an array of these should be.
    const EXPECTED_ARRAY: &'static str = "an array of strings";

    /// From a string, number or boolean.
    fn scalar(value: Scalar<'_>) -> Result<Self, Refused> {
        let _ = value;
        Err(Refused::Kind)
    }

    /// From a table (toml hands datetimes over as tables too).
    fn table<A: MapAccess<'de>>(map: A) -> Result<Self, A::Error> {
        let found = match toml::Value::deserialize(MapAccessDeserializer::new(map))? {
            toml::Value::Datetime(d) => format!("a datetime {d}"),
            _ => "a table".to_string(),
        };
        Err(de::Error::custom(format_args!(
            "expected {}, found {found}",
            Self::EXPECTED
        )))
    }

    /// From an array.
    fn array<A: SeqAccess<'de>>(seq: A) -> Result<Self, A::Error> {
        let _ = seq;
        Err(de::Error::custom(format_args!(
            "expected {}, found an array",
            Self::EXPECTED
        )))
    }
}

/// The one visitor: hands each kind of value to the [`Leaf`].
struct Read<T>(PhantomData<T>);

impl<'de, T: Leaf<'de>> Read<T> {
    fn scalar<E: de::Error>(value: Scalar<'_>) -> Result<T, E> {
        T::scalar(value).map_err(|refused| match refused {
            Refused::Kind => E::custom(format_args!("expected {}, found {value}", T::EXPECTED)),
            Refused::Value(problem) => E::custom(problem),
        })
    }
}

impl<'de, T: Leaf<'de>> Visitor<'de> for Read<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(T::EXPECTED)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        Self::scalar(Scalar::Str(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        Self::scalar(Scalar::Int(v.into()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        Self::scalar(Scalar::Int(v.into()))
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<T, E> {
        Self::scalar(Scalar::Int(v))
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<T, E> {
        Self::scalar(Scalar::Int(i128::try_from(v).unwrap_or(i128::MAX)))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<T, E> {
        Self::scalar(Scalar::Float(v))
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<T, E> {
        Self::scalar(Scalar::Bool(v))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        T::table(map)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<T, A::Error> {
        T::array(seq)
    }
}

/// A leaf read through [`Read`] (what toml's span wrapper holds).
struct Inner<T>(T);

impl<'de, T: Leaf<'de>> Deserialize<'de> for Inner<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(Read(PhantomData)).map(Inner)
    }
}

impl<'de, T: Leaf<'de>> Deserialize<'de> for At<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let spanned = toml::Spanned::<Inner<T>>::deserialize(d)?;
        let span = spanned.span();
        Ok(At {
            value: spanned.into_inner().0,
            span,
        })
    }
}

impl<'de, T: Leaf<'de>> Leaf<'de> for Vec<At<T>> {
    const EXPECTED: &'static str = T::EXPECTED_ARRAY;

    fn array<A: SeqAccess<'de>>(mut seq: A) -> Result<Self, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(items)
    }
}

/// Declares tables of the file: structs that refuse unknown keys (serde's
/// derive, `deny_unknown_fields`), read as [`Leaf`]s. Keys are listed in the
/// order an unknown-key error lists them.
macro_rules! tables {
    ($(
        $(#[$doc:meta])*
        struct $t:ident($expected:literal $(, array: $array:literal)?) { $($key:ident: $ty:ty,)* }
    )*) => {$(
        $(#[$doc])*
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct $t { $($key: $ty,)* }

        impl<'de> $crate::config::de::Leaf<'de> for $t {
            const EXPECTED: &'static str = $expected;
            $(const EXPECTED_ARRAY: &'static str = $array;)?

            fn table<A: serde::de::MapAccess<'de>>(map: A) -> ::std::result::Result<Self, A::Error> {
                <$t as serde::Deserialize>::deserialize(
                    serde::de::value::MapAccessDeserializer::new(map),
                )
            }
        }
    )*};
}
pub(super) use tables;

/// A string parsed by `parse`.
fn text<T>(value: Scalar<'_>, parse: impl FnOnce(&str) -> Result<T, String>) -> Result<T, Refused> {
    match value {
        Scalar::Str(s) => parse(s).map_err(Refused::Value),
        _ => Err(Refused::Kind),
    }
}

fn not_empty(s: &str) -> Result<&str, String> {
    match s {
        "" => Err("cannot be empty".into()),
        s => Ok(s),
    }
}

/// Leaves written as a string and parsed.
macro_rules! parsed {
    ($($t:ty => $parse:expr,)*) => {$(
        impl<'de> Leaf<'de> for $t {
            const EXPECTED: &'static str = "a string";

            fn scalar(value: Scalar<'_>) -> Result<Self, Refused> {
                text(value, $parse)
            }
        }
    )*};
}

/// A name (of a route or hook): not empty.
pub(super) struct Name(pub(super) String);
/// A route's path prefix.
pub(super) struct RoutePath(pub(super) String);
/// An entry of a hook's `methods`.
pub(super) struct Method(pub(super) String);

/// A hook's instance life cycle, before its warm settings are read.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    Fresh,
    Warm,
}

/// A hook's `mode`: whether its verdicts act, or (the older spelling of
/// `instances`) its instance life cycle.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum HookModeKey {
    Enforce,
    Audit,
    Instances(Mode),
}

/// A command route's `stdio_mode`, before its mode's settings are read.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum StdioModeName {
    Shared,
    PerSession,
}

/// The name of an environment variable.
pub(super) struct EnvName(pub(super) String);

/// One of a hook's `grants`.
#[derive(Clone, Copy)]
pub(super) enum Grant {
    Clock,
    Random,
    Stdio,
}

parsed! {
    SocketAddr => parse_listen,
    Upstream => Upstream::parse,
    HostRule => HostRule::parse,
    OriginRule => OriginRule::parse,
    PathBuf => |s| not_empty(s).map(PathBuf::from),
    Name => |s| not_empty(s).map(|s| Name(s.to_string())),
    RoutePath => |s| check_route_path(s).map(|()| RoutePath(s.to_string())),
    Method => |s| check_method_pattern(s).map(|()| Method(s.to_string())),
    EnvName => |s| check_env_name(s).map(|()| EnvName(s.to_string())),
    String => |s| Ok(s.to_string()),
    LogLevel => value_enum,
    LogFormat => value_enum,
    Transport => |s| keyword(s, &[
        ("streamable", Transport::Streamable),
        ("sse", Transport::Sse),
        ("auto", Transport::Auto),
    ]),
    LegacyMode => |s| keyword(s, &[
        ("session", LegacyMode::Session),
        ("per-request", LegacyMode::PerRequest),
    ]),
    Roots => |s| keyword(s, &[
        ("webpki", Roots::Webpki),
        ("system", Roots::System),
        ("none", Roots::None),
    ]),
    OnError => |s| keyword(s, &[("reject", OnError::Reject), ("pass", OnError::Pass)]),
    Mode => |s| keyword(s, &[("fresh", Mode::Fresh), ("warm", Mode::Warm)]),
    HookModeKey => |s| keyword(s, &[
        ("enforce", HookModeKey::Enforce),
        ("audit", HookModeKey::Audit),
        ("fresh", HookModeKey::Instances(Mode::Fresh)),
        ("warm", HookModeKey::Instances(Mode::Warm)),
    ]),
    StdioModeName => |s| keyword(s, &[
        ("shared", StdioModeName::Shared),
        ("per-session", StdioModeName::PerSession),
    ]),
    Grant => |s| keyword(s, &[
        ("clock", Grant::Clock),
        ("random", Grant::Random),
        ("stdio", Grant::Stdio),
    ]),
    PrefixMode => |s| keyword(s, &[
        ("always", PrefixMode::Always),
        ("conditional", PrefixMode::Conditional),
        ("never", PrefixMode::Never),
    ]),
    OnUnavailable => |s| keyword(s, &[
        ("omit", OnUnavailable::Omit),
        ("fail", OnUnavailable::Fail),
    ]),
}

/// One of a fixed set of strings.
fn keyword<T: Copy>(s: &str, options: &[(&str, T)]) -> Result<T, String> {
    match options.iter().find(|(name, _)| *name == s) {
        Some((_, value)) => Ok(*value),
        None => {
            let names: Vec<&str> = options.iter().map(|(name, _)| *name).collect();
            Err(format!("{s:?} is not one of: {}", names.join(", ")))
        }
    }
}

/// One of a clap value enum's names: the command line's spelling is the
/// file's.
fn value_enum<T: clap::ValueEnum>(s: &str) -> Result<T, String> {
    let names: Vec<_> = T::value_variants()
        .iter()
        .filter_map(|v| Some((v.to_possible_value()?, v)))
        .collect();
    let options: Vec<(&str, usize)> = names
        .iter()
        .enumerate()
        .map(|(i, (p, _))| (p.get_name(), i))
        .collect();
    keyword(s, &options).map(|i| names[i].1.clone())
}

impl<'de> Leaf<'de> for bool {
    const EXPECTED: &'static str = "true or false";

    fn scalar(value: Scalar<'_>) -> Result<Self, Refused> {
        match value {
            Scalar::Bool(b) => Ok(b),
            _ => Err(Refused::Kind),
        }
    }
}

/// A whole number from `MIN` to `MAX`.
pub(super) struct Count<const MIN: usize, const MAX: usize = { usize::MAX }>(pub(super) usize);

impl<'de, const MIN: usize, const MAX: usize> Leaf<'de> for Count<MIN, MAX> {
    const EXPECTED: &'static str = "a whole number";

    fn scalar(value: Scalar<'_>) -> Result<Self, Refused> {
        let Scalar::Int(n) = value else {
            return Err(Refused::Kind);
        };
        match usize::try_from(n) {
            Ok(n) if n > MAX => Err(format!("{n} is out of range (at most {MAX})").into()),
            Ok(n) if n >= MIN => Ok(Count(n)),
            _ => Err(format!("{n} is out of range (at least {MIN})").into()),
        }
    }
}

impl<'de> Leaf<'de> for i32 {
    const EXPECTED: &'static str = "a whole number from -2147483648 to 2147483647";

    fn scalar(value: Scalar<'_>) -> Result<Self, Refused> {
        let Scalar::Int(n) = value else {
            return Err(Refused::Kind);
        };
        i32::try_from(n).map_err(|_| format!("{n} is out of range").into())
    }
}

impl<const MIN: usize, const MAX: usize> From<Count<MIN, MAX>> for usize {
    fn from(count: Count<MIN, MAX>) -> usize {
        count.0
    }
}

impl<const MIN: usize, const MAX: usize> From<Count<MIN, MAX>> for u32 {
    /// Saturating; give the count a `MAX` of `u32::MAX`.
    fn from(count: Count<MIN, MAX>) -> u32 {
        u32::try_from(count.0).unwrap_or(u32::MAX)
    }
}

impl<'de> Leaf<'de> for super::SampleRatio {
    const EXPECTED: &'static str = "a number from 0.0 to 1.0";

    fn scalar(value: Scalar<'_>) -> Result<Self, Refused> {
        let ratio = match value {
            Scalar::Float(f) => f,
            Scalar::Int(i @ 0..=1) => i as f64,
            Scalar::Int(i) => return Err(format!("{i} is out of range (0.0 to 1.0)").into()),
            _ => return Err(Refused::Kind),
        };
        super::SampleRatio::new(ratio)
            .ok_or_else(|| format!("{ratio} is out of range (0.0 to 1.0)").into())
    }
}

/// A command: an array of strings, the program first.
pub(super) struct CommandWords(pub(super) List<String>);

impl<'de> Leaf<'de> for CommandWords {
    const EXPECTED: &'static str =
        "an array of strings (the program, then its arguments: [\"uvx\", \"mcp-server-time\"])";

    fn array<A: SeqAccess<'de>>(seq: A) -> Result<Self, A::Error> {
        List::<String>::array(seq).map(CommandWords)
    }
}

/// A user or group: a numeric id (an integer, or a string of digits) or a
/// name.
pub(super) enum IdOrName {
    Id(u32),
    Name(String),
}

impl IdOrName {
    pub(super) fn account(&self) -> Account<'_> {
        match self {
            IdOrName::Id(id) => Account::Id(*id),
            IdOrName::Name(name) => Account::Name(name),
        }
    }
}

impl<'de> Leaf<'de> for IdOrName {
    const EXPECTED: &'static str = "a name or a numeric id";

    fn scalar(value: Scalar<'_>) -> Result<Self, Refused> {
        // (uid_t)-1 means "unchanged" to setuid and setgid.
        let id = |n: i128| match u32::try_from(n) {
            Ok(id) if id != u32::MAX => Ok(IdOrName::Id(id)),
            _ => Err(format!("{n} is out of range (0 to {})", u32::MAX - 1).into()),
        };
        match value {
            Scalar::Int(n) => id(n),
            Scalar::Str("") => Err("cannot be empty".into()),
            Scalar::Str(s) if s.bytes().all(|b| b.is_ascii_digit()) => match s.parse::<i128>() {
                Ok(n) => id(n),
                Err(_) => Err(format!("{s} is out of range (0 to {})", u32::MAX - 1).into()),
            },
            Scalar::Str(s) => Ok(IdOrName::Name(s.to_string())),
            _ => Err(Refused::Kind),
        }
    }
}

/// A byte size above zero: a whole number of bytes or a string with a unit.
pub(super) struct Size(pub(super) usize);

impl<'de> Leaf<'de> for Size {
    const EXPECTED: &'static str = "a size (bytes, or a string like \"4 MiB\")";

    fn scalar(value: Scalar<'_>) -> Result<Self, Refused> {
        let bytes = match value {
            Scalar::Int(n) => u64::try_from(n).map_err(|_| "a size cannot be negative")?,
            Scalar::Str(s) => parse_size(s)?,
            _ => return Err(Refused::Kind),
        };
        match usize::try_from(bytes) {
            Ok(0) => Err("must be more than zero".into()),
            Ok(n) => Ok(Size(n)),
            Err(_) => Err("is too large for this machine".into()),
        }
    }
}

impl From<Size> for usize {
    fn from(size: Size) -> usize {
        size.0
    }
}

const DURATION: &str = "a duration string such as \"10s\" or \"off\"";
const NOT_OFF: &str = "cannot be \"off\"; give a duration such as 10s";

/// A duration string: `None` for "off"; zero refused unless `zero_ok`.
fn duration(value: Scalar<'_>, zero_ok: bool) -> Result<Option<Duration>, Refused> {
    let d = text(value, parse_duration)?;
    if d == Some(Duration::ZERO) && !zero_ok {
        return Err(
            "must be more than zero (write \"off\" for no limit where that is allowed)".into(),
        );
    }
    Ok(d)
}

/// A duration above zero, never "off".
impl<'de> Leaf<'de> for Duration {
    const EXPECTED: &'static str = DURATION;

    fn scalar(value: Scalar<'_>) -> Result<Self, Refused> {
        duration(value, false)?.ok_or_else(|| NOT_OFF.into())
    }
}

/// A duration above zero, or "off" (`None`).
pub(super) struct OrOff(Option<Duration>);

impl<'de> Leaf<'de> for OrOff {
    const EXPECTED: &'static str = DURATION;

    fn scalar(value: Scalar<'_>) -> Result<Self, Refused> {
        duration(value, false).map(OrOff)
    }
}

impl From<OrOff> for Option<Duration> {
    fn from(d: OrOff) -> Self {
        d.0
    }
}

/// A duration, zero allowed, never "off" (`shutdown_grace`).
pub(super) struct Grace(Duration);

impl<'de> Leaf<'de> for Grace {
    const EXPECTED: &'static str = DURATION;

    fn scalar(value: Scalar<'_>) -> Result<Self, Refused> {
        duration(value, true)?
            .map(Grace)
            .ok_or_else(|| NOT_OFF.into())
    }
}

impl From<Grace> for Duration {
    fn from(d: Grace) -> Self {
        d.0
    }
}

/// A hook's configuration string: a string verbatim, any other value as
/// JSON text (tables in file order; datetimes as strings; no nan or inf).
pub(super) struct Json(pub(super) String);

impl<'de> Leaf<'de> for Json {
    const EXPECTED: &'static str = "a string or another TOML value";

    fn scalar(value: Scalar<'_>) -> Result<Self, Refused> {
        let value = match value {
            Scalar::Str(s) => return Ok(Json(s.to_string())),
            Scalar::Int(n) => return Ok(Json(n.to_string())),
            Scalar::Float(x) => toml::Value::Float(x),
            Scalar::Bool(b) => toml::Value::Boolean(b),
        };
        Ok(Json(to_json(&value)?))
    }

    fn table<A: MapAccess<'de>>(map: A) -> Result<Self, A::Error> {
        let value = toml::Value::deserialize(MapAccessDeserializer::new(map))?;
        to_json(&value).map(Json).map_err(de::Error::custom)
    }

    fn array<A: SeqAccess<'de>>(seq: A) -> Result<Self, A::Error> {
        let value = toml::Value::deserialize(SeqAccessDeserializer::new(seq))?;
        to_json(&value).map(Json).map_err(de::Error::custom)
    }
}

fn to_json(value: &toml::Value) -> Result<String, String> {
    serde_json::to_string(&AsJson(value)).map_err(|e| e.to_string())
}

/// A TOML value written as JSON: tables in their order, datetimes as
/// strings, and no nan or inf, which JSON cannot carry.
struct AsJson<'a>(&'a toml::Value);

impl serde::Serialize for AsJson<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            toml::Value::Float(x) if !x.is_finite() => {
                Err(serde::ser::Error::custom(format_args!(
                    "{} has no JSON form",
                    if x.is_nan() {
                        "nan".to_string()
                    } else {
                        x.to_string()
                    }
                )))
            }
            toml::Value::Datetime(d) => s.collect_str(d),
            toml::Value::Array(items) => s.collect_seq(items.iter().map(AsJson)),
            toml::Value::Table(t) => s.collect_map(t.iter().map(|(k, v)| (k, AsJson(v)))),
            other => other.serialize(s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_in_our_words() {
        let many = "unknown field `lisen`, expected one of `listen`, `route`";
        assert_eq!(
            unknown_key(many).unwrap(),
            "unknown key (expected one of: listen, route)"
        );
        let two = "unknown field `form_env`, expected `from_env` or `from_file`";
        assert_eq!(
            unknown_key(two).unwrap(),
            "unknown key (expected one of: from_env, from_file)"
        );
        let one = "unknown field `threads`, expected `workers`";
        assert_eq!(
            unknown_key(one).unwrap(),
            "unknown key (expected one of: workers)"
        );
        assert_eq!(unknown_key("invalid type: map, expected a string"), None);
    }

    #[test]
    fn found_values() {
        assert_eq!(Scalar::Int(-1).to_string(), "an integer -1");
        assert_eq!(Scalar::Float(1.5).to_string(), "a float 1.5");
        assert_eq!(Scalar::Bool(true).to_string(), "a boolean true");
        assert_eq!(Scalar::Str("a\"b").to_string(), r#"a string "a\"b""#);
        let long = Scalar::Str(&"x".repeat(50)).to_string();
        assert_eq!(long, format!("a string \"{}…\"", "x".repeat(40)));
        assert_eq!(Scalar::Str("a\nb").to_string(), "a string \"a…\"");
    }

    #[test]
    fn json() {
        let v: toml::Value = toml::from_str("z = [1, 1.5, 'x'] \n a = { b = true }").unwrap();
        assert_eq!(to_json(&v).unwrap(), r#"{"z":[1,1.5,"x"],"a":{"b":true}}"#);
        for (x, text) in [
            (f64::NAN, "nan"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
        ] {
            let e = to_json(&toml::Value::Array(vec![toml::Value::Float(x)])).unwrap_err();
            assert_eq!(e, format!("{text} has no JSON form"));
        }
    }
}
