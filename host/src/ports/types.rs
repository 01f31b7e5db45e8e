//! The JSON types a port accepts.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A JSON type a port accepts.
///
/// `Int` is a number written without fraction or exponent (as `serde_json` parses it into an
/// integer), `Float` one written with; `Number` is either. JSON `true` is a `Bool`, never an `Int`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ValueType {
    /// Any value.
    Any,
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool,
    /// A number without fraction or exponent.
    Int,
    /// A number with a fraction or an exponent.
    Float,
    /// Any number.
    Number,
    /// A string.
    Str,
    /// An array.
    List,
    /// An object.
    Dict,
}

impl ValueType {
    /// Whether `value` is of this type.
    pub fn matches(self, value: &Value) -> bool {
        match self {
            ValueType::Any => true,
            ValueType::Null => value.is_null(),
            ValueType::Bool => value.is_boolean(),
            ValueType::Int => value.is_i64() || value.is_u64(),
            ValueType::Float => value.is_f64(),
            ValueType::Number => value.is_number(),
            ValueType::Str => value.is_string(),
            ValueType::List => value.is_array(),
            ValueType::Dict => value.is_object(),
        }
    }

    /// The name of the type `value` has, as used in error messages.
    pub fn of(value: &Value) -> ValueType {
        match value {
            Value::Null => ValueType::Null,
            Value::Bool(_) => ValueType::Bool,
            Value::Number(n) if n.is_f64() => ValueType::Float,
            Value::Number(_) => ValueType::Int,
            Value::String(_) => ValueType::Str,
            Value::Array(_) => ValueType::List,
            Value::Object(_) => ValueType::Dict,
        }
    }

    /// The lowercase name used in specs and messages.
    pub fn name(self) -> &'static str {
        match self {
            ValueType::Any => "any",
            ValueType::Null => "null",
            ValueType::Bool => "bool",
            ValueType::Int => "int",
            ValueType::Float => "float",
            ValueType::Number => "number",
            ValueType::Str => "str",
            ValueType::List => "list",
            ValueType::Dict => "dict",
        }
    }
}

impl fmt::Display for ValueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The accepted types of a port: empty means any; several form a union.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ValidTypes(pub Vec<ValueType>);

impl ValidTypes {
    /// Whether every value is accepted.
    pub fn is_any(&self) -> bool {
        self.0.is_empty() || self.0.contains(&ValueType::Any)
    }

    /// Whether `value` is accepted.
    pub fn accepts(&self, value: &Value) -> bool {
        self.is_any() || self.0.iter().any(|t| t.matches(value))
    }
}

impl fmt::Display for ValidTypes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_any() {
            return f.write_str("any");
        }
        let names: Vec<_> = self.0.iter().map(|t| t.name()).collect();
        f.write_str(&names.join(" | "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_int_is_not_a_bool_and_a_bool_is_not_an_int() {
        assert!(!ValueType::Int.matches(&json!(true)));
        assert!(!ValueType::Bool.matches(&json!(1)));
        assert!(ValueType::Int.matches(&json!(-3)));
        assert!(ValueType::Int.matches(&json!(u64::MAX)));
    }

    #[test]
    fn floats_and_numbers() {
        assert!(ValueType::Float.matches(&json!(1.5)));
        assert!(!ValueType::Float.matches(&json!(1)));
        assert!(ValueType::Number.matches(&json!(1)));
        assert!(ValueType::Number.matches(&json!(1.5)));
    }

    #[test]
    fn unions_accept_any_member() {
        let types = ValidTypes(vec![ValueType::Int, ValueType::Str]);
        assert!(types.accepts(&json!("a")));
        assert!(types.accepts(&json!(2)));
        assert!(!types.accepts(&json!(null)));
        assert_eq!(types.to_string(), "int | str");
        assert!(ValidTypes::default().accepts(&json!({"x": 1})));
    }
}
