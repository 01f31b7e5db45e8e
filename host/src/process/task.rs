//! [`Task`]: the state machine of one process. It walks the outline one guest call at a time,
//! applies what each call did, honours pause, play, kill and resume between calls, launches and
//! awaits children, checkpoints at the points the record must survive, and ends the process.
//!
//! The task owns the process's record; its [`ProcessHandle`] shows the copy last published. A
//! change is saved before it is published, so whoever sees it can count on finding it in the
//! store.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use futures_lite::FutureExt;
use serde_json::{Map, Value};

use super::outside::{Checkpoints, Outside, Unsaved};
use super::record::AfterStep;
use super::{Event, ProcessHandle, ProcessRecord, ProcessState};
use crate::error::{Error, chain};
use crate::guest::{AwaitChild, Effects, Failure, Guest, Launch, Next, ProcessView};
use crate::ports::{GuestCheck, SEPARATOR, ValidationError};
use crate::spec::ProcessSpec;
use crate::workchain::Call;

/// How a process ended.
#[derive(Debug)]
enum End {
    Finished {
        status: u32,
        message: Option<String>,
    },
    Excepted(String),
    Killed(Option<String>),
    /// Another host runs the process now: this one stops, saving and announcing nothing.
    Abandoned,
}

/// A child awaited by the step that launched it.
struct Awaited {
    handle: ProcessHandle,
    key: String,
    append: bool,
    inspect: bool,
}

/// What a waiting process waits for.
enum Until {
    /// A resume (optionally named after the event it stands for).
    Resume { event: Option<String> },
    /// These children to terminate.
    Children(Vec<Awaited>),
}

/// The task that runs one process.
pub(crate) struct Task {
    handle: ProcessHandle,
    spec: Arc<ProcessSpec>,
    guest: Box<dyn Guest>,
    outside: Arc<dyn Outside>,
    /// The process as it is now.
    record: ProcessRecord,
    /// The status message the plugin last set: shown unless the process is paused.
    guest_status: Option<String>,
    /// Children launched so far (or attached after a restore), by pid.
    children: HashMap<String, ProcessHandle>,
}

impl Task {
    /// The task of the process `handle` shows, from `record` (new, or restored from a
    /// checkpoint), on `guest`.
    pub(crate) fn new(
        handle: ProcessHandle,
        spec: Arc<ProcessSpec>,
        guest: Box<dyn Guest>,
        outside: Arc<dyn Outside>,
        record: ProcessRecord,
    ) -> Self {
        let guest_status = if record.paused {
            None
        } else {
            record.status.clone()
        };
        Self {
            handle,
            spec,
            guest,
            outside,
            record,
            guest_status,
            children: HashMap::new(),
        }
    }

    /// Run the process on its own tokio task. Should the task panic (a bug in the host), the
    /// process ends EXCEPTED saying so, rather than leaving its watchers waiting forever.
    pub(crate) fn spawn(self) {
        let (handle, outside) = (self.handle.clone(), self.outside.clone());
        tokio::spawn(async move {
            let Err(panic) = AssertUnwindSafe(self.run()).catch_unwind().await else {
                return;
            };
            let message = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("(no message)");
            tracing::error!(pid = %handle.pid(), "the task running this process panicked: {message}");
            let from = handle.state();
            handle.shared.record.send_modify(|r| {
                r.state = ProcessState::Excepted;
                r.error = Some(format!(
                    "the host's task running this process panicked: {message}"
                ));
            });
            outside.state_changed(handle.pid(), Some(from), ProcessState::Excepted);
            outside.release(handle.pid()).await;
            handle.shared.done.send_replace(true);
            outside.ended(handle.pid(), false);
        });
    }

    async fn run(mut self) {
        let end = match self.life().await {
            Ok(()) => End::Finished {
                status: 0,
                message: None,
            },
            Err(end) => end,
        };
        self.end(end).await;
    }

    /// The process from start (or from where its checkpoint left it) to its end, which comes as
    /// the error.
    async fn life(&mut self) -> Result<(), End> {
        // A process restored from a checkpoint carries on from where it was.
        let restored = self.record.state != ProcessState::Created;
        self.created(restored).await?;
        if !restored {
            self.set_state(ProcessState::Running, Vec::new());
            self.emit(Event::Running);
        }
        if self.record.after_step.is_some() {
            self.finish_step(true).await?;
        }
        self.walk().await
    }

    /// Wait for start (a pause or a kill may come first). A new process also waits while it is
    /// paused; a restored one goes on to where it was, and waits for play there.
    async fn created(&mut self, restored: bool) -> Result<(), End> {
        loop {
            let shared = self.handle.shared.clone();
            let notified = shared.wake.notified();
            self.apply_controls().await?;
            let started = self.handle.shared.control().started;
            if started && (restored || !self.record.paused) {
                return Ok(());
            }
            notified.await;
        }
    }

    /// Apply pending kill, checkpoint, pause and play requests; a pause or a play is
    /// checkpointed.
    async fn apply_controls(&mut self) -> Result<(), End> {
        let (kill, pause, play, checkpoints) = {
            let mut control = self.handle.shared.control();
            if control.abandoned {
                return Err(End::Abandoned);
            }
            (
                control.kill.take(),
                control.pause.take(),
                std::mem::take(&mut control.play),
                std::mem::take(&mut control.checkpoints),
            )
        };
        if let Some(message) = kill {
            return Err(End::Killed(message));
        }
        for (tag, done) in checkpoints {
            let _ = done.send(self.checkpoint_now(tag).await);
        }
        if pause.is_some()
            && let Some(after) = &mut self.record.after_step
        {
            // The step's own pause request is being applied: it is no longer pending.
            after.pause = None;
        }
        if let Some(message) = pause
            && !self.record.paused
        {
            // Publish what the process has done so far: a paused process is looked at.
            self.commit(|r| {
                r.paused = true;
                if message.is_some() {
                    r.status.clone_from(&message);
                }
            })
            .await?;
            self.emit(Event::Paused { message });
        } else if play && self.record.paused {
            self.commit(|r| r.paused = false).await?;
            self.emit(Event::Played);
        }
        Ok(())
    }

    /// Between two calls: apply requests, and stay here while paused.
    async fn between_calls(&mut self) -> Result<(), End> {
        loop {
            let shared = self.handle.shared.clone();
            let notified = shared.wake.notified();
            self.apply_controls().await?;
            if !self.record.paused {
                return Ok(());
            }
            notified.await;
        }
    }

    /// The outline, one call at a time, until it returns or runs out.
    async fn walk(&mut self) -> Result<(), End> {
        let spec = self.spec.clone();
        let outline = &spec.outline;
        loop {
            // `next` names the pending call until it is answered, so asking before a pause is
            // the same as asking after it.
            let call = outline.next(&mut self.record.cursor);
            match call {
                Call::Step(_) | Call::Condition(_) => self.between_calls().await?,
                // The outline is done: the process ends now, and a pause asked for meanwhile
                // (by its last step, say) applies after that, as in plumpy.
                Call::Return(_) | Call::Done => self.pending_kill()?,
            }
            match call {
                Call::Step(name) => self.step(name).await?,
                Call::Condition(name) => {
                    let value = self.condition(name).await?;
                    outline.condition(&mut self.record.cursor, value);
                }
                Call::Return(status) => {
                    return Err(End::Finished {
                        status: status.unwrap_or(0),
                        message: None,
                    });
                }
                Call::Done => return Ok(()),
            }
        }
    }

    /// A kill (or abandonment) that came in since the last call.
    fn pending_kill(&mut self) -> Result<(), End> {
        let mut control = self.handle.shared.control();
        if control.abandoned {
            return Err(End::Abandoned);
        }
        match control.kill.take() {
            Some(message) => Err(End::Killed(message)),
            None => Ok(()),
        }
    }

    /// Lend the process's pid, inputs and context to a guest call.
    fn lend(&mut self) -> ProcessView {
        ProcessView {
            pid: std::mem::take(&mut self.record.pid),
            inputs: std::mem::take(&mut self.record.inputs),
            context: std::mem::take(&mut self.record.context),
        }
    }

    fn give_back(&mut self, view: ProcessView) {
        self.record.pid = view.pid;
        self.record.inputs = view.inputs;
        self.record.context = view.context;
    }

    /// Evaluate a condition of the outline.
    async fn condition(&mut self, name: &str) -> Result<bool, End> {
        let outcome = {
            let _permit = self.outside.step_permit().await;
            let mut view = self.lend();
            let outcome = self.guest.check_condition(name, &mut view).await;
            self.give_back(view);
            outcome
        };
        let checks = self.apply(outcome.effects);
        let value = match outcome.result {
            Ok(value) => value,
            Err(Failure::Interrupted) => return Err(self.killed()),
            Err(failure) => return Err(End::Excepted(format!("condition '{name}' {failure}"))),
        };
        if let Some(error) = self.check_outputs(checks).await {
            return Err(End::Excepted(format!(
                "condition '{name}' emitted an invalid output: {error}"
            )));
        }
        Ok(value)
    }

    /// Run one step, commit what it did with a checkpoint, then carry out the rest of it.
    async fn step(&mut self, name: &str) -> Result<(), End> {
        let position = self.spec.outline.position(&self.record.cursor);
        self.progress(|r| r.position.clone_from(&position));
        let mut outcome = {
            let _permit = self.outside.step_permit().await;
            let mut view = self.lend();
            let outcome = self.guest.run_step(name, &mut view).await;
            self.give_back(view);
            outcome
        };
        let pause = outcome.effects.pause.clone();
        let launches = std::mem::take(&mut outcome.effects.launches);
        let checks = self.apply(outcome.effects);
        let returned = match outcome.result {
            Ok(returned) => returned,
            Err(Failure::Interrupted) => return Err(self.killed()),
            Err(failure) => return Err(End::Excepted(format!("step '{name}' {failure}"))),
        };
        // A kill that came as the step returned: the process ends KILLED before any more guest
        // code (an output validator) runs and meets the interrupt.
        if self.handle.shared.interrupt.load(Ordering::Relaxed) {
            return Err(self.killed());
        }
        if let Some(error) = self.check_outputs(checks).await {
            return Err(End::Excepted(format!(
                "step '{name}' emitted an invalid output: {error}"
            )));
        }
        let awaiting = self
            .awaited(returned.awaits, &launches)
            .map_err(|error| End::Excepted(format!("step '{name}' {error}")))?;
        self.spec.outline.step_done(&mut self.record.cursor);
        let pids: Vec<String> = launches.iter().map(|l| l.pid.clone()).collect();
        if !pids.is_empty() {
            self.progress(|r| r.children.extend(pids.iter().cloned()));
        }
        let launched = !launches.is_empty();
        self.record.after_step = Some(AfterStep {
            step: name.to_string(),
            launches,
            awaiting,
            then: returned.next,
            pause,
        });
        // The checkpoint that commits the step: its outputs, context and children (by pid,
        // before any is created, so a restore never launches one twice).
        if self.outside.checkpoints() == Checkpoints::EveryStep || launched {
            self.save().await?;
        }
        self.finish_step(false).await
    }

    /// Apply what a call did: its outputs (each announced), its status, the pause it asked for.
    /// Returns what is left to check of its outputs.
    fn apply(&mut self, effects: Effects) -> OutputChecks {
        for (path, value) in effects.outputs {
            insert_output(&mut self.record.outputs, &path, value.clone());
            self.emit(Event::OutputEmitted { path, value });
        }
        if let Some(status) = effects.status {
            self.guest_status = status;
            // The status is what watchers follow between state changes.
            if !self.record.paused && self.record.status != self.guest_status {
                let status = self.guest_status.clone();
                self.progress(|r| r.status.clone_from(&status));
            }
        }
        if let Some(message) = effects.pause {
            self.handle.shared.control().pause = Some(message);
        }
        OutputChecks {
            refused: effects.refused,
            checks: effects.checks,
        }
    }

    /// The rest of the step in `after_step`: launch its children, await them, then do what it
    /// asked for next. `restored`: the step ran before the process was restored.
    async fn finish_step(&mut self, restored: bool) -> Result<(), End> {
        let after = self
            .record
            .after_step
            .clone()
            .expect("a step is being finished");
        let name = &after.step;
        if restored && let Some(message) = after.pause.clone() {
            // The pause the step asked for, which had not been applied when it was saved.
            self.handle.shared.control().pause = Some(message);
        }
        if let Err(error) = self.launch_children(&after.launches, restored).await {
            return Err(End::Excepted(format!("step '{name}' {error}")));
        }
        if let Some(after) = &mut self.record.after_step {
            after.launches.clear();
        }
        if !after.awaiting.is_empty() {
            let mut awaited = Vec::with_capacity(after.awaiting.len());
            for child in &after.awaiting {
                awaited.push(Awaited {
                    handle: self.child(&child.pid).await?,
                    key: child.key.clone(),
                    append: child.append,
                    inspect: child.inspect,
                });
            }
            self.wait(Until::Children(awaited), None).await?;
            if let Some(after) = &mut self.record.after_step {
                after.awaiting.clear();
            }
        }
        match after.then {
            Next::Continue => {
                self.record.after_step = None;
                Ok(())
            }
            Next::Wait { event, message } => {
                self.wait(Until::Resume { event }, message).await?;
                self.record.after_step = None;
                // The resume is part of the process now.
                self.save().await
            }
            Next::Finish { status, message } => Err(End::Finished { status, message }),
            Next::Kill { message } => Err(End::Killed(Some(message))),
        }
    }

    /// The end of a process whose guest call was interrupted by a kill.
    fn killed(&mut self) -> End {
        End::Killed(self.handle.shared.control().kill.take().flatten())
    }

    /// WAITING until `until` is met; paused meanwhile if asked (and then not resumed until
    /// played), killed if asked. Entering the wait is checkpointed.
    async fn wait(&mut self, until: Until, message: Option<String>) -> Result<(), End> {
        if message.is_some() {
            self.guest_status.clone_from(&message);
        }
        let awaiting: Vec<String> = match &until {
            Until::Children(children) => children
                .iter()
                .map(|c| c.handle.pid().to_string())
                .collect(),
            Until::Resume { .. } => Vec::new(),
        };
        self.commit(|r| {
            r.state = ProcessState::Waiting;
            r.awaiting.clone_from(&awaiting);
        })
        .await?;
        self.emit(Event::Waiting { message });
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
            Until::Resume { .. } => Vec::new(),
        };
        loop {
            let shared = self.handle.shared.clone();
            let notified = shared.wake.notified();
            self.apply_controls().await?;
            if !self.record.paused && self.waited_for(&until) {
                break;
            }
            notified.await;
        }
        for watcher in watchers {
            watcher.abort();
        }
        if let Until::Children(children) = until {
            self.collect(children)?;
        }
        self.set_state(ProcessState::Running, Vec::new());
        self.emit(Event::Running);
        Ok(())
    }

    /// Whether what the process waits for has come: a resume (whose value goes into the
    /// context), or the end of every awaited child.
    fn waited_for(&mut self, until: &Until) -> bool {
        match until {
            Until::Resume { event } => {
                let Some(value) = self.handle.shared.control().resume.take() else {
                    return false;
                };
                if let Some(value) = value {
                    let key = event.clone().unwrap_or_else(|| "resumed".to_string());
                    self.record.context.insert(key, value);
                }
                true
            }
            Until::Children(children) => children.iter().all(|c| c.handle.state().is_terminal()),
        }
    }

    /// Put the records of terminated children into the context; a failed child the step did not
    /// inspect ends this process.
    fn collect(&mut self, children: Vec<Awaited>) -> Result<(), End> {
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
    async fn launch_children(&mut self, launches: &[Launch], restored: bool) -> Result<(), String> {
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
    async fn child(&mut self, pid: &str) -> Result<ProcessHandle, End> {
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
    fn awaited(
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

    /// The first problem with the outputs a call emitted: one the spec refused, or one that the
    /// plugin's validator rejects.
    async fn check_outputs(&mut self, outputs: OutputChecks) -> Option<String> {
        if let Some(error) = outputs.refused {
            return Some(error.to_string());
        }
        for check in outputs.checks {
            match self.guest.validate(&check).await {
                Ok(None) => {}
                Ok(Some(message)) => {
                    return Some(
                        ValidationError {
                            path: check.path,
                            message,
                        }
                        .to_string(),
                    );
                }
                Err(failure) => {
                    return Some(format!("the validator of '{}' {failure}", check.path));
                }
            }
        }
        None
    }

    /// Change the published record in a small way (position, status, children) that needs no
    /// checkpoint: here and in what watchers see, at once.
    fn progress(&mut self, change: impl Fn(&mut ProcessRecord)) {
        change(&mut self.record);
        self.handle.shared.record.send_modify(change);
    }

    /// The status shown follows the plugin's, unless the process is paused.
    fn sync_status(&mut self) {
        if !self.record.paused && self.record.status != self.guest_status {
            self.record.status.clone_from(&self.guest_status);
        }
    }

    /// Publish the record as it is now, and tell the host of a change of state.
    fn publish(&mut self) {
        let from = self.handle.state();
        self.handle.shared.record.send_replace(self.record.clone());
        if from != self.record.state {
            self.outside
                .state_changed(self.handle.pid(), Some(from), self.record.state);
        }
    }

    /// Change state (and the children awaited) without a checkpoint, publishing the process's
    /// data with it in one change, so that watchers never see half of it.
    fn set_state(&mut self, state: ProcessState, awaiting: Vec<String>) {
        self.record.state = state;
        self.record.awaiting = awaiting;
        self.sync_status();
        self.publish();
    }

    /// Save a checkpoint of the process as it is now, and publish its record. Nothing to do
    /// without a store.
    async fn save(&mut self) -> Result<(), End> {
        if self.outside.checkpoints() == Checkpoints::Off {
            return Ok(());
        }
        self.commit(|_| {}).await
    }

    /// Change the process's record: saved first, at a quiescent point (no guest call runs),
    /// then published.
    ///
    /// A save that fails ends the process EXCEPTED: a durable process that cannot be made
    /// durable must not carry on as if it were. One another host has taken over stops here.
    async fn commit(&mut self, change: impl FnOnce(&mut ProcessRecord)) -> Result<(), End> {
        self.sync_status();
        change(&mut self.record);
        self.sync_status();
        let saved = self.save_as(None).await;
        if let Err(Unsaved::Abandoned) = saved {
            return Err(End::Abandoned);
        }
        self.publish();
        saved.map_err(|unsaved| match unsaved {
            Unsaved::Failed(e) => {
                End::Excepted(format!("cannot save its checkpoint: {}", chain(&e)))
            }
            Unsaved::Abandoned => End::Abandoned,
        })
    }

    /// A checkpoint someone asked for through the handle.
    async fn checkpoint_now(&mut self, tag: Option<String>) -> crate::Result<()> {
        if self.outside.checkpoints() == Checkpoints::Off {
            return Err(Error::NoStore);
        }
        self.sync_status();
        self.save_as(tag.as_deref())
            .await
            .map_err(|unsaved| match unsaved {
                Unsaved::Abandoned => Error::Claimed {
                    pid: self.handle.pid().to_string(),
                    holder: None,
                },
                Unsaved::Failed(e) => e,
            })
    }

    /// Save the record as the process's checkpoint (or the one with `tag`), with a memory image
    /// unless it has terminated.
    async fn save_as(&mut self, tag: Option<&str>) -> Result<(), Unsaved> {
        if self.outside.checkpoints() == Checkpoints::Off {
            return Ok(());
        }
        let image = if self.record.state.is_terminal() {
            None
        } else {
            self.guest.image()
        };
        self.outside
            .save(&self.handle, &self.record, image, tag)
            .await
    }

    fn emit(&self, event: Event) {
        self.handle.emit(&event);
    }

    async fn end(mut self, end: End) {
        if let End::Abandoned = end {
            return self.abandoned();
        }
        // Plumpy applies a pause requested during the final step after the transition: the
        // process is then terminated *and* paused.
        let late_pause = self.handle.shared.control().pause.take();
        let (state, event) = match end {
            End::Finished {
                status: exit,
                message,
            } => {
                let missing = self.spec.outputs.missing_required(&self.record.outputs);
                let message = message
                    .or_else(|| self.spec.exit_code(exit).map(|c| c.message.clone()))
                    .or_else(|| missing_message(&missing));
                let successful = exit == 0 && missing.is_empty();
                self.record.exit_status = Some(exit);
                self.record.exit_message = message;
                self.record.missing_outputs = missing;
                (
                    ProcessState::Finished,
                    Event::Finished {
                        successful,
                        exit_status: exit,
                    },
                )
            }
            End::Excepted(error) => {
                self.kill_children(Some("the parent process excepted"));
                self.record.error = Some(error.clone());
                (ProcessState::Excepted, Event::Excepted { error })
            }
            End::Killed(message) => {
                self.kill_children(Some("the parent process was killed"));
                self.record.exit_message.clone_from(&message);
                (ProcessState::Killed, Event::Killed { message })
            }
            End::Abandoned => unreachable!("an abandoned process returned above"),
        };
        // One change makes the process terminal, with everything it produced: whoever sees the
        // state sees the outputs. It is saved first: what anyone sees is durable.
        self.sync_status();
        if late_pause.is_some() {
            self.record.paused = true;
        }
        self.record.awaiting.clear();
        self.record.state = state;
        self.record.after_step = None;
        match self.save_as(None).await {
            Ok(()) => {}
            Err(Unsaved::Abandoned) => return self.abandoned(),
            Err(Unsaved::Failed(e)) => {
                tracing::error!(pid = %self.handle.pid(), "cannot save the final checkpoint: {}", chain(&e));
            }
        }
        self.publish();
        tracing::debug!(pid = %self.handle.pid(), %state, "process ended");
        self.emit(event);
        if let Some(message) = late_pause {
            self.emit(Event::Paused { message });
        }
        self.outside.release(self.handle.pid()).await;
        self.handle.shared.done.send_replace(true);
        self.outside.ended(self.handle.pid(), false);
    }

    /// Another host has taken the process over: its record stays as last saved here, nothing
    /// is announced, and the other host carries on.
    fn abandoned(self) {
        self.handle.shared.done.send_replace(true);
        self.outside.ended(self.handle.pid(), true);
    }

    fn kill_children(&self, message: Option<&str>) {
        for child in self.children.values() {
            child.kill(message, true);
        }
    }
}

/// What is left to check of a call's outputs.
struct OutputChecks {
    refused: Option<ValidationError>,
    checks: Vec<GuestCheck>,
}

/// Put `value` at the dotted `path` of the outputs, making namespaces on the way.
fn insert_output(outputs: &mut Value, path: &str, value: Value) {
    if !outputs.is_object() {
        *outputs = Value::Object(Map::new());
    }
    let mut components: Vec<&str> = path.split(SEPARATOR).collect();
    let last = components.pop().expect("split yields at least one part");
    let mut map = outputs.as_object_mut().expect("made an object above");
    for key in components {
        let entry = map
            .entry(key.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if !entry.is_object() {
            *entry = Value::Object(Map::new());
        }
        map = entry.as_object_mut().expect("made an object above");
    }
    map.insert(last.to_string(), value);
}

fn missing_message(missing: &[String]) -> Option<String> {
    (!missing.is_empty()).then(|| {
        let names: Vec<String> = missing.iter().map(|p| format!("'{p}'")).collect();
        let verb = if missing.len() == 1 { " was" } else { "s were" };
        format!("required output{verb} not emitted: {}", names.join(", "))
    })
}
