//! Process states and commands (plumpy's S01–S14).

use std::sync::Arc;

use serde_json::json;

use crate::error::Error;
use crate::guest::{Effects, Failure, Next};
use crate::process::{Event, ProcessHandle, ProcessState};

use super::fakes::*;

#[tokio::test]
async fn s01_a_trivial_step_emits_one_output_and_finishes() {
    let host = Fake::memory();
    let plugin =
        Plugin::steps("trivial", &["run"]).on("run", |_| Act::go_on().emit("default", json!(5)));
    let (process, events) = host.create(&plugin, "p", None);
    process.start().unwrap();
    let record = ended(&process).await;
    assert_eq!(record.state, ProcessState::Finished);
    assert_eq!(record.successful(), Some(true));
    assert_eq!(record.outputs, json!({"default": 5}));
    assert_eq!(events.names(), ["running", "output_emitted", "finished"]);
    assert_eq!(
        host.changes_of("p"),
        [
            (Some(ProcessState::Created), ProcessState::Running),
            (Some(ProcessState::Running), ProcessState::Finished)
        ]
    );
    assert_eq!(host.released.lock().unwrap().as_slice(), ["p"]);
    assert_eq!(
        host.ended.lock().unwrap().as_slice(),
        [("p".to_string(), false)]
    );
}

#[tokio::test]
async fn s02_an_error_in_a_step_excepts_the_process() {
    let host = Fake::memory();
    let plugin = Plugin::steps("raises", &["run", "never"]).on("run", |_| {
        let mut act = Act::Fail(
            Failure::Error("exception during run".into()),
            Effects::default(),
        );
        act.effects().outputs.push(("early".into(), json!(1)));
        act
    });
    let (process, events) = host.create(&plugin, "p", None);
    process.start().unwrap();
    let record = ended(&process).await;
    assert_eq!(record.state, ProcessState::Excepted);
    assert_eq!(record.successful(), Some(false));
    assert_eq!(
        record.error.as_deref(),
        Some("step 'run' failed: exception during run")
    );
    // What the step did before it failed is announced, as plumpy announces it as it happens.
    assert_eq!(events.names(), ["running", "output_emitted", "excepted"]);
    assert_eq!(host.calls(), ["run"], "no step runs after the failure");
}

#[tokio::test]
async fn s04_a_kill_returned_from_a_step_kills() {
    let host = Fake::memory();
    let plugin = Plugin::steps("kills", &["run", "never"]).on("run", |_| {
        Act::next(Next::Kill {
            message: "killed".into(),
        })
    });
    let (process, events) = host.create(&plugin, "p", None);
    process.start().unwrap();
    let record = ended(&process).await;
    assert_eq!(record.state, ProcessState::Killed);
    assert_eq!(record.exit_message.as_deref(), Some("killed"));
    assert_eq!(events.names(), ["running", "killed"]);
    assert_eq!(host.calls(), ["run"]);
}

#[tokio::test]
async fn s06_a_kill_before_start_is_idempotent_and_refused_once_finished() {
    let host = Fake::memory();
    let plugin = Plugin::steps("p", &["run"]);
    let (process, events) = host.create(&plugin, "p", None);
    assert!(process.kill(Some("Farewell!"), false));
    let record = ended(&process).await;
    assert_eq!(record.state, ProcessState::Killed);
    assert_eq!(record.exit_message.as_deref(), Some("Farewell!"));
    assert!(process.kill(None, false), "killing again is still true");
    assert_eq!(events.names(), ["killed"], "listeners hear only the kill");
    assert!(host.calls().is_empty(), "no step ran");

    let (finished, _) = host.create(&plugin, "q", None);
    finished.start().unwrap();
    ended(&finished).await;
    assert!(
        !finished.kill(None, false),
        "a finished process is not killed"
    );
    assert_eq!(finished.state(), ProcessState::Finished);
}

#[tokio::test]
async fn s07_a_waiting_process_is_resumed_by_a_listener() {
    let host = Fake::memory();
    let plugin = Plugin::steps("waits", &["wait", "last"])
        .on("wait", |_| {
            Act::next(Next::Wait {
                event: Some("go".into()),
                message: Some("waiting for go".into()),
                timeout: None,
            })
        })
        .on("last", |p| {
            Act::go_on().emit("got", p.context["go"].clone())
        });
    let (process, events) = host.create(&plugin, "p", None);
    process.add_listener(Arc::new(|p: &ProcessHandle, e: &Event| {
        if matches!(e, Event::Waiting { .. }) {
            assert!(p.resume(Some(json!(42))));
        }
    }));
    process.start().unwrap();
    let record = ended(&process).await;
    assert_eq!(record.state, ProcessState::Finished, "{:?}", record.error);
    assert_eq!(
        record.outputs,
        json!({"got": 42}),
        "the resume's value went into the context"
    );
    assert_eq!(
        events.names(),
        [
            "running",
            "waiting",
            "running",
            "output_emitted",
            "finished"
        ]
    );
    assert_eq!(
        host.changes_of("p"),
        [
            (Some(ProcessState::Created), ProcessState::Running),
            (Some(ProcessState::Running), ProcessState::Waiting),
            (Some(ProcessState::Waiting), ProcessState::Running),
            (Some(ProcessState::Running), ProcessState::Finished)
        ]
    );
}

#[tokio::test]
async fn s08_pause_while_waiting_then_play_then_resume() {
    let host = Fake::memory();
    let (process, _) = host.create(&waiter(), "p", None);
    process.start().unwrap();
    until(&process, |r| r.state == ProcessState::Waiting).await;

    assert!(process.pause(Some("a look")));
    let paused = until(&process, |r| r.paused).await;
    assert_eq!(
        paused.state,
        ProcessState::Waiting,
        "a waiting process pauses at once"
    );
    assert_eq!(paused.status.as_deref(), Some("a look"));

    // Resumed while paused: it stays waiting until played.
    assert!(process.resume(None));
    settle().await;
    assert_eq!(process.state(), ProcessState::Waiting);
    assert!(process.is_paused());
    assert_eq!(host.calls(), ["wait"], "the next step has not run");

    assert!(process.play());
    let record = ended(&process).await;
    assert_eq!(record.state, ProcessState::Finished);
    assert!(!record.paused);
    assert_eq!(host.calls(), ["wait", "last"]);
}

#[tokio::test]
async fn s10_a_pause_asked_for_in_the_final_step_applies_after_it_finishes() {
    let host = Fake::memory();
    // The last step of the outline, and a step that finishes the process.
    for next in [
        Next::Continue,
        Next::Finish {
            status: 0,
            message: None,
        },
    ] {
        let plugin = Plugin::steps("pauses", &["run"]).on("run", move |_| {
            Act::next(next.clone()).pause(None).emit("x", json!(1))
        });
        let (process, events) = host.create(&plugin, "p", None);
        process.start().unwrap();
        let record = ended(&process).await;
        assert_eq!(record.state, ProcessState::Finished);
        assert!(record.paused, "finished and paused, as in plumpy");
        assert_eq!(
            events.names(),
            ["running", "output_emitted", "finished", "paused"]
        );
    }
}

#[tokio::test]
async fn a_pause_asked_for_in_a_step_stops_before_the_next_one() {
    let host = Fake::durable();
    let plugin = Plugin::steps("pauses", &["first", "second"])
        .on("first", |_| Act::go_on().pause(Some("stop here")));
    let (process, events) = host.create(&plugin, "p", None);
    process.start().unwrap();
    let paused = until(&process, |r| r.paused).await;
    assert_eq!(paused.state, ProcessState::Running);
    assert_eq!(paused.status.as_deref(), Some("stop here"));
    settle().await;
    assert_eq!(host.calls(), ["first"]);
    // The step's checkpoint carries the pause it asked for, not yet applied; the pause's own
    // checkpoint has it applied.
    let saved = host.saved();
    let after = saved[0]
        .record
        .after_step
        .as_ref()
        .expect("the step's checkpoint");
    assert_eq!(after.pause, Some(Some("stop here".into())));
    assert!(saved[1].record.paused);
    assert_eq!(saved[1].record.after_step, None);

    assert!(process.play());
    assert_eq!(ended(&process).await.state, ProcessState::Finished);
    assert_eq!(host.calls(), ["first", "second"]);
    assert_eq!(events.names(), ["running", "paused", "played", "finished"]);
}

#[tokio::test]
async fn s11_a_paused_waiting_process_can_be_killed() {
    let host = Fake::memory();
    let (process, _) = host.create(&waiter(), "p", None);
    process.start().unwrap();
    until(&process, |r| r.state == ProcessState::Waiting).await;
    process.pause(None);
    until(&process, |r| r.paused).await;
    assert!(process.kill(Some("enough"), false));
    let record = ended(&process).await;
    assert_eq!(record.state, ProcessState::Killed);
    assert_eq!(record.exit_message.as_deref(), Some("enough"));
}

#[tokio::test]
async fn s12_a_listener_kills_a_waiting_process() {
    let host = Fake::memory();
    let (process, events) = host.create(&waiter(), "p", None);
    process.add_listener(Arc::new(|p: &ProcessHandle, e: &Event| {
        if matches!(e, Event::Waiting { .. }) {
            p.kill(None, false);
        }
    }));
    process.start().unwrap();
    assert_eq!(ended(&process).await.state, ProcessState::Killed);
    assert_eq!(events.names(), ["running", "waiting", "killed"]);
}

#[tokio::test]
async fn s13_a_process_runs_once() {
    let host = Fake::memory();
    let (process, _) = host.create(&Plugin::steps("p", &["run"]), "p", None);
    process.start().unwrap();
    ended(&process).await;
    assert!(matches!(process.start(), Err(Error::Closed { pid }) if pid == "p"));
    assert!(!process.pause(None) && !process.play() && !process.resume(None));
}

#[tokio::test]
async fn s14_an_unsuccessful_exit_finishes_unsuccessfully_with_its_message() {
    let host = Fake::memory();
    let plugin = Plugin::steps("fails", &["run", "never"])
        .exit_code(256, "an unsuccessful result")
        .on("run", |_| {
            Act::next(Next::Finish {
                status: 256,
                message: None,
            })
        });
    let (process, _) = host.create(&plugin, "p", None);
    process.start().unwrap();
    let record = ended(&process).await;
    assert_eq!(record.state, ProcessState::Finished);
    assert_eq!(record.exit_status, Some(256));
    assert_eq!(record.successful(), Some(false));
    assert_eq!(
        record.exit_message.as_deref(),
        Some("an unsuccessful result")
    );
    assert_eq!(host.calls(), ["run"]);
}

#[tokio::test]
async fn a_required_output_never_emitted_finishes_unsuccessfully_naming_it() {
    let host = Fake::memory();
    let plugin = Plugin::steps("forgets", &["run"]).requires_output("result");
    let (process, _) = host.create(&plugin, "p", None);
    process.start().unwrap();
    let record = ended(&process).await;
    assert_eq!(record.state, ProcessState::Finished);
    assert_eq!(record.successful(), Some(false));
    assert_eq!(record.missing_outputs, ["outputs.result"]);
    assert_eq!(
        record.exit_message.as_deref(),
        Some("required output was not emitted: 'outputs.result'")
    );
}
