//! Failover, the broker's turn: two `damson worker` OS processes share a real RabbitMQ and a
//! real PostgreSQL; 100 work chains are submitted; RabbitMQ is restarted mid-run. The workers
//! and the client reconnect on their own and declare their queues again: every process
//! finishes once with the outputs of a clean run, and tasks, RPC and broadcasts reach the
//! workers again afterwards.
//!
//! A test binary of its own, because it stops the broker that the other tests use (cargo runs
//! test binaries one after another). It restarts the local node with `rabbitmqctl`, which
//! `cargo xtask test` provides.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use damson_tests::fleet::Fleet;
use serde_json::json;

fn rabbitmqctl(args: &[&str]) {
    let program = ["/usr/sbin/rabbitmqctl", "rabbitmqctl"]
        .into_iter()
        .find(|p| !p.starts_with('/') || std::path::Path::new(p).is_file())
        .unwrap();
    let status = Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .status()
        .expect("rabbitmqctl runs (this test restarts the local RabbitMQ)");
    assert!(status.success(), "rabbitmqctl {args:?} failed");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broker_restart_mid_run_is_survived() {
    let fleet = Fleet::start("restart").await;
    let pids = fleet.submit(100).await;

    // Mid-run: the workers' processes are in their loops.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut running = 0;
    for pid in &pids {
        if !fleet.record(pid).await.unwrap().state.is_terminal() {
            running += 1;
        }
    }
    assert!(running > 0, "the restart comes mid-run");
    rabbitmqctl(&["stop_app"]);
    rabbitmqctl(&["start_app"]);
    rabbitmqctl(&["await_startup"]);

    fleet.all_finish_once(&pids, Duration::from_secs(120)).await;
    // The processes may all finish before a worker's next attempt to reconnect (its pause
    // grows to 5 s, and a node with the management plugin takes seconds longer to restart).
    let reconnecting = Instant::now();
    while fleet
        .workers
        .iter()
        .any(|w| w.logged("RabbitMQ: reconnected").is_empty())
        && reconnecting.elapsed() < Duration::from_secs(30)
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for worker in &fleet.workers {
        assert!(
            !worker.logged("RabbitMQ: connection lost").is_empty(),
            "each worker saw its connection go"
        );
        assert!(
            !worker.logged("RabbitMQ: reconnected").is_empty(),
            "and reconnected on its own"
        );
    }

    // The topology is back: a task reaches a worker, its process answers RPC at its pid, a
    // broadcast reaches it. (Sends wait while the client itself reconnects.)
    let started = Instant::now();
    let waiting = fleet
        .controller
        .launch_process("lifecycle", json!({"mode": "wait"}), true, true)
        .await
        .expect("a task after the restart reaches a worker");
    let waiting = waiting.as_str().unwrap().to_string();
    let status = loop {
        let status = fleet.controller.get_status(&waiting).await.unwrap();
        if status["state"] == "ProcessState.WAITING" {
            break status;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{status}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status["paused"], false);
    fleet.controller.pause_all(None).await.unwrap();
    loop {
        let status = fleet.controller.get_status(&waiting).await.unwrap();
        if status["paused"] == true {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the pause broadcast never reached the process: {status}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        fleet
            .controller
            .kill_process(&waiting, None, false)
            .await
            .unwrap(),
        json!(true)
    );
    fleet.client.close().await;
}
