//! Signals: a wait for an event takes the oldest signal of that event not taken yet, before or
//! after the wait began, its payload going into the context; none is taken twice.

use serde_json::json;

use crate::error::Error;
use crate::guest::{Next, ProcessView};
use crate::process::{ProcessState, Sent, Signal, send_signal};

use super::fakes::*;

/// A plugin whose step `ask` waits for `approved`, `again` waits for it once more, and `last`
/// does nothing.
fn approval() -> Plugin {
    let wait = |_: &mut ProcessView| {
        Act::next(Next::Wait {
            event: Some("approved".into()),
            message: Some("waiting for approval".into()),
            timeout: None,
        })
    };
    Plugin::steps("approval", &["ask", "again", "last"])
        .on("ask", wait)
        .on("again", wait)
}

fn approved(by: &str, key: Option<&str>) -> Signal {
    Signal {
        event: Some("approved".into()),
        data: Some(json!({"by": by})),
        key: key.map(str::to_string),
    }
}

#[tokio::test]
async fn a_signal_after_the_wait_resumes_it_with_its_payload_in_the_context() {
    let plugin = approval();
    let host = Fake::durable();
    let (process, _) = host.create(&plugin, "p", None);
    process.start().unwrap();
    until(&process, |r| r.state == ProcessState::Waiting).await;

    let sent = send_signal(&*host, &process, &approved("ada", None)).await;
    assert_eq!(sent.unwrap(), Sent::Queued { seq: 1 });
    // At rest in the second wait, the position names the step after it.
    let waiting = until(&process, |r| {
        r.state == ProcessState::Waiting && r.position == "2:last"
    })
    .await;
    assert_eq!(waiting.context["approved"], json!({"by": "ada"}));
    assert_eq!(
        waiting.taken_signals,
        [1],
        "the checkpoint of the next wait says it is taken"
    );
    assert_eq!(host.calls(), ["ask", "again"]);

    send_signal(&*host, &process, &approved("bob", None))
        .await
        .unwrap();
    let record = ended(&process).await;
    assert_eq!(record.state, ProcessState::Finished);
    assert_eq!(record.context["approved"], json!({"by": "bob"}));
}

#[tokio::test]
async fn a_signal_sent_before_the_wait_is_taken_by_it_and_one_for_another_event_is_kept() {
    let plugin = approval();
    let host = Fake::durable();
    let (process, _) = host.create(&plugin, "p", None);
    let other = Signal {
        event: Some("rejected".into()),
        data: Some(json!("no")),
        key: None,
    };
    assert_eq!(
        send_signal(&*host, &process, &other).await.unwrap().seq(),
        1
    );
    send_signal(&*host, &process, &approved("ada", None))
        .await
        .unwrap();
    process.start().unwrap();
    // `ask` takes signal 2 at once; `again` finds none left for its event and waits.
    // (At rest in `again`'s wait, the position names the step after it.)
    let waiting = until(&process, |r| {
        r.state == ProcessState::Waiting && r.position == "2:last"
    })
    .await;
    assert_eq!(waiting.context["approved"], json!({"by": "ada"}));
    assert!(
        !waiting.context.contains_key("rejected"),
        "a signal for an event nobody waits for stays where it is"
    );
    assert_eq!(waiting.taken_signals, [2]);
}

#[tokio::test]
async fn a_signal_with_a_key_sent_twice_is_taken_once() {
    let plugin = approval();
    let host = Fake::durable();
    let (process, _) = host.create(&plugin, "p", None);
    process.start().unwrap();
    until(&process, |r| r.state == ProcessState::Waiting).await;
    let first = send_signal(&*host, &process, &approved("ada", Some("k")))
        .await
        .unwrap();
    let again = send_signal(&*host, &process, &approved("ada", Some("k")))
        .await
        .unwrap();
    assert_eq!(
        (first, again),
        (Sent::Queued { seq: 1 }, Sent::Duplicate { seq: 1 })
    );
    let waiting = until(&process, |r| {
        r.state == ProcessState::Waiting && r.position == "2:last"
    })
    .await;
    settle().await;
    assert_eq!(
        process.state(),
        ProcessState::Waiting,
        "the second wait has nothing to take"
    );
    assert_eq!(waiting.taken_signals, [1]);
}

#[tokio::test]
async fn a_signal_to_a_terminated_process_is_refused_naming_its_state() {
    let plugin = waiter();
    let host = Fake::durable();
    let (process, _) = host.create(&plugin, "p", None);
    process.kill(Some("no more"), false);
    ended(&process).await;
    let refused = send_signal(&*host, &process, &Signal::default()).await;
    match refused {
        Err(Error::Terminated { pid, state }) => {
            assert_eq!((pid.as_str(), state.as_str()), ("p", "KILLED"))
        }
        other => panic!("expected Terminated, got {other:?}"),
    }
    assert!(
        host.signals.lock().unwrap().is_empty(),
        "nothing was stored"
    );
}

#[tokio::test]
async fn a_dormant_process_comes_back_for_its_signal_and_never_takes_one_twice() {
    let plugin = approval();
    let host = Fake::dehydrating(&plugin);
    let (process, _) = host.create(&plugin, "p", None);
    process.start().unwrap();
    until(&process, |r| r.state == ProcessState::Waiting).await;
    settle().await;
    assert!(process.is_dehydrated());

    send_signal(&*host, &process, &approved("ada", None))
        .await
        .unwrap();
    until(&process, |r| {
        r.state == ProcessState::Waiting && r.position == "2:last"
    })
    .await;
    settle().await;
    assert!(process.is_dehydrated(), "it left again at the second wait");
    assert_eq!(host.rehydrations(), 1);

    // Brought back from the second wait's checkpoint: signal 1 is taken there already.
    let saves = host.saved().len();
    assert!(process.pause(None));
    until(&process, |r| r.paused).await;
    assert!(process.play());
    until(&process, |r| !r.paused).await;
    settle().await;
    assert_eq!(process.state(), ProcessState::Waiting);
    assert_eq!(process.record().position, "2:last");
    assert_eq!(
        host.rehydrations(),
        3,
        "back for the pause and for the play"
    );
    assert!(
        host.saved()[saves..]
            .iter()
            .all(|s| s.record.taken_signals == [1])
    );

    send_signal(&*host, &process, &approved("bob", None))
        .await
        .unwrap();
    let record = ended(&process).await;
    assert_eq!(record.context["approved"], json!({"by": "bob"}));
    assert_eq!(record.taken_signals, [1, 2]);
    assert_eq!(host.calls(), ["ask", "again", "last"], "no step ran twice");
}

#[tokio::test]
async fn a_plain_resume_signal_goes_under_resumed() {
    let plugin = waiter();
    let host = Fake::durable();
    let (process, _) = host.create(&plugin, "p", None);
    process.start().unwrap();
    until(&process, |r| r.state == ProcessState::Waiting).await;
    let resume = Signal {
        data: Some(json!(42)),
        ..Signal::default()
    };
    send_signal(&*host, &process, &resume).await.unwrap();
    let record = ended(&process).await;
    assert_eq!(record.context["resumed"], 42);
}
