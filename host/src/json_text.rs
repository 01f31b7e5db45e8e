//! JSON values in the checkpoint encoding: kept as JSON text where the format is not
//! self-describing.
//!
//! Checkpoints are encoded with postcard, which cannot carry a `serde_json::Value` (it does not
//! say what type comes next). So in a binary format a value travels as its JSON text, which also
//! keeps every number exactly as the plugin saw it; in a human-readable one (JSON itself, for
//! `damson show --json`) it stays a value. Use with `#[serde(with = "crate::json_text")]`.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
/// Serialize a JSON value (or map) as text in binary formats, as itself in human-readable ones.
pub(crate) fn serialize<T, S>(value: &T, serializer: S) -> Result<S::Ok, S::Error>
where
    T: Serialize,
    S: Serializer,
{
    if serializer.is_human_readable() {
        value.serialize(serializer)
    } else {
        let text = serde_json::to_string(value).map_err(serde::ser::Error::custom)?;
        serializer.serialize_str(&text)
    }
}

/// The inverse of [`serialize`].
pub(crate) fn deserialize<'de, T, D>(deserializer: D) -> Result<T, D::Error>
where
    T: for<'a> Deserialize<'a>,
    D: Deserializer<'de>,
{
    if deserializer.is_human_readable() {
        T::deserialize(deserializer)
    } else {
        let text = String::deserialize(deserializer)?;
        serde_json::from_str(&text).map_err(serde::de::Error::custom)
    }
}
