//! Retries: a failed step with a retry policy is tried again from the state before it, after
//! the policy's intervals, its attempts and errors in the record; a failure the policy leaves
//! out is not retried; an exhausted policy ends the process EXCEPTED, every attempt said.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use serde_json::json;

use crate::guest::{Effects, Failure, Next, ProcessView};
use crate::process::ProcessState;
use crate::retry::{FailureKind, RetryPolicy};

use super::fakes::*;

fn policy(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        step: Some("flaky".into()),
        max_attempts,
        initial_interval: Duration::from_millis(100),
        backoff: 2.0,
        max_interval: None,
        non_retryable: vec![FailureKind::Trap],
        non_retryable_errors: vec!["invalid-request".into()],
    }
}

/// A plugin whose step `flaky` fails (having emitted an output and set the context) until its
/// `succeed_on`th attempt, and `last` runs after it; `tries` counts the attempts.
fn flaky(succeed_on: u32, tries: Arc<AtomicU32>) -> Plugin {
    Plugin::steps("flaky", &["flaky", "last"]).on("flaky", move |p: &mut ProcessView| {
        let n = tries.fetch_add(1, Ordering::SeqCst) + 1;
        assert_eq!(p.attempt, n, "the step is told which attempt it is");
        assert!(
            !p.context.contains_key("half_done"),
            "an attempt starts from the context before the first"
        );
        p.context.insert("half_done".into(), json!(n));
        if n < succeed_on {
            let mut effects = Effects::default();
            effects.outputs.push(("partial".into(), json!(n)));
            Act::Fail(Failure::Error(format!("flaked on attempt {n}")), effects)
        } else {
            Act::next(Next::Continue).emit("done", json!(n))
        }
    })
}

/// Move the fake clock on until `process` goes on from its retry sleep, returning the timers it
/// slept on, relative to the start.
async fn sleeps_until_it_ends(host: &Fake, process: &crate::process::ProcessHandle) -> Vec<u64> {
    let mut timers = Vec::new();
    loop {
        let record = until(process, |r| {
            r.state.is_terminal() || (r.state == ProcessState::Waiting && r.timer.is_some())
        })
        .await;
        if record.state.is_terminal() {
            return timers;
        }
        let due = record.timer.unwrap();
        timers.push(due - START_MS);
        let now = *host.clock.lock().unwrap();
        host.advance(due - now);
        until(process, |r| r.timer != Some(due)).await;
    }
}

#[tokio::test]
async fn a_step_that_succeeds_on_its_third_attempt_is_retried_with_the_declared_backoff() {
    let tries = Arc::new(AtomicU32::new(0));
    let plugin = flaky(3, tries.clone()).retry(policy(5));
    let host = Fake::durable();
    let (process, _) = host.create(&plugin, "p", None);
    process.start().unwrap();

    let waiting = until(&process, |r| r.state == ProcessState::Waiting).await;
    let retry = waiting
        .retry
        .clone()
        .expect("the record says it is retrying");
    assert_eq!(
        (retry.step.as_str(), retry.attempt, retry.max_attempts),
        ("flaky", 2, 5)
    );
    assert_eq!(retry.errors, ["failed: flaked on attempt 1"]);
    assert_eq!(
        waiting.status.as_deref(),
        Some("retrying step 'flaky' (attempt 2 of 5) after: failed: flaked on attempt 1")
    );
    assert_eq!(
        waiting.outputs,
        json!({}),
        "the failed attempt's output is dropped"
    );
    let saved = host.saved().last().unwrap().clone();
    assert!(
        saved.image,
        "the retry's checkpoint holds the memory image before the step"
    );
    assert_eq!(saved.record.retry, waiting.retry);

    let timers = sleeps_until_it_ends(&host, &process).await;
    // 100 ms after the first failure; then 200 ms after the second, which came at 100 ms.
    assert_eq!(timers, [100, 300]);
    let record = process.wait().await;
    assert_eq!(record.state, ProcessState::Finished, "{record:?}");
    assert_eq!(record.outputs, json!({"done": 3}));
    assert_eq!(record.context["half_done"], 3);
    assert_eq!(record.retry, None, "the success ends the retries");
    assert_eq!(record.status, None, "no longer `retrying step …`");
    assert_eq!(
        host.calls(),
        [
            "flaky",
            "reset from image",
            "flaky",
            "reset from image",
            "flaky",
            "last"
        ]
    );
}

#[tokio::test]
async fn a_failure_the_policy_leaves_out_is_not_retried() {
    let plugin = Plugin::steps("flaky", &["flaky", "last"])
        .on("flaky", |_| {
            Act::Fail(
                Failure::Panic("boom at lib.rs:3".into()),
                Effects::default(),
            )
        })
        .retry(policy(5));
    let host = Fake::durable();
    let (process, _) = host.create(&plugin, "p", None);
    process.start().unwrap();
    let record = ended(&process).await;
    assert_eq!(record.state, ProcessState::Excepted);
    assert_eq!(
        record.error.as_deref(),
        Some("step 'flaky' boom at lib.rs:3 (its retry policy does not retry a trap)")
    );
    assert_eq!(host.calls(), ["flaky"], "tried once");
}

#[tokio::test]
async fn an_error_of_a_kind_the_policy_leaves_out_is_not_retried() {
    let plugin = Plugin::steps("flaky", &["flaky", "last"])
        .on("flaky", |_| {
            let effects = Effects {
                error_kind: Some("invalid-request".into()),
                ..Effects::default()
            };
            Act::Fail(Failure::Error("the request names nobody".into()), effects)
        })
        .retry(policy(5));
    let host = Fake::durable();
    let (process, _) = host.create(&plugin, "p", None);
    process.start().unwrap();
    let record = ended(&process).await;
    assert_eq!(
        record.error.as_deref(),
        Some(
            "step 'flaky' failed: the request names nobody (its retry policy does not retry an \
             error of kind 'invalid-request')"
        )
    );
    assert_eq!(host.calls(), ["flaky"], "tried once");
}

#[tokio::test]
async fn an_exhausted_policy_excepts_the_process_with_every_attempts_error() {
    let tries = Arc::new(AtomicU32::new(0));
    let plugin = flaky(10, tries).retry(policy(3));
    let host = Fake::durable();
    let (process, _) = host.create(&plugin, "p", None);
    process.start().unwrap();
    let timers = sleeps_until_it_ends(&host, &process).await;
    assert_eq!(timers, [100, 300]);
    let record = process.wait().await;
    assert_eq!(record.state, ProcessState::Excepted);
    assert_eq!(
        record.error.as_deref(),
        Some(
            "step 'flaky' failed in each of its 3 attempts: attempt 1: failed: flaked on \
             attempt 1; attempt 2: failed: flaked on attempt 2; attempt 3: failed: flaked on \
             attempt 3"
        )
    );
}

#[tokio::test]
async fn a_process_restored_while_it_waits_to_retry_sleeps_on_then_retries() {
    let tries = Arc::new(AtomicU32::new(0));
    let plugin = flaky(2, tries.clone()).retry(policy(3));
    let host = Fake::durable();
    let (first, _) = host.create(&plugin, "p", None);
    first.start().unwrap();
    until(&first, |r| r.state == ProcessState::Waiting).await;
    let record = host.last_checkpoint_of_killed(&first).await;

    let (restored, _) = host.spawn(&plugin, record);
    restored.start().unwrap();
    let sleeping = until(&restored, |r| r.state == ProcessState::Waiting).await;
    assert_eq!(sleeping.timer, Some(START_MS + 100), "the same timer");
    settle().await;
    assert!(host.calls().is_empty(), "no attempt before its time");
    host.advance(100);
    let record = ended(&restored).await;
    assert_eq!(record.state, ProcessState::Finished, "{record:?}");
    assert_eq!(host.calls(), ["flaky", "last"]);
}
