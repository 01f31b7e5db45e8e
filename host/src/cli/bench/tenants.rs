//! Case t: a quiet tenant beside a noisy one.

use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use serde_json::json;

use super::BenchCommand;
use super::figures::{Figures, Unit, median};
use crate::Host;
use crate::tenancy::Quotas;

impl BenchCommand {
    /// Case t: a quiet tenant's trivial-process latency, idle and beside a noisy tenant's
    /// spinning processes.
    pub(super) async fn case_t(&self, figures: &mut Figures) -> anyhow::Result<()> {
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
