//! Case s (issue 16's timers): --sleepers durable processes on the embedded store, each
//! sleeping on a durable timer from its launch — --sleep-ms, plus its share of --wake-spread-ms
//! so that their timers come due over that time rather than all at once — woken by the host's
//! one timer index: how late each went on after its timer came due.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, ensure};
use serde_json::json;

use super::BenchCommand;
use super::figures::{Figures, Unit};
use crate::persist::{EmbeddedPersister, Persister};
use crate::{Event, Host, ProcessHandle, ProcessState};

impl BenchCommand {
    /// Case s: launch the sleepers (each waits, dehydrated, for its timer), then hear each go
    /// on: lateness = when it left WAITING minus when its timer was due, as percentiles.
    pub(super) async fn case_s(&self, figures: &mut Figures) -> anyhow::Result<()> {
        let dir = std::env::temp_dir().join(format!("damson-bench-s-{}", std::process::id()));
        let store: Arc<dyn Persister> = Arc::new(EmbeddedPersister::open(dir.join("s.redb"))?);
        let host = Host::with_store(&self.common.host_config(), store)?;
        let sleeper = host
            .load("sleeper")
            .await
            .context("case s needs the `sleeper` plugin")?;
        let n = self.sleepers.max(1);
        // When each went on, by its index, and when its timer was due (ms since the epoch).
        let woke: Arc<Mutex<Vec<(u64, u64)>>> = Arc::new(Mutex::new(Vec::with_capacity(n)));
        let mut sleepers: Vec<ProcessHandle> = Vec::with_capacity(n);
        let started = Instant::now();
        let mut launching = tokio::task::JoinSet::new();
        for i in 0..n {
            if launching.len() >= 256
                && let Some(launched) = launching.join_next().await
            {
                sleepers.push(launched??);
            }
            let (host, sleeper, woke) = (host.clone(), sleeper.clone(), woke.clone());
            let ms = self.sleep_ms + self.wake_spread_ms * i as u64 / n as u64;
            launching.spawn(async move {
                let process = host.launch(&sleeper, json!({"ms": ms})).await?;
                let due = process
                    .wait_for(|r| r.timer.is_some() || r.state.is_terminal())
                    .await
                    .timer
                    .context("case s: a sleeper never slept")?;
                process.add_listener(Arc::new(move |_: &ProcessHandle, event: &Event| {
                    if matches!(event, Event::Running) {
                        woke.lock().unwrap().push((now_ms(), due));
                    }
                }));
                // A sleeper may have gone on before it was listened to.
                if process.state() != ProcessState::Waiting {
                    anyhow::bail!(
                        "case s: launching took longer than --sleep-ms ({ms} ms): use a \
                         longer sleep"
                    );
                }
                anyhow::Ok(process)
            });
        }
        while let Some(launched) = launching.join_next().await {
            sleepers.push(launched??);
        }
        let launched = started.elapsed();
        for process in &sleepers {
            let record = tokio::time::timeout(
                Duration::from_millis(self.sleep_ms + self.wake_spread_ms)
                    + Duration::from_secs(120),
                process.wait(),
            )
            .await
            .context("case s: a sleeper was not woken within 2 minutes of its timer")?;
            ensure!(record.state == ProcessState::Finished, "case s: {record:?}");
        }
        let mut late: Vec<u64> = woke
            .lock()
            .unwrap()
            .iter()
            .map(|(woke, due)| woke.saturating_sub(*due))
            .collect();
        ensure!(
            late.len() == n,
            "case s: {} of {n} heard waking",
            late.len()
        );
        late.sort_unstable();
        drop((sleepers, host));
        let _ = std::fs::remove_dir_all(&dir);
        let at = |q: f64| late[((late.len() - 1) as f64 * q).round() as usize] as f64;
        let over = self.wake_spread_ms as f64 / 1000.0;
        figures.add(
            's',
            "launched_per_s",
            format!("{n} sleepers: launched until asleep"),
            n as f64 / launched.as_secs_f64(),
            Unit::PerSecond,
        );
        for (key, label, q) in [
            ("late_p50_ms", "median", 0.5),
            ("late_p90_ms", "90th percentile", 0.9),
            ("late_p99_ms", "99th percentile", 0.99),
            ("late_max_ms", "most", 1.0),
        ] {
            figures.add(
                's',
                key,
                format!("{n} sleepers waking over {over:.0} s: lateness, {label}"),
                at(q),
                Unit::Milliseconds,
            );
        }
        Ok(())
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
