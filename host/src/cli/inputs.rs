//! Inputs from the command line: `-i KEY=VALUE` (dotted keys, JSON values) and `--inputs FILE`.

use std::path::Path;

use anyhow::{Context, bail};
use serde_json::{Map, Value};

/// Build the inputs object: the file's object first, then each `KEY=VALUE` over it.
pub(crate) fn collect(file: Option<&Path>, pairs: &[String]) -> anyhow::Result<Value> {
    let mut inputs = match file {
        None => Map::new(),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read inputs file '{}'", path.display()))?;
            match serde_json::from_str(&text) {
                Ok(Value::Object(map)) => map,
                Ok(other) => bail!(
                    "inputs file '{}' must hold a JSON object, not {}",
                    path.display(),
                    crate::ports::ValueType::of(&other)
                ),
                // serde_json's message says where (at line 1 column 2).
                Err(e) => bail!("inputs file '{}' is not valid JSON: {e}", path.display()),
            }
        }
    };
    for pair in pairs {
        let (key, value) = parse_pair(pair)?;
        insert(&mut inputs, &key, value).with_context(|| format!("in input '{pair}'"))?;
    }
    Ok(Value::Object(inputs))
}

/// `KEY=VALUE`: the value is JSON when it parses as JSON, else a string.
fn parse_pair(pair: &str) -> anyhow::Result<(String, Value)> {
    let Some((key, value)) = pair.split_once('=') else {
        bail!("input '{pair}' is not of the form KEY=VALUE");
    };
    if key.is_empty() || key.split('.').any(str::is_empty) {
        bail!("input '{pair}' has an empty key or key component");
    }
    let value = serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_string()));
    Ok((key.to_string(), value))
}

fn insert(map: &mut Map<String, Value>, key: &str, value: Value) -> anyhow::Result<()> {
    match key.split_once('.') {
        None => {
            map.insert(key.to_string(), value);
        }
        Some((first, rest)) => {
            let entry = map
                .entry(first.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            let Value::Object(inner) = entry else {
                bail!("'{first}' already has a value that is not a namespace");
            };
            insert(inner, rest, value)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_are_json_when_they_parse_else_strings() {
        let pairs = ["x=1", "s=hello", "q=\"1\"", "l=[1,2]", "b=true"].map(String::from);
        let inputs = collect(None, &pairs).unwrap();
        assert_eq!(
            inputs,
            json!({"x": 1, "s": "hello", "q": "1", "l": [1, 2], "b": true})
        );
    }

    #[test]
    fn dotted_keys_nest() {
        let pairs = ["options.greeting=Hi", "options.shout=true", "name=Ada"].map(String::from);
        let inputs = collect(None, &pairs).unwrap();
        assert_eq!(
            inputs,
            json!({"options": {"greeting": "Hi", "shout": true}, "name": "Ada"})
        );
    }

    #[test]
    fn malformed_pairs_are_refused() {
        assert!(collect(None, &["novalue".into()]).is_err());
        assert!(collect(None, &["a..b=1".into()]).is_err());
        assert!(collect(None, &["a=1".into(), "a.b=2".into()]).is_err());
    }
}
