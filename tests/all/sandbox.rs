//! Limits and the sandbox: misbehaving plugins end EXCEPTED with a clear reason, and the host
//! carries on.

use std::time::{Duration, Instant};

use damson::{Host, ProcessState};
use damson_tests::{config, host};
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn a_panic_is_reported_with_its_message_and_location() {
    let fail = host().load("fail").await.unwrap();
    let record = host().run(&fail, json!({})).await.unwrap();
    assert_eq!(record.state, ProcessState::Excepted);
    let error = record.error.unwrap();
    assert!(
        error.starts_with("step 'explode' panicked at fail/src/lib.rs:"),
        "{error}"
    );
    assert!(error.ends_with("the fail plugin always panics"), "{error}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_endless_loop_is_stopped_by_the_step_time_limit() {
    let mut config = config();
    config.step_timeout(Duration::from_millis(300));
    let host = Host::new(&config).unwrap();
    let spin = host.load("spin").await.unwrap();
    let started = Instant::now();
    let record = host.run(&spin, json!({})).await.unwrap();
    let elapsed = started.elapsed();
    assert_eq!(record.state, ProcessState::Excepted);
    assert_eq!(
        record.error.as_deref(),
        Some("step 'spin' exceeded the time limit of 300ms per step")
    );
    assert!(
        elapsed >= Duration::from_millis(300),
        "stopped early: {elapsed:?}"
    );
    // One epoch tick past the limit, with plenty of room for a loaded machine.
    assert!(
        elapsed < Duration::from_secs(5),
        "stopped late: {elapsed:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn unbounded_allocation_is_stopped_by_the_memory_limit_and_the_host_stays_bounded() {
    let mut config = config();
    config.max_memory(32 << 20);
    let host = Host::new(&config).unwrap();
    let hog = host.load("hog").await.unwrap();
    for _ in 0..5 {
        let record = host.run(&hog, json!({})).await.unwrap();
        assert_eq!(record.state, ProcessState::Excepted);
        assert_eq!(
            record.error.as_deref(),
            Some("step 'hoard' exceeded the memory limit of 32 MiB")
        );
    }
    // Five hogs each stopped at 32 MiB: the test process never held anything like the 4 GiB a
    // wasm32 guest could reach unbounded.
    let peak = peak_rss_bytes();
    assert!(peak < 1 << 30, "peak resident memory {} MiB", peak >> 20);
}

#[tokio::test(flavor = "multi_thread")]
async fn unbounded_recursion_is_a_stack_overflow() {
    let deep = host().load("deep").await.unwrap();
    let record = host().run(&deep, json!({})).await.unwrap();
    assert_eq!(record.state, ProcessState::Excepted);
    let error = record.error.unwrap();
    assert!(
        error.starts_with("step 'dive' overflowed its stack"),
        "{error}"
    );
    assert!(error.contains("descend"), "{error}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_host_carries_on_after_misbehaving_plugins() {
    let fail = host().load("fail").await.unwrap();
    let add = host().load("add").await.unwrap();
    for _ in 0..3 {
        assert_eq!(
            host().run(&fail, json!({})).await.unwrap().state,
            ProcessState::Excepted
        );
        let record = host().run(&add, json!({"x": 1, "y": 1})).await.unwrap();
        assert_eq!(record.outputs, json!({"sum": 2}));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plugin_finds_no_file_no_directory_no_environment_and_no_arguments() {
    // This test process has PATH set and /etc/hostname exists: the plugin must see neither.
    let sneaky = host().load("sneaky").await.unwrap();
    let record = host()
        .run(
            &sneaky,
            json!({"path": "/etc/hostname", "variable": "PATH"}),
        )
        .await
        .unwrap();
    assert_eq!(record.successful(), Some(true), "{record:?}");
    let out = &record.outputs;
    assert!(
        out["file"]["error"].is_string(),
        "read a file: {}",
        out["file"]
    );
    assert!(
        out["directory"]["error"].is_string(),
        "listed /: {}",
        out["directory"]
    );
    assert_eq!(out["variable"], json!(null));
    assert_eq!(out["environment"], json!(0));
    assert_eq!(out["arguments"], json!(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sandbox_can_be_opened_on_purpose() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("note.txt"), "shared on purpose").unwrap();
    let mut config = config();
    config.sandbox(damson::Sandbox {
        env: vec![("GREETING".into(), "hi".into())],
        read_only_dirs: vec![(dir.path().to_path_buf(), "/data".into())],
        ..Default::default()
    });
    let host = Host::new(&config).unwrap();
    let sneaky = host.load("sneaky").await.unwrap();
    let record = host
        .run(
            &sneaky,
            json!({"path": "/data/note.txt", "variable": "GREETING"}),
        )
        .await
        .unwrap();
    assert_eq!(record.outputs["file"], json!({"ok": "shared on purpose"}));
    assert_eq!(record.outputs["variable"], json!("hi"));
    assert_eq!(record.outputs["environment"], json!(1));
}

/// The peak resident set size of this process (Linux).
fn peak_rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM line");
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}
