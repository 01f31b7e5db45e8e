//! What the host is to a running process ([`Outside`]): its checkpoints go into the store under
//! its claim, its children are made and found here, its state changes are broadcast.

use std::sync::Arc;

use async_trait::async_trait;

use super::Host;
use super::index::summarize;
use crate::error::Error;
use crate::guest::{Launch, LogEntry, LogLevel, LogSource};
use crate::persist::{self, CheckpointKey, Claiming, Commit, Committed, Logged, bundle};
use crate::process::{
    Checkpoints, HeldLogs, Inbox, Outside, ProcessHandle, ProcessRecord, ProcessState, Rehydrate,
    Signal, StepPermit, Unsaved,
};

#[async_trait]
impl Outside for Host {
    fn checkpoints(&self) -> Checkpoints {
        match (self.store(), self.config().checkpoint_every_step) {
            (None, _) => Checkpoints::Off,
            (Some(_), true) => Checkpoints::EveryStep,
            (Some(_), false) => Checkpoints::AtChanges,
        }
    }

    /// The one path by which a process's checkpoints are written: only while this host's claim
    /// holds (a host that cannot renew waits here), and — with claims — only if the store says
    /// the claim is still this host's, in the same atomic step as the write (and as the lines
    /// logged before it, and the release of the claim with a terminated process's last).
    async fn save(
        &self,
        process: &ProcessHandle,
        record: &ProcessRecord,
        image: Option<Vec<u8>>,
        tag: Option<&str>,
        logs: HeldLogs,
    ) -> Result<(), Unsaved> {
        let Some(store) = self.store() else {
            return Ok(());
        };
        if !self.holds(process).await {
            return Err(Unsaved::Abandoned);
        }
        let bytes = bundle::encode(record, image.as_deref());
        let mut key = CheckpointKey::of(self.tenant(), &record.pid);
        key.tag = tag.map(str::to_string);
        let summary = summarize(record);
        let lines: Vec<persist::LogLine> = logs.lines.into_iter().map(stored_line).collect();
        let last = tag.is_none() && record.state.is_terminal();
        let claim = match self.claimant() {
            None => Claiming::Unclaimed,
            Some(owner) if last => Claiming::Release { owner },
            Some(owner) => Claiming::Held { owner },
        };
        let commit = Commit {
            key: &key,
            bundle: &bytes,
            summary: Some(&summary),
            logs: Logged {
                lines: &lines,
                dropped: logs.dropped,
                keep: self.config().log_lines,
            },
            claim,
        };
        match store.commit(&commit).await {
            Ok(Committed::Written) => Ok(()),
            Ok(Committed::NotHeld(_)) => Err(Unsaved::Abandoned),
            Err(source) => Err(Unsaved::Failed(Error::Store {
                doing: format!("saving the checkpoint of {key}"),
                source: Box::new(source),
            })),
        }
    }

    async fn step_permit(&self) -> StepPermit {
        StepPermit::new(self.inner.steps.acquire(&self.inner.tenant_name).await)
    }

    async fn launch_child(
        &self,
        parent: &ProcessHandle,
        launch: &Launch,
    ) -> Result<ProcessHandle, Error> {
        let plugin = self.load(&launch.plugin).await?;
        let child = self
            .create_process(
                &plugin,
                launch.inputs.clone(),
                Some(launch.pid.clone()),
                Some(parent),
            )
            .await?;
        child.start()?;
        Ok(child)
    }

    async fn find_child(&self, pid: &str) -> Result<Option<ProcessHandle>, Error> {
        if let Some(child) = self.process(pid) {
            return Ok(Some(child));
        }
        if !self.stored(pid).await? {
            return Ok(None);
        }
        self.continue_process(pid, None).await.map(Some)
    }

    fn log_lines(&self) -> usize {
        self.config().log_lines
    }

    async fn append_logs(
        &self,
        pid: &str,
        lines: Vec<LogEntry>,
        dropped: u64,
    ) -> Result<(), Error> {
        let Some(store) = self.store() else {
            return Ok(());
        };
        let lines: Vec<persist::LogLine> = lines.into_iter().map(stored_line).collect();
        store
            .append_logs(self.tenant(), pid, &lines, dropped, self.config().log_lines)
            .await
            .map_err(|source| Error::Store {
                doing: format!("appending to the log of process {pid}"),
                source: Box::new(source),
            })
    }

    async fn signals(&self, pid: &str) -> Result<Vec<(u64, Signal)>, Error> {
        self.inner.inbox.received(pid).await
    }

    fn state_changed(&self, pid: &str, from: Option<ProcessState>, to: ProcessState) {
        if let Some(attachment) = self.inner.comms.get() {
            attachment.state_changed(pid, from, to);
        }
    }

    async fn release(&self, pid: &str) {
        Host::release(self, pid).await;
    }

    fn now_ms(&self) -> u64 {
        super::timers::now_ms()
    }

    fn set_timer(&self, process: &ProcessHandle, due: u64) {
        self.inner
            .timers
            .set(&self.inner.processes, process.pid(), due);
    }

    fn clear_timer(&self, pid: &str) {
        self.inner.timers.clear(pid);
    }

    fn ended(&self, pid: &str, abandoned: bool) {
        self.inner.timers.clear(pid);
        if abandoned {
            // Another host may give it back one day; until then it is not this host's.
            self.inner.processes.remove(pid);
        } else {
            self.inner.processes.ended(pid);
        }
        if let Some(attachment) = self.inner.comms.get() {
            attachment.ended(pid);
        }
    }
    fn dehydrate(
        &self,
        process: &ProcessHandle,
        record: &ProcessRecord,
    ) -> Option<Arc<dyn Rehydrate>> {
        let rehydrator = self.rehydrator()?;
        self.inner
            .processes
            .dehydrated(process, record, rehydrator.clone());
        Some(rehydrator)
    }
}

/// A log line as the store keeps it (the store numbers it).
fn stored_line(line: LogEntry) -> persist::LogLine {
    persist::LogLine {
        seq: 0,
        at_ms: line.at_ms,
        level: match line.level {
            LogLevel::Trace => persist::LogLevel::Trace,
            LogLevel::Debug => persist::LogLevel::Debug,
            LogLevel::Info => persist::LogLevel::Info,
            LogLevel::Warn => persist::LogLevel::Warn,
            LogLevel::Error => persist::LogLevel::Error,
        },
        source: match line.source {
            LogSource::Plugin => persist::LogSource::Plugin,
            LogSource::Host => persist::LogSource::Host,
        },
        message: line.message,
    }
}
