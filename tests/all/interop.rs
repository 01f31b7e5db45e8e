//! Interop: a Python kiwipy 0.9 client (JSON encoder and decoder) drives a running
//! `damson worker` over a real RabbitMQ — a launch task, then status, pause, play and kill by
//! RPC, then a launch that waits for its outputs. `cargo xtask test` provides the broker
//! (`DAMSON_TEST_AMQP`) and a Python with kiwipy from PyPI (`DAMSON_TEST_PYTHON`).

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

#[test]
fn a_kiwipy_client_launches_asks_pauses_plays_and_kills_damson_processes() {
    let url = required("DAMSON_TEST_AMQP");
    let python = required("DAMSON_TEST_PYTHON");
    let names: Vec<String> = ["messages", "tasks", "queue"]
        .iter()
        .map(|n| format!("interop.{n}.{}", std::process::id()))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store.redb");
    let mut child = damson()
        .args(["worker", "--broker", &url])
        .args(["--message-exchange", &names[0]])
        .args(["--task-exchange", &names[1]])
        .args(["--task-queue", &names[2]])
        .arg("--store")
        .arg(&store)
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
    assert_eq!(replies["status"]["state"], "waiting");
    assert_eq!(replies["pause"], true);
    assert_eq!(replies["status_paused"]["paused"], true);
    assert_eq!(replies["play"], true);
    assert_eq!(replies["kill"], true);
    assert_eq!(replies["launch_and_wait"]["sum"], 3);
    drop(worker);
}
