//! The bodies of messages on the wire: read as JSON or as YAML, written as JSON.
//!
//! kiwipy's default codec is YAML (`yaml.dump` / `yaml.load(FullLoader)`), and AiiDA's is YAML
//! too; Damson's own clients, and kiwipy clients given a JSON codec, send JSON. Every body is
//! read as JSON first (the fast path, and what Damson sends) and else as YAML. Replies are
//! JSON, which a YAML reader reads as it is (JSON is YAML), so one format serves both kinds of
//! client.
//!
//! From YAML, plain values are taken as they are, and tagged ones for what they carry: plumpy's
//! `!uuid '…'` (a pid) as its text, Python's `!!python/tuple` as a list, and a `uuid.UUID` that
//! `yaml.dump` writes as an object (`!!python/object:uuid.UUID {int: …}`, a 128-bit integer) as
//! a mapping whose `int` is that integer's decimal text, which [`pid`] turns into the UUID.

use std::fmt;

use serde::Deserializer;
use serde::de::{DeserializeSeed, EnumAccess, MapAccess, SeqAccess, VariantAccess, Visitor};
use serde_json::{Map, Number, Value};

/// Why a body is neither JSON nor YAML.
#[derive(Debug, thiserror::Error)]
#[error("the body is neither JSON nor YAML ({yaml})")]
pub struct DecodeError {
    /// What the YAML reader said (the JSON one is tried first, and fails too).
    yaml: String,
}

/// Read a body: JSON, or else YAML.
///
/// # Errors
/// [`DecodeError`] when it is neither.
pub fn decode(body: &[u8]) -> Result<Value, DecodeError> {
    if let Ok(value) = serde_json::from_slice(body) {
        return Ok(value);
    }
    let text = std::str::from_utf8(body).map_err(|e| DecodeError {
        yaml: format!("not UTF-8: {e}"),
    })?;
    let deserializer = yaml_serde::Deserializer::from_str(text);
    Json.deserialize(deserializer).map_err(|e| DecodeError {
        yaml: e.to_string(),
    })
}

/// Write a body: JSON.
pub fn encode(value: &Value) -> Vec<u8> {
    serde_json::to_vec(value).expect("a JSON value always serialises")
}

/// A process id as a message names it: a string as it is, an integer (AiiDA's pks, a plumpy
/// pid given by its user) as its decimal text, a Python `uuid.UUID` (plumpy's own pids) as the
/// UUID. `None` for anything else.
pub fn pid(value: &Value) -> Option<String> {
    match value {
        Value::String(text) if !text.is_empty() => Some(text.clone()),
        Value::Number(n) if n.is_u64() || n.is_i64() => Some(n.to_string()),
        Value::Object(map) if map.len() == 1 => {
            let int = match map.get("int")? {
                Value::Number(n) => n.as_u64().map(u128::from),
                Value::String(text) => text.parse::<u128>().ok(),
                _ => None,
            }?;
            Some(uuid::Uuid::from_u128(int).to_string())
        }
        _ => None,
    }
}

/// What kind of value this is, for messages: `a list`, `a string`, `null`…
pub fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping without 'task'",
    }
}

/// Deserializes any self-describing value into JSON, keeping integers past 64 bits as their
/// decimal text (JSON numbers here are at most 64-bit) and map keys as text.
struct Json;

impl<'de> DeserializeSeed<'de> for Json {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a YAML value")
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        Json.deserialize(deserializer)
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_i128<E>(self, v: i128) -> Result<Value, E> {
        Ok(i64::try_from(v).map_or_else(|_| Value::String(v.to_string()), Value::from))
    }

    fn visit_u128<E>(self, v: u128) -> Result<Value, E> {
        Ok(u64::try_from(v).map_or_else(|_| Value::String(v.to_string()), Value::from))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        // YAML's .nan and .inf have no JSON form.
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(Json)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    /// A tagged value (`!uuid '…'`, which plumpy writes for its pids): the value, untagged.
    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Value, A::Error> {
        let (_tag, value): (String, _) = data.variant()?;
        value.newtype_variant_seed(Json)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key_seed(Json)? {
            let key = match key {
                Value::String(text) => text,
                other => other.to_string(),
            };
            object.insert(key, map.next_value_seed(Json)?);
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_and_kiwipys_yaml_read_the_same() {
        let json = decode(br#"{"intent": "pause", "message": "pausing"}"#).unwrap();
        let yaml = decode(b"intent: pause\nmessage: pausing\n").unwrap();
        assert_eq!(json, yaml);
        assert_eq!(yaml, json!({"intent": "pause", "message": "pausing"}));
        assert_eq!(
            decode(b"message: null\n").unwrap(),
            json!({"message": null})
        );
    }

    #[test]
    fn a_task_as_kiwipy_dumps_it_with_a_plumpy_pid_reads_as_its_uuid() {
        // `yaml.dump([{'task': 'continue', 'args': {'pid': uuid.UUID(int=…), …}}, False])`.
        let body = "- args:\n    nowait: false\n    pid: !!python/object:uuid.UUID\n      int: \
                    313593633185823497617539216342052577066\n    tag: null\n  task: continue\n\
                    - false\n";
        let task = decode(body.as_bytes()).unwrap();
        assert_eq!(task[1], json!(false));
        assert_eq!(
            pid(&task[0]["args"]["pid"]).unwrap(),
            uuid::Uuid::from_u128(313_593_633_185_823_497_617_539_216_342_052_577_066).to_string()
        );
        assert_eq!(
            decode(b"!!python/tuple\n- a\n- 1\n").unwrap(),
            json!(["a", 1])
        );
    }

    #[test]
    fn pids_are_strings_integers_or_uuids() {
        assert_eq!(pid(&json!("a-pid")).as_deref(), Some("a-pid"));
        assert_eq!(pid(&json!(42)).as_deref(), Some("42"));
        assert_eq!(
            pid(&json!({"int": 5})).as_deref(),
            Some("00000000-0000-0000-0000-000000000005")
        );
        for bad in [
            json!(null),
            json!(""),
            json!(1.5),
            json!([1]),
            json!({"x": 1}),
        ] {
            assert_eq!(pid(&bad), None, "{bad}");
        }
    }

    #[test]
    fn a_body_in_neither_codec_is_refused_saying_why() {
        for garbage in [&b"{"[..], b"intent: [1, 2\n", b"\xff\xfe"] {
            let error = decode(garbage).unwrap_err().to_string();
            assert!(
                error.starts_with("the body is neither JSON nor YAML"),
                "{error}"
            );
        }
    }

    #[test]
    fn replies_are_json_which_yaml_readers_read_too() {
        let reply = json!({"result": {"state": "ProcessState.WAITING", "paused": false}});
        let bytes = encode(&reply);
        assert_eq!(serde_json::from_slice::<Value>(&bytes).unwrap(), reply);
        let as_yaml: Value = yaml_serde::from_slice(&bytes).unwrap();
        assert_eq!(as_yaml, reply);
    }
}
