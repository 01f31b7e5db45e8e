//! Failover: two `damson worker` OS processes share a real RabbitMQ and a real PostgreSQL; 100
//! processes are submitted; one worker is killed with SIGKILL mid-run; the other takes its
//! processes over from their last checkpoints once their claims run out. Every process
//! finishes, once, with the outputs of a clean run, with no manual step.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use damson::ProcessState;
use damson::comms::{Communicator, RabbitMqCommunicator, RabbitMqOptions, RemoteProcessController};
use damson::persist::{
    CheckpointKey, Persister, PostgresPersister, ProcessCheckpoint, load_checked,
};
use damson_tests::{damson, host};
use serde_json::json;

fn required(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} is not set: run the suite with `cargo xtask test`, which provides it")
    })
}

/// A `damson worker` whose stderr lines are collected; SIGKILLed when dropped.
struct Worker {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn worker(url: &str, names: &[String], store: &str) -> Worker {
    let mut child = damson()
        .args([
            "worker",
            "--broker",
            url,
            "--store",
            store,
            "--claim-ttl",
            "2s",
        ])
        .args(["--message-exchange", &names[0]])
        .args(["--task-exchange", &names[1]])
        .args(["--task-queue", &names[2]])
        .stderr(Stdio::piped())
        .spawn()
        .expect("damson worker starts");
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let lines = Arc::new(Mutex::new(Vec::new()));
    let (seen, ready) = (lines.clone(), std::sync::mpsc::channel());
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            if line.contains("damson worker: ready") {
                let _ = ready.0.send(());
            }
            seen.lock().unwrap().push(line);
        }
    });
    ready
        .1
        .recv_timeout(Duration::from_secs(30))
        .expect("the worker starts");
    Worker { child, lines }
}

/// A database of this test's own in the test PostgreSQL server: the other tests' processes
/// must not be taken over by these workers.
async fn own_database(url: &str) -> String {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let name = format!("failover_{}", std::process::id());
    // One statement each: PostgreSQL runs neither in a transaction block.
    for statement in [
        format!("DROP DATABASE IF EXISTS {name}"),
        format!("CREATE DATABASE {name}"),
    ] {
        client.simple_query(&statement).await.unwrap();
    }
    let base = url.rsplit_once('/').map_or(url, |(base, _)| base);
    format!("{base}/{name}")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_killed_mid_run_leaves_its_processes_to_the_other_and_all_finish_once() {
    let amqp = required("DAMSON_TEST_AMQP");
    let pg = own_database(&required("DAMSON_TEST_POSTGRES")).await;
    let names: Vec<String> = ["messages", "tasks", "queue"]
        .iter()
        .map(|n| format!("failover.{n}.{}", std::process::id()))
        .collect();
    let inputs = json!({"n": 7, "delay_ms": 40});
    let hailstone = host().load("hailstone").await.unwrap();
    let clean = host().run(&hailstone, inputs.clone()).await.unwrap();
    assert_eq!(clean.state, ProcessState::Finished);

    let doomed = worker(&amqp, &names, &pg);
    let survivor = worker(&amqp, &names, &pg);
    let options = RabbitMqOptions {
        message_exchange: names[0].clone(),
        task_exchange: names[1].clone(),
        task_queue: names[2].clone(),
        ..RabbitMqOptions::default()
    };
    let client: Arc<dyn Communicator> =
        RabbitMqCommunicator::connect(&amqp, options).await.unwrap();
    let controller = RemoteProcessController::new(client.clone());
    let mut pids = Vec::new();
    for _ in 0..100 {
        let pid = controller
            .launch_process("hailstone", inputs.clone(), true, true)
            .await
            .unwrap();
        pids.push(pid.as_str().unwrap().to_string());
    }

    // Mid-run: both workers have processes in their loops.
    let store = PostgresPersister::connect(&pg).await.unwrap();
    let state = |pid: String| {
        let store = &store;
        async move {
            load_checked::<ProcessCheckpoint>(store, &CheckpointKey::new(pid))
                .await
                .unwrap()
                .map(|b| b.record)
        }
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(doomed); // SIGKILL
    let started = Instant::now();

    let mut unfinished = pids.clone();
    while !unfinished.is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "{} processes never finished after the worker died",
            unfinished.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut still = Vec::new();
        for pid in unfinished {
            match state(pid.clone()).await {
                Some(c) if c.state.is_terminal() => {}
                _ => still.push(pid),
            }
        }
        unfinished = still;
    }
    for pid in &pids {
        let checkpoint = state(pid.clone()).await.unwrap();
        assert_eq!(
            checkpoint.state,
            ProcessState::Finished,
            "{pid}: {:?}",
            checkpoint.error
        );
        let record = checkpoint.record().unwrap();
        assert_eq!(
            record.outputs, clean.outputs,
            "{pid} has the outputs of a clean run"
        );
    }
    let taken: Vec<String> = survivor
        .lines
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains("took over process"))
        .cloned()
        .collect();
    assert!(
        !taken.is_empty(),
        "the killed worker had processes in flight, which the survivor took over"
    );
    assert_eq!(
        store.list().await.unwrap().len(),
        100,
        "one checkpoint per process: none created twice"
    );
    client.close().await;
}
