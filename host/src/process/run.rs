//! A process's task: prepare its inputs, walk its outline one call at a time, honour pause,
//! play, kill and resume between calls, launch and await children, and end it.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde_json::Value;

use super::{Event, ProcessHandle, ProcessRecord, ProcessState};
use crate::error::{Error, Result, chain};
use crate::host::Host;
use crate::persist::{
    AfterStep, AwaitedChild, CheckpointKey, ChildLaunch, DEFAULT_TENANT, PersistError,
    ProcessCheckpoint, Then, bundle,
};
use crate::ports::{DefaultRequest, GuestCheck, Origin, ValidationError};
use crate::spec::ProcessSpec;
use crate::wasm::{Failure, Instance, Plugin, wit_next as next};
use crate::workchain::{Call, Cursor};

/// How a process ended.
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

/// The process's own plugin instance, and instances of the plugins whose exposed ports have
/// validators or computed defaults, made when first needed.
pub(crate) struct Guests {
    pub(crate) host: Host,
    pub(crate) plugin: Arc<Plugin>,
    pub(crate) own: Instance,
    pub(crate) others: HashMap<String, Instance>,
}

impl Guests {
    /// The instance that owns a port of this origin, and the port's path there.
    async fn owner<'p>(
        &mut self,
        path: &'p str,
        origin: Option<&'p Origin>,
    ) -> Result<(&mut Instance, &'p str), Failure> {
        let Some(origin) = origin else {
            return Ok((&mut self.own, path));
        };
        if !self.others.contains_key(&origin.plugin) {
            let plugin = self.plugin.exposed(&origin.plugin).ok_or_else(|| {
                Failure::Error(format!(
                    "the exposed plugin '{}' is not loaded",
                    origin.plugin
                ))
            })?;
            let interrupt = self.own.interrupt();
            let instance = self.host.runtime().instantiate(plugin, interrupt).await?;
            self.others.insert(origin.plugin.clone(), instance);
        }
        let instance = self.others.get_mut(&origin.plugin).expect("inserted above");
        Ok((instance, origin.path.as_str()))
    }

    async fn validate(&mut self, check: &GuestCheck) -> Result<Option<String>, Failure> {
        let (instance, path) = self.owner(&check.path, check.origin.as_ref()).await?;
        instance.validate(path, &check.value).await
    }

    async fn compute_default(&mut self, request: &DefaultRequest) -> Result<Value, Failure> {
        let (instance, path) = self.owner(&request.path, request.origin.as_ref()).await?;
        instance.compute_default(path).await
    }
}

/// Fill defaults (asking the plugin for computed ones) and validate, plugin validators included.
pub(crate) async fn prepare_inputs(
    spec: &ProcessSpec,
    guests: &mut Guests,
    given: Value,
) -> Result<Value> {
    let invalid = |source: ValidationError| Error::InvalidInputs {
        plugin: spec.name.clone(),
        source,
    };
    let guest_error = |doing: String, f: Failure| Error::Guest {
        plugin: spec.name.clone(),
        doing,
        message: f.to_string(),
    };
    let mut computed = HashMap::new();
    for request in spec.inputs.computed_defaults_needed(&given) {
        let value = guests
            .compute_default(&request)
            .await
            .map_err(|f| guest_error(format!("computing the default of '{}'", request.path), f))?;
        computed.insert(request.path, value);
    }
    let inputs = spec.inputs.pre_process(&given, &computed);
    let checks = spec.inputs.validate(Some(&inputs)).map_err(invalid)?;
    for check in checks {
        let verdict = guests
            .validate(&check)
            .await
            .map_err(|f| guest_error(format!("validating '{}'", check.path), f))?;
        if let Some(message) = verdict {
            return Err(invalid(ValidationError {
                path: check.path,
                message,
            }));
        }
    }
    Ok(inputs)
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
    pub(crate) handle: ProcessHandle,
    pub(crate) spec: Arc<ProcessSpec>,
    pub(crate) guests: Guests,
    pub(crate) cursor: Cursor,
    /// Children launched so far (or attached after a restore), by pid.
    pub(crate) children: HashMap<String, ProcessHandle>,
    /// What is left of the last step (children to launch and await, what comes next); part of
    /// every checkpoint, carried out again after a restore.
    pub(crate) after: Option<AfterStep>,
}

impl Task {
    pub(crate) async fn run(mut self) {
        let end = self.life().await;
        self.end(end).await;
    }

    async fn life(&mut self) -> End {
        // A process restored from a checkpoint carries on from where it was.
        let restored = self.handle.state() != ProcessState::Created;
        if let Err(end) = self.created(restored).await {
            return end;
        }
        if !restored {
            self.set_state(ProcessState::Running, Vec::new());
            self.emit(Event::Running);
        }
        if let Some(after) = self.after.clone()
            && let Err(end) = self.finish_step(after, true).await
        {
            return end;
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
            if started && (restored || !self.handle.is_paused()) {
                return Ok(());
            }
            notified.await;
        }
    }

    /// Apply pending kill, pause and play requests; a pause or a play is checkpointed.
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
            && let Some(after) = &mut self.after
        {
            // The step's own pause request is being applied: it is no longer pending.
            after.pause = None;
        }
        if let Some(message) = pause
            && !self.handle.is_paused()
        {
            // Publish what the process has done so far: a paused process is looked at.
            self.commit(|r| {
                r.paused = true;
                if message.is_some() {
                    r.status = message.clone();
                }
            })
            .await?;
            self.emit(Event::Paused { message });
        } else if play && self.handle.is_paused() {
            let status = self.guests.own.data().status.clone();
            self.commit(|r| {
                r.paused = false;
                r.status = status;
            })
            .await?;
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
            if !self.handle.is_paused() {
                return Ok(());
            }
            notified.await;
        }
    }

    async fn walk(&mut self) -> End {
        let spec = self.spec.clone();
        let outline = &spec.outline;
        loop {
            if let Err(end) = self.between_calls().await {
                return end;
            }
            match outline.next(&mut self.cursor) {
                Call::Step(name) => {
                    if let Err(end) = self.step(name).await {
                        return end;
                    }
                }
                Call::Condition(name) => {
                    let value = {
                        let _permit = self.guests.host.step_permit().await;
                        self.guests.own.check_condition(name).await
                    };
                    match value {
                        Ok(value) => outline.condition(&mut self.cursor, value),
                        Err(Failure::Interrupted) => return self.killed(),
                        Err(failure) => {
                            return End::Excepted(format!("condition '{name}' {failure}"));
                        }
                    }
                }
                Call::Return(status) => {
                    return End::Finished {
                        status: status.unwrap_or(0),
                        message: None,
                    };
                }
                Call::Done => {
                    return End::Finished {
                        status: 0,
                        message: None,
                    };
                }
            }
        }
    }

    /// Run one step, commit what it did with a checkpoint, then carry out the rest of it.
    async fn step(&mut self, name: &str) -> Result<(), End> {
        let spec = self.spec.clone();
        let position = spec.outline.position(&self.cursor);
        self.handle
            .shared
            .record
            .send_modify(|r| r.position = position);
        let result = {
            let _permit = self.guests.host.step_permit().await;
            self.guests.own.run_step(name).await
        };
        self.emit_outputs();
        // The status is what watchers follow between state changes.
        let status = self.guests.own.data().status.clone();
        self.handle.shared.record.send_if_modified(|r| {
            let changed = !r.paused && r.status != status;
            if changed {
                r.status = status;
            }
            changed
        });
        let pause = self.guests.own.data().pause.take();
        if let Some(message) = pause.clone() {
            self.handle.shared.control().pause = Some(message);
        }
        let result = match result {
            Ok(result) => result,
            Err(Failure::Interrupted) => return Err(self.killed()),
            Err(failure) => return Err(End::Excepted(format!("step '{name}' {failure}"))),
        };
        // A kill that came as the step returned: the process ends KILLED before any more guest
        // code (an output validator) runs and meets the interrupt.
        if self.handle.shared.interrupt.load(Ordering::Relaxed) {
            return Err(self.killed());
        }
        if let Some(error) = self.check_outputs().await {
            return Err(End::Excepted(format!(
                "step '{name}' emitted an invalid output: {error}"
            )));
        }
        let launches: Vec<ChildLaunch> = std::mem::take(&mut self.guests.own.data().launches)
            .into_iter()
            .map(|l| ChildLaunch {
                pid: l.pid,
                plugin: l.plugin,
                inputs: l.inputs.to_string(),
            })
            .collect();
        let awaiting = self
            .awaited(result.awaits, &launches)
            .map_err(|error| End::Excepted(format!("step '{name}' {error}")))?;
        spec.outline.step_done(&mut self.cursor);
        let then = match result.next {
            next::Continue => Then::Continue,
            next::Wait(wait) => Then::Wait {
                event: wait.event,
                message: wait.message,
            },
            next::Finish(exit) => Then::Finish {
                status: exit.status,
                message: exit.message,
            },
            next::Kill(message) => Then::Kill {
                message: Some(message),
            },
        };
        let pids: Vec<String> = launches.iter().map(|l| l.pid.clone()).collect();
        self.handle
            .shared
            .record
            .send_modify(|r| r.children.extend(pids));
        let after = AfterStep {
            step: name.to_string(),
            launches,
            awaiting,
            then,
            pause,
        };
        // The checkpoint that commits the step: its outputs, context and children (by pid,
        // before any is created, so a restore never launches one twice).
        self.after = Some(after.clone());
        if self.guests.host.config().checkpoint_every_step || !after.launches.is_empty() {
            self.save().await?;
        }
        self.finish_step(after, false).await
    }

    /// The rest of a step: launch its children, await them, then do what it asked for next.
    async fn finish_step(&mut self, after: AfterStep, restored: bool) -> Result<(), End> {
        let name = &after.step;
        if restored && let Some(message) = after.pause.clone() {
            // The pause the step asked for, which had not been applied when it was saved.
            self.handle.shared.control().pause = Some(message);
        }
        if let Err(error) = self.launch_children(&after.launches).await {
            return Err(End::Excepted(format!("step '{name}' {error}")));
        }
        if let Some(after) = &mut self.after {
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
            if let Some(after) = &mut self.after {
                after.awaiting.clear();
            }
        }
        match after.then {
            Then::Continue => {
                self.after = None;
                Ok(())
            }
            Then::Wait { event, message } => {
                self.wait(Until::Resume { event }, message).await?;
                self.after = None;
                // The resume is part of the process now.
                self.save().await
            }
            Then::Finish { status, message } => Err(End::Finished { status, message }),
            Then::Kill { message } => Err(End::Killed(message)),
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
            self.guests.own.data().status = message.clone();
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
            r.awaiting = awaiting;
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
            if !self.handle.is_paused() {
                let done = match &until {
                    Until::Resume { event } => {
                        let resumed = self.handle.shared.control().resume.take();
                        if let Some(value) = resumed {
                            if let Some(value) = value {
                                let key = event.clone().unwrap_or_else(|| "resumed".to_string());
                                self.guests.own.data().context.insert(key, value);
                            }
                            true
                        } else {
                            false
                        }
                    }
                    Until::Children(children) => {
                        children.iter().all(|c| c.handle.state().is_terminal())
                    }
                };
                if done {
                    break;
                }
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
            let context = &mut self.guests.own.data().context;
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

    /// Create and start the children a step launched; after a restore, a child that exists
    /// already (in this host or in the store) is attached instead.
    async fn launch_children(&mut self, launches: &[ChildLaunch]) -> Result<(), String> {
        for launch in launches {
            if self.children.contains_key(&launch.pid) {
                continue;
            }
            let host = self.guests.host.clone();
            if host.process(&launch.pid).is_some() || stored(&host, &launch.pid).await? {
                self.child(&launch.pid).await.map_err(|end| match end {
                    End::Excepted(message) => message,
                    _ => format!("cannot continue child process {}", launch.pid),
                })?;
                continue;
            }
            let plugin = host.load(&launch.plugin).await.map_err(|e| {
                format!(
                    "launched a '{}' child that cannot be loaded: {}",
                    launch.plugin,
                    chain(&e)
                )
            })?;
            let inputs: Value = serde_json::from_str(&launch.inputs).map_err(|e| {
                format!("launched a '{}' child with bad inputs: {e}", launch.plugin)
            })?;
            let child = host
                .create_process(
                    &plugin,
                    inputs,
                    Some(launch.pid.clone()),
                    Some(&self.handle),
                )
                .await
                .map_err(|e| {
                    format!(
                        "launched a '{}' child that cannot be created: {}",
                        launch.plugin,
                        chain(&e)
                    )
                })?;
            child.start().map_err(|e| e.to_string())?;
            self.children.insert(launch.pid.clone(), child);
        }
        Ok(())
    }

    /// The handle of a child: launched by this task, or (after a restore) running in this
    /// host, or continued from its checkpoint.
    async fn child(&mut self, pid: &str) -> Result<ProcessHandle, End> {
        if let Some(handle) = self.children.get(pid) {
            return Ok(handle.clone());
        }
        let handle = self
            .guests
            .host
            .continue_process(pid, None)
            .await
            .map_err(|e| {
                End::Excepted(format!(
                    "cannot continue its child process {pid}: {}",
                    chain(&e)
                ))
            })?;
        self.children.insert(pid.to_string(), handle.clone());
        Ok(handle)
    }

    /// The children a step awaits: each must be one this process launched.
    fn awaited(
        &self,
        awaits: Vec<crate::wasm::WitAwait>,
        launches: &[ChildLaunch],
    ) -> Result<Vec<AwaitedChild>, String> {
        let record = self.handle.shared.record.borrow();
        awaits
            .into_iter()
            .map(|a| {
                let known =
                    launches.iter().any(|l| l.pid == a.pid) || record.children.contains(&a.pid);
                if !known {
                    return Err(format!(
                        "awaits process '{}', which is not a child it launched",
                        a.pid
                    ));
                }
                Ok(AwaitedChild {
                    pid: a.pid,
                    key: a.key,
                    append: a.append,
                    inspect: a.inspect,
                })
            })
            .collect()
    }

    /// The first problem with the outputs the last step emitted: an invalid one, or one that the
    /// plugin's validator rejects.
    async fn check_outputs(&mut self) -> Option<String> {
        let data = self.guests.own.data();
        if let Some(error) = data.output_error.take() {
            data.output_checks.clear();
            return Some(error.to_string());
        }
        let checks = std::mem::take(&mut data.output_checks);
        for check in checks {
            match self.guests.validate(&check).await {
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

    fn emit_outputs(&mut self) {
        let emitted = std::mem::take(&mut self.guests.own.data().emitted);
        for (path, value) in emitted {
            self.emit(Event::OutputEmitted { path, value });
        }
    }

    /// Change state (and the children awaited), publishing the process's data with it in one
    /// change, so that watchers never see half of it.
    fn set_state(&mut self, state: ProcessState, awaiting: Vec<String>) {
        let data = self.guests.own.data();
        let (outputs, context, status) = (
            data.outputs.clone(),
            data.context.clone(),
            data.status.clone(),
        );
        let from = self.handle.state();
        self.handle.shared.record.send_modify(|r| {
            r.state = state;
            r.awaiting = awaiting;
            r.outputs = Value::Object(outputs);
            r.context = context;
            if !r.paused {
                r.status = status;
            }
        });
        self.changed(from, state);
    }

    /// Tell the host about a change of state (which it broadcasts, if it has a communicator).
    fn changed(&self, from: ProcessState, to: ProcessState) {
        if from != to {
            self.guests
                .host
                .state_changed(self.handle.pid(), Some(from), to);
        }
    }

    /// Save a checkpoint of the process as it is now, and publish its record. Nothing to do
    /// without a store.
    async fn save(&mut self) -> Result<(), End> {
        if self.guests.host.store().is_none() {
            return Ok(());
        }
        self.commit(|_| {}).await
    }

    /// Change the process's record (with its data as the last call left it): saved first, at a
    /// quiescent point (no guest call runs), then published — so whoever sees the change can
    /// count on finding it in the store.
    ///
    /// A save that fails ends the process EXCEPTED: a durable process that cannot be made
    /// durable must not carry on as if it were.
    async fn commit(&mut self, change: impl FnOnce(&mut ProcessRecord)) -> Result<(), End> {
        let mut record = self.handle.record();
        let data = self.guests.own.data();
        record.outputs = Value::Object(data.outputs.clone());
        record.context = data.context.clone();
        if !record.paused {
            record.status = data.status.clone();
        }
        change(&mut record);
        // Only while this host's claim on the process holds (another host may run it now).
        if !self.guests.host.holds(&self.handle).await {
            return Err(End::Abandoned);
        }
        let saved = self.try_save(&record, None).await;
        if let Err(PersistError::NotClaimed { .. }) = saved {
            return Err(End::Abandoned);
        }
        let (from, to) = (self.handle.state(), record.state);
        self.handle.shared.record.send_replace(record);
        self.changed(from, to);
        saved.map_err(|e| End::Excepted(format!("cannot save its checkpoint: {e}")))
    }

    /// A checkpoint someone asked for through the handle.
    async fn checkpoint_now(&mut self, tag: Option<String>) -> crate::Result<()> {
        if self.guests.host.store().is_none() {
            return Err(crate::Error::NoStore);
        }
        if !self.guests.host.holds(&self.handle).await {
            return Err(crate::Error::Claimed {
                pid: self.handle.pid().to_string(),
            });
        }
        let mut record = self.handle.record();
        let data = self.guests.own.data();
        record.outputs = Value::Object(data.outputs.clone());
        record.context = data.context.clone();
        if !record.paused {
            record.status = data.status.clone();
        }
        self.try_save(&record, tag.as_deref())
            .await
            .map_err(|source| match source {
                PersistError::NotClaimed { .. } => crate::Error::Claimed {
                    pid: record.pid.clone(),
                },
                source => crate::Error::Store {
                    doing: format!("saving a checkpoint of process {}", record.pid),
                    source: Box::new(source),
                },
            })
    }

    /// Save `record` as the process's checkpoint (or the one with `tag`), with a memory image
    /// unless it has terminated.
    async fn try_save(
        &mut self,
        record: &ProcessRecord,
        tag: Option<&str>,
    ) -> Result<(), PersistError> {
        let Some(store) = self.guests.host.store().cloned() else {
            return Ok(());
        };
        let mut checkpoint = ProcessCheckpoint::new(DEFAULT_TENANT, record, &self.cursor);
        checkpoint.after_step = self.after.clone();
        let image = (!record.state.is_terminal()
            && self.guests.host.config().memory_images
            && self.guests.plugin.snapshot_safety().is_safe())
        .then(|| self.guests.own.image())
        .flatten();
        let bytes = bundle::encode(&checkpoint, image.as_deref());
        let mut key = CheckpointKey::new(&record.pid);
        key.tag = tag.map(str::to_string);
        // With claims, written only while no other host has taken the process over.
        match self.guests.host.claimant() {
            Some(owner) => match store.save_claimed(&key, &bytes, owner).await? {
                true => Ok(()),
                false => Err(PersistError::NotClaimed { key }),
            },
            None => store.save(&key, &bytes).await,
        }
    }

    fn emit(&self, event: Event) {
        self.handle.emit(&event);
    }

    async fn end(mut self, end: End) {
        if let End::Abandoned = end {
            return self.abandoned();
        }
        let data = self.guests.own.data();
        let (outputs, context, status) = (
            Value::Object(std::mem::take(&mut data.outputs)),
            std::mem::take(&mut data.context),
            data.status.take(),
        );
        // Plumpy applies a pause requested during the final step after the transition: the
        // process is then terminated *and* paused.
        let late_pause = self.handle.shared.control().pause.take();
        let (state, event) = match end {
            End::Finished {
                status: exit,
                message,
            } => {
                let missing = self.spec.outputs.missing_required(&outputs);
                let message = message
                    .or_else(|| self.spec.exit_code(exit).map(|c| c.message.clone()))
                    .or_else(|| missing_message(&missing));
                let successful = exit == 0 && missing.is_empty();
                self.handle.shared.record.send_modify(|r| {
                    r.exit_status = Some(exit);
                    r.exit_message = message;
                    r.missing_outputs = missing;
                });
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
                self.handle
                    .shared
                    .record
                    .send_modify(|r| r.error = Some(error.clone()));
                (ProcessState::Excepted, Event::Excepted { error })
            }
            End::Killed(message) => {
                self.kill_children(Some("the parent process was killed"));
                self.handle
                    .shared
                    .record
                    .send_modify(|r| r.exit_message = message.clone());
                (ProcessState::Killed, Event::Killed { message })
            }
            End::Abandoned => unreachable!("an abandoned process returned above"),
        };
        // One change makes the process terminal, with everything it produced: whoever sees the
        // state sees the outputs. It is saved first: what anyone sees is durable.
        let mut record = self.handle.record();
        record.outputs = outputs;
        record.context = context;
        if !record.paused {
            record.status = status;
        }
        if late_pause.is_some() {
            record.paused = true;
        }
        record.awaiting.clear();
        record.state = state;
        self.after = None;
        if !self.guests.host.holds(&self.handle).await {
            return self.abandoned();
        }
        let saved = self.try_save(&record, None).await;
        if let Err(PersistError::NotClaimed { .. }) = saved {
            return self.abandoned();
        }
        if let Err(e) = saved {
            tracing::error!(pid = %self.handle.pid(), "cannot save the final checkpoint: {e}");
        }
        let from = self.handle.state();
        self.handle.shared.record.send_replace(record);
        self.changed(from, state);
        tracing::debug!(pid = %self.handle.pid(), %state, "process ended");
        self.emit(event);
        if let Some(message) = late_pause {
            self.emit(Event::Paused { message });
        }
        self.guests.host.release(self.handle.pid()).await;
        self.handle.shared.done.send_replace(true);
        self.guests.host.ended(self.handle.pid());
    }

    /// Another host has taken the process over: its record stays as last saved here, nothing
    /// is announced, and the other host carries on.
    fn abandoned(self) {
        let (host, pid) = (&self.guests.host, self.handle.pid());
        host.forget(pid);
        self.handle.shared.done.send_replace(true);
        host.ended(pid);
    }

    fn kill_children(&self, message: Option<&str>) {
        for child in self.children.values() {
            child.kill(message, true);
        }
    }
}

/// Whether the host's store has a checkpoint of `pid`.
async fn stored(host: &Host, pid: &str) -> Result<bool, String> {
    let Some(store) = host.store() else {
        return Ok(false);
    };
    store
        .list_process(DEFAULT_TENANT, pid)
        .await
        .map(|keys| keys.iter().any(|k| k.tag.is_none()))
        .map_err(|e| format!("cannot look for child process {pid}: {e}"))
}

fn missing_message(missing: &[String]) -> Option<String> {
    (!missing.is_empty()).then(|| {
        let names: Vec<String> = missing.iter().map(|p| format!("'{p}'")).collect();
        let verb = if missing.len() == 1 { " was" } else { "s were" };
        format!("required output{verb} not emitted: {}", names.join(", "))
    })
}
