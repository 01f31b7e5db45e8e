//! [`Task`]: the state machine of one process. It walks the outline one guest call at a time,
//! applies what each call did, honours pause, play, kill and resume between calls, launches and
//! awaits children, checkpoints at the points the record must survive, and ends the process.
//!
//! The task owns the process's record; its [`ProcessHandle`] shows the copy last published. A
//! change is saved before it is published, so whoever sees it can count on finding it in the
//! store.

mod commit;
mod end;
mod logs;
mod retries;
mod waiting;

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use futures_lite::FutureExt;
use serde_json::{Map, Value};

use super::outside::{Checkpoints, Outside};
use super::record::AfterStep;
use super::{Event, ProcessHandle, ProcessRecord, ProcessState};
use crate::guest::{Effects, Failure, Guest, LogBuffer, LogLevel, Next, ProcessView};
use crate::ports::{GuestCheck, SEPARATOR, ValidationError};
use crate::spec::ProcessSpec;
use crate::workchain::Call;
use waiting::{Awaited, Until};

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
    /// Not an end: the process waits in the store, without a task, until a request brings it
    /// back ([`Outside::dehydration`]).
    Dehydrated,
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
    /// Log lines not yet in the store.
    logs: LogBuffer,
    /// The state the log last told of.
    logged_state: ProcessState,
    /// Whether the last checkpoint saved had a memory image (a process leaves memory only
    /// then: its guest's state is in the store).
    imaged: bool,
    /// Brought back from dehydration: the wait it left is taken up again as it was (saved
    /// and announced already).
    rehydrated: bool,
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
            logged_state: record.state,
            record,
            guest_status,
            children: HashMap::new(),
            logs: LogBuffer::default(),
            imaged: false,
            rehydrated: false,
        }
    }

    /// This task takes up a dehydrated process where it waits, from a checkpoint with a memory
    /// image (`imaged`) or not: it neither saves nor announces that wait again, nor logs that
    /// it continued from its checkpoint.
    pub(crate) fn rehydrated(mut self, imaged: bool) -> Self {
        self.rehydrated = true;
        self.imaged = imaged;
        self
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
        if restored && !self.rehydrated {
            let position = match self.record.position.as_str() {
                "" => String::new(),
                position => format!(" at {position}"),
            };
            let state = self.record.state.name().to_lowercase();
            self.host_log(
                LogLevel::Info,
                format!("continued from its checkpoint ({state}{position})"),
            );
        }
        if !restored {
            self.set_state(ProcessState::Running, Vec::new());
            self.emit(Event::Running);
        }
        if self.record.after_step.is_some() {
            self.finish_step(true).await?;
        }
        self.resume_retry_sleep().await?;
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
            let why = message
                .as_deref()
                .map_or(String::new(), |m| format!(": {m}"));
            self.host_log(LogLevel::Info, format!("paused{why}"));
            self.commit(|r| {
                r.paused = true;
                if message.is_some() {
                    r.status.clone_from(&message);
                }
            })
            .await?;
            self.emit(Event::Paused { message });
        } else if play && self.record.paused {
            self.host_log(LogLevel::Info, "played".into());
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
            attempt: self.attempt(),
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
        self.flush_logs().await;
        Ok(value)
    }

    /// Run one step, commit what it did with a checkpoint, then carry out the rest of it.
    async fn step(&mut self, name: &str) -> Result<(), End> {
        let position = self.spec.outline.position(&self.record.cursor);
        if position != self.record.position {
            self.progress(|r| r.position.clone_from(&position));
        }
        let before = self.before_attempt(name).await;
        let mut outcome = {
            let _permit = self.outside.step_permit().await;
            let mut view = self.lend();
            let outcome = self.guest.run_step(name, &mut view).await;
            self.give_back(view);
            outcome
        };
        let pause = outcome.effects.pause.clone();
        let launches = std::mem::take(&mut outcome.effects.launches);
        let error_kind = outcome.effects.error_kind.take();
        let checks = self.apply(outcome.effects);
        let returned = match outcome.result {
            Ok(returned) => returned,
            Err(Failure::Interrupted) => return Err(self.killed()),
            Err(failure) => {
                return self.failed_attempt(name, failure, error_kind, before).await;
            }
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
        // At rest, the position names what runs next, as plumpy's does (the last step's
        // stays once nothing is left).
        if let Some(next) = self.spec.outline.position_at_rest(&self.record.cursor)
            && next != self.record.position
        {
            self.progress(|r| r.position.clone_from(&next));
        }
        let pids: Vec<String> = launches.iter().map(|l| l.pid.clone()).collect();
        if !pids.is_empty() {
            self.progress(|r| r.children.extend(pids.iter().cloned()));
        }
        let launched = !launches.is_empty();
        // The attempt that succeeded ends the retries.
        self.record.retry = None;
        self.record.after_step = Some(AfterStep {
            step: name.to_string(),
            launches,
            awaiting,
            // A timer counts from now, also when the process is restored later.
            then: returned.next.fixed(self.outside.now_ms()),
            pause,
        });
        // The checkpoint that commits the step: its outputs, context and children (by pid,
        // before any is created, so a restore never launches one twice).
        if self.outside.checkpoints() == Checkpoints::EveryStep || launched {
            self.save().await?;
        }
        // What the step logged is in the store once the step is done (with its checkpoint,
        // when it has one).
        self.flush_logs().await;
        self.finish_step(false).await
    }

    /// Apply what a call did: its log lines (held for the store), its outputs (each announced),
    /// its status, the pause it asked for.
    /// Returns what is left to check of its outputs.
    fn apply(&mut self, effects: Effects) -> OutputChecks {
        self.hold_logs(effects.logs);
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
            Next::Wait {
                event,
                message,
                timeout,
            } => {
                let timeout = timeout.map(|t| t.due(self.outside.now_ms()));
                self.wait(Until::Resume { event, timeout }, message).await?;
                self.record.after_step = None;
                // The resume is part of the process now.
                self.save().await
            }
            Next::Finish { status, message } => Err(End::Finished { status, message }),
            Next::Kill { message } => Err(End::Killed(Some(message))),
            Next::Sleep { until } => {
                let until = until.due(self.outside.now_ms());
                self.wait(Until::Sleep { until }, None).await?;
                self.record.after_step = None;
                self.save().await
            }
        }
    }

    /// The end of a process whose guest call was interrupted by a kill.
    fn killed(&mut self) -> End {
        End::Killed(self.handle.shared.control().kill.take().flatten())
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

    fn emit(&self, event: Event) {
        self.handle.emit(&event);
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
