//! Checkpoints.

use crate::error::Error;
use crate::guest::Next;
use crate::process::ProcessState;
use crate::process::outside::Checkpoints;

use super::fakes::*;

#[tokio::test]
async fn a_durable_process_checkpoints_at_each_point() {
    let host = Fake::durable();
    let plugin = Plugin::steps("p", &["first", "wait", "last"]).on("wait", |_| {
        Act::next(Next::Wait {
            event: None,
            message: None,
            timeout: None,
        })
    });
    let (process, _) = host.create(&plugin, "p", None);
    process.pause(None);
    until(&process, |r| r.paused).await;
    process.start().unwrap();
    process.play();
    until(&process, |r| r.state == ProcessState::Waiting).await;
    process.resume(None);
    ended(&process).await;
    use ProcessState::*;
    assert_eq!(
        host.shapes(),
        [
            (Created, true, true),    // paused before start
            (Created, false, true),   // played
            (Running, false, true),   // after `first`
            (Running, false, true),   // after `wait`, which asks to wait
            (Waiting, false, true),   // waiting
            (Running, false, true),   // resumed
            (Running, false, true),   // after `last`
            (Finished, false, false)  // the end, with no memory image
        ]
    );
    let positions: Vec<String> = host
        .saved()
        .iter()
        .map(|s| s.record.position.clone())
        .collect();
    // At rest, the position names what runs next (as plumpy's stepper does); the last
    // step's stays once nothing is left.
    assert_eq!(positions[2], "1:wait", "after `first`: {positions:?}");
    assert_eq!(positions[4], "2:last", "waiting: {positions:?}");
    assert_eq!(positions[7], "2:last", "the end: {positions:?}");
}

#[tokio::test]
async fn without_every_step_a_process_checkpoints_only_at_changes() {
    let host = Fake::new(Checkpoints::AtChanges, &[]);
    let (process, _) = host.create(&waiter(), "p", None);
    process.start().unwrap();
    until(&process, |r| r.state == ProcessState::Waiting).await;
    process.resume(None);
    ended(&process).await;
    use ProcessState::*;
    assert_eq!(
        host.shapes(),
        [
            (Waiting, false, true),
            (Running, false, true),
            (Finished, false, false)
        ]
    );
}

#[tokio::test]
async fn a_memory_only_process_saves_nothing_and_refuses_checkpoints() {
    let host = Fake::memory();
    let (process, _) = host.create(&waiter(), "p", None);
    process.start().unwrap();
    until(&process, |r| r.state == ProcessState::Waiting).await;
    assert!(matches!(
        process.checkpoint(Some("t")).await,
        Err(Error::NoStore)
    ));
    process.resume(None);
    ended(&process).await;
    assert!(host.saved().is_empty());
}

#[tokio::test]
async fn a_checkpoint_on_request_is_saved_under_its_tag() {
    let host = Fake::durable();
    let (process, _) = host.create(&waiter(), "p", None);
    process.start().unwrap();
    until(&process, |r| r.state == ProcessState::Waiting).await;
    process.checkpoint(Some("before-resume")).await.unwrap();
    let last = host.saved().pop().unwrap();
    assert_eq!(last.tag.as_deref(), Some("before-resume"));
    assert_eq!(last.shape(), (ProcessState::Waiting, false, true));
    process.kill(None, false);
    ended(&process).await;
    assert!(matches!(
        process.checkpoint(None).await,
        Err(Error::Closed { .. })
    ));
}

#[tokio::test]
async fn a_checkpoint_that_cannot_be_saved_excepts_the_process() {
    let host = Fake::durable();
    host.then(1, SaveBehaviour::Fail);
    let (process, _) = host.create(&Plugin::steps("p", &["one", "two", "three"]), "p", None);
    process.start().unwrap();
    let record = ended(&process).await;
    assert_eq!(record.state, ProcessState::Excepted);
    let error = record.error.unwrap();
    assert!(error.starts_with("cannot save its checkpoint"), "{error}");
    assert_eq!(
        host.calls(),
        ["one", "two"],
        "it stops at the checkpoint that failed"
    );
}

#[tokio::test]
async fn a_process_taken_over_by_another_host_stops_saving_and_announcing() {
    let host = Fake::durable();
    host.then(1, SaveBehaviour::Abandon);
    let (process, events) = host.create(&Plugin::steps("p", &["one", "two", "three"]), "p", None);
    process.start().unwrap();
    let record = ended(&process).await;
    assert_eq!(
        record.state,
        ProcessState::Running,
        "left as it was; the other host goes on"
    );
    assert_eq!(host.saved().len(), 1);
    assert_eq!(events.names(), ["running"], "no end is announced");
    assert_eq!(
        host.ended.lock().unwrap().as_slice(),
        [("p".to_string(), true)]
    );
    assert!(
        host.released.lock().unwrap().is_empty(),
        "its claim is the other host's"
    );
    assert!(host.table.get("p").is_none(), "forgotten here");
}

#[tokio::test]
async fn a_restored_paused_process_stays_where_it_was_until_played() {
    let host = Fake::durable();
    let plugin = Plugin::steps("p", &["one", "two"]).on("one", |_| Act::go_on().status("one done"));
    let (first, _) = host.create(&plugin, "p", None);
    first.start().unwrap();
    ended(&first).await;
    // The checkpoint after `one`, paused there by the operator, as a new host reads it.
    let mut record = host.saved()[0].record.clone();
    record.paused = true;
    record.status = Some("held".into());
    record.after_step = None;
    host.calls.lock().unwrap().clear();
    let (restored, events) = host.spawn(&plugin, record);
    restored.start().unwrap();
    settle().await;
    assert!(host.calls().is_empty(), "nothing runs until played");
    assert_eq!(restored.record().status.as_deref(), Some("held"));
    restored.play();
    let record = ended(&restored).await;
    assert_eq!(record.state, ProcessState::Finished);
    assert_eq!(
        host.calls(),
        ["two"],
        "it went on after the step it had done"
    );
    assert_eq!(events.names(), ["played", "finished"]);
}
