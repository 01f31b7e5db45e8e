//! Failures.

use serde_json::{Value, json};

use crate::ports::GuestCheck;
use crate::process::ProcessState;
use crate::workchain::Node;

use super::fakes::*;

#[tokio::test]
async fn a_condition_that_fails_excepts_the_process_naming_it() {
    let host = Fake::memory();
    // while_(more)(bump)
    let nodes = [
        Node::Step("bump".into()),
        Node::Sequence(vec![0]),
        Node::While("more".into(), 1),
        Node::Sequence(vec![2]),
    ];
    let plugin = Plugin::with_outline("loops", &nodes, 3);
    let (process, _) = host.create(&plugin, "p", None);
    process.start().unwrap();
    let record = ended(&process).await;
    assert_eq!(record.state, ProcessState::Excepted);
    assert_eq!(
        record.error.as_deref(),
        Some("condition 'more' failed: no condition more")
    );
}

#[tokio::test]
async fn a_loop_runs_while_its_condition_holds() {
    let host = Fake::memory();
    let nodes = [
        Node::Step("bump".into()),
        Node::Sequence(vec![0]),
        Node::While("more".into(), 1),
        Node::Sequence(vec![2]),
    ];
    let plugin = Plugin::with_outline("loops", &nodes, 3)
        .when("more", |p| {
            p.context.get("i").and_then(Value::as_u64).unwrap_or(0) < 3
        })
        .on("bump", |p| {
            let i = p.context.get("i").and_then(Value::as_u64).unwrap_or(0);
            p.context.insert("i".into(), json!(i + 1));
            Act::go_on()
        });
    let (process, _) = host.create(&plugin, "p", None);
    process.start().unwrap();
    let record = ended(&process).await;
    assert_eq!(record.state, ProcessState::Finished);
    assert_eq!(
        record.context["i"], 3,
        "the context a step changed is the process's"
    );
    assert_eq!(
        host.calls(),
        ["more?", "bump", "more?", "bump", "more?", "bump", "more?"]
    );
}

#[tokio::test]
async fn an_output_the_spec_refused_excepts_the_process_after_the_step() {
    let host = Fake::memory();
    let plugin = Plugin::steps("bad", &["run", "never"]).on("run", |_| {
        let mut act = Act::go_on();
        act.effects().refused = Some(crate::ports::ValidationError {
            path: "outputs.x".into(),
            message: "not an int".into(),
        });
        act
    });
    let (process, _) = host.create(&plugin, "p", None);
    process.start().unwrap();
    let record = ended(&process).await;
    assert_eq!(record.state, ProcessState::Excepted);
    let error = record.error.unwrap();
    assert!(
        error.starts_with("step 'run' emitted an invalid output: "),
        "{error}"
    );
    assert!(error.contains("outputs.x"), "{error}");
    assert_eq!(host.calls(), ["run"]);
}

#[tokio::test]
async fn an_output_the_plugins_validator_rejects_excepts_the_process() {
    let host = Fake::memory();
    let mut plugin = Plugin::steps("picky", &["run"]).on("run", |_| {
        let mut act = Act::go_on().emit("x", json!(1));
        act.effects().checks.push(GuestCheck {
            path: "outputs.x".into(),
            value: json!(1),
            origin: None,
        });
        act
    });
    plugin.rejects = Some("outputs.x");
    let (process, _) = host.create(&plugin, "p", None);
    process.start().unwrap();
    let record = ended(&process).await;
    assert_eq!(record.state, ProcessState::Excepted);
    assert!(record.error.unwrap().contains("not acceptable"));
}

#[tokio::test]
async fn a_panicking_task_ends_its_process_excepted_instead_of_hanging() {
    let host = Fake::memory();
    let plugin = Plugin::steps("bug", &["run"]).on("run", |_| Act::Panic);
    let (process, _) = host.create(&plugin, "p", None);
    process.start().unwrap();
    let record = ended(&process).await;
    assert_eq!(record.state, ProcessState::Excepted);
    assert!(record.error.unwrap().contains("the scripted step panics"));
    assert_eq!(host.released.lock().unwrap().as_slice(), ["p"]);
}
