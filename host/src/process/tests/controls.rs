//! Pause, play and kill in each state.

use std::sync::Arc;
use std::time::Duration;

use crate::process::ProcessState;

use super::fakes::*;

#[tokio::test]
async fn a_process_paused_before_start_does_not_run_until_played() {
    let host = Fake::memory();
    let (process, events) = host.create(&Plugin::steps("p", &["run"]), "p", None);
    assert!(process.pause(None));
    until(&process, |r| r.paused).await;
    process.start().unwrap();
    settle().await;
    assert_eq!(process.state(), ProcessState::Created);
    assert!(host.calls().is_empty());
    assert!(process.play());
    assert_eq!(ended(&process).await.state, ProcessState::Finished);
    assert_eq!(events.names(), ["paused", "played", "running", "finished"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_during_a_step_applies_once_it_returns() {
    let host = Fake::memory();
    let started = Arc::new(tokio::sync::Notify::new());
    let go = started.clone();
    let plugin = Plugin::steps("p", &["slow", "next"]).on("slow", move |_| {
        go.notify_one();
        // Long enough for the pause to arrive while the step runs.
        std::thread::sleep(Duration::from_millis(100));
        Act::go_on()
    });
    let (process, _) = host.create(&plugin, "p", None);
    process.start().unwrap();
    started.notified().await;
    assert!(process.pause(None));
    let paused = until(&process, |r| r.paused).await;
    assert_eq!(paused.state, ProcessState::Running);
    assert_eq!(
        host.calls(),
        ["slow"],
        "the running step completed; the next waits"
    );
    process.play();
    assert_eq!(ended(&process).await.state, ProcessState::Finished);
    assert_eq!(host.calls(), ["slow", "next"]);
}

#[tokio::test]
async fn a_kill_interrupts_a_step_that_computes_forever() {
    let host = Fake::memory();
    let plugin = Plugin::steps("spins", &["spin", "never"]).on("spin", |_| Act::Spin);
    let (process, events) = host.create(&plugin, "p", None);
    process.start().unwrap();
    until(&process, |r| r.state == ProcessState::Running).await;
    settle().await;
    assert!(process.kill(Some("stop spinning"), false));
    let record = ended(&process).await;
    assert_eq!(record.state, ProcessState::Killed);
    assert_eq!(record.exit_message.as_deref(), Some("stop spinning"));
    assert_eq!(events.names(), ["running", "killed"]);
    assert_eq!(host.calls(), ["spin"]);
}

#[tokio::test]
async fn play_and_resume_are_refused_where_they_mean_nothing() {
    let host = Fake::memory();
    let (process, _) = host.create(&waiter(), "p", None);
    assert!(!process.resume(None), "only a waiting process resumes");
    assert!(
        process.play(),
        "playing a process that is not paused does nothing, but it lives"
    );
    process.start().unwrap();
    until(&process, |r| r.state == ProcessState::Waiting).await;
    assert!(process.resume(None));
    assert_eq!(ended(&process).await.state, ProcessState::Finished);
    assert!(!process.play(), "a terminated process is not played");
}

#[tokio::test]
async fn the_status_follows_the_plugin_unless_paused() {
    let host = Fake::memory();
    let plugin = Plugin::steps("p", &["one", "two"])
        .on("one", |_| Act::go_on().status("step one done").pause(None))
        .on("two", |_| Act::go_on().status("step two done"));
    let (process, _) = host.create(&plugin, "p", None);
    process.start().unwrap();
    let paused = until(&process, |r| r.paused).await;
    assert_eq!(paused.status.as_deref(), Some("step one done"));
    process.pause(Some("held by the operator"));
    settle().await;
    process.play();
    let record = ended(&process).await;
    assert_eq!(record.status.as_deref(), Some("step two done"));

    let (waits, _) = host.create(&waiter(), "w", None);
    waits.start().unwrap();
    until(&waits, |r| r.state == ProcessState::Waiting).await;
    waits.pause(Some("held"));
    assert_eq!(
        until(&waits, |r| r.paused).await.status.as_deref(),
        Some("held")
    );
    waits.play();
    let played = until(&waits, |r| !r.paused).await;
    assert_eq!(played.status, None, "the plugin's own status is back");
    waits.kill(None, false);
}
