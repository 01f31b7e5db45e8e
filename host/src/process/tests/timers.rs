//! Durable timers: a sleep ends when its timer fires and nothing else ends it; a wait for a
//! signal ends at its timeout unless the signal comes first; the timer is in the checkpoint,
//! fixed when the step returned, so a process restored after it came due goes on at once.

use serde_json::json;

use crate::guest::{Next, ProcessView, Timer};
use crate::process::{ProcessState, Signal, send_signal};

use super::fakes::*;

/// A plugin whose step `nap` sleeps for `ms`, then `last` runs.
fn napper(ms: u64) -> Plugin {
    Plugin::steps("napper", &["nap", "last"]).on("nap", move |_| {
        Act::next(Next::Sleep {
            until: Timer::After { ms },
        })
    })
}

/// A plugin whose step `ask` waits for `approved` at most `ms`, then `decide` runs.
fn asker(ms: u64) -> Plugin {
    Plugin::steps("asker", &["ask", "decide"]).on("ask", move |_: &mut ProcessView| {
        Act::next(Next::Wait {
            event: Some("approved".into()),
            message: None,
            timeout: Some(Timer::After { ms }),
        })
    })
}

#[tokio::test]
async fn a_sleep_ends_when_its_timer_fires_and_not_before() {
    let host = Fake::durable();
    let (process, events) = host.create(&napper(60_000), "p", None);
    process.start().unwrap();
    let sleeping = until(&process, |r| r.state == ProcessState::Waiting).await;
    let due = START_MS + 60_000;
    assert!(sleeping.sleeping);
    assert_eq!(sleeping.timer, Some(due), "the record says when it wakes");
    let saved = host.saved().last().unwrap().record.clone();
    assert_eq!(
        (saved.state, saved.timer),
        (ProcessState::Waiting, Some(due)),
        "the timer is in the checkpoint"
    );
    assert_eq!(host.timer_of("p"), Some(due), "the host's index wakes it");

    host.advance(59_999);
    settle().await;
    assert_eq!(
        process.state(),
        ProcessState::Waiting,
        "not before its time"
    );
    assert!(!process.resume(None), "a resume does not end a sleep");
    host.advance(1);
    let record = ended(&process).await;
    assert_eq!(record.state, ProcessState::Finished);
    assert_eq!((record.timer, record.sleeping), (None, false));
    assert_eq!(host.calls(), ["nap", "last"]);
    assert_eq!(
        events.names(),
        ["running", "waiting", "running", "finished"]
    );
}

#[tokio::test]
async fn a_wait_whose_timeout_fires_first_goes_on_timed_out() {
    let host = Fake::durable();
    let (process, _) = host.create(&asker(600_000), "p", None);
    process.start().unwrap();
    let waiting = until(&process, |r| r.state == ProcessState::Waiting).await;
    assert_eq!(waiting.waiting_for.as_deref(), Some("approved"));
    assert_eq!(waiting.timer, Some(START_MS + 600_000));
    assert!(!waiting.sleeping);

    host.advance(600_000);
    let record = ended(&process).await;
    assert_eq!(record.state, ProcessState::Finished);
    assert_eq!(record.context["timed_out"], true);
    assert!(!record.context.contains_key("approved"));
}

#[tokio::test]
async fn a_signal_before_the_timeout_ends_the_wait_and_its_timer() {
    let host = Fake::durable();
    let (process, _) = host.create(&asker(600_000), "p", None);
    process.start().unwrap();
    until(&process, |r| r.state == ProcessState::Waiting).await;
    let approved = Signal {
        event: Some("approved".into()),
        data: Some(json!({"by": "ada"})),
        key: None,
    };
    send_signal(&*host, &process, &approved).await.unwrap();
    let record = ended(&process).await;
    assert_eq!(record.context["timed_out"], false);
    assert_eq!(record.context["approved"], json!({"by": "ada"}));
    assert_eq!(host.timer_of("p"), None, "its timer is cleared");
}

#[tokio::test]
async fn a_restored_sleeper_whose_timer_came_due_meanwhile_goes_on_at_once() {
    let plugin = napper(60_000);
    let host = Fake::durable();
    let (first, _) = host.create(&plugin, "p", None);
    first.start().unwrap();
    until(&first, |r| r.state == ProcessState::Waiting).await;
    // The checkpoint of the sleep, read by a host that starts two minutes later.
    let record = host.last_checkpoint_of_killed(&first).await;
    host.advance(120_000);
    let (restored, _) = host.spawn(&plugin, record);
    restored.start().unwrap();
    let record = ended(&restored).await;
    assert_eq!(record.state, ProcessState::Finished);
    assert_eq!(host.calls(), ["last"], "the timer was not started again");
}

#[tokio::test]
async fn a_dormant_sleeper_is_brought_back_by_its_timer() {
    let plugin = napper(1_000);
    let host = Fake::dehydrating(&plugin);
    let (process, _) = host.create(&plugin, "p", None);
    process.start().unwrap();
    until(&process, |r| r.state == ProcessState::Waiting).await;
    settle().await;
    assert!(process.is_dehydrated(), "a sleeper leaves memory");

    host.advance(1_000);
    let record = ended(&process).await;
    assert_eq!(record.state, ProcessState::Finished);
    assert_eq!(host.rehydrations(), 1);
}

#[tokio::test]
async fn a_paused_sleeper_whose_timer_fired_goes_on_once_played() {
    let host = Fake::durable();
    let (process, _) = host.create(&napper(1_000), "p", None);
    process.start().unwrap();
    until(&process, |r| r.state == ProcessState::Waiting).await;
    assert!(process.pause(None));
    until(&process, |r| r.paused).await;
    host.advance(5_000);
    settle().await;
    assert_eq!(
        process.state(),
        ProcessState::Waiting,
        "paused, it does not go on"
    );
    process.play();
    let record = ended(&process).await;
    assert_eq!(record.state, ProcessState::Finished);
}
