//! Each example plugin through the library API.

use damson::{Error, ProcessState};
use damson_tests::host;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn add_sums_two_integers() {
    let add = host().load("add").await.unwrap();
    let record = host().run(&add, json!({"x": 40, "y": 2})).await.unwrap();
    assert_eq!(record.state, ProcessState::Finished);
    assert_eq!(record.successful(), Some(true));
    assert_eq!(record.exit_status, Some(0));
    assert_eq!(record.outputs, json!({"sum": 42}));
    assert!(uuid_like(&record.pid), "pid {}", record.pid);
}

#[tokio::test(flavor = "multi_thread")]
async fn greet_fills_its_namespaced_defaults() {
    let greet = host().load("greet").await.unwrap();
    let record = host().run(&greet, json!({"name": "Ada"})).await.unwrap();
    assert_eq!(record.outputs, json!({"message": "Hello, Ada!"}));
    assert_eq!(
        record.inputs,
        json!({"name": "Ada", "options": {"greeting": "Hello", "shout": false}})
    );

    let record = host()
        .run(&greet, json!({"name": "Ada", "options": {"shout": true}}))
        .await
        .unwrap();
    assert_eq!(record.outputs, json!({"message": "HELLO, ADA!"}));
}

#[tokio::test(flavor = "multi_thread")]
async fn collatz_walks_its_while_and_if_outline() {
    let collatz = host().load("collatz").await.unwrap();
    let record = host().run(&collatz, json!({"n": 27})).await.unwrap();
    assert_eq!(record.successful(), Some(true), "{record:?}");
    // 27 takes 111 steps and peaks at 9232: counted in a struct field, the value in the context.
    assert_eq!(record.outputs, json!({"steps": 111, "peak": 9232}));
    assert_eq!(record.context, json!({"n": 1}).as_object().unwrap().clone());
    assert_eq!(record.status.as_deref(), Some("111 steps so far"));
    assert_eq!(record.position, "2:finish");
}

#[tokio::test(flavor = "multi_thread")]
async fn collatz_ends_with_its_declared_exit_code_on_bad_input() {
    let collatz = host().load("collatz").await.unwrap();
    let record = host().run(&collatz, json!({"n": 0})).await.unwrap();
    assert_eq!(record.state, ProcessState::Finished);
    assert_eq!(record.exit_status, Some(400));
    assert_eq!(record.successful(), Some(false));
    assert_eq!(
        record.exit_message.as_deref(),
        Some("n must be at least 1, got 0")
    );
    // The required outputs were never emitted: that is reported, not an exception.
    assert_eq!(record.missing_outputs, ["outputs.steps", "outputs.peak"]);
    assert_eq!(record.error, None);
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_inputs_create_no_process_and_name_the_port() {
    let add = host().load("add").await.unwrap();
    let Err(Error::InvalidInputs { plugin, source }) = host().run(&add, json!({"x": 1})).await
    else {
        panic!("missing input y was accepted");
    };
    assert_eq!(plugin, "add");
    assert_eq!(source.path, "inputs.y");

    let Err(Error::InvalidInputs { source, .. }) =
        host().run(&add, json!({"x": true, "y": 1})).await
    else {
        panic!("a bool was accepted as an int");
    };
    assert_eq!(source.path, "inputs.x");
    assert!(source.message.contains("expected 'int'"), "{source}");

    let Err(Error::InvalidInputs { source, .. }) =
        host().run(&add, json!({"x": 1, "y": 2, "z": 3})).await
    else {
        panic!("an unknown input was accepted");
    };
    assert!(source.message.contains("'z'"), "{source}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_loaded_plugin_is_described_by_its_spec() {
    let collatz = host().load("collatz").await.unwrap();
    let spec = collatz.spec();
    assert_eq!(spec.name, "collatz");
    assert_eq!(spec.version, "0.1.0");
    assert!(spec.inputs.get("n").is_some());
    assert_eq!(
        spec.exit_code(400).map(|c| c.label.as_str()),
        Some("ERROR_NOT_POSITIVE")
    );
    assert_eq!(collatz.digest().len(), 64);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plugin_that_panics_while_declaring_is_refused() {
    let Err(Error::Declare { source, .. }) = host().load("baddecl").await else {
        panic!("baddecl loaded");
    };
    let message = source.to_string();
    assert!(
        message.contains("else_ must be the last branch"),
        "{message}"
    );
    assert!(message.contains("baddecl/src/lib.rs"), "{message}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_default_of_the_wrong_type_is_an_invalid_spec() {
    let Err(e @ Error::InvalidSpec { .. }) = host().load("badspec").await else {
        panic!("badspec loaded");
    };
    let source = std::error::Error::source(&e).unwrap().to_string();
    assert!(source.contains("inputs.count"), "{source}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_component_of_another_world_version_is_refused() {
    let Err(Error::WrongWorld { detail, .. }) = host().load("wrongworld").await else {
        panic!("wrongworld loaded");
    };
    assert!(detail.contains("damson:workflow/process@9.0.0"), "{detail}");
    assert!(
        detail.contains("damson:workflow/process@0.2.0 or damson:workflow/process@0.1.0"),
        "{detail}"
    );
}

/// `oldworld` was built with wit-bindgen against `wit/0.1.0/`, the first world, as plugins
/// built before 0.2.0 were: it loads, runs, waits for its event and takes its signal unchanged.
#[tokio::test(flavor = "multi_thread")]
async fn a_plugin_built_against_the_first_world_loads_and_runs_unchanged() {
    let host = host();
    let old = host.load("oldworld").await.unwrap();
    assert_eq!(old.world(), "damson:workflow/plugin@0.1.0");
    let process = host.launch(&old, json!({"name": "Ada"})).await.unwrap();
    let waiting = process
        .wait_for(|r| r.state == ProcessState::Waiting || r.state.is_terminal())
        .await;
    assert_eq!(waiting.state, ProcessState::Waiting, "{waiting:?}");
    assert_eq!(waiting.waiting_for.as_deref(), Some("go"));
    assert_eq!(waiting.status.as_deref(), Some("waiting for go"));
    assert_eq!(waiting.timer, None, "0.1.0 has no timeouts");

    let go = damson::Signal {
        event: Some("go".into()),
        data: Some(json!({"word": "onward"})),
        key: None,
    };
    host.signal(process.pid(), &go).await.unwrap();
    let record = process.wait().await;
    assert_eq!(record.successful(), Some(true), "{record:?}");
    assert_eq!(
        record.outputs,
        json!({"greeting": "Hello, Ada!", "word": "onward"})
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn files_that_are_not_components_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.wasm");
    std::fs::write(&text, "just some text").unwrap();
    assert!(matches!(
        host().load(text.to_str().unwrap()).await,
        Err(Error::NotWasm { .. })
    ));

    // The smallest valid core module: magic and version 1, no sections.
    let core = dir.path().join("core.wasm");
    std::fs::write(&core, b"\0asm\x01\0\0\0").unwrap();
    assert!(matches!(
        host().load(core.to_str().unwrap()).await,
        Err(Error::CoreModule { .. })
    ));

    let missing = host().load("no-such-plugin").await.unwrap_err();
    assert!(matches!(missing, Error::PluginNotFound { .. }));
    assert!(missing.to_string().contains("no-such-plugin"), "{missing}");
}

#[tokio::test(flavor = "multi_thread")]
async fn rust_plugins_are_safe_for_memory_images() {
    for name in [
        "add",
        "greet",
        "collatz",
        "parent",
        "counter",
        "lifecycle",
        "spin",
        "hog",
    ] {
        let plugin = host().load(name).await.unwrap();
        let safety = plugin.snapshot_safety();
        assert!(safety.is_safe(), "{name}: {:?}", safety.reasons);
    }
}

fn uuid_like(pid: &str) -> bool {
    pid.len() == 36 && pid.chars().filter(|c| *c == '-').count() == 4
}
