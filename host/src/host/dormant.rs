//! Dehydration: a durable process that waits for a resume leaves memory — its task ends, its
//! instance is dropped — and its handle stays in the table, dormant, until a request needs it;
//! then it comes back from its checkpoint ([`Rehydrate`]), on the same handle.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use super::{Host, Inner};
use crate::error::{Error, Result, chain};
use crate::guest::{Failure, Guest, Outcome, ProcessView, StepOutcome};
use crate::persist::CheckpointKey;
use crate::ports::{DefaultRequest, GuestCheck};
use crate::process::{Outside, ProcessHandle, Rehydrate, Task};

/// The longest wait between two attempts to bring back a process that cannot be (its store out
/// of reach, its plugin gone).
const MOST_BETWEEN_ATTEMPTS: Duration = Duration::from_secs(30);

/// Brings a dormant process back on the host that dehydrated it, while that host lives: one
/// per host, shared by its dormant processes.
pub(super) struct Rehydrator {
    host: Weak<Inner>,
    runtime: tokio::runtime::Handle,
}

impl Rehydrate for Rehydrator {
    fn rehydrate(&self, process: ProcessHandle) {
        let Some(inner) = self.host.upgrade() else {
            tracing::warn!(pid = %process.pid(), "the host of this dehydrated process is gone: it stays in the store");
            return;
        };
        self.runtime
            .spawn(async move { Host { inner }.rehydrate(process).await });
    }
}

impl Host {
    /// What lets this host's waiting processes leave memory: a store to wait in, and the
    /// host's setting ([`HostConfig::dehydrate_waiting`](crate::HostConfig::dehydrate_waiting)).
    pub(super) fn rehydrator(&self) -> Option<Arc<dyn Rehydrate>> {
        if !self.config().dehydrate_waiting || self.store().is_none() {
            return None;
        }
        if let Some(rehydrator) = self.inner.rehydrator.get() {
            return Some(rehydrator.clone());
        }
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        let rehydrator: Arc<dyn Rehydrate> = Arc::new(Rehydrator {
            host: Arc::downgrade(&self.inner),
            runtime,
        });
        Some(self.inner.rehydrator.get_or_init(|| rehydrator).clone())
    }

    /// Start a task again for the dormant `process`: from its checkpoint and memory image, or —
    /// to be killed — without an instance. One that cannot be brought back is tried again, at
    /// growing intervals, while this host lives; a kill meanwhile needs no instance.
    async fn rehydrate(&self, process: ProcessHandle) {
        let mut pause = Duration::from_millis(100);
        loop {
            if process.is_abandoned() {
                // Another host runs it now: there is nothing to bring back here.
                Outside::ended(self, process.pid(), true);
                process.shared.done.send_replace(true);
                return;
            }
            let error = match self.rehydrated_task(&process).await {
                Ok(task) => return task.spawn(),
                Err(error) => error,
            };
            tracing::error!(
                pid = %process.pid(),
                "cannot bring this dehydrated process back (trying again in {pause:?}): {}",
                chain(&error)
            );
            // A kill (or abandonment) need not wait for the next attempt.
            let _ = tokio::time::timeout(pause, process.shared.wake.notified()).await;
            pause = (pause * 2).min(MOST_BETWEEN_ATTEMPTS);
        }
    }

    /// The task of a dormant process: on a restored instance, or on none when it is to be
    /// killed (a kill runs no guest code).
    async fn rehydrated_task(&self, process: &ProcessHandle) -> Result<Task> {
        let store = self.store().ok_or(Error::NoStore)?.clone();
        let killing = process.shared.control().kill.is_some();
        if killing {
            let record = process.record();
            let plugin = self
                .plugin_for(&store, &record.plugin, &record.plugin_digest)
                .await?;
            let spec = plugin.spec().clone();
            let task = Task::new(
                process.clone(),
                spec,
                Box::new(Absent),
                self.outside(),
                record,
            );
            return Ok(task.rehydrated(false));
        }
        let key = CheckpointKey::of(self.tenant(), process.pid());
        // The handle's flag, so that a kill from now on interrupts the new instance; one that
        // came before is applied before any guest call.
        let interrupt = process.shared.interrupt.clone();
        interrupt.store(false, Ordering::Relaxed);
        let restored = self.restore(&store, &key, false, interrupt).await?;
        let Some((plugin, guests)) = restored.guests else {
            // Its checkpoint says it has ended: another host finished it.
            return Err(Error::Closed {
                pid: process.pid().to_string(),
            });
        };
        let task = Task::new(
            process.clone(),
            plugin.spec().clone(),
            Box::new(guests),
            self.outside(),
            restored.record,
        );
        tracing::debug!(pid = %process.pid(), "rehydrated");
        Ok(task.rehydrated(restored.imaged))
    }

    fn outside(&self) -> Arc<dyn Outside> {
        Arc::new(self.clone())
    }
}

/// The guest of a dormant process brought back only to be killed: it has no instance, and
/// refuses every call (none is made: the kill is applied first).
struct Absent;

impl Absent {
    fn failure() -> Failure {
        Failure::Error("the process was brought back without an instance, to be killed".into())
    }
}

#[async_trait]
impl Guest for Absent {
    async fn run_step(&mut self, _: &str, _: &mut ProcessView) -> StepOutcome {
        Outcome::failed(Self::failure())
    }

    async fn check_condition(&mut self, _: &str, _: &mut ProcessView) -> Outcome<bool> {
        Outcome::failed(Self::failure())
    }

    async fn validate(&mut self, _: &GuestCheck) -> std::result::Result<Option<String>, Failure> {
        Err(Self::failure())
    }

    async fn compute_default(&mut self, _: &DefaultRequest) -> std::result::Result<Value, Failure> {
        Err(Self::failure())
    }

    async fn image(&mut self) -> Option<Vec<u8>> {
        None
    }

    async fn reset(&mut self, _: Option<Vec<u8>>) -> std::result::Result<(), Failure> {
        Err(Self::failure())
    }
}
