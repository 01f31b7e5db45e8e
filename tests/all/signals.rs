//! Signals from the command line: `damson signal` resumes the `approval` work chain with its
//! payload through `damson serve`, a key is taken once, a terminated process refuses, and a
//! signal stored but not yet taken survives a `kill -9` of the daemon.

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::serve::{on, serve, text};

/// The stored record of `pid`, once `condition` holds of it (or fail after a while).
pub(crate) fn shown_once(home: &Path, pid: &str, condition: impl Fn(&Value) -> bool) -> Value {
    let started = Instant::now();
    loop {
        let shown = on(home, &["show", pid, "--json"]);
        if let Ok(shown) = serde_json::from_str::<Value>(&text(&shown))
            && condition(&shown)
        {
            return shown;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{pid} never got there"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// An approval of `deploy` submitted to the daemon on `home`: its pid, once it waits.
fn waiting_approval(home: &Path) -> String {
    let pid = text(&on(home, &["submit", "approval", "-i", "request=deploy"]));
    shown_once(home, &pid, waiting);
    pid
}

/// `damson signal PID approved --data '{"by": BY}'`, with `--key KEY` if given.
fn approve(home: &Path, pid: &str, by: &str, key: Option<&str>) -> Output {
    let data = format!(r#"{{"by": "{by}"}}"#);
    let mut args = vec!["signal", pid, "approved", "--data", &data];
    if let Some(key) = key {
        args.extend(["--key", key]);
    }
    on(home, &args)
}

fn waiting(shown: &Value) -> bool {
    shown["state"] == "WAITING"
}

#[test]
fn a_signal_resumes_a_waiting_process_with_its_payload_once_per_key() {
    let home = tempfile::tempdir().unwrap();
    let _daemon = serve(home.path());
    let pid = waiting_approval(home.path());
    let shown = shown_once(home.path(), &pid, waiting);
    assert_eq!(shown["status"], "waiting for an approval of deploy");
    assert_eq!(shown["waiting_for"], "approved");
    let status = text(&on(home.path(), &["status", &pid]));
    assert!(
        status.starts_with(&format!(
            "{pid} WAITING, waiting for the signal 'approved', at most until "
        )),
        "{status}"
    );

    let sent = approve(home.path(), &pid, "ada", Some("ticket-7"));
    assert_eq!(
        sent.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&sent.stderr)
    );
    assert_eq!(text(&sent), format!("signal 1 sent to {pid}"));
    let finished = shown_once(home.path(), &pid, |s| s["state"] == "FINISHED");
    assert_eq!(finished["outputs"]["approved_by"], "ada");
    assert_eq!(
        finished["context"]["approved"]["by"], "ada",
        "the payload is in the context"
    );

    // The same key again: the process has it already (and has ended, so nothing is sent).
    let again = approve(home.path(), &pid, "ada", Some("ticket-7"));
    assert_eq!(again.status.code(), Some(1), "it has terminated");
    assert!(
        text(&again).contains("takes no more signals"),
        "{}",
        text(&again)
    );
}

#[test]
fn a_duplicate_key_is_taken_once_and_bad_input_is_refused() {
    let home = tempfile::tempdir().unwrap();
    let _daemon = serve(home.path());
    let pid = waiting_approval(home.path());
    let paused = on(home.path(), &["pause", &pid]);
    assert_eq!(paused.status.code(), Some(0));

    // Paused: the signals wait in the store, the first of a key only.
    let first = approve(home.path(), &pid, "ada", Some("k"));
    assert_eq!(text(&first), format!("signal 1 sent to {pid}"));
    let second = approve(home.path(), &pid, "bob", Some("k"));
    assert_eq!(second.status.code(), Some(0));
    assert_eq!(
        text(&second),
        format!("{pid} has signal 1 with this key already: not sent again")
    );
    let bad = on(
        home.path(),
        &["signal", &pid, "approved", "--data", "{by: ada"],
    );
    assert_eq!(bad.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(stderr.contains("--data is not JSON"), "{stderr}");
    assert!(stderr.contains("line 1 column 2"), "says where: {stderr}");
    let unknown = on(home.path(), &["signal", "no-such-pid", "approved"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no process no-such-pid"));

    assert_eq!(on(home.path(), &["play", &pid]).status.code(), Some(0));
    let finished = shown_once(home.path(), &pid, |s| s["state"] == "FINISHED");
    assert_eq!(
        finished["outputs"]["approved_by"], "ada",
        "bob's duplicate was never stored"
    );
}

/// A signal acknowledged to its sender is in the store: a `kill -9` of the daemon before the
/// process takes it loses nothing, and the daemon started again delivers it.
#[test]
fn a_signal_not_yet_taken_survives_kill_9_of_the_daemon() {
    let home = tempfile::tempdir().unwrap();
    let daemon = serve(home.path());
    let pid = waiting_approval(home.path());
    assert_eq!(on(home.path(), &["pause", &pid]).status.code(), Some(0));
    let sent = approve(home.path(), &pid, "ada", None);
    assert_eq!(sent.status.code(), Some(0));
    drop(daemon); // SIGKILL, with the signal sent and not taken

    let shown = shown_once(home.path(), &pid, waiting);
    assert_eq!(shown["paused"], true);
    let _again = serve(home.path());
    assert_eq!(on(home.path(), &["play", &pid]).status.code(), Some(0));
    let finished = shown_once(home.path(), &pid, |s| s["state"] == "FINISHED");
    assert_eq!(finished["outputs"]["approved_by"], "ada");
}

/// With no daemon running, the signal goes into the store beside the checkpoint; the daemon
/// that continues the process later delivers it at once.
#[test]
fn a_signal_to_a_process_no_daemon_runs_waits_in_the_store() {
    let home = tempfile::tempdir().unwrap();
    let daemon = serve(home.path());
    let pid = waiting_approval(home.path());
    drop(daemon);

    let stored = approve(home.path(), &pid, "ada", None);
    assert_eq!(
        stored.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&stored.stderr)
    );
    assert!(
        text(&stored).starts_with(&format!("signal 1 stored for {pid} in embedded store")),
        "{}",
        text(&stored)
    );

    let _again = serve(home.path());
    let finished = shown_once(home.path(), &pid, |s| s["state"] == "FINISHED");
    assert_eq!(finished["outputs"]["approved_by"], "ada");
}
