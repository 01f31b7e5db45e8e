//! `damson serve`, the broker-less daemon: processes submitted, watched and controlled from
//! other `damson` commands through its socket, and continued when it starts again after a
//! `kill -9`.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use damson_tests::damson;
use serde_json::Value;

/// A `damson serve` on `home`, listening; SIGKILLed when dropped.
struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(home: &Path) -> Serve {
    let mut child = damson()
        .env("DAMSON_HOME", home)
        .env_remove("DAMSON_STORE")
        .arg("serve")
        .stderr(Stdio::piped())
        .spawn()
        .expect("damson serve starts");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let listening = lines
        .by_ref()
        .map_while(Result::ok)
        .find(|l| l.contains("damson serve: listening"));
    assert!(listening.is_some(), "damson serve did not start");
    std::thread::spawn(move || for _ in lines {});
    Serve(child)
}

fn on(home: &Path, args: &[&str]) -> Output {
    damson()
        .env("DAMSON_HOME", home)
        .env_remove("DAMSON_STORE")
        .args(args)
        .output()
        .expect("damson runs")
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn submit_watch_pause_play_and_kill_work_with_no_broker() {
    let home = tempfile::tempdir().unwrap();
    let _daemon = serve(home.path());

    let pid = text(&on(
        home.path(),
        &["submit", "hailstone", "-i", "n=27", "-i", "delay_ms=5"],
    ));
    assert_eq!(pid.len(), 36, "a pid: {pid}");
    let watched = on(home.path(), &["watch", &pid, "--json"]);
    assert_eq!(
        watched.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&watched.stderr)
    );
    let changes: Vec<Value> = text(&watched)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let states: Vec<&Value> = changes.iter().filter(|c| c.get("to").is_some()).collect();
    assert_eq!(states.last().unwrap()["to"], "finished", "{changes:?}");
    assert!(
        changes
            .iter()
            .any(|c| c["status"].as_str().is_some_and(|s| s.starts_with("step "))),
        "a progress line while it runs: {changes:?}"
    );
    assert_eq!(
        changes.last().unwrap()["outputs"]["steps"],
        111,
        "{changes:?}"
    );

    let waiting = text(&on(
        home.path(),
        &["submit", "lifecycle", "-i", "mode=wait"],
    ));
    let status = || -> Value {
        serde_json::from_str(&text(&on(home.path(), &["status", &waiting, "--json"]))).unwrap()
    };
    let started = Instant::now();
    while status()["state"] != "waiting" {
        assert!(started.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        text(&on(home.path(), &["pause", &waiting])),
        format!("paused {waiting}")
    );
    assert_eq!(status()["paused"], true);
    assert_eq!(
        text(&on(home.path(), &["play", &waiting])),
        format!("played {waiting}")
    );
    assert_eq!(
        text(&on(home.path(), &["kill", &waiting])),
        format!("killed {waiting}")
    );
    // The store says how it ended, while the daemon runs.
    let shown: Value =
        serde_json::from_str(&text(&on(home.path(), &["show", &waiting, "--json"]))).unwrap();
    assert_eq!(shown["state"], "KILLED");
}

#[test]
fn a_daemon_started_again_after_kill_9_continues_its_processes() {
    let home = tempfile::tempdir().unwrap();
    let daemon = serve(home.path());
    let pid = text(&on(
        home.path(),
        &["submit", "hailstone", "-i", "n=27", "-i", "delay_ms=20"],
    ));
    std::thread::sleep(Duration::from_millis(400));
    drop(daemon); // SIGKILL, mid-loop
    let shown: Value =
        serde_json::from_str(&text(&on(home.path(), &["show", &pid, "--json"]))).unwrap();
    assert_eq!(shown["state"], "RUNNING", "it died mid-run");

    let _again = serve(home.path());
    let started = Instant::now();
    loop {
        let shown: Value =
            serde_json::from_str(&text(&on(home.path(), &["show", &pid, "--json"]))).unwrap();
        if shown["state"] == "FINISHED" {
            assert_eq!(shown["outputs"]["steps"], 111);
            assert_eq!(shown["outputs"]["peak"], 9232);
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{shown}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
