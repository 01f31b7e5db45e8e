//! Children.

use serde_json::json;

use crate::guest::{AwaitChild, Effects, Failure, Launch, Next};
use crate::process::outside::Checkpoints;
use crate::process::record::AfterStep;
use crate::process::{ProcessRecord, ProcessState};

use super::fakes::*;

#[tokio::test]
async fn children_are_awaited_into_the_context() {
    let adder = child("adder", |_| Act::go_on().emit("sum", json!(3)));
    let host = Fake::new(Checkpoints::AtChanges, &[adder]);
    let plugin = Plugin::steps("parent", &["launch", "use"])
        .on("launch", |_| {
            Act::go_on()
                .launch("c1", "adder", "first", false)
                .launch("c2", "adder", "second", false)
        })
        .on("use", |p| {
            let a = p.context["first"]["outputs"]["sum"].as_i64().unwrap();
            let b = p.context["second"]["outputs"]["sum"].as_i64().unwrap();
            Act::go_on().emit("total", json!(a + b))
        });
    let (process, _) = host.create(&plugin, "p", None);
    process.start().unwrap();
    let record = ended(&process).await;
    assert_eq!(record.state, ProcessState::Finished, "{:?}", record.error);
    assert_eq!(record.outputs, json!({"total": 6}));
    assert_eq!(record.children, ["c1", "c2"]);
    assert_eq!(
        host.table.get("c1").unwrap().record().parent.as_deref(),
        Some("p")
    );
    // The step that launched them was committed before they were created, with them in it.
    let first = &host.saved()[0].record;
    let after = first
        .after_step
        .as_ref()
        .expect("the launching step's checkpoint");
    assert_eq!(after.launches.len(), 2);
    assert_eq!(first.children, ["c1", "c2"]);
}

#[tokio::test]
async fn a_failed_child_excepts_its_parent_unless_inspected() {
    let failing = child("failing", |_| {
        Act::Fail(Failure::Error("bad child".into()), Effects::default())
    });
    let host = Fake::new(Checkpoints::Off, &[failing]);
    let strict = Plugin::steps("strict", &["launch", "never"]).on("launch", |_| {
        Act::go_on().launch("c", "failing", "c", false)
    });
    let (process, _) = host.create(&strict, "p", None);
    process.start().unwrap();
    let record = ended(&process).await;
    assert_eq!(record.state, ProcessState::Excepted);
    let error = record.error.unwrap();
    assert!(
        error.starts_with("child process c (failing) awaited as 'c' ended EXCEPTED"),
        "{error}"
    );

    let lenient = Plugin::steps("lenient", &["launch", "look"])
        .on("launch", |_| Act::go_on().launch("d", "failing", "c", true))
        .on("look", |p| {
            Act::go_on().emit("child_ok", p.context["c"]["successful"].clone())
        });
    let (process, _) = host.create(&lenient, "q", None);
    process.start().unwrap();
    let record = ended(&process).await;
    assert_eq!(record.state, ProcessState::Finished);
    assert_eq!(record.outputs, json!({"child_ok": false}));
}

#[tokio::test]
async fn a_step_may_await_only_children_it_launched() {
    let host = Fake::memory();
    let plugin = Plugin::steps("p", &["run"]).on("run", |_| Act::Return {
        next: Next::Continue,
        awaits: vec![AwaitChild {
            pid: "stranger".into(),
            key: "k".into(),
            append: false,
            inspect: false,
        }],
        effects: Effects::default(),
    });
    let (process, _) = host.create(&plugin, "p", None);
    process.start().unwrap();
    let record = ended(&process).await;
    assert_eq!(
        record.error.as_deref(),
        Some("step 'run' awaits process 'stranger', which is not a child it launched")
    );
}

#[tokio::test]
async fn killing_a_parent_kills_its_children() {
    let sleeper = child("sleeper", |_| Act::Spin);
    let host = Fake::new(Checkpoints::Off, &[sleeper]);
    let plugin = Plugin::steps("parent", &["launch"]).on("launch", |_| {
        Act::go_on().launch("c", "sleeper", "c", false)
    });
    let (process, _) = host.create(&plugin, "p", None);
    process.start().unwrap();
    until(&process, |r| r.state == ProcessState::Waiting).await;
    process.kill(None, false);
    assert_eq!(ended(&process).await.state, ProcessState::Killed);
    let child = host.table.get("c").unwrap();
    assert_eq!(ended(&child).await.state, ProcessState::Killed);
}

#[tokio::test]
async fn a_restored_parent_attaches_to_its_children_and_launches_none_twice() {
    let adder = child("adder", |_| Act::go_on().emit("sum", json!(3)));
    let host = Fake::new(Checkpoints::AtChanges, std::slice::from_ref(&adder));
    // c1 exists already (its parent died after creating it); c2 does not.
    let (c1, _) = host.create(&adder, "c1", Some("p"));
    c1.start().unwrap();
    ended(&c1).await;
    let plugin = Plugin::steps("parent", &["launch", "use"])
        .on("use", |p| Act::go_on().emit("n", json!(p.context.len())));
    let mut record = ProcessRecord::new(
        "p".into(),
        "parent".into(),
        "digest".into(),
        json!({}),
        None,
        plugin.spec.outline.start(),
        0,
    );
    record.state = ProcessState::Running;
    // As a checkpoint left it: step `launch` done, its children not yet all created.
    assert_eq!(
        plugin.spec.outline.next(&mut record.cursor),
        crate::workchain::Call::Step("launch")
    );
    plugin.spec.outline.step_done(&mut record.cursor);
    record.children = vec!["c1".into(), "c2".into()];
    let launch = |pid: &str| Launch {
        pid: pid.into(),
        plugin: "adder".into(),
        inputs: json!({}),
    };
    let awaits = |pid: &str| AwaitChild {
        pid: pid.into(),
        key: pid.into(),
        append: false,
        inspect: false,
    };
    record.after_step = Some(AfterStep {
        step: "launch".into(),
        launches: vec![launch("c1"), launch("c2")],
        awaiting: vec![awaits("c1"), awaits("c2")],
        then: Next::Continue,
        pause: None,
    });
    let (process, events) = host.spawn(&plugin, record);
    process.start().unwrap();
    let record = ended(&process).await;
    assert_eq!(record.state, ProcessState::Finished, "{:?}", record.error);
    assert_eq!(record.outputs, json!({"n": 2}));
    assert_eq!(
        host.calls(),
        ["run", "run", "use"],
        "c1 ran once, c2 once, then the parent"
    );
    assert_eq!(
        events.names()[0],
        "waiting",
        "a restored process does not start RUNNING again"
    );
}
