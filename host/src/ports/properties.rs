//! Property tests over random nested specs and values: validation and default filling never
//! panic, filling defaults keeps a valid value valid, and projecting a valid value keeps it valid.

use std::collections::HashMap;

use proptest::prelude::*;
use serde_json::{Map, Value};

use super::*;

const NAMES: [&str; 4] = ["a", "b", "c", "d"];

fn value_type() -> impl Strategy<Value = ValueType> {
    prop_oneof![
        Just(ValueType::Any),
        Just(ValueType::Null),
        Just(ValueType::Bool),
        Just(ValueType::Int),
        Just(ValueType::Float),
        Just(ValueType::Number),
        Just(ValueType::Str),
        Just(ValueType::List),
        Just(ValueType::Dict),
    ]
}

fn valid_types() -> impl Strategy<Value = ValidTypes> {
    prop::collection::vec(value_type(), 0..3).prop_map(ValidTypes)
}

/// JSON values whose object keys collide with port names often.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        (-1e6f64..1e6).prop_map(Value::from),
        "[a-z]{0,3}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            prop::collection::btree_map(prop::sample::select(NAMES.to_vec()), inner, 0..4)
                .prop_map(|m| Value::Object(
                    m.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
                )),
        ]
    })
}

fn port(name: &'static str) -> impl Strategy<Value = PortEntry> {
    (valid_types(), any::<bool>(), json_value(), any::<bool>()).prop_map(
        move |(valid_types, required, default, has_default)| {
            // Only defaults that fit, as declaration demands.
            let default = (has_default && valid_types.accepts(&default)).then_some(default);
            PortEntry::Port(Port {
                name: name.to_string(),
                required: required && default.is_none(),
                default: default.map(DefaultValue::Value),
                valid_types,
                help: None,
                validator: false,
                origin: None,
            })
        },
    )
}

fn namespace(name: &'static str, depth: u32) -> BoxedStrategy<PortNamespace> {
    let entries = prop::collection::btree_map(prop::sample::select(NAMES.to_vec()), Just(()), 0..4)
        .prop_flat_map(move |names| {
            names
                .into_keys()
                .map(|n| {
                    if depth == 0 {
                        port(n).boxed()
                    } else {
                        prop_oneof![3 => port(n), 1 => namespace(n, depth - 1).prop_map(PortEntry::Namespace)]
                            .boxed()
                    }
                })
                .collect::<Vec<_>>()
        });
    (
        entries,
        valid_types(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            move |(entries, valid_types, dynamic, required, populate_defaults)| {
                let mut ns = PortNamespace::new(name);
                ns.dynamic = dynamic || !valid_types.0.is_empty();
                ns.valid_types = valid_types;
                ns.required = required;
                ns.populate_defaults = populate_defaults;
                for entry in entries {
                    ns.ports.insert(entry.name().to_string(), entry);
                }
                ns
            },
        )
        .boxed()
}

/// A value shaped like the spec most of the time, so that valid values are common.
fn spec_and_value() -> impl Strategy<Value = (PortNamespace, Value)> {
    namespace("inputs", 2).prop_flat_map(|ns| {
        let shaped = shaped_value(&ns);
        (Just(ns), prop_oneof![3 => shaped, 1 => json_value()])
    })
}

fn shaped_value(ns: &PortNamespace) -> BoxedStrategy<Value> {
    let parts: Vec<BoxedStrategy<Option<(String, Value)>>> = ns
        .ports
        .iter()
        .map(|(name, entry)| {
            let name = name.clone();
            let value = match entry {
                PortEntry::Port(_) => json_value().boxed(),
                PortEntry::Namespace(inner) => shaped_value(inner),
            };
            prop::option::of(value.prop_map(move |v| (name.clone(), v))).boxed()
        })
        .collect();
    parts
        .prop_map(|pairs| Value::Object(pairs.into_iter().flatten().collect::<Map<_, _>>()))
        .boxed()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn validation_and_defaults_never_panic((ns, value) in spec_and_value()) {
        let _ = ns.validate(Some(&value));
        let filled = ns.pre_process(&value, &HashMap::new());
        let _ = ns.validate(Some(&filled));
        let _ = ns.project(&value);
        let _ = ns.missing_required(&value);
    }

    #[test]
    fn a_valid_value_stays_valid_once_defaults_are_filled((ns, value) in spec_and_value()) {
        // Rejected cases are counted: too many and proptest fails, so this cannot pass vacuously.
        prop_assume!(ns.validate(Some(&value)).is_ok());
        let filled = ns.pre_process(&value, &HashMap::new());
        prop_assert!(
            ns.validate(Some(&filled)).is_ok(),
            "valid {value} became invalid as {filled}: {:?}", ns.validate(Some(&filled))
        );
    }

    #[test]
    fn the_projection_of_a_valid_value_is_valid((ns, value) in spec_and_value()) {
        prop_assume!(ns.validate(Some(&value)).is_ok());
        let projected = ns.project(&value);
        prop_assert!(
            ns.validate(Some(&projected)).is_ok(),
            "valid {value} projected to invalid {projected}: {:?}", ns.validate(Some(&projected))
        );
    }
}
