//! Case c: checkpoint save and load, of a tiny guest and a large one, in two stores.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use serde_json::{Value, json};

use super::BenchCommand;
use super::figures::{Figures, Unit, median_duration};
use crate::persist::{CheckpointKey, EmbeddedPersister, MemoryPersister, Persister, bundle};
use crate::{Host, ProcessHandle, ProcessRecord, ProcessState};

/// Median save and load times of one checkpoint, and its size.
pub(super) struct Checkpointed {
    pub(super) save: Duration,
    pub(super) load: Duration,
    pub(super) bytes: usize,
    pub(super) image: usize,
}

impl BenchCommand {
    /// Case c, for a tiny guest and a large one, in memory and in the embedded file store.
    pub(super) async fn case_c(&self, figures: &mut Figures) -> anyhow::Result<()> {
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
    pub(super) async fn measure(
        &self,
        host: &Host,
        store: &Arc<dyn Persister>,
        process: &ProcessHandle,
    ) -> anyhow::Result<Checkpointed> {
        let key = CheckpointKey::new(process.pid()).tagged("bench");
        // Warm up (the plugin's code pages, the store's tables).
        process.checkpoint(Some("bench")).await?;
        drop(host.restore(store, &key, false, Default::default()).await?);

        let mut saves = Vec::with_capacity(self.checkpoints);
        for _ in 0..self.checkpoints {
            let started = Instant::now();
            process.checkpoint(Some("bench")).await?;
            saves.push(started.elapsed());
        }
        let mut loads = Vec::with_capacity(self.checkpoints);
        for _ in 0..self.checkpoints {
            let started = Instant::now();
            let restored = host.restore(store, &key, false, Default::default()).await?;
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
