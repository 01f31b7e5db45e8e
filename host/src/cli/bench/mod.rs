//! `damson bench`: plumpy's benchmark cases on equivalent plugins, Damson's figures only.
//! `cargo xtask bench` runs plumpy's reference benchmark in the same run and prints both, with
//! their ratios, from this command's `--json`. One file per case (or pair of cases that share
//! a set-up), and [`figures`], how they are printed.

mod broker;
mod checkpoints;
mod figures;
mod languages;
mod scale;
mod tenants;
mod timers;

use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, ensure};
use clap::Args;
use serde_json::json;

use super::{CommonOptions, exit};
use crate::Host;
use figures::{Figures, Unit, median, median_duration};

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
  e  durable trivial processes on the embedded store (a tenth of --processes), each
     checkpointed at its creation, after its step and at its end, one after another
  w  --waiting durable processes (`lifecycle`, mode=wait, on the embedded store) launched
     until each waits, dehydrated: the resident memory and address space each adds to this
     process; the time to bring one back with a resume (for a sample, one after another); and
     killing all the others
  s  --sleepers durable processes (`sleeper`, on the embedded store), each sleeping on a durable
     timer from its launch (dehydrated meanwhile) — --sleep-ms, and its share of
     --wake-spread-ms, so that the timers come due one after another over that time — woken by
     the host's one timer index: how late each went on after its timer was due (median, 90th
     and 99th percentile, most)
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
    #[arg(long, default_value = "abcdeltws")]
    cases: String,

    /// Case w: how many waiting processes.
    #[arg(long, default_value_t = 100_000)]
    waiting: usize,

    /// Case s: how many sleeping processes.
    #[arg(long, default_value_t = 10_000)]
    sleepers: usize,

    /// Case s: how long each sleeps at least from its launch, in milliseconds (longer than
    /// launching them all takes).
    #[arg(long, default_value_t = 15_000)]
    sleep_ms: u64,

    /// Case s: the sleepers' timers come due over this many milliseconds, one after another
    /// (0: all as fast as they were launched).
    #[arg(long, default_value_t = 20_000)]
    wake_spread_ms: u64,

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
        if self.cases.contains('e') {
            self.case_e(&mut figures).await?;
        }
        if self.cases.contains('w') {
            self.case_w(&mut figures).await?;
        }
        if self.cases.contains('t') {
            self.case_t(&mut figures).await?;
        }
        if self.cases.contains('s') {
            self.case_s(&mut figures).await?;
        }
        figures.print(self.json, self.runs);
        Ok(ExitCode::from(exit::OK))
    }
}
