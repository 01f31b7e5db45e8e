//! A RabbitMQ restart mid-run: two `damson worker` OS processes sharing a store, and a client,
//! reconnect on their own (lapin's recovery declares the topology again); the 40 processes
//! that were running finish, once, with the outputs of a clean run; tasks sent after the
//! restart are taken and RPC reaches processes again — with no manual step. A test binary of
//! its own: it stops the broker that the other broker tests use. It restarts the local node
//! with `rabbitmqctl`, which `cargo xtask test` provides.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use damson::ProcessState;
use damson::comms::{Communicator, RabbitMqCommunicator, RabbitMqOptions, RemoteProcessController};
use damson::persist::{CheckpointKey, EmbeddedPersister, ProcessCheckpoint, load_checked};
use damson_tests::damson;
use serde_json::json;

struct Worker(Child);

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

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
    let url = std::env::var("DAMSON_TEST_AMQP").expect(
        "DAMSON_TEST_AMQP is not set: run the suite with `cargo xtask test`, which starts RabbitMQ",
    );
    let names: Vec<String> = ["messages", "tasks", "queue"]
        .iter()
        .map(|n| format!("restart.{n}.{}", std::process::id()))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let store_path = dir.path().join("store.redb");
    let worker = || {
        let mut child = damson()
            .args(["worker", "--broker", &url, "--claim-ttl", "2s"])
            .args(["--message-exchange", &names[0]])
            .args(["--task-exchange", &names[1]])
            .args(["--task-queue", &names[2]])
            .arg("--store")
            .arg(&store_path)
            .stderr(Stdio::piped())
            .spawn()
            .expect("damson worker starts");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let worker = Worker(child);
        assert!(
            lines
                .by_ref()
                .map_while(Result::ok)
                .any(|l| l.contains("damson worker: ready")),
            "the worker did not start"
        );
        std::thread::spawn(move || for _ in lines {});
        worker
    };
    let _workers = (worker(), worker());

    let options = RabbitMqOptions {
        message_exchange: names[0].clone(),
        task_exchange: names[1].clone(),
        task_queue: names[2].clone(),
        ..RabbitMqOptions::default()
    };
    let client: Arc<dyn Communicator> = RabbitMqCommunicator::connect(&url, options).await.unwrap();
    let controller = RemoteProcessController::new(client.clone());
    let inputs = json!({"n": 7, "delay_ms": 100});
    let clean = damson_tests::host()
        .run(
            &damson_tests::host().load("hailstone").await.unwrap(),
            inputs.clone(),
        )
        .await
        .unwrap();
    let mut pids = Vec::new();
    for _ in 0..40 {
        let pid = controller
            .launch_process("hailstone", inputs.clone(), true, true)
            .await
            .unwrap();
        pids.push(pid.as_str().unwrap().to_string());
    }

    rabbitmqctl(&["stop_app"]);
    rabbitmqctl(&["start_app"]);
    rabbitmqctl(&["await_startup"]);

    // Both ends reconnect on their own; until then a send may fail.
    let started = Instant::now();
    let waiting = loop {
        match controller
            .launch_process("lifecycle", json!({"mode": "wait"}), true, true)
            .await
        {
            Ok(pid) => break pid.as_str().unwrap().to_string(),
            Err(e) => {
                assert!(
                    started.elapsed() < Duration::from_secs(60),
                    "no task reaches the worker after the restart: {e}"
                );
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    };
    let status = loop {
        let status = controller.get_status(&waiting).await.unwrap();
        if status["state"] == "waiting" {
            break status;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status["paused"], false);
    assert_eq!(
        controller
            .kill_process(&waiting, None, false)
            .await
            .unwrap(),
        json!(true)
    );

    let store = EmbeddedPersister::open(&store_path).unwrap();
    for pid in &pids {
        loop {
            let checkpoint = load_checked::<ProcessCheckpoint>(&store, &CheckpointKey::new(pid))
                .await
                .unwrap()
                .unwrap()
                .record;
            if checkpoint.state.is_terminal() {
                assert_eq!(checkpoint.state, ProcessState::Finished);
                assert_eq!(checkpoint.record().unwrap().outputs, clean.outputs);
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(90),
                "{pid} never finished"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    use damson::persist::Persister;
    assert_eq!(
        store.list().await.unwrap().len(),
        41,
        "one checkpoint per process (40, and the one killed after the restart): none twice"
    );
    client.close().await;
}
