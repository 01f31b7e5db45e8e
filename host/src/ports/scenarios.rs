//! plumpy's port scenarios that are about the model alone (S16–S24 of
//! `shared/conformance/plumpy-scenarios.md`); those about a running process are in
//! `tests/all/ports.rs`.

use std::collections::HashMap;

use serde_json::json;

use super::tests::{namespace, port, typed, with_default};
use super::*;

fn inputs(decls: &[PortDecl]) -> PortNamespace {
    PortNamespace::from_decls("inputs", decls).unwrap()
}

#[test]
fn s16_a_required_port_rejects_no_value_and_a_typed_port_rejects_another_type() {
    let ns = inputs(&[port("required")]);
    let err = ns.validate(Some(&json!({}))).unwrap_err();
    assert_eq!(err.path, "inputs.required");
    assert!(ns.validate(Some(&json!({"required": 5}))).is_ok());

    let ns = inputs(&[typed(port("n"), &[ValueType::Int])]);
    assert!(ns.validate(Some(&json!({"n": "a"}))).is_err());
    assert!(ns.validate(Some(&json!({"n": 5}))).is_ok());
}

#[test]
fn s17_a_default_makes_a_port_optional_and_must_fit_its_type() {
    let ns = inputs(&[with_default(typed(port("n"), &[ValueType::Int]), json!(5))]);
    let Some(PortEntry::Port(n)) = ns.get("n") else {
        panic!()
    };
    assert!(!n.required);
    assert_eq!(ns.pre_process(&json!({}), &HashMap::new()), json!({"n": 5}));

    let wrong = with_default(typed(port("s"), &[ValueType::Str]), json!(4));
    assert!(matches!(
        PortNamespace::from_decls("inputs", &[wrong]),
        Err(SpecError::InvalidDefault { .. })
    ));

    // A computed default is not checked when declared (there is nothing to check yet).
    let mut computed = typed(port("c"), &[ValueType::Str]);
    computed.default = Some(DefaultValue::Computed);
    computed.required = false;
    assert!(PortNamespace::from_decls("inputs", &[computed]).is_ok());
}

#[test]
fn s18_a_valid_type_makes_a_namespace_dynamic_for_good() {
    let mut ns = inputs(&[typed(namespace("ints"), &[ValueType::Int])]);
    let dynamic = |ns: &PortNamespace| match ns.get("ints") {
        Some(PortEntry::Namespace(ints)) => ints.dynamic,
        _ => panic!("no namespace"),
    };
    assert!(
        dynamic(&ns),
        "a valid type implies dynamic, even without dynamic: true"
    );

    // Declared plain first, then given a type later: dynamic.
    let mut later = inputs(&[namespace("ints")]);
    assert!(!dynamic(&later));
    later
        .declare(&typed(namespace("ints"), &[ValueType::Int]))
        .unwrap();
    assert!(dynamic(&later));

    // Resetting the type leaves it dynamic.
    ns.declare(&namespace("ints")).unwrap();
    assert!(dynamic(&ns));

    // A union of types.
    let union = inputs(&[typed(
        namespace("either"),
        &[ValueType::Int, ValueType::Str],
    )]);
    assert!(
        union
            .validate(Some(&json!({"either": {"a": 1, "b": "x"}})))
            .is_ok()
    );
    assert!(
        union
            .validate(Some(&json!({"either": {"c": true}})))
            .is_err()
    );
}

#[test]
fn s20_a_required_port_in_a_dynamic_namespace_must_be_present() {
    let ns = inputs(&[typed(namespace("dyn"), &[ValueType::Int]), port("dyn.must")]);
    let err = ns
        .validate(Some(&json!({"dyn": {"other": 1}})))
        .unwrap_err();
    assert_eq!(err.path, "inputs.dyn.must");
    assert!(
        ns.validate(Some(&json!({"dyn": {"other": 1, "must": 2}})))
            .is_ok()
    );
}

#[test]
fn s21_populate_defaults_off_leaves_an_absent_namespace_out() {
    let normal = inputs(&[
        with_default(
            typed(port("normal.with_default"), &[ValueType::Int]),
            json!(1),
        ),
        typed(port("normal.without_default"), &[ValueType::Int]),
    ]);
    assert_eq!(
        normal.pre_process(&json!({}), &HashMap::new()),
        json!({"normal": {"with_default": 1}})
    );

    let mut lazy = namespace("lazy");
    lazy.populate_defaults = false;
    lazy.required = false;
    let ns = inputs(&[lazy, with_default(port("lazy.x"), json!(1))]);
    assert_eq!(ns.pre_process(&json!({}), &HashMap::new()), json!({}));
    assert!(ns.validate(Some(&json!({}))).is_ok());
}

#[test]
fn s24_dotted_names_make_namespaces_and_lookups_fail_cleanly() {
    let ns = inputs(&[port("some.name.space.a")]);
    assert!(matches!(ns.get("some.name.space.a"), Some(PortEntry::Port(p)) if p.name == "a"));
    assert!(ns.get("some.name.space.b").is_none());
    assert!(
        ns.get("some.name.space.a.deeper").is_none(),
        "a port has nothing below it"
    );
    assert!(ns.get("").is_none());

    // Existing namespaces are reused; a port in the way is an error naming it.
    let mut ns = ns;
    ns.declare(&port("some.name.other")).unwrap();
    let Some(PortEntry::Namespace(name)) = ns.get("some.name") else {
        panic!()
    };
    assert_eq!(name.ports.len(), 2);
    let err = ns.declare(&port("some.name.space.a.b")).unwrap_err();
    assert_eq!(
        err,
        SpecError::NotANamespace {
            path: "inputs.some.name.space.a.b".into(),
            port: "inputs.some.name.space.a".into()
        }
    );
    assert!(matches!(
        ns.declare(&port("x..y")),
        Err(SpecError::EmptyName { .. })
    ));
    assert!(matches!(
        ns.declare(&port("some.name.other")),
        Err(SpecError::Duplicate { .. })
    ));
}
