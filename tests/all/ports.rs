//! plumpy's port and spec scenarios (S16–S28 of `shared/conformance/plumpy-scenarios.md`) that
//! are about a process, on real plugins. Those about the port model alone are unit tests in
//! `host/src/ports/scenarios.rs`.

use std::sync::Arc;

use damson::{Error, ProcessState};
use damson_tests::{damson, host};
use serde_json::{Value, json};

/// Run `plugin` and expect invalid inputs; returns the failing port path and message.
async fn invalid(plugin: &str, inputs: Value) -> (String, String) {
    let plugin = host().load(plugin).await.unwrap();
    match host().run(&plugin, inputs).await {
        Err(Error::InvalidInputs { source, .. }) => (source.path, source.message),
        other => panic!("expected invalid inputs, got {other:?}"),
    }
}

async fn outputs(plugin: &str, inputs: Value) -> Value {
    let plugin = host().load(plugin).await.unwrap();
    let record = host().run(&plugin, inputs).await.unwrap();
    assert_eq!(record.successful(), Some(true), "{record:?}");
    record.outputs
}

#[tokio::test(flavor = "multi_thread")]
async fn s16_a_guest_validator_message_is_the_error_and_it_is_not_called_without_a_value() {
    let (path, message) = invalid("validators", json!({"a": 1, "even": 3})).await;
    assert_eq!(
        (path.as_str(), message.as_str()),
        ("inputs.even", "must be even, got 3")
    );
    assert_eq!(
        outputs("validators", json!({"a": 1, "even": 4})).await["which"],
        "a"
    );

    // `checked` refuses every value, so a run without it proves its validator was not called.
    let (path, message) = invalid("validators", json!({"a": 1, "checked": "x"})).await;
    assert_eq!(
        (path.as_str(), message.as_str()),
        ("inputs.checked", "checked is never acceptable")
    );
    assert_eq!(outputs("validators", json!({"b": 1})).await["which"], "b");
}

#[tokio::test(flavor = "multi_thread")]
async fn s17_defaults_fill_falsy_values_and_computed_ones_only_when_missing() {
    let out = outputs("defaults", json!({})).await;
    let inputs = &out["inputs"];
    for (port, value) in [
        ("five", json!(5)),
        ("t", json!(true)),
        ("f", json!(false)),
        ("zero", json!(0)),
        ("one", json!(1)),
    ] {
        assert_eq!(inputs[port], value, "default of {port}");
    }
    assert_eq!(inputs["lazy"], 1);
    assert_eq!(out["computed"], 1, "the computed default ran once");

    let out = outputs("defaults", json!({"lazy": 7})).await;
    assert_eq!(out["inputs"]["lazy"], 7);
    assert_eq!(out["computed"], 0, "a given value is not computed");
}

#[tokio::test(flavor = "multi_thread")]
async fn s18_a_typed_namespace_is_dynamic_and_checks_nested_values_with_their_full_path() {
    let given = json!({"some": {"name": {"space": {"a": 1}}}, "extra": {"n": 1, "deep": {"m": 2}}});
    assert_eq!(outputs("namespaces", given).await["a"], 1);

    let given = json!({"some": {"name": {"space": {"a": 1}}}, "extra": {"deep": {"m": "two"}}});
    let (path, message) = invalid("namespaces", given).await;
    assert_eq!(path, "inputs.extra.deep.m");
    assert!(message.contains("expected 'int'"), "{message}");
}

#[tokio::test(flavor = "multi_thread")]
async fn s20_namespace_and_spec_validators_see_all_values_and_skip_when_optional_and_empty() {
    // Exactly one of a or b: {a} and {b} pass, {} and {a, b} fail at the root.
    assert_eq!(outputs("validators", json!({"a": 1})).await["which"], "a");
    assert_eq!(outputs("validators", json!({"b": 1})).await["which"], "b");
    for both_or_none in [json!({}), json!({"a": 1, "b": 2})] {
        let (path, message) = invalid("validators", both_or_none).await;
        assert_eq!(
            (path.as_str(), message.as_str()),
            ("inputs", "exactly one of 'a' or 'b' must be given")
        );
    }
    // The group validator runs after the ports and sees the dynamic values too.
    let (path, message) = invalid(
        "validators",
        json!({"a": 1, "group": {"base": 6, "extra": 5}}),
    )
    .await;
    assert_eq!(path, "inputs.group");
    assert_eq!(message, "the values of group add up to 11, more than 10");
    outputs(
        "validators",
        json!({"a": 1, "group": {"base": 6, "extra": 4}}),
    )
    .await;
    // An optional group that is not given is not validated (its validator would find nothing).
    outputs("validators", json!({"a": 1})).await;

    // A dict default with a validator round-trips through pre-processing.
    assert_eq!(
        outputs("defaults", json!({})).await["inputs"]["config"],
        json!({"a": 1})
    );
    let (path, _) = invalid("defaults", json!({"config": {"b": 1}})).await;
    assert_eq!(path, "inputs.config");
}

#[tokio::test(flavor = "multi_thread")]
async fn s21_a_namespace_without_populate_defaults_stays_absent() {
    let inputs = &outputs("defaults", json!({})).await["inputs"];
    assert_eq!(inputs["normal"], json!({"with_default": 1}));
    assert!(inputs.get("lazy_ns").is_none(), "{inputs}");
    let inputs = &outputs("defaults", json!({"lazy_ns": {}})).await["inputs"];
    assert_eq!(
        inputs["lazy_ns"],
        json!({"x": 5}),
        "given, it gets its defaults"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn s23_unknown_inputs_are_refused_unless_dynamic_and_inputs_cannot_change() {
    let given = json!({"some": {"name": {"space": {"a": 5}}}, "strict": {"x": 1, "y": 2}});
    let (path, message) = invalid("namespaces", given).await;
    assert_eq!(path, "inputs.strict");
    assert!(message.contains("'y'"), "{message}");

    let (path, message) = invalid("add", json!({"x": 1, "y": 2, "a": 5})).await;
    assert_eq!(path, "inputs");
    assert!(message.contains("'a'"), "{message}");
    // `expose` has dynamic top-level inputs (of type int): the same key is accepted there.
    assert_eq!(outputs("expose", json!({"a": 5})).await["got"]["a"], 5);

    // Nested inputs read by dotted path, and the step's copy never changes the process's inputs.
    let out = outputs("namespaces", json!({"some": {"name": {"space": {"a": 5}}}})).await;
    assert_eq!(out, json!({"a": 5, "unchanged": true}));
}

#[tokio::test(flavor = "multi_thread")]
async fn s25_each_plugin_has_its_own_spec_shared_by_its_processes_and_a_failed_define_leaves_none()
{
    let add = host().load("add").await.unwrap();
    let greet = host().load("greet").await.unwrap();
    assert!(!Arc::ptr_eq(add.spec(), greet.spec()));
    let again = host().load("add").await.unwrap();
    assert!(
        Arc::ptr_eq(add.spec(), again.spec()),
        "one spec per plugin, shared"
    );

    // A define that fails leaves no half-built spec behind: loading fails again, the same way.
    for _ in 0..2 {
        assert!(matches!(
            host().load("baddecl").await,
            Err(Error::Declare { .. })
        ));
    }

    // The description: `spec` always, `description` only when the plugin has one.
    let describe = |plugin: &str| -> Value {
        let out = damson()
            .args(["describe", plugin, "--json"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let greet = describe("greet");
    assert_eq!(greet["description"], "Greets someone, politely by default.");
    assert!(greet["spec"]["inputs"]["_attrs"].is_object() && greet["spec"]["outputs"].is_object());
    assert!(describe("add").get("description").is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn s26_exposed_inputs_land_in_a_nested_namespace_with_their_defaults_and_validators() {
    let expose = host().load("expose").await.unwrap();
    let inputs = &expose.spec().inputs;
    let top: Vec<&String> = inputs.ports.keys().collect();
    assert_eq!(top, ["base", "partial", "only_a", "c", "d"]);
    let Some(damson::ports::PortEntry::Namespace(space)) = inputs.get("base.name.space") else {
        panic!("no base.name.space");
    };
    assert!(
        space.dynamic,
        "exposing a dynamic namespace keeps it dynamic"
    );
    assert_eq!(space.valid_types.to_string(), "str");

    let got = &outputs("expose", json!({})).await["got"];
    let exposed = &got["base"]["name"]["space"];
    assert_eq!((&exposed["a"], &exposed["b"]), (&json!("a"), &json!("b")));
    // The computed default of an exposed port is computed by the plugin that declared it.
    assert_eq!(exposed["lazy"], "computed by base");
    // include / exclude, also for nested ports.
    assert_eq!(got["only_a"], json!({"a": "a"}));
    assert_eq!(got["partial"]["sub"], json!({"x": 1}));
    assert!(got["partial"].get("b").is_none());

    // The validator of an exposed port is still its own plugin's.
    let (path, message) = invalid(
        "expose",
        json!({"base": {"name": {"space": {"a": "forbidden"}}}}),
    )
    .await;
    assert_eq!(
        (path.as_str(), message.as_str()),
        ("inputs.base.name.space.a", "'forbidden' is not allowed")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn s28_an_undeclared_output_excepts_and_a_missing_one_is_unsuccessful() {
    let plugin = host().load("outputs").await.unwrap();
    let run = |mode: &str| {
        let plugin = plugin.clone();
        let mode = mode.to_string();
        async move { host().run(&plugin, json!({"mode": mode})).await.unwrap() }
    };

    for mode in ["undeclared", "ignored"] {
        let record = run(mode).await;
        assert_eq!(record.state, ProcessState::Excepted, "{mode}");
        let error = record.error.unwrap();
        assert!(
            error.contains("'outputs.nope'") && error.contains("unexpected port 'nope'"),
            "{error}"
        );
    }

    let record = run("wrongtype").await;
    assert_eq!(record.state, ProcessState::Excepted);
    let error = record.error.unwrap();
    assert!(
        error.contains("'outputs.result.value'") && error.contains("expected 'int'"),
        "{error}"
    );

    let record = run("missing").await;
    assert_eq!(record.state, ProcessState::Finished);
    assert_eq!(record.successful(), Some(false));
    assert_eq!(record.error, None, "no exception");
    assert_eq!(record.missing_outputs, ["outputs.result.value"]);
    assert_eq!(record.outputs, json!({}));
}

#[tokio::test(flavor = "multi_thread")]
async fn s28_an_output_validator_failure_excepts_naming_the_port() {
    let plugin = host().load("validators").await.unwrap();
    let record = host()
        .run(&plugin, json!({"a": 1, "emit": -2}))
        .await
        .unwrap();
    assert_eq!(record.state, ProcessState::Excepted);
    let error = record.error.unwrap();
    assert!(
        error.contains("'outputs.checked_out'") && error.contains("must be positive, got -2"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn nested_dynamic_outputs_are_kept_nested_and_never_change_the_spec() {
    let plugin = host().load("outputs").await.unwrap();
    let before = plugin.spec().outputs.description();
    let record = host().run(&plugin, json!({"mode": "ok"})).await.unwrap();
    assert_eq!(record.successful(), Some(true), "{record:?}");
    assert_eq!(
        record.outputs,
        json!({"result": {"value": 1}, "dyn": {"x": {"y": 2}, "list": [1, 2, 3]}})
    );
    assert_eq!(
        plugin.spec().outputs.description(),
        before,
        "dynamic outputs declared nothing"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn exposed_outputs_are_validated_like_declared_ones() {
    let out = outputs("expose", json!({})).await;
    assert_eq!(out["child"]["echo"]["a"], "a");

    // `child.echo` is `base`'s `echo`, a dict: an int there is refused, naming the port.
    let plugin = host().load("expose").await.unwrap();
    let record = host().run(&plugin, json!({"echo_int": 7})).await.unwrap();
    assert_eq!(record.state, damson::ProcessState::Excepted, "{record:?}");
    let error = record.error.unwrap();
    assert!(error.contains("outputs.child.echo"), "{error}");
    assert!(error.contains("expected 'dict'"), "{error}");
    assert!(
        record.outputs.get("child").is_none(),
        "the refused output is not kept"
    );
}
