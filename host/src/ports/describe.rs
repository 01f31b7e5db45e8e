//! The description of a namespace: plumpy's `get_description`, with JSON types instead of
//! stringified Python values. This shape is what `damson describe --json` prints under `spec`.
//!
//! A namespace is an object with its attributes under `"_attrs"` and one key per port:
//!
//! ```json
//! {
//!   "_attrs": {"required": true, "dynamic": false, "valid_type": null, "help": null,
//!              "populate_defaults": true, "validator": false, "exposed_from": null},
//!   "name":    {"name": "name", "required": true, "valid_type": ["str"], "help": "Who to greet"},
//!   "options": {"_attrs": {"...": "..."}, "greeting": {"name": "greeting", "required": false,
//!               "valid_type": ["str"], "default": "Hello"}}
//! }
//! ```
//!
//! A port always has `name` and `required`; `valid_type` (absent means any type), `help`,
//! `default` (a fixed default), `default_computed: true` (the plugin computes it), `validator:
//! true` (the plugin checks it) and `exposed_from` (the plugin it was exposed from) appear only
//! when they apply. Keys are stable; new ones may be added.

use serde_json::{Map, Value, json};

use super::{ATTRS_KEY, DefaultValue, Port, PortEntry, PortNamespace};

impl PortNamespace {
    /// This namespace's description (see the module documentation for the shape).
    pub fn description(&self) -> Value {
        let mut out = Map::new();
        out.insert(
            ATTRS_KEY.to_string(),
            json!({
                "required": self.required,
                "dynamic": self.dynamic,
                "valid_type": (!self.valid_types.is_any()).then_some(&self.valid_types),
                "help": self.help,
                "populate_defaults": self.populate_defaults,
                "validator": self.validator,
                "exposed_from": self.origin.as_ref().map(|o| &o.plugin),
            }),
        );
        for (name, entry) in &self.ports {
            let description = match entry {
                PortEntry::Port(port) => port.description(),
                PortEntry::Namespace(ns) => ns.description(),
            };
            out.insert(name.clone(), description);
        }
        Value::Object(out)
    }
}

impl Port {
    /// This port's description (see the module documentation for the shape).
    pub fn description(&self) -> Value {
        let mut out = Map::new();
        out.insert("name".into(), json!(self.name));
        out.insert("required".into(), json!(self.required));
        if !self.valid_types.is_any() {
            out.insert("valid_type".into(), json!(self.valid_types));
        }
        if let Some(help) = &self.help {
            out.insert("help".into(), json!(help.trim()));
        }
        match &self.default {
            Some(DefaultValue::Value(value)) => {
                out.insert("default".into(), value.clone());
            }
            Some(DefaultValue::Computed) => {
                out.insert("default_computed".into(), json!(true));
            }
            None => {}
        }
        if self.validator {
            out.insert("validator".into(), json!(true));
        }
        if let Some(origin) = &self.origin {
            out.insert("exposed_from".into(), json!(origin.plugin));
        }
        Value::Object(out)
    }
}

#[cfg(test)]
mod tests {
    use super::super::ValueType;
    use super::super::tests::{port, typed, with_default};
    use super::*;

    #[test]
    fn a_namespace_describes_its_attributes_and_ports() {
        let mut help = typed(port("name"), &[ValueType::Str]);
        help.help = Some("  Who to greet ".into());
        let ns = PortNamespace::from_decls(
            "inputs",
            &[
                help,
                with_default(
                    typed(port("options.greeting"), &[ValueType::Str]),
                    json!("Hello"),
                ),
            ],
        )
        .unwrap();
        let d = ns.description();
        assert_eq!(d["_attrs"]["required"], true);
        assert_eq!(d["_attrs"]["valid_type"], Value::Null);
        assert_eq!(
            d["name"],
            json!({"name": "name", "required": true, "valid_type": ["str"], "help": "Who to greet"})
        );
        assert_eq!(d["options"]["greeting"]["default"], "Hello");
        assert_eq!(d["options"]["greeting"]["required"], false);
        assert_eq!(d["options"]["_attrs"]["dynamic"], false);
    }
}
