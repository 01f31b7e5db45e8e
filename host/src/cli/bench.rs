//! `damson bench`: plumpy's benchmark cases on equivalent plugins, Damson's figures only.
//! `cargo xtask bench` runs plumpy's reference benchmark in the same run and prints both, with
//! their ratios, from this command's `--json`.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use clap::Args;
use serde_json::{Value, json};

use super::{CommonOptions, exit};
use crate::persist::{CheckpointKey, EmbeddedPersister, MemoryPersister, Persister, bundle};
use crate::tenancy::Quotas;
use crate::{Host, ProcessHandle, ProcessRecord, ProcessState};

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
  l  per language (the Rust, Python, JavaScript and C twins of `collatz` and `hailstone`): the
     while_ loop's cost per iteration (`collatz`, n = 837799, 524 iterations of 4 guest calls
     each) without a store, and checkpointed after every step in memory (n = 27, 111
     iterations), and the checkpoint of a `hailstone` paused mid-loop, its state in the language's own
     variables: memory image size, save and load as in case c, in memory
  t  noisy neighbour: tenant B's trivial process (`add`, launched and run to its end, one
     after another) on an idle host, then while tenant A runs --spinners processes that spin
     (`spin`) on the same host; the median latency of each and their ratio
Cases f and g need --broker and are not run by default.
Each case runs --runs times (case c --checkpoints times); the median is reported, and the peak
resident memory of this process. To compare with plumpy 0.26.1 measured in the same run, use
`cargo xtask bench`.";

/// Measure Damson on plumpy's benchmark cases.
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
    #[arg(long, default_value = "abcdlt")]
    cases: String,

    /// Case t: how many spinning processes the noisy tenant runs.
    #[arg(long, default_value_t = 200)]
    spinners: usize,

    /// Cases f and g: the RabbitMQ broker, e.g. `amqp://guest:guest@localhost:5672/%2f`.
    #[arg(long, value_name = "URL")]
    broker: Option<String>,

    /// Cases f and g: how many RPC round trips, launches and processes per run.
    #[arg(long, default_value_t = 200)]
    messages: usize,

    /// Print one JSON object: each case's figures by name, and `peak_rss_mb`.
    #[arg(long)]
    json: bool,

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

        let mut figures = Figures::default();
        if !a.is_empty() {
            let label = format!("{} trivial processes", self.processes);
            figures.add('a', "processes_per_s", label, median(a), Unit::PerSecond);
        }
        if !b.is_empty() {
            let label = format!("while_ loop, {} iterations", self.iterations);
            figures.add('b', "iterations_per_s", label, median(b), Unit::PerSecond);
        }
        if self.cases.contains('c') {
            self.case_c(&mut figures).await?;
        }
        if !d.is_empty() {
            let label = format!("{} children in one step", self.children);
            let d = median_duration(d).as_secs_f64() * 1000.0;
            figures.add('d', "ms", label, d, Unit::Milliseconds);
        }
        if self.cases.contains('f') || self.cases.contains('g') {
            self.cases_f_g(&mut figures).await?;
        }
        if self.cases.contains('l') {
            self.case_l(&mut figures).await?;
        }
        if self.cases.contains('t') {
            self.case_t(&mut figures).await?;
        }
        figures.print(self.json, self.runs);
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
    async fn case_c(&self, figures: &mut Figures) -> anyhow::Result<()> {
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
                let key = |what: &str| {
                    let size = if mib == 0 { "tiny" } else { "large" };
                    let store = if kind == "in memory" {
                        "memory"
                    } else {
                        "file"
                    };
                    format!("{size}_{store}_{what}")
                };
                let label = format!("{label}, {kind}");
                figures.add_named(
                    'c',
                    key("save_ms"),
                    format!("{label}: save"),
                    ms(c.save),
                    Unit::Milliseconds,
                );
                figures.add_named(
                    'c',
                    key("load_ms"),
                    format!("{label}: load"),
                    ms(c.load),
                    Unit::Milliseconds,
                );
                figures.add_named(
                    'c',
                    key("bundle_kb"),
                    format!("{label}: bundle"),
                    c.bytes as f64 / 1000.0,
                    Unit::Kilobytes,
                );
                figures.add_named(
                    'c',
                    key("image_kb"),
                    format!("{label}: memory image"),
                    c.image as f64 / 1000.0,
                    Unit::Kilobytes,
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
        let checkpointed = self.measure(&host, &store, &process).await?;
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
        Ok(checkpointed)
    }

    /// Save the checkpoint of `process` (paused) and load it, --checkpoints times each.
    async fn measure(
        &self,
        host: &Host,
        store: &Arc<dyn Persister>,
        process: &ProcessHandle,
    ) -> anyhow::Result<Checkpointed> {
        let key = CheckpointKey::new(process.pid()).tagged("bench");
        // Warm up (the plugin's code pages, the store's tables).
        process.checkpoint(Some("bench")).await?;
        drop(host.restore(store, &key, false).await?);

        let mut saves = Vec::with_capacity(self.checkpoints);
        for _ in 0..self.checkpoints {
            let started = Instant::now();
            process.checkpoint(Some("bench")).await?;
            saves.push(started.elapsed());
        }
        let mut loads = Vec::with_capacity(self.checkpoints);
        for _ in 0..self.checkpoints {
            let started = Instant::now();
            let restored = host.restore(store, &key, false).await?;
            loads.push(started.elapsed());
            ensure!(
                restored.guests.is_some(),
                "{}: restored without an instance",
                process.pid()
            );
        }
        let bytes = store
            .load(&key)
            .await?
            .context("the checkpoint is not in the store")?;
        let image = bundle::decode::<ProcessRecord>(&bytes)?
            .image
            .map_or(0, |i| i.len());
        Ok(Checkpointed {
            save: median_duration(saves),
            load: median_duration(loads),
            bytes: bytes.len(),
            image,
        })
    }
}

/// The languages of case l: their names in figures and their plugins' suffixes.
const LANGUAGES: [(&str, &str); 4] = [("rust", ""), ("python", "-py"), ("js", "-js"), ("c", "-c")];

impl BenchCommand {
    /// Case l: a work chain's step cost and a memory image's size, save and load, per language.
    async fn case_l(&self, figures: &mut Figures) -> anyhow::Result<()> {
        const N: u64 = 837_799;
        const ITERATIONS: u64 = 524;
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        for (language, suffix) in LANGUAGES {
            let store: Arc<dyn Persister> = Arc::new(MemoryPersister::new());
            let host = Host::with_store(&self.common.host_config(), store.clone())?;
            // The loop on a host without a store (as case b), then checkpointed after every
            // step, memory image included.
            let plain = Host::new(&self.common.host_config())?;
            // (A shorter loop when checkpointed: a Python step then costs milliseconds.)
            for (host, n, iterations, key, label) in [
                (
                    &plain,
                    N,
                    ITERATIONS,
                    "iteration_us",
                    "while_ iteration (collatz)",
                ),
                (
                    &host,
                    27,
                    111,
                    "durable_iteration_us",
                    "while_ iteration, checkpointed (collatz)",
                ),
            ] {
                let name = format!("collatz{suffix}");
                let collatz = host
                    .load(&name)
                    .await
                    .with_context(|| format!("case l needs the `{name}` plugin"))?;
                host.run(&collatz, json!({"n": 27})).await?;
                let mut loops = Vec::new();
                for _ in 0..self.runs {
                    let started = Instant::now();
                    let record = host.run(&collatz, json!({"n": n})).await?;
                    let elapsed = started.elapsed();
                    ensure!(
                        record.outputs["steps"] == iterations,
                        "case l: {name} counted wrong: {record:?}"
                    );
                    loops.push(elapsed.as_secs_f64() * 1e6 / iterations as f64);
                }
                figures.add_named(
                    'l',
                    format!("{language}_{key}"),
                    format!("{language}: {label}"),
                    median(loops),
                    Unit::Microseconds,
                );
            }

            let name = format!("hailstone{suffix}");
            let hailstone = host
                .load(&name)
                .await
                .with_context(|| format!("case l needs the `{name}` plugin"))?;
            let process = host
                .launch(&hailstone, json!({"n": N, "delay_ms": 1}))
                .await?;
            process
                .wait_for(|r| {
                    r.state.is_terminal()
                        || r.status
                            .as_deref()
                            .is_some_and(|s| s.starts_with("step 20 "))
                })
                .await;
            process.pause(None);
            let paused = process
                .wait_for(|r| r.paused || r.state.is_terminal())
                .await;
            ensure!(paused.paused, "case l: {name} did not pause: {paused:?}");
            let c = self.measure(&host, &store, &process).await?;
            process.kill(None, false);
            process.wait().await;
            for (key, label, value, unit) in [
                (
                    "image_kb",
                    "memory image",
                    c.image as f64 / 1000.0,
                    Unit::Kilobytes,
                ),
                ("save_ms", "checkpoint save", ms(c.save), Unit::Milliseconds),
                ("load_ms", "checkpoint load", ms(c.load), Unit::Milliseconds),
            ] {
                figures.add_named(
                    'l',
                    format!("{language}_{key}"),
                    format!("{language}: {label} (hailstone mid-loop)"),
                    value,
                    unit,
                );
            }
        }
        Ok(())
    }
}

impl BenchCommand {
    /// Cases f and g, on a host attached to RabbitMQ and a controller with a connection of its
    /// own, on exchanges and a queue of the benchmark's own.
    async fn cases_f_g(&self, figures: &mut Figures) -> anyhow::Result<()> {
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
            figures.add(
                'f',
                "rpc_ms",
                "RPC status round trip".into(),
                rpc,
                Unit::Milliseconds,
            );
            let label = format!("{n} launches, one at a time");
            figures.add(
                'f',
                "launches_per_s",
                label,
                median(sequential),
                Unit::PerSecond,
            );
            let label = format!("{n} launches, all at once");
            let concurrent = median(concurrent);
            figures.add(
                'f',
                "concurrent_launches_per_s",
                label,
                concurrent,
                Unit::PerSecond,
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
            let label = format!("{n} processes on RabbitMQ");
            figures.add('g', "processes_per_s", label, median(g), Unit::PerSecond);
        }
        client.close().await;
        server.close().await;
        Ok(())
    }
}

impl BenchCommand {
    /// Case t: a quiet tenant's trivial-process latency, idle and beside a noisy tenant's
    /// spinning processes.
    async fn case_t(&self, figures: &mut Figures) -> anyhow::Result<()> {
        let mut config = self.common.host_config();
        // The spinners spin for the whole case: they are killed at its end.
        config.step_timeout(Duration::from_secs(600));
        let base = Host::new(&config)?;
        let quiet = base.for_tenant("quiet", Quotas::default(), Vec::new());
        let noisy = base.for_tenant("noisy", Quotas::default(), Vec::new());
        let add = quiet.load("add").await.context("case t needs `add`")?;
        let spin = noisy.load("spin").await.context("case t needs `spin`")?;
        let samples = (self.processes / 10).clamp(20, 200);
        let latency = async || -> anyhow::Result<f64> {
            let mut took = Vec::new();
            for i in 0..samples {
                let started = Instant::now();
                let record = quiet.run(&add, json!({"x": i, "y": 1})).await?;
                took.push(started.elapsed().as_secs_f64() * 1000.0);
                ensure!(record.successful() == Some(true), "case t: {record:?}");
            }
            Ok(median(took))
        };
        latency().await?; // warm up
        let idle = latency().await?;
        let mut spinners = Vec::new();
        for _ in 0..self.spinners {
            spinners.push(noisy.launch(&spin, json!({})).await?);
        }
        // Let every spinner reach its step.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let beside = latency().await?;
        for spinner in &spinners {
            spinner.kill(Some("the case is over"), true);
        }
        for spinner in &spinners {
            spinner.wait().await;
        }
        let label = |when: &str| format!("tenant B's trivial process, {when}");
        figures.add('t', "idle_ms", label("idle host"), idle, Unit::Milliseconds);
        figures.add(
            't',
            "noisy_ms",
            label(&format!("beside {} spinning", self.spinners)),
            beside,
            Unit::Milliseconds,
        );
        figures.add(
            't',
            "ratio",
            "noisy / idle latency".into(),
            beside / idle,
            Unit::Times,
        );
        Ok(())
    }
}

/// What a figure counts.
#[derive(Debug, Clone, Copy)]
enum Unit {
    PerSecond,
    Milliseconds,
    Microseconds,
    Kilobytes,
    Times,
}

/// The figures measured, in order.
#[derive(Default)]
struct Figures(Vec<(char, String, String, f64, Unit)>);

impl Figures {
    fn add(&mut self, case: char, key: &str, label: String, value: f64, unit: Unit) {
        self.add_named(case, key.to_string(), label, value, unit);
    }

    fn add_named(&mut self, case: char, key: String, label: String, value: f64, unit: Unit) {
        self.0.push((case, key, label, value, unit));
    }

    /// A table, or one JSON object `{"a": {"processes_per_s": …}, …, "peak_rss_mb": …}`.
    fn print(&self, json: bool, runs: usize) {
        let peak = peak_rss_mb();
        if json {
            let mut object = serde_json::Map::new();
            for (case, key, _, value, _) in &self.0 {
                let entry = object.entry(case.to_string()).or_insert_with(|| json!({}));
                entry[key.as_str()] = json!(value);
            }
            object.insert("peak_rss_mb".into(), json!(peak));
            println!("{}", Value::Object(object));
            return;
        }
        println!("case                                                    damson");
        for (case, _, label, value, unit) in &self.0 {
            let value = match unit {
                Unit::PerSecond => format!("{value:>10.0}/s"),
                Unit::Milliseconds => format!("{value:>10.3} ms"),
                Unit::Microseconds => format!("{value:>10.1} µs"),
                Unit::Kilobytes => format!("{value:>10.1} KB"),
                Unit::Times => format!("{value:>10.2}×"),
            };
            println!("{case}  {label:<50} {value}");
        }
        println!("peak resident memory {peak:.1} MB; medians of {runs} runs");
        println!(
            "(`cargo xtask bench` measures plumpy 0.26.1 in the same run and prints the ratios)"
        );
    }
}

/// The most memory this process has had resident, in MB (Linux's `VmHWM`; 0 where unknown).
fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|kb| kb.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn median_duration(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}
