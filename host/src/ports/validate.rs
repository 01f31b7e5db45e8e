//! Filling defaults and validating values against a [`PortNamespace`].

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::{DefaultValue, Origin, Port, PortEntry, PortNamespace, ValidTypes, ValueType, join};

/// A value that failed validation, with the full dotted path of its port.
///
/// Displays in plumpy's form: `Error occurred validating port 'inputs.a.b': …`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Error occurred validating port '{path}': {message}")]
pub struct ValidationError {
    /// The full dotted path, starting at the root namespace (`inputs` or `outputs`).
    pub path: String,
    /// What is wrong with the value there.
    pub message: String,
}

/// A value a plugin must check, because its port or namespace declared a validator.
#[derive(Debug, Clone, PartialEq)]
pub struct GuestCheck {
    /// The full dotted path of the port or namespace.
    pub path: String,
    /// The value to check.
    pub value: Value,
    /// For a port exposed from another plugin: that plugin, which owns the validator.
    pub origin: Option<Origin>,
}

/// A computed default a plugin must provide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultRequest {
    /// The full dotted path of the port.
    pub path: String,
    /// For a port exposed from another plugin: that plugin, which owns the default.
    pub origin: Option<Origin>,
}

impl PortNamespace {
    /// The full paths of the computed defaults that [`pre_process`](Self::pre_process) will use
    /// for `values`: ask the plugin for these, and only these (plumpy evaluates a callable default
    /// only when no value was given).
    pub fn computed_defaults_needed(&self, values: &Value) -> Vec<DefaultRequest> {
        let mut needed = Vec::new();
        self.fill(values.as_object(), &self.name, &mut |path, port| {
            needed.push(DefaultRequest {
                path: path.to_string(),
                origin: port.origin.clone(),
            });
            None
        });
        needed
    }

    /// Fill in defaults, as plumpy's `pre_process` does: a port's default when no value was given,
    /// and the defaults inside a namespace that was not given when it populates defaults.
    ///
    /// One deliberate difference: an *optional* namespace that was not given is left out when its
    /// defaults alone would not make a valid value (a required port inside has no default).
    /// plumpy fills it and then fails validation on a namespace the user never asked for; here a
    /// value that was valid stays valid once its defaults are filled.
    ///
    /// `computed` holds the values of computed defaults by full path. Values that are not objects
    /// where a namespace is expected are left alone for [`validate`](Self::validate) to report.
    pub fn pre_process(&self, values: &Value, computed: &HashMap<String, Value>) -> Value {
        if !values.is_object() && !values.is_null() {
            return values.clone();
        }
        let filled = self.fill(values.as_object(), &self.name, &mut |path, _| {
            computed.get(path).cloned()
        });
        let given_nothing = values.as_object().is_none_or(|m| m.is_empty());
        if given_nothing && !self.required && !self.fits(&filled) {
            return values.clone();
        }
        Value::Object(filled)
    }

    /// Whether `values` passes this namespace's own checks (not the plugin's).
    fn fits(&self, values: &Map<String, Value>) -> bool {
        let value = Value::Object(values.clone());
        self.validate_at(Some(&value), &self.name, &mut Vec::new())
            .is_ok()
    }

    fn fill(
        &self,
        given: Option<&Map<String, Value>>,
        path: &str,
        computed: &mut dyn FnMut(&str, &Port) -> Option<Value>,
    ) -> Map<String, Value> {
        let mut out = given.cloned().unwrap_or_default();
        for (name, entry) in &self.ports {
            let port_path = join(path, name);
            match entry {
                PortEntry::Port(port) => {
                    if out.contains_key(name) {
                        continue;
                    }
                    match &port.default {
                        Some(DefaultValue::Value(v)) => {
                            out.insert(name.clone(), v.clone());
                        }
                        Some(DefaultValue::Computed) => {
                            if let Some(v) = computed(&port_path, port) {
                                out.insert(name.clone(), v);
                            }
                        }
                        None => {}
                    }
                }
                PortEntry::Namespace(ns) => match out.get(name) {
                    Some(Value::Object(inner)) => {
                        let filled = ns.fill(Some(inner), &port_path, computed);
                        // An optional namespace given empty is like one not given (see above).
                        if !inner.is_empty() || ns.required || ns.fits(&filled) {
                            out.insert(name.clone(), Value::Object(filled));
                        }
                    }
                    Some(_) => {}
                    None if ns.populate_defaults => {
                        let inner = ns.fill(None, &port_path, computed);
                        if !inner.is_empty() && (ns.required || ns.fits(&inner)) {
                            out.insert(name.clone(), Value::Object(inner));
                        }
                    }
                    None => {}
                },
            }
        }
        out
    }

    /// Validate the values of this namespace (`None`: nothing was given).
    ///
    /// Returns the checks the plugin must make next, in order (ports before the namespace that
    /// holds them), or the first error found.
    pub fn validate(&self, values: Option<&Value>) -> Result<Vec<GuestCheck>, ValidationError> {
        let mut checks = Vec::new();
        self.validate_at(values, &self.name, &mut checks)?;
        Ok(checks)
    }

    fn validate_at(
        &self,
        values: Option<&Value>,
        path: &str,
        checks: &mut Vec<GuestCheck>,
    ) -> Result<(), ValidationError> {
        let empty = Map::new();
        let map = match values {
            None | Some(Value::Null) => &empty,
            Some(Value::Object(map)) => map,
            Some(other) => {
                return Err(error(
                    path,
                    format!(
                        "specified value is of type '{}', but a namespace takes a dict",
                        ValueType::of(other)
                    ),
                ));
            }
        };
        // An optional namespace that was not given is valid, whatever it holds.
        if map.is_empty() && !self.required {
            return Ok(());
        }
        for (name, entry) in &self.ports {
            let port_path = join(path, name);
            match entry {
                PortEntry::Port(port) => validate_port(port, map.get(name), &port_path, checks)?,
                PortEntry::Namespace(ns) => ns.validate_at(map.get(name), &port_path, checks)?,
            }
        }
        let unknown: Vec<&String> = map
            .keys()
            .filter(|k| !self.ports.contains_key(*k))
            .collect();
        if !unknown.is_empty() && !self.dynamic {
            let names: Vec<String> = unknown.iter().map(|k| format!("'{k}'")).collect();
            return Err(error(
                path,
                format!(
                    "unexpected port{} {}, for the non-dynamic namespace '{path}'",
                    if names.len() == 1 { "" } else { "s" },
                    names.join(", ")
                ),
            ));
        }
        for key in unknown {
            validate_dynamic(&self.valid_types, &map[key], &join(path, key))?;
        }
        if self.validator {
            checks.push(GuestCheck {
                path: path.to_string(),
                value: Value::Object(map.clone()),
                origin: self.origin.clone(),
            });
        }
        Ok(())
    }

    /// Validate one output emitted at a dotted path below this namespace.
    ///
    /// The path must lead to a declared port or namespace, or into a dynamic namespace. Returns the
    /// plugin checks to make, as [`validate`](Self::validate) does.
    pub fn validate_emitted(
        &self,
        path: &str,
        value: &Value,
    ) -> Result<Vec<GuestCheck>, ValidationError> {
        let full = join(&self.name, path);
        let mut checks = Vec::new();
        let mut namespace = self;
        let mut walked = self.name.clone();
        let components: Vec<&str> = path.split(super::SEPARATOR).collect();
        if components.iter().any(|c| c.is_empty()) {
            return Err(error(
                &full,
                "an output path needs a name for every component".into(),
            ));
        }
        for (i, component) in components.iter().enumerate() {
            let last = i + 1 == components.len();
            walked = join(&walked, component);
            match namespace.ports.get(*component) {
                Some(PortEntry::Port(port)) if last => {
                    validate_port(port, Some(value), &full, &mut checks)?;
                    return Ok(checks);
                }
                Some(PortEntry::Port(_)) => {
                    return Err(error(
                        &full,
                        format!("'{walked}' is a port, not a namespace"),
                    ));
                }
                Some(PortEntry::Namespace(ns)) if last => {
                    ns.validate_at(Some(value), &full, &mut checks)?;
                    return Ok(checks);
                }
                Some(PortEntry::Namespace(ns)) => namespace = ns,
                None if namespace.dynamic => {
                    if last {
                        validate_dynamic(&namespace.valid_types, value, &full)?;
                    } else if !namespace.valid_types.is_any()
                        && !namespace.valid_types.0.contains(&ValueType::Dict)
                    {
                        // A nested path makes dicts along the way; check the leaf like them.
                        validate_dynamic(&namespace.valid_types, value, &full)?;
                    }
                    return Ok(checks);
                }
                None => {
                    let ns_path = walked.rsplit_once(super::SEPARATOR).map_or("", |(p, _)| p);
                    return Err(error(
                        &full,
                        format!(
                            "unexpected port '{component}', for the non-dynamic namespace '{ns_path}'"
                        ),
                    ));
                }
            }
        }
        Ok(checks)
    }

    /// The full paths of required ports that have no value in `values` (e.g. required outputs
    /// never emitted). Optional namespaces that are absent are skipped, as in validation.
    pub fn missing_required(&self, values: &Value) -> Vec<String> {
        let mut missing = Vec::new();
        self.collect_missing(values.as_object(), &self.name, &mut missing);
        missing
    }

    fn collect_missing(
        &self,
        values: Option<&Map<String, Value>>,
        path: &str,
        missing: &mut Vec<String>,
    ) {
        let is_empty = values.is_none_or(|m| m.is_empty());
        if is_empty && !self.required {
            return;
        }
        for (name, entry) in &self.ports {
            let value = values.and_then(|m| m.get(name));
            match entry {
                PortEntry::Port(port) if port.required && value.is_none() => {
                    missing.push(join(path, name));
                }
                PortEntry::Port(_) => {}
                PortEntry::Namespace(ns) => {
                    ns.collect_missing(value.and_then(Value::as_object), &join(path, name), missing)
                }
            }
        }
    }
}

fn validate_port(
    port: &Port,
    value: Option<&Value>,
    path: &str,
    checks: &mut Vec<GuestCheck>,
) -> Result<(), ValidationError> {
    let Some(value) = value else {
        if port.required {
            return Err(error(
                path,
                format!("required value was not provided for '{path}'"),
            ));
        }
        // A validator is not called for a value that was not given.
        return Ok(());
    };
    if !port.valid_types.accepts(value) {
        return Err(error(path, wrong_type(value, &port.valid_types)));
    }
    if port.validator {
        checks.push(GuestCheck {
            path: path.to_string(),
            value: value.clone(),
            origin: port.origin.clone(),
        });
    }
    Ok(())
}

/// Validate an undeclared value of a dynamic namespace; a dict is a nested dynamic namespace of
/// the same type unless dicts are accepted as values.
fn validate_dynamic(types: &ValidTypes, value: &Value, path: &str) -> Result<(), ValidationError> {
    if types.accepts(value) {
        return Ok(());
    }
    if let Value::Object(map) = value {
        for (key, inner) in map {
            validate_dynamic(types, inner, &join(path, key))?;
        }
        return Ok(());
    }
    Err(error(path, wrong_type(value, types)))
}

pub(super) fn wrong_type(value: &Value, expected: &ValidTypes) -> String {
    format!(
        "value '{}' is not of the right type. Got '{}', expected '{}'",
        abbreviate(value),
        ValueType::of(value),
        expected
    )
}

/// A value as JSON, cut short so an error message stays readable.
fn abbreviate(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() <= 60 {
        return text;
    }
    let cut: String = text.chars().take(57).collect();
    format!("{cut}...")
}

fn error(path: &str, message: String) -> ValidationError {
    ValidationError {
        path: path.to_string(),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{namespace, port, typed, with_default};
    use super::*;
    use serde_json::json;

    fn inputs(decls: &[super::super::PortDecl]) -> PortNamespace {
        PortNamespace::from_decls("inputs", decls).unwrap()
    }

    #[test]
    fn a_missing_required_port_is_named() {
        let ns = inputs(&[port("x"), port("y")]);
        let err = ns.validate(Some(&json!({"x": 1}))).unwrap_err();
        assert_eq!(err.path, "inputs.y");
        assert_eq!(
            err.to_string(),
            "Error occurred validating port 'inputs.y': required value was not provided for 'inputs.y'"
        );
    }

    #[test]
    fn a_wrong_type_names_port_and_types() {
        let ns = inputs(&[typed(port("x"), &[ValueType::Int])]);
        let err = ns.validate(Some(&json!({"x": "a"}))).unwrap_err();
        assert_eq!(err.path, "inputs.x");
        assert!(err.message.contains("Got 'str', expected 'int'"), "{err}");
    }

    #[test]
    fn nested_errors_carry_the_full_path() {
        let ns = inputs(&[typed(port("a.b.c"), &[ValueType::Bool])]);
        let err = ns
            .validate(Some(&json!({"a": {"b": {"c": 3}}})))
            .unwrap_err();
        assert_eq!(err.path, "inputs.a.b.c");
    }

    #[test]
    fn unknown_keys_are_refused_on_a_non_dynamic_namespace() {
        let ns = inputs(&[port("x")]);
        let err = ns.validate(Some(&json!({"x": 1, "z": 2}))).unwrap_err();
        assert_eq!(err.path, "inputs");
        assert!(err.message.contains("'z'"), "{err}");
    }

    #[test]
    fn defaults_fill_missing_values_including_falsy_ones() {
        let ns = inputs(&[
            with_default(port("t"), json!(true)),
            with_default(port("f"), json!(false)),
            with_default(port("zero"), json!(0)),
            with_default(port("opts.greeting"), json!("Hello")),
        ]);
        let filled = ns.pre_process(&json!({"t": false}), &HashMap::new());
        assert_eq!(
            filled,
            json!({"t": false, "f": false, "zero": 0, "opts": {"greeting": "Hello"}})
        );
        assert!(ns.validate(Some(&filled)).unwrap().is_empty());
    }

    #[test]
    fn computed_defaults_are_asked_for_only_when_missing() {
        let mut decl = port("later");
        decl.default = Some(DefaultValue::Computed);
        decl.required = false;
        let ns = inputs(&[decl]);
        let needed = ns.computed_defaults_needed(&json!({}));
        assert_eq!(
            needed,
            [DefaultRequest {
                path: "inputs.later".into(),
                origin: None
            }]
        );
        assert!(ns.computed_defaults_needed(&json!({"later": 3})).is_empty());
        let computed = HashMap::from([("inputs.later".to_string(), json!(1))]);
        assert_eq!(ns.pre_process(&json!({}), &computed), json!({"later": 1}));
    }

    #[test]
    fn guest_checks_come_for_given_values_only_ports_first() {
        let mut checked = port("a");
        checked.validator = true;
        checked.required = false;
        let mut ns_decl = namespace("");
        ns_decl.validator = true;
        let ns = inputs(&[checked, ns_decl]);
        let checks = ns.validate(Some(&json!({"a": 1}))).unwrap();
        let paths: Vec<_> = checks.iter().map(|c| c.path.as_str()).collect();
        assert_eq!(paths, ["inputs.a", "inputs"]);
        let checks = ns.validate(Some(&json!({}))).unwrap();
        assert_eq!(
            checks.len(),
            1,
            "the port validator is not called without a value"
        );
    }

    #[test]
    fn emitted_outputs_must_be_declared_unless_dynamic() {
        let outputs = PortNamespace::from_decls(
            "outputs",
            &[
                typed(port("sum"), &[ValueType::Int]),
                typed(namespace("extra"), &[ValueType::Str]),
            ],
        )
        .unwrap();
        assert!(outputs.validate_emitted("sum", &json!(3)).is_ok());
        let err = outputs.validate_emitted("sum", &json!("3")).unwrap_err();
        assert_eq!(err.path, "outputs.sum");
        let err = outputs.validate_emitted("total", &json!(3)).unwrap_err();
        assert_eq!(err.path, "outputs.total");
        assert!(
            outputs
                .validate_emitted("extra.anything", &json!("ok"))
                .is_ok()
        );
        let err = outputs
            .validate_emitted("extra.anything", &json!(1))
            .unwrap_err();
        assert_eq!(err.path, "outputs.extra.anything");
    }

    #[test]
    fn missing_required_outputs_are_listed() {
        let outputs = PortNamespace::from_decls(
            "outputs",
            &[port("a"), port("b"), with_default(port("c"), json!(1))],
        )
        .unwrap();
        assert_eq!(
            outputs.missing_required(&json!({"a": 1})),
            vec!["outputs.b".to_string()]
        );
    }
}
