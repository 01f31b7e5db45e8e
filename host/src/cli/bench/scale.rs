//! Cases w and e (issue 15's scale and durability goals): what a dehydrated waiting process
//! costs a host and how fast it comes back, and durable trivial processes on the embedded store.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, ensure};
use serde_json::json;

use super::BenchCommand;
use super::figures::{Figures, Unit, median, median_duration, status_kb};
use crate::persist::{EmbeddedPersister, Persister};
use crate::{Host, ProcessState};

impl BenchCommand {
    /// Case w: --waiting durable processes (on the embedded store) launched until each waits
    /// for a resume and has left memory (dehydrated): what each adds to the resident memory and
    /// the address space of this process; then the time to bring one back (a resume, until it
    /// runs again: read its checkpoint, instantiate, write its memory image back), one after
    /// another for a sample; and killing all the others at once.
    pub(super) async fn case_w(&self, figures: &mut Figures) -> anyhow::Result<()> {
        let dir = std::env::temp_dir().join(format!("damson-bench-w-{}", std::process::id()));
        let store: Arc<dyn Persister> = Arc::new(EmbeddedPersister::open(dir.join("w.redb"))?);
        let host = Host::with_store(&self.common.host_config(), store)?;
        let lifecycle = host
            .load("lifecycle")
            .await
            .context("case w needs the `lifecycle` plugin")?;
        // Warm up, so that code pages and the engine's first allocations are not counted.
        let first = host.launch(&lifecycle, json!({"mode": "wait"})).await?;
        let first = first.pid().to_string();
        dehydrated(&host, std::slice::from_ref(&first)).await?;
        host.process(&first).context("case w")?.kill(None, true);

        // The bench holds pids only, as a host's callers would: a handle held keeps the
        // process's record in memory in full.
        let n = self.waiting.max(2);
        let half = n / 2;
        let mut waiting: Vec<String> = Vec::with_capacity(n);
        let started = Instant::now();
        self.launch_waiting(&host, &lifecycle, half, &mut waiting)
            .await?;
        // What each adds, measured between half and all of them: the memory the first ones
        // bring (caches, the engine's arenas) is not theirs alone.
        let (rss, size) = (status_kb("VmRSS"), status_kb("VmSize"));
        self.launch_waiting(&host, &lifecycle, n - half, &mut waiting)
            .await?;
        let launched = started.elapsed();
        let per = |now: f64, before: f64| (now - before) / (n - half) as f64;
        let (rss_per, size_per) = (per(status_kb("VmRSS"), rss), per(status_kb("VmSize"), size));

        // Bring a sample back one at a time: resumed, each runs its last step and finishes.
        let sample = waiting.split_off(n - (n / 100).clamp(1, 200).min(n));
        let mut back = Vec::with_capacity(sample.len());
        for pid in &sample {
            let process = host
                .process(pid)
                .context("case w: a waiting process is gone")?;
            let started = Instant::now();
            ensure!(
                process.resume(None),
                "case w: not waiting: {:?}",
                process.record()
            );
            process.wait_for(|r| r.state != ProcessState::Waiting).await;
            back.push(started.elapsed());
            let record = process.wait().await;
            ensure!(record.state == ProcessState::Finished, "case w: {record:?}");
        }
        let started = Instant::now();
        let mut killed = Vec::with_capacity(waiting.len());
        for pid in &waiting {
            let process = host
                .process(pid)
                .context("case w: a waiting process is gone")?;
            process.kill(Some("the case is over"), true);
            killed.push(process);
        }
        for process in &killed {
            process.wait().await;
        }
        let killed = started.elapsed();
        drop((killed, host));
        let _ = std::fs::remove_dir_all(&dir);
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
            format!("{n} waiting processes: launched until dehydrated"),
            n as f64 / launched.as_secs_f64(),
            Unit::PerSecond,
        );
        figures.add(
            'w',
            "rehydrate_ms",
            format!("one brought back by a resume ({} in turn)", back.len()),
            median_duration(back).as_secs_f64() * 1000.0,
            Unit::Milliseconds,
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

    /// Launch `count` waiting processes of `lifecycle` and wait until they are dehydrated;
    /// their pids go into `pids`.
    async fn launch_waiting(
        &self,
        host: &Host,
        lifecycle: &Arc<crate::Plugin>,
        count: usize,
        pids: &mut Vec<String>,
    ) -> anyhow::Result<()> {
        let from = pids.len();
        // In flight together, so that their checkpoints share commits; bounded, so that the
        // instances not yet dehydrated stay few.
        let mut launching = tokio::task::JoinSet::new();
        for _ in 0..count {
            if launching.len() >= 256
                && let Some(launched) = launching.join_next().await
            {
                pids.push(launched??);
            }
            let (host, lifecycle) = (host.clone(), lifecycle.clone());
            launching.spawn(async move {
                let process = host.launch(&lifecycle, json!({"mode": "wait"})).await?;
                process
                    .wait_for(|r| r.state == ProcessState::Waiting || r.state.is_terminal())
                    .await;
                anyhow::Ok(process.pid().to_string())
            });
        }
        while let Some(launched) = launching.join_next().await {
            pids.push(launched??);
        }
        dehydrated(host, &pids[from..]).await
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

/// Wait until each of `pids` waits, dehydrated.
async fn dehydrated(host: &Host, pids: &[String]) -> anyhow::Result<()> {
    for pid in pids {
        let deadline = Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let process = host
                .process(pid)
                .context("case w: a waiting process is gone")?;
            let record = process.record();
            ensure!(!record.state.is_terminal(), "case w: {record:?}");
            if process.is_dehydrated() {
                break;
            }
            drop(process);
            ensure!(Instant::now() < deadline, "case w: {pid} stays in memory");
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
    }
    Ok(())
}
