//! Retries of the `approval` work chain's flaky `send` step (3 attempts, 200 ms then 400 ms
//! apart): it succeeds on its third attempt after the declared intervals, and a policy that runs
//! out ends the process EXCEPTED with every attempt's error.

use std::time::{Duration, Instant};

use super::serve::{json_on, on};

#[test]
fn a_step_that_succeeds_on_its_third_attempt_waits_the_declared_intervals() {
    let home = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let (code, record) = json_on(
        home.path(),
        &[
            "run",
            "approval",
            "-i",
            "request=deploy",
            "-i",
            "flaky_sends=2",
            "-i",
            "timeout_s=0",
        ],
    );
    let took = started.elapsed();
    assert_eq!(code, Some(1), "nobody approves: {record}");
    assert_eq!(record["exit_status"], 408, "{record}");
    assert_eq!(record["outputs"]["sent_on_attempt"], 3, "{record}");
    assert!(
        took >= Duration::from_millis(600),
        "200 ms + 400 ms: {took:?}"
    );

    let pid = record["pid"].as_str().unwrap();
    let logs = on(home.path(), &["logs", pid]);
    let logs = String::from_utf8_lossy(&logs.stdout);
    let retried: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("trying again"))
        .collect();
    assert_eq!(retried.len(), 2, "{logs}");
    assert!(
        retried[0].contains("step 'send' failed (attempt 1 of 3); trying again in 200ms"),
        "{logs}"
    );
    assert!(
        retried[1].contains("step 'send' failed (attempt 2 of 3); trying again in 400ms"),
        "{logs}"
    );
}

#[test]
fn an_error_of_a_kind_the_policy_leaves_out_is_not_retried() {
    let home = tempfile::tempdir().unwrap();
    let (code, record) = json_on(home.path(), &["run", "approval", "-i", "request="]);
    assert_eq!(code, Some(1));
    assert_eq!(
        record["error"],
        "step 'send' failed: there is nothing to approve (its retry policy does not retry an \
         error of kind 'empty-request')"
    );
}

#[test]
fn an_exhausted_policy_excepts_the_process_naming_every_attempts_error() {
    let home = tempfile::tempdir().unwrap();
    let (code, record) = json_on(
        home.path(),
        &[
            "run",
            "approval",
            "-i",
            "request=deploy",
            "-i",
            "flaky_sends=5",
        ],
    );
    assert_eq!(code, Some(1));
    assert_eq!(record["state"], "EXCEPTED");
    let error = record["error"].as_str().unwrap();
    assert!(
        error.starts_with("step 'send' failed in each of its 3 attempts: attempt 1: failed: "),
        "{error}"
    );
    for attempt in 1..=3 {
        assert!(
            error.contains(&format!(
                "attempt {attempt}: failed: the approvers' inbox did not answer (attempt {attempt})"
            )),
            "{error}"
        );
    }
}
