//! `damson bench`: plumpy's benchmark cases a, b and d on equivalent plugins, beside plumpy's
//! figures.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use clap::Args;
use serde_json::json;

use super::{CommonOptions, exit};
use crate::Host;

/// plumpy 0.26.1's medians on a 2-core machine like ours (`shared/bench/README.md`).
const PLUMPY_PROCESSES_PER_S: f64 = 9_466.0;
const PLUMPY_ITERATIONS_PER_S: f64 = 32_900.0;
const PLUMPY_CHILDREN_MS: f64 = 22.0;

const AFTER_HELP: &str = "\
Cases (as plumpy's reference benchmark, shared/bench/plumpy_bench.py):
  a  trivial processes (one step, one output: the `add` plugin), one after another
  b  a work chain whose while_ loop updates the context (the `counter` plugin)
  d  one work chain launching children in one step and awaiting them (the `parent` plugin)
Each case runs --runs times; the median is reported beside plumpy 0.26.1's median.";

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

        let mut a = Vec::new();
        for _ in 0..self.runs {
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
        for _ in 0..self.runs {
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
        for _ in 0..self.runs {
            let started = Instant::now();
            let record = host.run(&parent, json!({"count": self.children})).await?;
            let elapsed = started.elapsed();
            ensure!(
                record.outputs["children"] == self.children,
                "case d: {record:?}"
            );
            d.push(elapsed);
        }

        let (a, b) = (median(a), median(b));
        let d = median_duration(d).as_secs_f64() * 1000.0;
        println!("case                                  damson        plumpy 0.26.1   ratio");
        println!(
            "a  {} trivial processes       {:>10.0}/s   {:>10.0}/s   {:>6.1}x",
            self.processes,
            a,
            PLUMPY_PROCESSES_PER_S,
            a / PLUMPY_PROCESSES_PER_S
        );
        println!(
            "b  while_ loop, {} iterations {:>10.0}/s   {:>10.0}/s   {:>6.1}x",
            self.iterations,
            b,
            PLUMPY_ITERATIONS_PER_S,
            b / PLUMPY_ITERATIONS_PER_S
        );
        println!(
            "d  {} children in one step    {:>10.1} ms   {:>10.1} ms   {:>6.1}x",
            self.children,
            d,
            PLUMPY_CHILDREN_MS,
            PLUMPY_CHILDREN_MS / d
        );
        println!(
            "(median of {} runs; plumpy's figures are its medians from shared/bench/README.md, \
             measured on a machine of this kind)",
            self.runs
        );
        Ok(ExitCode::from(exit::OK))
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
