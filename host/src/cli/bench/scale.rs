//! Cases w and e (issue 15's scale and durability goals): what a waiting process costs a host
//! today, and durable trivial processes on the embedded store.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, ensure};
use serde_json::json;

use super::BenchCommand;
use super::figures::{Figures, Unit, median, status_kb};
use crate::persist::{EmbeddedPersister, Persister};
use crate::{Host, ProcessState};

impl BenchCommand {
    /// Case w: --waiting processes launched until each waits (for a resume that never
    /// comes), what each adds to the resident memory and the address space of this process,
    /// and how long killing them all takes.
    pub(super) async fn case_w(&self, figures: &mut Figures) -> anyhow::Result<()> {
        let host = Host::new(&self.common.host_config())?;
        let lifecycle = host
            .load("lifecycle")
            .await
            .context("case w needs the `lifecycle` plugin")?;
        // Warm up, so that code pages and the engine's first allocations are not counted.
        let first = host.launch(&lifecycle, json!({"mode": "wait"})).await?;
        first.wait_for(|r| r.state == ProcessState::Waiting).await;
        first.kill(None, true);
        first.wait().await;

        let (rss, size) = (status_kb("VmRSS"), status_kb("VmSize"));
        let started = Instant::now();
        let mut waiting = Vec::with_capacity(self.waiting);
        for _ in 0..self.waiting {
            waiting.push(host.launch(&lifecycle, json!({"mode": "wait"})).await?);
        }
        for process in &waiting {
            let record = process
                .wait_for(|r| r.state == ProcessState::Waiting || r.state.is_terminal())
                .await;
            ensure!(record.state == ProcessState::Waiting, "case w: {record:?}");
        }
        let launched = started.elapsed();
        let per = |now: f64, before: f64| (now - before) / self.waiting as f64;
        let (rss_per, size_per) = (per(status_kb("VmRSS"), rss), per(status_kb("VmSize"), size));
        let started = Instant::now();
        for process in &waiting {
            process.kill(Some("the case is over"), true);
        }
        for process in &waiting {
            process.wait().await;
        }
        let killed = started.elapsed();
        let n = self.waiting;
        figures.add(
            'w',
            "rss_kb_per_process",
            format!("{n} waiting processes: resident memory each"),
            rss_per * 1.024,
            Unit::Kilobytes,
        );
        figures.add(
            'w',
            "address_space_kb_per_process",
            format!("{n} waiting processes: address space each"),
            size_per * 1.024,
            Unit::Kilobytes,
        );
        figures.add(
            'w',
            "waiting_per_s",
            format!("{n} waiting processes: launched until waiting"),
            n as f64 / launched.as_secs_f64(),
            Unit::PerSecond,
        );
        figures.add(
            'w',
            "kill_all_ms",
            format!("{n} waiting processes: all killed"),
            killed.as_secs_f64() * 1000.0,
            Unit::Milliseconds,
        );
        Ok(())
    }

    /// Case e: trivial processes on the embedded store, each checkpointed at its creation,
    /// after its step and at its end: one after another (each waits for its own commits), and
    /// all launched at once (their checkpoints share commits).
    pub(super) async fn case_e(&self, figures: &mut Figures) -> anyhow::Result<()> {
        let dir = std::env::temp_dir().join(format!("damson-bench-e-{}", std::process::id()));
        let store: Arc<dyn Persister> = Arc::new(EmbeddedPersister::open(dir.join("e.redb"))?);
        let host = Host::with_store(&self.common.host_config(), store)?;
        let add = host
            .load("add")
            .await
            .context("case e needs the `add` plugin")?;
        host.run(&add, json!({"x": 1, "y": 2})).await?;
        // A tenth of case a's count: every process costs a few synchronous writes.
        let count = (self.processes / 10).max(1);
        let (mut one_by_one, mut at_once) = (Vec::new(), Vec::new());
        for _ in 0..self.runs {
            let started = Instant::now();
            for i in 0..count {
                let record = host.run(&add, json!({"x": i, "y": 1})).await?;
                ensure!(record.successful() == Some(true), "case e: {record:?}");
            }
            one_by_one.push(count as f64 / started.elapsed().as_secs_f64());

            // Each launch on its own task: a launch returns once the process's first
            // checkpoint has committed, so launches one after another would not share commits.
            let started = Instant::now();
            let mut launched = tokio::task::JoinSet::new();
            for i in 0..count {
                let (host, add) = (host.clone(), add.clone());
                launched.spawn(async move { host.run(&add, json!({"x": i, "y": 2})).await });
            }
            while let Some(ran) = launched.join_next().await {
                let record = ran??;
                ensure!(record.successful() == Some(true), "case e: {record:?}");
            }
            at_once.push(count as f64 / started.elapsed().as_secs_f64());
        }
        drop(host);
        let _ = std::fs::remove_dir_all(&dir);
        figures.add(
            'e',
            "processes_per_s",
            format!("{count} durable trivial processes, embedded store, one after another"),
            median(one_by_one),
            Unit::PerSecond,
        );
        figures.add(
            'e',
            "concurrent_processes_per_s",
            format!("{count} durable trivial processes, embedded store, all at once"),
            median(at_once),
            Unit::PerSecond,
        );
        Ok(())
    }
}
