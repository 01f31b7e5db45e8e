//! Durable timers from the command line: a sleep is waited out by `damson run`, an approval
//! nobody gives times out, and a sleeper whose timer came due while its daemon was down goes on
//! as soon as the daemon starts again.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use super::serve::{json_on, on, serve, text};
use super::signals::shown_once;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

#[test]
fn damson_run_waits_out_a_sleep() {
    let home = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let (code, ran) = json_on(home.path(), &["run", "sleeper", "-i", "ms=1500"]);
    assert_eq!(code, Some(0), "{ran}");
    assert_eq!(ran["state"], "FINISHED");
    assert_eq!(ran["outputs"]["slept"], 1500);
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "not before its timer"
    );
}

#[test]
fn an_approval_nobody_gives_times_out() {
    let home = tempfile::tempdir().unwrap();
    let (code, ran) = json_on(
        home.path(),
        &[
            "run",
            "approval",
            "-i",
            "request=deploy",
            "-i",
            "timeout_s=1",
        ],
    );
    assert_eq!(code, Some(1), "not successful: {ran}");
    assert_eq!(ran["state"], "FINISHED");
    assert_eq!(ran["exit_status"], 408);
    assert_eq!(ran["exit_message"], "nobody decided in time");
}

/// The timer is in the checkpoint: a daemon killed with `kill -9` while a process sleeps, and
/// started again after its timer came due, has it go on at once.
#[test]
fn a_sleeper_whose_timer_came_due_while_its_daemon_was_down_goes_on_at_once() {
    let home = tempfile::tempdir().unwrap();
    let daemon = serve(home.path());
    let pid = text(&on(home.path(), &["submit", "sleeper", "-i", "ms=2000"]));
    let asleep = shown_once(home.path(), &pid, |s| s["state"] == "WAITING");
    assert_eq!(asleep["sleeping"], true);
    let due = asleep["timer"]
        .as_u64()
        .expect("the record says when it wakes");
    let shown = text(&on(home.path(), &["show", &pid]));
    assert!(shown.contains("waiting for: its timer, at "), "{shown}");
    // `ps` and `status` say it too, `ps --json` when.
    let listed = text(&on(home.path(), &["ps"]));
    let line = listed.lines().find(|l| l.starts_with(&pid)).unwrap();
    assert!(line.contains("waiting for its timer, at "), "{listed}");
    let rows: Value = serde_json::from_str(&text(&on(home.path(), &["ps", "--json"]))).unwrap();
    assert_eq!(rows[0]["timer"], due);
    assert_eq!(rows[0]["sleeping"], true);
    let status = text(&on(home.path(), &["status", &pid]));
    assert!(
        status.starts_with(&format!("{pid} WAITING, waiting for its timer, at ")),
        "{status}"
    );
    drop(daemon); // SIGKILL, asleep

    while now_ms() <= due + 500 {
        std::thread::sleep(Duration::from_millis(100));
    }
    let still = shown_once(home.path(), &pid, |_| true);
    assert_eq!(still["state"], "WAITING", "nobody ran it meanwhile");
    let restarted = Instant::now();
    let _again = serve(home.path());
    let finished = shown_once(home.path(), &pid, |s| s["state"] == "FINISHED");
    assert_eq!(finished["outputs"]["slept"], 2000);
    assert!(
        restarted.elapsed() < Duration::from_secs(10),
        "an overdue timer fires at once: {:?}",
        restarted.elapsed()
    );
}
