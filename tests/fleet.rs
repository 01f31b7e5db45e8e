//! Many machines, played by OS processes: two `damson worker`s sharing a real RabbitMQ and a
//! real PostgreSQL database of their own, 100 `hailstone` work chains submitted to them, and a
//! check that every one finished once with the outputs of a clean run. The failover tests
//! disrupt the fleet mid-run in between (a worker killed, the broker restarted).

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use damson::comms::{Communicator, RabbitMqCommunicator, RabbitMqOptions, RemoteProcessController};
use damson::persist::{CheckpointKey, Persister, PostgresPersister, load_checked};
use damson::{ProcessRecord, ProcessState};
use serde_json::{Value, json};

use crate::{damson, host};

/// An environment variable that `cargo xtask test` sets.
pub fn required(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} is not set: run the suite with `cargo xtask test`, which provides it")
    })
}

/// A `damson worker` whose stderr lines are collected; SIGKILLed when dropped.
pub struct Worker {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Worker {
    /// The lines of its log that contain `text`.
    pub fn logged(&self, text: &str) -> Vec<String> {
        let lines = self.lines.lock().unwrap();
        lines.iter().filter(|l| l.contains(text)).cloned().collect()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The processes of one test: its exchange and queue names, its database, its workers.
pub struct Fleet {
    pub amqp: String,
    pub names: Vec<String>,
    pub store: PostgresPersister,
    store_url: String,
    pub workers: Vec<Worker>,
    pub client: Arc<dyn Communicator>,
    pub controller: RemoteProcessController,
}

/// `hailstone`'s inputs in these tests: 16 steps of 40 ms each.
pub fn inputs() -> Value {
    json!({"n": 7, "delay_ms": 40})
}

impl Fleet {
    /// Two workers (claims of 2 s) named after `test`, on a database of their own, and a
    /// client of theirs.
    pub async fn start(test: &str) -> Self {
        let amqp = required("DAMSON_TEST_AMQP");
        let store_url = crate::own_database(test).await;
        let names: Vec<String> = ["messages", "tasks", "queue"]
            .iter()
            .map(|n| format!("{test}.{n}.{}", std::process::id()))
            .collect();
        let client: Arc<dyn Communicator> = RabbitMqCommunicator::connect(&amqp, options(&names))
            .await
            .unwrap();
        let mut fleet = Self {
            store: PostgresPersister::connect(&store_url).await.unwrap(),
            controller: RemoteProcessController::new(client.clone()),
            client,
            amqp,
            names,
            store_url,
            workers: Vec::new(),
        };
        for _ in 0..2 {
            let worker = fleet.worker();
            fleet.workers.push(worker);
        }
        fleet
    }

    /// A `damson worker` of this fleet, ready.
    fn worker(&self) -> Worker {
        let mut child = damson()
            .args(["worker", "--broker", &self.amqp])
            .args(["--store", &self.store_url, "--claim-ttl", "2s"])
            .args(["--message-exchange", &self.names[0]])
            .args(["--task-exchange", &self.names[1]])
            .args(["--task-queue", &self.names[2]])
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

    /// Submit `count` `hailstone` work chains; their pids.
    pub async fn submit(&self, count: usize) -> Vec<String> {
        let mut pids = Vec::new();
        for _ in 0..count {
            let pid = self
                .controller
                .launch_process("hailstone", inputs(), true, true)
                .await
                .unwrap();
            pids.push(pid.as_str().unwrap().to_string());
        }
        pids
    }

    /// A process as its last checkpoint has it.
    pub async fn record(&self, pid: &str) -> Option<ProcessRecord> {
        load_checked::<ProcessRecord>(&self.store, &CheckpointKey::new(pid))
            .await
            .unwrap()
            .map(|b| b.record)
    }

    /// Wait (at most `bound`) until every one of `pids` has terminated; then check that each
    /// finished with the outputs of a clean run and that no process was created twice.
    pub async fn all_finish_once(&self, pids: &[String], bound: Duration) {
        let clean = {
            let hailstone = host().load("hailstone").await.unwrap();
            host().run(&hailstone, inputs()).await.unwrap()
        };
        assert_eq!(clean.state, ProcessState::Finished);
        let started = Instant::now();
        let mut unfinished = pids.to_vec();
        while !unfinished.is_empty() {
            assert!(
                started.elapsed() < bound,
                "{} processes never finished within {bound:?}",
                unfinished.len()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
            let mut still = Vec::new();
            for pid in unfinished {
                match self.record(&pid).await {
                    Some(r) if r.state.is_terminal() => {}
                    _ => still.push(pid),
                }
            }
            unfinished = still;
        }
        for pid in pids {
            let record = self.record(pid).await.unwrap();
            assert_eq!(
                record.state,
                ProcessState::Finished,
                "{pid}: {:?}",
                record.error
            );
            assert_eq!(
                record.outputs, clean.outputs,
                "{pid} has the outputs of a clean run"
            );
        }
        assert_eq!(
            self.store.list().await.unwrap().len(),
            pids.len(),
            "one checkpoint per process: none created twice"
        );
    }
}

fn options(names: &[String]) -> RabbitMqOptions {
    RabbitMqOptions {
        message_exchange: names[0].clone(),
        task_exchange: names[1].clone(),
        task_queue: names[2].clone(),
        ..RabbitMqOptions::default()
    }
}
