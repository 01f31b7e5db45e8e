//! Processes: creating them, restoring them from checkpoints — both on one guest set-up — and
//! starting their tasks.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use async_trait::async_trait;
use serde_json::Value;

use super::Host;
use super::claims::now_ms;
use super::index::summarize;
use crate::comms::{Control, ControlLog, Processes};
use crate::error::{Error, Result};
use crate::guest::Guest;
use crate::persist::{self, CheckpointKey, Commit, Logged, Persister, bundle};
use crate::process::{Outside, ProcessHandle, ProcessRecord, ProcessState, Task, prepare_inputs};
use crate::tenancy::Quota;
use crate::wasm::{Guests, Plugin};

/// A process rebuilt from its checkpoint, not yet running.
pub(crate) struct Restored {
    pub(crate) record: ProcessRecord,
    interrupt: Arc<AtomicBool>,
    /// Whether its checkpoint had a memory image.
    pub(crate) imaged: bool,
    /// `None` for a terminated process, which never runs again.
    pub(crate) guests: Option<(Arc<Plugin>, Guests)>,
}

impl Host {
    /// Create a process of `plugin` with `inputs` (a JSON object): validated, in state CREATED,
    /// not started. Add listeners, then [`start`](ProcessHandle::start) it.
    ///
    /// # Errors
    /// [`Error::InvalidInputs`] when the inputs do not fit the plugin's spec: no process is
    /// created. [`Error::Guest`] when the plugin fails while starting or checking its inputs;
    /// with a store, [`Error::Store`] or [`Error::Claimed`]. Failures once the process runs are
    /// not errors: they end it EXCEPTED.
    pub async fn create(&self, plugin: &Arc<Plugin>, inputs: Value) -> Result<ProcessHandle> {
        self.create_process(plugin, inputs, None, None).await
    }

    /// Create a process, with a given pid (a child's, handed out when it was launched) and
    /// parent. Boxed: a process's task creates its children through this.
    pub(crate) fn create_process<'a>(
        &'a self,
        plugin: &'a Arc<Plugin>,
        inputs: Value,
        pid: Option<String>,
        parent: Option<&'a ProcessHandle>,
    ) -> Pin<Box<dyn Future<Output = Result<ProcessHandle>> + Send + 'a>> {
        Box::pin(self.create_process_inner(plugin, inputs, pid, parent))
    }

    async fn create_process_inner(
        &self,
        plugin: &Arc<Plugin>,
        inputs: Value,
        pid: Option<String>,
        parent: Option<&ProcessHandle>,
    ) -> Result<ProcessHandle> {
        if parent.is_none() {
            self.admit().await?;
        }
        let spec = plugin.spec();
        let interrupt = Arc::new(AtomicBool::new(false));
        let mut guests = self
            .inner
            .runtime
            .guests(plugin, interrupt.clone(), None)
            .await
            .map_err(|source| Error::Guest {
                plugin: spec.name.clone(),
                doing: "starting".into(),
                source,
            })?;
        let inputs = prepare_inputs(spec, &mut guests, inputs).await?;
        let pid = pid.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let record = ProcessRecord::new(
            pid.clone(),
            spec.name.clone(),
            plugin.digest().to_string(),
            inputs,
            parent.map(|p| p.pid().to_string()),
            spec.outline.start(),
            now_ms(),
        );
        if let Some(store) = self.store() {
            // Durable from the start: the component first, so the checkpoint can always find it.
            self.store_plugin(store, plugin).await?;
            let key = CheckpointKey::of(self.tenant(), &pid);
            let (bytes, summary) = (bundle::encode(&record, None), summarize(&record));
            let saving = |claim| {
                let commit = Commit {
                    key: &key,
                    bundle: &bytes,
                    summary: Some(&summary),
                    logs: Logged::default(),
                    claim,
                };
                // Claimed and saved in one write, where the store can.
                async move { store.commit(&commit).await }
            };
            let doing = format!("claiming new {key} and saving its checkpoint");
            self.claim_with(store, &pid, doing, saving).await?;
        }
        tracing::debug!(%pid, plugin = %spec.name, "process created");
        self.spawn(plugin, record, interrupt, guests, true).await
    }

    /// Refuse a new top-level process over the tenant's quotas; otherwise count it as a
    /// submission.
    async fn admit(&self) -> Result<()> {
        let quotas = self.quotas();
        if quotas.live_processes.is_some() {
            self.within(
                Quota::LiveProcesses,
                self.inner.processes.live_pids().len() as u64,
            )?;
        }
        if quotas.stored_bytes.is_some()
            && let Some(store) = self.store()
        {
            let stored =
                store
                    .stored_bytes(self.tenant())
                    .await
                    .map_err(|source| Error::Store {
                        doing: format!("measuring what tenant '{}' stores", self.tenant()),
                        source: Box::new(source),
                    })?;
            self.within(Quota::StoredBytes, stored)?;
        }
        if let Some(limit) = Quota::SubmissionsPerSecond.of(quotas)
            && let Err(used) = self.inner.submissions.admit(limit)
        {
            self.within(Quota::SubmissionsPerSecond, used)?;
        }
        Ok(())
    }

    /// Register a process, make it reachable, and start its task.
    async fn spawn(
        &self,
        plugin: &Arc<Plugin>,
        record: ProcessRecord,
        interrupt: Arc<AtomicBool>,
        guests: Guests,
        new: bool,
    ) -> Result<ProcessHandle> {
        let handle = ProcessHandle::new(record.clone(), interrupt);
        self.inner.processes.insert(&handle);
        self.reachable(&handle).await?;
        if new {
            self.state_changed(handle.pid(), None, ProcessState::Created);
        }
        let guest: Box<dyn Guest> = Box::new(guests);
        let outside = Arc::new(self.clone());
        Task::new(
            handle.clone(),
            plugin.spec().clone(),
            guest,
            outside,
            record,
        )
        .spawn();
        Ok(handle)
    }

    /// Load a process from its checkpoint in the store (the current one, or the one with
    /// `tag`), on a fresh instance of its exact plugin with its memory image written back. The
    /// process is not started: add listeners, then [`start`](ProcessHandle::start) it (a paused
    /// one then waits for [`play`](ProcessHandle::play)). A terminated process comes back as
    /// its record. A process this host already runs is returned as it is.
    ///
    /// # Errors
    /// [`Error::NoStore`], [`Error::NoCheckpoint`], [`Error::Store`] (including a damaged
    /// bundle, named by pid and tag), [`Error::Claimed`] when another host runs it,
    /// [`Error::Restore`] when its plugin or memory image cannot be had.
    pub async fn load_process(&self, pid: &str, tag: Option<&str>) -> Result<ProcessHandle> {
        self.load_process_boxed(pid, tag).await
    }

    /// Boxed: a process's task continues its children through this, and the task is spawned
    /// from it.
    fn load_process_boxed<'a>(
        &'a self,
        pid: &'a str,
        tag: Option<&'a str>,
    ) -> Pin<Box<dyn Future<Output = Result<ProcessHandle>> + Send + 'a>> {
        Box::pin(self.load_process_inner(pid, tag))
    }

    async fn load_process_inner(&self, pid: &str, tag: Option<&str>) -> Result<ProcessHandle> {
        let store = self.store().ok_or(Error::NoStore)?.clone();
        let _one_at_a_time = self.inner.restoring.lock().await;
        if tag.is_none()
            && let Some(handle) = self.process(pid)
        {
            return Ok(handle);
        }
        let mut key = CheckpointKey::of(self.tenant(), pid);
        key.tag = tag.map(str::to_string);
        let restored = match self.restore(&store, &key, true, Arc::default()).await {
            Ok(restored) => restored,
            Err(e) => {
                // Not restored: any claim taken for it goes back.
                if !matches!(e, Error::Claimed { .. }) {
                    self.release(pid).await;
                }
                return Err(e);
            }
        };
        let Some((plugin, guests)) = restored.guests else {
            let handle = ProcessHandle::terminated(restored.record);
            self.inner.processes.insert(&handle);
            return Ok(handle);
        };
        tracing::debug!(%pid, state = %restored.record.state, "process restored");
        self.spawn(&plugin, restored.record, restored.interrupt, guests, false)
            .await
    }

    /// Read the checkpoint under `key` and rebuild the process: its record, and (unless it has
    /// terminated) its plugin's instance with the memory image written back, interrupted by
    /// `interrupt`. With `claim`, the process is claimed for this host first.
    pub(crate) async fn restore(
        &self,
        store: &Arc<dyn Persister>,
        key: &CheckpointKey,
        claim: bool,
        interrupt: Arc<AtomicBool>,
    ) -> Result<Restored> {
        let body = persist::load_checked::<ProcessRecord>(&**store, key)
            .await
            .map_err(|source| Error::Store {
                doing: format!("loading the checkpoint of {key}"),
                source: Box::new(source),
            })?
            .ok_or_else(|| Error::NoCheckpoint {
                key: key.clone(),
                store: store.summary(),
            })?;
        let record = body.record;
        let imaged = body.image.is_some();
        if record.state.is_terminal() {
            return Ok(Restored {
                record,
                interrupt,
                imaged,
                guests: None,
            });
        }
        if claim {
            // Before the costly part: a process another host runs is left alone at once.
            self.claim(store, &key.pid).await?;
        }
        let cannot = |source: Error| Error::Restore {
            key: key.clone(),
            source: Box::new(source),
        };
        let plugin = self
            .plugin_for(store, &record.plugin, &record.plugin_digest)
            .await
            .map_err(cannot)?;
        let guests = self
            .inner
            .runtime
            .guests(&plugin, interrupt.clone(), body.image)
            .await
            .map_err(|source| {
                cannot(Error::Guest {
                    plugin: plugin.name().to_string(),
                    doing: "restoring".into(),
                    source,
                })
            })?;
        Ok(Restored {
            record,
            interrupt,
            imaged,
            guests: Some((plugin, guests)),
        })
    }

    /// [`load_process`](Self::load_process) and start it: it carries on from its checkpoint.
    ///
    /// # Errors
    /// As for [`load_process`](Self::load_process).
    pub async fn continue_process(&self, pid: &str, tag: Option<&str>) -> Result<ProcessHandle> {
        let handle = self.load_process(pid, tag).await?;
        if !handle.state().is_terminal() {
            handle.start()?;
        }
        Ok(handle)
    }

    /// Create a process and start it.
    ///
    /// # Errors
    /// As for [`create`](Self::create).
    pub async fn launch(&self, plugin: &Arc<Plugin>, inputs: Value) -> Result<ProcessHandle> {
        let handle = self.create(plugin, inputs).await?;
        handle.start()?;
        Ok(handle)
    }

    /// Run a process to its end (or until it waits with no one to resume it and no timer: use
    /// [`launch`](Self::launch) to control it) and return its record.
    ///
    /// # Errors
    /// As for [`create`](Self::create).
    pub async fn run(&self, plugin: &Arc<Plugin>, inputs: Value) -> Result<ProcessRecord> {
        let handle = self.launch(plugin, inputs).await?;
        let stopped = |r: &ProcessRecord| r.state.is_terminal() || r.waits_on_others();
        Ok(handle.wait_for(stopped).await)
    }

    /// Whether the store has a current checkpoint of `pid`.
    pub(super) async fn stored(&self, pid: &str) -> Result<bool> {
        let Some(store) = self.store() else {
            return Ok(false);
        };
        store
            .list_process(self.tenant(), pid)
            .await
            .map(|keys| keys.iter().any(|k| k.tag.is_none()))
            .map_err(|source| Error::Store {
                doing: format!("looking for process {pid}"),
                source: Box::new(source),
            })
    }
}

#[async_trait]
impl Processes for Host {
    fn durable(&self) -> bool {
        self.store().is_some()
    }

    async fn create(
        &self,
        plugin: &str,
        inputs: Value,
        pid: Option<String>,
    ) -> Result<ProcessHandle> {
        let plugin = self.load(plugin).await?;
        self.create_process(&plugin, inputs, pid, None).await
    }

    fn process(&self, pid: &str) -> Option<ProcessHandle> {
        Host::process(self, pid)
    }

    async fn stored(&self, pid: &str) -> Result<bool> {
        Host::stored(self, pid).await
    }

    async fn load_process(&self, pid: &str, tag: Option<&str>) -> Result<ProcessHandle> {
        Host::load_process(self, pid, tag).await
    }

    async fn record(&self, action: &'static str, pid: Option<&str>, outcome: Result<(), String>) {
        let log = super::audit::Audit {
            store: self.store().cloned(),
            tenant: self.tenant().into(),
        };
        let control = Control {
            actor: self.peer(),
            action,
            pid: pid.map(str::to_string),
            outcome,
        };
        log.record(control).await;
    }
}
