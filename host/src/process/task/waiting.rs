//! Waiting: for a resume, or for the children a step launched — launching them (never twice),
//! awaiting them and collecting their records into the context.

use serde_json::Value;

use crate::error::chain;
use crate::guest::{AwaitChild, Launch};
use crate::process::signal::first_for;
use crate::process::{Event, ProcessHandle, ProcessState};

use super::{End, Task};

/// A child awaited by the step that launched it.
pub(super) struct Awaited {
    pub(super) handle: ProcessHandle,
    pub(super) key: String,
    pub(super) append: bool,
    pub(super) inspect: bool,
}

/// What a waiting process waits for.
pub(super) enum Until {
    /// A resume (optionally named after the event it stands for), or the timeout (when its
    /// timer fires, in milliseconds since the Unix epoch), whichever comes first.
    Resume {
        event: Option<String>,
        timeout: Option<u64>,
    },
    /// Its timer to fire (in milliseconds since the Unix epoch).
    Sleep { until: u64 },
    /// These children to terminate.
    Children(Vec<Awaited>),
}

/// The context key that says how a wait with a timeout ended: `true` when its timer fired
/// first, `false` when what it waited for came.
pub(crate) const TIMED_OUT: &str = "timed_out";

impl Until {
    /// When its timer fires, if it has one.
    fn timer(&self) -> Option<u64> {
        match self {
            Until::Resume { timeout, .. } => *timeout,
            Until::Sleep { until } => Some(*until),
            Until::Children(_) => None,
        }
    }
}

impl Task {
    /// WAITING until `until` is met; paused meanwhile if asked (and then not resumed until
    /// played), killed if asked. Entering the wait is checkpointed.
    pub(super) async fn wait(&mut self, until: Until, message: Option<String>) -> Result<(), End> {
        if message.is_some() {
            self.guest_status.clone_from(&message);
        }
        let awaiting: Vec<String> = match &until {
            Until::Children(children) => children
                .iter()
                .map(|c| c.handle.pid().to_string())
                .collect(),
            Until::Resume { .. } | Until::Sleep { .. } => Vec::new(),
        };
        let timer = until.timer();
        // A process brought back from dehydration is in this wait already: saved, announced.
        if !std::mem::take(&mut self.rehydrated) {
            let event = match &until {
                Until::Resume { event, .. } => event.clone(),
                Until::Sleep { .. } | Until::Children(_) => None,
            };
            let sleeping = matches!(until, Until::Sleep { .. });
            self.commit(|r| {
                r.state = ProcessState::Waiting;
                r.awaiting.clone_from(&awaiting);
                r.waiting_for = event;
                r.timer = timer;
                r.sleeping = sleeping;
            })
            .await?;
            self.emit(Event::Waiting { message });
        }
        // The host's timer wakes the process (brought back first if it left memory).
        if let Some(due) = timer {
            self.outside.set_timer(&self.handle, due);
        }
        // Children wake this task when they terminate.
        let watchers: Vec<_> = match &until {
            Until::Children(children) => children
                .iter()
                .map(|c| {
                    let (child, parent) = (c.handle.clone(), self.handle.shared.clone());
                    tokio::spawn(async move {
                        child.wait().await;
                        parent.wake.notify_one();
                    })
                })
                .collect(),
            Until::Resume { .. } | Until::Sleep { .. } => Vec::new(),
        };
        // The signal it waits for may be stored already: look once before any is announced.
        let mut look = true;
        loop {
            let shared = self.handle.shared.clone();
            let notified = shared.wake.notified();
            self.apply_controls().await?;
            {
                let mut control = self.handle.shared.control();
                look |= std::mem::take(&mut control.signalled);
                // The clock says whether the timer is due: the flag only keeps the process
                // from leaving memory meanwhile (see `dehydrate`).
                control.timer_due = false;
            }
            if !self.record.paused && self.waited_for(&until, &mut look).await {
                break;
            }
            if !matches!(until, Until::Children(_)) && self.dehydrate().await {
                return Err(End::Dehydrated);
            }
            notified.await;
        }
        for watcher in watchers {
            watcher.abort();
        }
        if timer.is_some() {
            self.outside.clear_timer(self.handle.pid());
        }
        if let Until::Children(children) = until {
            self.collect(children)?;
        }
        self.set_state(ProcessState::Running, Vec::new());
        self.emit(Event::Running);
        Ok(())
    }

    /// Leave memory while waiting for a resume or a timer, if the host lets processes do so and the wait's
    /// checkpoint holds the guest's state (a memory image): the process's last log lines go to
    /// the store, and unless a request came meanwhile it becomes dormant — its handle will
    /// bring it back — and its task ends. Whether it did.
    async fn dehydrate(&mut self) -> bool {
        if !self.imaged {
            return false;
        }
        let Some(rehydrate) = self.outside.dehydrate(&self.handle, &self.record) else {
            return false;
        };
        self.flush_logs().await;
        let mut control = self.handle.shared.control();
        // A resume for a paused process waits for the play, which brings it back.
        let pending = control.kill.is_some()
            || control.pause.is_some()
            || control.play
            || (control.resume.is_some() && !self.record.paused)
            || (control.signalled && !self.record.paused)
            || (control.timer_due && !self.record.paused)
            || !control.checkpoints.is_empty()
            || control.abandoned;
        if pending {
            return false;
        }
        control.dormant = Some(rehydrate);
        true
    }

    /// Whether what the process waits for has come: a resume or a signal for its event (whose
    /// payload goes into the context; the signal is marked taken in the record), or the end of
    /// every awaited child. The stored signals are read when `look` says some may have come;
    /// a store that cannot be read is logged and tried again at the next signal or request.
    pub(super) async fn waited_for(&mut self, until: &Until, look: &mut bool) -> bool {
        match until {
            Until::Resume { event, timeout } => {
                let came = self.signal_came(event, look).await;
                let timed_out = !came && timeout.is_some_and(|due| self.outside.now_ms() >= due);
                if timeout.is_some() && (came || timed_out) {
                    self.record
                        .context
                        .insert(TIMED_OUT.to_string(), Value::Bool(timed_out));
                }
                came || timed_out
            }
            Until::Sleep { until } => self.outside.now_ms() >= *until,
            Until::Children(children) => children.iter().all(|c| c.handle.state().is_terminal()),
        }
    }

    /// Whether the resume or signal a wait for `event` waits for has come: its payload is then
    /// in the context (and the signal marked taken in the record).
    async fn signal_came(&mut self, event: &Option<String>, look: &mut bool) -> bool {
        {
            let key = || event.clone().unwrap_or_else(|| "resumed".to_string());
            if let Some(value) = self.handle.shared.control().resume.take() {
                if let Some(value) = value {
                    self.record.context.insert(key(), value);
                }
                return true;
            }
            if !std::mem::take(look) {
                return false;
            }
            let received = match self.outside.signals(self.handle.pid()).await {
                Ok(received) => received,
                Err(e) => {
                    tracing::warn!(pid = %self.handle.pid(), "cannot read the signals sent to the process: {}", chain(&e));
                    return false;
                }
            };
            let Some((seq, signal)) =
                first_for(&received, event.as_deref(), &self.record.taken_signals)
            else {
                return false;
            };
            if let Some(data) = &signal.data {
                self.record.context.insert(key(), data.clone());
            }
            self.record.taken_signals.push(*seq);
            true
        }
    }

    /// Put the records of terminated children into the context; a failed child the step did not
    /// inspect ends this process.
    pub(super) fn collect(&mut self, children: Vec<Awaited>) -> Result<(), End> {
        for child in children {
            let record = child.handle.record();
            if !child.inspect && record.successful() != Some(true) {
                let how = match (&record.error, &record.exit_message) {
                    (Some(error), _) => format!("ended {}: {error}", record.state),
                    (None, Some(message)) => {
                        format!("ended {} unsuccessfully: {message}", record.state)
                    }
                    (None, None) => format!("ended {} unsuccessfully", record.state),
                };
                return Err(End::Excepted(format!(
                    "child process {} ({}) awaited as '{}' {how}",
                    record.pid, record.plugin, child.key
                )));
            }
            let context = &mut self.record.context;
            if child.append {
                let list = context
                    .entry(child.key)
                    .or_insert_with(|| Value::Array(Vec::new()));
                if !list.is_array() {
                    *list = Value::Array(vec![list.take()]);
                }
                list.as_array_mut()
                    .expect("made a list above")
                    .push(record.summary());
            } else {
                context.insert(child.key, record.summary());
            }
        }
        Ok(())
    }

    /// Create and start the children a step launched. After a restore, a child that exists
    /// already (on this host or in the store) is attached instead: it is never created twice.
    pub(super) async fn launch_children(
        &mut self,
        launches: &[Launch],
        restored: bool,
    ) -> Result<(), String> {
        for launch in launches {
            if self.children.contains_key(&launch.pid) {
                continue;
            }
            if restored {
                let found = self.outside.find_child(&launch.pid).await.map_err(|e| {
                    format!(
                        "cannot look for child process {}: {}",
                        launch.pid,
                        chain(&e)
                    )
                })?;
                if let Some(child) = found {
                    self.children.insert(launch.pid.clone(), child);
                    continue;
                }
            }
            let child = self
                .outside
                .launch_child(&self.handle, launch)
                .await
                .map_err(|e| {
                    format!(
                        "launched a '{}' child that cannot be started: {}",
                        launch.plugin,
                        chain(&e)
                    )
                })?;
            self.children.insert(launch.pid.clone(), child);
        }
        Ok(())
    }

    /// The handle of a child: launched by this task, or (after a restore) running on this
    /// host, or continued from its checkpoint.
    pub(super) async fn child(&mut self, pid: &str) -> Result<ProcessHandle, End> {
        if let Some(handle) = self.children.get(pid) {
            return Ok(handle.clone());
        }
        let cannot =
            |why: String| End::Excepted(format!("cannot continue its child process {pid}: {why}"));
        let handle = self
            .outside
            .find_child(pid)
            .await
            .map_err(|e| cannot(chain(&e)))?
            .ok_or_else(|| cannot("it has no checkpoint".into()))?;
        self.children.insert(pid.to_string(), handle.clone());
        Ok(handle)
    }

    /// The children a step awaits: each must be one this process launched.
    pub(super) fn awaited(
        &self,
        awaits: Vec<AwaitChild>,
        launches: &[Launch],
    ) -> Result<Vec<AwaitChild>, String> {
        for child in &awaits {
            let known = launches.iter().any(|l| l.pid == child.pid)
                || self.record.children.contains(&child.pid);
            if !known {
                return Err(format!(
                    "awaits process '{}', which is not a child it launched",
                    child.pid
                ));
            }
        }
        Ok(awaits)
    }
}
