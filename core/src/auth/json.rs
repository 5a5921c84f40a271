//! JSON read strictly enough that no other reader can see another value:
//! a duplicate key anywhere refuses the whole text (serde_json alone keeps
//! the last one; other libraries keep the first).

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Nesting deeper than this is refused (serde_json's own recursion limit
/// is 128; a token needs far less).
const MAX_DEPTH: usize = 32;

/// The JSON object `bytes` holds, or `None`: not JSON, not an object, a
/// key given twice, or nested deeper than 32.
pub fn parse_object(bytes: &[u8]) -> Option<Map<String, Value>> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let Strict(value) = Strict::deserialize(&mut de).ok()?;
    de.end().ok()?;
    match value {
        Value::Object(map) => Some(map),
        _ => None,
    }
}

struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor { depth: 0 }).map(Strict)
    }
}

struct StrictVisitor {
    depth: usize,
}

/// A nested value, one level down.
struct Nested(usize);

impl<'de> de::DeserializeSeed<'de> for Nested {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        if self.0 > MAX_DEPTH {
            return Err(de::Error::custom("too deep"));
        }
        d.deserialize_any(StrictVisitor { depth: self.0 })
    }
}

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(Nested(self.depth + 1))? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(de::Error::custom("duplicate key"));
            }
            let value = map.next_value_seed(Nested(self.depth + 1))?;
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict() {
        assert!(parse_object(br#"{"a":1,"b":[1,{"c":null}],"d":1.5}"#).is_some());
        assert!(parse_object(br#"{"a":1,"a":1}"#).is_none());
        assert!(parse_object(br#"{"a":{"b":1,"b":2}}"#).is_none());
        assert!(parse_object(br#"{"a":[{"b":1,"b":2}]}"#).is_none());
        assert!(parse_object(br#"[1]"#).is_none());
        assert!(parse_object(br#"{"a":1} x"#).is_none());
        assert!(parse_object(b"\xef\xbb\xbf{}").is_none());
        assert!(parse_object(br#"{"a":"\ud800"}"#).is_none());
        let deep = format!("{{\"a\":{}1{}}}", "[".repeat(40), "]".repeat(40));
        assert!(parse_object(deep.as_bytes()).is_none());
        let ok = format!("{{\"a\":{}1{}}}", "[".repeat(20), "]".repeat(20));
        assert!(parse_object(ok.as_bytes()).is_some());
    }
}
