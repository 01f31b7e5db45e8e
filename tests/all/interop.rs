//! `damson worker` over a real RabbitMQ, driven from outside: by a Python kiwipy 0.9 client
//! (JSON encoder and decoder) — a launch task, then status, pause, play and kill by RPC, then a
//! launch that waits for its outputs — and by the `damson` control commands. `cargo xtask test`
//! provides the broker (`DAMSON_TEST_AMQP`) and a Python with kiwipy from PyPI
//! (`DAMSON_TEST_PYTHON`).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use damson_tests::damson;
use serde_json::Value;

fn required(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!(
            "{var} is not set: run the suite with `cargo xtask test`, which starts RabbitMQ and \
             installs kiwipy"
        )
    })
}

/// A `damson worker` that is stopped (SIGKILL) when dropped.
struct Worker(Child);

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Exchange and queue names of a test's own, so that tests sharing the broker never meet.
fn names(test: &str) -> Vec<String> {
    ["messages", "tasks", "queue"]
        .iter()
        .map(|n| format!("{test}.{n}.{}", std::process::id()))
        .collect()
}

/// The options that point a `damson` command at these names.
fn naming(names: &[String]) -> Vec<String> {
    [
        "--message-exchange",
        &names[0],
        "--task-exchange",
        &names[1],
        "--task-queue",
        &names[2],
    ]
    .map(String::from)
    .to_vec()
}

/// A `damson worker` on the test broker with these names, ready.
fn worker(url: &str, names: &[String], store: &std::path::Path) -> Worker {
    let mut child = damson()
        .args(["worker", "--broker", url])
        .args(naming(names))
        .arg("--store")
        .arg(store)
        .stderr(Stdio::piped())
        .spawn()
        .expect("damson worker starts");
    let stderr = child.stderr.take().unwrap();
    let worker = Worker(child);
    let mut lines = BufReader::new(stderr).lines();
    let ready = lines
        .by_ref()
        .map_while(Result::ok)
        .find(|l| l.contains("damson worker: ready"));
    assert!(ready.is_some(), "the worker did not start");
    // Keep draining the worker's stderr so it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    worker
}

#[test]
fn a_kiwipy_client_launches_asks_pauses_plays_and_kills_damson_processes() {
    let url = required("DAMSON_TEST_AMQP");
    let python = required("DAMSON_TEST_PYTHON");
    let names = names("interop");
    let dir = tempfile::tempdir().unwrap();
    let worker = worker(&url, &names, &dir.path().join("store.redb"));

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/interop/kiwipy_client.py");
    let out = Command::new(&python)
        .arg(script)
        .arg(&url)
        .args(&names)
        .output()
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the kiwipy client failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let replies: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(replies["status"]["state"], "ProcessState.WAITING");
    assert_eq!(replies["pause"], true);
    assert_eq!(replies["status_paused"]["paused"], true);
    assert_eq!(replies["play"], true);
    assert_eq!(replies["kill"], true);
    assert_eq!(replies["launch_and_wait"]["sum"], 3);
    drop(worker);
}

#[test]
fn the_control_commands_submit_ask_pause_play_and_kill_through_the_broker() {
    let url = required("DAMSON_TEST_AMQP");
    let names = names("control");
    let dir = tempfile::tempdir().unwrap();
    let _worker = worker(&url, &names, &dir.path().join("store.redb"));
    let damson_ = |args: &[&str]| {
        damson()
            .args(args)
            .args(["--broker", &url])
            .args(naming(&names))
            .output()
            .expect("damson runs")
    };
    let text = |out: &std::process::Output| String::from_utf8_lossy(&out.stdout).trim().to_string();

    let out = damson_(&["submit", "lifecycle", "-i", "mode=wait"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pid = text(&out);
    assert_eq!(pid.len(), 36, "a pid: {pid}");

    let status = || -> Value {
        let out = damson_(&["status", &pid, "--json"]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_str(&text(&out)).unwrap()
    };
    let mut waiting = status();
    for _ in 0..200 {
        if waiting["state"] == "ProcessState.WAITING" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
        waiting = status();
    }
    assert_eq!(waiting["state"], "ProcessState.WAITING");

    let paused = damson_(&["pause", &pid, "-m", "hold on"]);
    assert_eq!(paused.status.code(), Some(0));
    assert_eq!(text(&paused), format!("paused {pid}"));
    assert_eq!(status()["paused"], true);
    assert_eq!(text(&damson_(&["play", &pid])), format!("played {pid}"));
    assert_eq!(status()["paused"], false);
    assert_eq!(
        text(&damson_(&["kill", &pid, "-m", "done"])),
        format!("killed {pid}")
    );
    std::thread::sleep(std::time::Duration::from_millis(100));
    let gone = damson_(&["status", &pid]);
    assert_eq!(
        gone.status.code(),
        Some(2),
        "a killed process answers no more"
    );
    assert!(String::from_utf8_lossy(&gone.stderr).contains(&pid));
}

#[test]
fn bench_measures_rpc_and_launches_over_rabbitmq() {
    let url = required("DAMSON_TEST_AMQP");
    let out = damson()
        .args(["bench", "--cases", "fg", "--runs", "1", "--messages", "10"])
        .args(["--broker", &url])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for case in [
        "f  RPC status round trip",
        "f  10 launches, one at a time",
        "f  10 launches, all at once",
        "g  10 processes on RabbitMQ",
    ] {
        damson_tests::bench_figure(&text, case);
    }
}
