//! Case l: the loop, the checkpoint and the memory image per guest language.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use serde_json::json;

use super::BenchCommand;
use super::figures::{Figures, Unit, median};
use crate::Host;
use crate::persist::{MemoryPersister, Persister};

/// The languages of case l: their names in figures and their plugins' suffixes.
const LANGUAGES: [(&str, &str); 4] = [("rust", ""), ("python", "-py"), ("js", "-js"), ("c", "-c")];

impl BenchCommand {
    /// Case l: a work chain's step cost and a memory image's size, save and load, per language.
    pub(super) async fn case_l(&self, figures: &mut Figures) -> anyhow::Result<()> {
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
            // 20 steps in or more: a watcher may miss a status between two it sees.
            let step = |status: &str| {
                status
                    .strip_prefix("step ")
                    .and_then(|s| s.split(' ').next())
                    .and_then(|n| n.parse::<u64>().ok())
            };
            process
                .wait_for(|r| {
                    r.state.is_terminal()
                        || r.status.as_deref().and_then(step).is_some_and(|n| n >= 20)
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
