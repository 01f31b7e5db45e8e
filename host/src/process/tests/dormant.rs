//! Dehydration: a waiting process leaves its task and guest, and comes back on its handle when
//! a request needs it.

use serde_json::json;

use crate::process::ProcessState;

use super::fakes::*;

#[tokio::test]
async fn a_waiting_process_leaves_memory_and_comes_back_on_its_handle_when_resumed() {
    let plugin = waiter();
    let host = Fake::dehydrating(&plugin);
    let (process, events) = host.create(&plugin, "p", None);
    process.start().unwrap();
    until(&process, |r| r.state == ProcessState::Waiting).await;
    settle().await;
    assert!(process.is_dehydrated(), "no task holds it while it waits");
    assert_eq!(host.rehydrations(), 0);
    let saves = host.saved().len();

    assert!(process.resume(Some(json!("yes"))));
    let record = ended(&process).await;
    assert_eq!(record.state, ProcessState::Finished);
    assert_eq!(record.context["resumed"], "yes");
    assert!(!process.is_dehydrated());
    assert_eq!(host.rehydrations(), 1);
    assert_eq!(host.calls(), ["wait", "last"], "no step runs twice");
    assert_eq!(
        events.names(),
        ["running", "waiting", "running", "finished"],
        "its listeners hear the wait once, and the rest on the same handle"
    );
    let after: Vec<_> = host.shapes()[saves..].to_vec();
    use ProcessState::*;
    assert_eq!(
        after,
        [
            (Running, false, true),   // resumed
            (Running, false, true),   // after `last`
            (Finished, false, false)  // the end
        ],
        "the wait is not saved again when it comes back"
    );
}

#[tokio::test]
async fn a_dormant_process_comes_back_for_a_pause_and_a_play_and_leaves_again_each_time() {
    let plugin = waiter();
    let host = Fake::dehydrating(&plugin);
    let (process, events) = host.create(&plugin, "p", None);
    process.start().unwrap();
    until(&process, |r| r.state == ProcessState::Waiting).await;
    settle().await;
    assert!(process.is_dehydrated());

    assert!(process.pause(Some("a look")));
    until(&process, |r| r.paused).await;
    settle().await;
    assert!(
        process.is_dehydrated(),
        "paused and waiting, it leaves again"
    );
    assert_eq!(
        host.saved().last().unwrap().shape(),
        (ProcessState::Waiting, true, true)
    );

    // A resume while paused is kept until the play.
    assert!(process.resume(None));
    settle().await;
    assert_eq!(process.state(), ProcessState::Waiting);
    assert!(process.play());
    assert_eq!(ended(&process).await.state, ProcessState::Finished);
    assert_eq!(
        events.names(),
        [
            "running", "waiting", "paused", "played", "running", "finished"
        ]
    );
    assert_eq!(host.calls(), ["wait", "last"]);
}

#[tokio::test]
async fn a_dormant_process_comes_back_to_be_killed() {
    let plugin = waiter();
    let host = Fake::dehydrating(&plugin);
    let (process, events) = host.create(&plugin, "p", None);
    process.start().unwrap();
    until(&process, |r| r.state == ProcessState::Waiting).await;
    settle().await;
    assert!(process.is_dehydrated());
    assert!(process.kill(Some("no longer needed"), false));
    let record = ended(&process).await;
    assert_eq!(record.state, ProcessState::Killed);
    assert_eq!(record.exit_message.as_deref(), Some("no longer needed"));
    assert_eq!(events.names(), ["running", "waiting", "killed"]);
    assert_eq!(host.calls(), ["wait"]);
}

#[tokio::test]
async fn a_process_whose_wait_has_no_memory_image_stays_in_memory() {
    let plugin = waiter();
    // Without a store nothing is saved, so nothing could bring it back.
    let memory = Fake::memory();
    *memory.dehydrate.lock().unwrap() = Some(plugin.clone());
    let (process, _) = memory.create(&plugin, "p", None);
    process.start().unwrap();
    until(&process, |r| r.state == ProcessState::Waiting).await;
    settle().await;
    assert!(!process.is_dehydrated());
    process.resume(None);
    assert_eq!(ended(&process).await.state, ProcessState::Finished);
}
