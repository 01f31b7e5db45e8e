//! `damson bench`: plumpy's benchmark cases a, b, c and d on equivalent plugins, beside
//! plumpy's figures.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use clap::Args;
use serde_json::{Value, json};

use super::{CommonOptions, exit};
use crate::persist::{CheckpointKey, EmbeddedPersister, MemoryPersister, Persister, bundle};
use crate::{Host, ProcessRecord, ProcessState};

/// plumpy 0.26.1's medians on a 2-core machine like ours (`shared/bench/README.md`).
const PLUMPY_PROCESSES_PER_S: f64 = 9_466.0;
const PLUMPY_ITERATIONS_PER_S: f64 = 32_900.0;
const PLUMPY_CHILDREN_MS: f64 = 22.0;
/// Case c: save / load of a paused work chain whose context holds 1000 ints.
const PLUMPY_SAVE_MEMORY_MS: f64 = 0.37;
const PLUMPY_LOAD_MEMORY_MS: f64 = 0.09;
const PLUMPY_SAVE_FILE_MS: f64 = 0.17;
const PLUMPY_LOAD_FILE_MS: f64 = 0.19;
const PLUMPY_BUNDLE_KB: f64 = 10.6;
/// Case f, over a local RabbitMQ: an RPC status round trip; launches through the task queue.
const PLUMPY_RPC_MS: f64 = 3.65;
const PLUMPY_LAUNCHES_PER_S: f64 = 155.0;
const PLUMPY_CONCURRENT_LAUNCHES_PER_S: f64 = 164.0;
/// Case g: trivial processes, each reachable over RabbitMQ.
const PLUMPY_ATTACHED_PER_S: f64 = 68.5;

const AFTER_HELP: &str = "\
Cases (as plumpy's reference benchmark, shared/bench/plumpy_bench.py):
  a  trivial processes (one step, one output: the `add` plugin), one after another
  b  a work chain whose while_ loop updates the context (the `counter` plugin)
  c  checkpoint save and load of a work chain paused mid-outline whose context holds 1000
     ints (the `hoard` plugin): a tiny guest, then one holding about 16 MiB of records in its
     own memory (saved as a memory image); in an in-memory store and in the embedded file
     store. Save = capture the memory image, encode, checksum and store the bundle; load =
     read, check and decode it, instantiate the plugin and write the image back.
  d  one work chain launching children in one step and awaiting them (the `parent` plugin)
  f  over RabbitMQ (--broker): the RPC status round trip to a process, and launches through
     the task queue (each waited for), one after another and all at once
  g  over RabbitMQ: trivial processes, each reachable by RPC and broadcasting its state changes
Cases f and g need --broker and are not run by default.
Each case runs --runs times (case c --checkpoints times); the median is reported beside plumpy
0.26.1's median.";

/// Measure Damson on plumpy's benchmark cases a, b and d.
#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
pub(crate) struct BenchCommand {
    /// How many times to run each case (the median is reported).
    #[arg(long, default_value_t = 5)]
    runs: usize,

    /// Case a: how many trivial processes per run.
    #[arg(long, default_value_t = 2000)]
    processes: usize,

    /// Case b: how many loop iterations per run.
    #[arg(long, default_value_t = 1000)]
    iterations: u64,

    /// Case d: how many children per run.
    #[arg(long, default_value_t = 200)]
    children: u64,

    /// Case c: how many saves and loads of each checkpoint.
    #[arg(long, default_value_t = 50)]
    checkpoints: usize,

    /// Case c: MiB of records the large guest holds.
    #[arg(long, default_value_t = 16)]
    mib: u64,

    /// Which cases to run, e.g. `abd` or `c`; `f` and `g` need --broker.
    #[arg(long, default_value = "abcd")]
    cases: String,

    /// Cases f and g: the RabbitMQ broker, e.g. `amqp://guest:guest@localhost:5672/%2f`.
    #[arg(long, value_name = "URL")]
    broker: Option<String>,

    /// Cases f and g: how many RPC round trips, launches and processes per run.
    #[arg(long, default_value_t = 200)]
    messages: usize,

    #[command(flatten)]
    common: CommonOptions,
}

impl BenchCommand {
    pub(crate) async fn execute(self) -> anyhow::Result<ExitCode> {
        ensure!(self.runs > 0, "--runs must be at least 1");
        let host = Host::new(&self.common.host_config())?;
        let add = host
            .load("add")
            .await
            .context("case a needs the `add` plugin")?;
        let counter = host
            .load("counter")
            .await
            .context("case b needs the `counter` plugin")?;
        let parent = host
            .load("parent")
            .await
            .context("case d needs the `parent` plugin")?;

        // Warm up: first instantiations fault in code pages.
        host.run(&add, json!({"x": 1, "y": 2})).await?;

        let runs_of = |case: char| {
            if self.cases.contains(case) {
                self.runs
            } else {
                0
            }
        };
        let mut a = Vec::new();
        for _ in 0..runs_of('a') {
            let started = Instant::now();
            for i in 0..self.processes {
                let record = host.run(&add, json!({"x": i, "y": 1})).await?;
                ensure!(
                    record.successful() == Some(true),
                    "case a: a process failed: {record:?}"
                );
            }
            a.push(self.processes as f64 / started.elapsed().as_secs_f64());
        }

        let mut b = Vec::new();
        for _ in 0..runs_of('b') {
            let started = Instant::now();
            let record = host.run(&counter, json!({"n": self.iterations})).await?;
            let elapsed = started.elapsed();
            ensure!(
                record.outputs["count"] == self.iterations,
                "case b: wrong count: {record:?}"
            );
            b.push(self.iterations as f64 / elapsed.as_secs_f64());
        }

        let mut d = Vec::new();
        for _ in 0..runs_of('d') {
            let started = Instant::now();
            let record = host.run(&parent, json!({"count": self.children})).await?;
            let elapsed = started.elapsed();
            ensure!(
                record.outputs["children"] == self.children,
                "case d: {record:?}"
            );
            d.push(elapsed);
        }

        println!("case                                  damson        plumpy 0.26.1   ratio");
        if !a.is_empty() {
            let a = median(a);
            println!(
                "a  {} trivial processes       {:>10.0}/s   {:>10.0}/s   {:>6.1}x",
                self.processes,
                a,
                PLUMPY_PROCESSES_PER_S,
                a / PLUMPY_PROCESSES_PER_S
            );
        }
        if !b.is_empty() {
            let b = median(b);
            println!(
                "b  while_ loop, {} iterations {:>10.0}/s   {:>10.0}/s   {:>6.1}x",
                self.iterations,
                b,
                PLUMPY_ITERATIONS_PER_S,
                b / PLUMPY_ITERATIONS_PER_S
            );
        }
        if self.cases.contains('c') {
            self.case_c().await?;
        }
        if self.cases.contains('f') || self.cases.contains('g') {
            self.cases_f_g().await?;
        }
        if !d.is_empty() {
            let d = median_duration(d).as_secs_f64() * 1000.0;
            println!(
                "d  {} children in one step    {:>10.1} ms   {:>10.1} ms   {:>6.1}x",
                self.children,
                d,
                PLUMPY_CHILDREN_MS,
                PLUMPY_CHILDREN_MS / d
            );
        }
        println!(
            "(median of {} runs; plumpy's figures are its medians from shared/bench/README.md, \
             measured on a machine of this kind)",
            self.runs
        );
        Ok(ExitCode::from(exit::OK))
    }
}

/// Median save and load times of one checkpoint, and its size.
struct Checkpointed {
    save: Duration,
    load: Duration,
    bytes: usize,
    image: usize,
}

impl BenchCommand {
    /// Case c, for a tiny guest and a large one, in memory and in the embedded file store.
    async fn case_c(&self) -> anyhow::Result<()> {
        let dir = std::env::temp_dir().join(format!("damson-bench-{}", std::process::id()));
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let large = format!("{} MiB guest", self.mib);
        for (label, mib) in [("tiny guest", 0), (large.as_str(), self.mib)] {
            let stores: [(&str, Arc<dyn Persister>); 2] = [
                ("in memory", Arc::new(MemoryPersister::new())),
                (
                    "embedded file",
                    Arc::new(EmbeddedPersister::open(dir.join(format!("{mib}.redb")))?),
                ),
            ];
            for (kind, store) in stores {
                let c = self.checkpoint(store, mib).await?;
                let (plumpy_save, plumpy_load) = if kind == "in memory" {
                    (PLUMPY_SAVE_MEMORY_MS, PLUMPY_LOAD_MEMORY_MS)
                } else {
                    (PLUMPY_SAVE_FILE_MS, PLUMPY_LOAD_FILE_MS)
                };
                let total = ms(c.save) + ms(c.load);
                println!(
                    "c  {label}, {kind:<13} save {:>7.3} ms  load {:>7.3} ms = {:>8.3} ms   \
                     {:>5.2} ms ({plumpy_save} + {plumpy_load})   {:>6.2}x",
                    ms(c.save),
                    ms(c.load),
                    total,
                    plumpy_save + plumpy_load,
                    (plumpy_save + plumpy_load) / total,
                );
                println!(
                    "   bundle {:.1} KB, of which memory image {:.1} KB (plumpy: {PLUMPY_BUNDLE_KB} \
                     KB, no memory)",
                    c.bytes as f64 / 1000.0,
                    c.image as f64 / 1000.0
                );
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    }

    /// Save and load the checkpoint of a `hoard` process paused mid-outline, with `mib` MiB of
    /// records in its memory; then check that the loaded copy finishes with them intact.
    async fn checkpoint(
        &self,
        store: Arc<dyn Persister>,
        mib: u64,
    ) -> anyhow::Result<Checkpointed> {
        ensure!(self.checkpoints > 0, "--checkpoints must be at least 1");
        let config = self.common.host_config();
        let host = Host::with_store(&config, store.clone())?;
        let hoard = host
            .load("hoard")
            .await
            .context("case c needs the `hoard` plugin")?;
        let process = host
            .launch(&hoard, json!({"ints": 1000, "mib": mib}))
            .await?;
        let paused = process
            .wait_for(|r| r.paused || r.state.is_terminal())
            .await;
        ensure!(
            paused.paused,
            "case c: the process did not pause: {paused:?}"
        );
        let key = CheckpointKey::new(process.pid()).tagged("bench");
        // Warm up (the plugin's code pages, the store's tables).
        process.checkpoint(Some("bench")).await?;
        drop(host.restore(&store, &key, false).await?);

        let mut saves = Vec::with_capacity(self.checkpoints);
        for _ in 0..self.checkpoints {
            let started = Instant::now();
            process.checkpoint(Some("bench")).await?;
            saves.push(started.elapsed());
        }
        let mut loads = Vec::with_capacity(self.checkpoints);
        for _ in 0..self.checkpoints {
            let started = Instant::now();
            let restored = host.restore(&store, &key, false).await?;
            loads.push(started.elapsed());
            ensure!(
                restored.guests.is_some(),
                "case c: restored without an instance"
            );
        }
        let bytes = store
            .load(&key)
            .await?
            .context("case c: the checkpoint is not in the store")?;
        let image = bundle::decode::<ProcessRecord>(&bytes)?
            .image
            .map_or(0, |i| i.len());
        process.kill(None, false);
        process.wait().await;

        // The loaded copy carries on with the records it had: its last step checks them all.
        let other = Host::with_store(&config, store)?;
        let copy = other.continue_process(process.pid(), Some("bench")).await?;
        copy.play();
        let record = copy.wait().await;
        ensure!(
            record.state == ProcessState::Finished && record.outputs["customers"] != Value::Null,
            "case c: the restored process did not finish with its records: {record:?}"
        );
        Ok(Checkpointed {
            save: median_duration(saves),
            load: median_duration(loads),
            bytes: bytes.len(),
            image,
        })
    }
}

impl BenchCommand {
    /// Cases f and g, on a host attached to RabbitMQ and a controller with a connection of its
    /// own, on exchanges and a queue of the benchmark's own.
    async fn cases_f_g(&self) -> anyhow::Result<()> {
        use crate::comms::{
            Communicator, ProcessLauncher, RabbitMqCommunicator, RabbitMqOptions,
            RemoteProcessController,
        };
        let url = self
            .broker
            .as_deref()
            .context("cases f and g need --broker amqp://…")?;
        ensure!(self.messages > 0, "--messages must be at least 1");
        let options = RabbitMqOptions::isolated(&format!("bench-{}", std::process::id()));
        let server: Arc<dyn Communicator> =
            RabbitMqCommunicator::connect(url, options.clone()).await?;
        let client: Arc<dyn Communicator> = RabbitMqCommunicator::connect(url, options).await?;
        // No store, as plumpy's cases f and g have no persister.
        let host = Host::new(&self.common.host_config())?;
        host.attach(server.clone()).await?;
        server
            .add_task_subscriber(Arc::new(ProcessLauncher::new(host.clone())), None)
            .await?;
        let controller = RemoteProcessController::new(client.clone());
        let lifecycle = host
            .load("lifecycle")
            .await
            .context("case f needs `lifecycle`")?;
        let add = host.load("add").await.context("cases f and g need `add`")?;
        let n = self.messages;

        if self.cases.contains('f') {
            let waiting = host.launch(&lifecycle, json!({"mode": "wait"})).await?;
            waiting.wait_for(|r| r.state == ProcessState::Waiting).await;
            let (mut rpc, mut sequential, mut concurrent) = (Vec::new(), Vec::new(), Vec::new());
            for _ in 0..self.runs {
                let mut times = Vec::with_capacity(n);
                for _ in 0..n {
                    let started = Instant::now();
                    controller.get_status(waiting.pid()).await?;
                    times.push(started.elapsed());
                }
                rpc.push(median_duration(times));

                let started = Instant::now();
                for i in 0..n {
                    controller
                        .launch_process("add", json!({"x": i, "y": 1}), false, false)
                        .await?;
                }
                sequential.push(n as f64 / started.elapsed().as_secs_f64());

                let started = Instant::now();
                let launches: Vec<_> = (0..n)
                    .map(|i| {
                        let controller = controller.clone();
                        tokio::spawn(async move {
                            controller
                                .launch_process("add", json!({"x": i, "y": 1}), false, false)
                                .await
                        })
                    })
                    .collect();
                for launch in launches {
                    launch.await??;
                }
                concurrent.push(n as f64 / started.elapsed().as_secs_f64());
            }
            waiting.kill(None, false);
            let rpc = median_duration(rpc).as_secs_f64() * 1000.0;
            println!(
                "f  RPC status round trip          {:>10.2} ms   {:>10.2} ms   {:>6.1}x",
                rpc,
                PLUMPY_RPC_MS,
                PLUMPY_RPC_MS / rpc
            );
            let (sequential, concurrent) = (median(sequential), median(concurrent));
            println!(
                "f  {n} launches, one at a time {:>10.0}/s   {:>10.0}/s   {:>6.1}x",
                sequential,
                PLUMPY_LAUNCHES_PER_S,
                sequential / PLUMPY_LAUNCHES_PER_S
            );
            println!(
                "f  {n} launches, all at once   {:>10.0}/s   {:>10.0}/s   {:>6.1}x",
                concurrent,
                PLUMPY_CONCURRENT_LAUNCHES_PER_S,
                concurrent / PLUMPY_CONCURRENT_LAUNCHES_PER_S
            );
        }
        if self.cases.contains('g') {
            let mut g = Vec::new();
            for _ in 0..self.runs {
                let started = Instant::now();
                for i in 0..n {
                    let record = host.run(&add, json!({"x": i, "y": 1})).await?;
                    ensure!(record.successful() == Some(true), "case g: {record:?}");
                }
                g.push(n as f64 / started.elapsed().as_secs_f64());
            }
            let g = median(g);
            println!(
                "g  {n} processes on RabbitMQ   {:>10.0}/s   {:>10.1}/s   {:>6.1}x",
                g,
                PLUMPY_ATTACHED_PER_S,
                g / PLUMPY_ATTACHED_PER_S
            );
        }
        client.close().await;
        server.close().await;
        Ok(())
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn median_duration(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}
