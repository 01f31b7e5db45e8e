//! A process's task: prepare its inputs, walk its outline one call at a time, honour pause,
//! play, kill and resume between calls, launch and await children, and end it.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;

use super::{Event, ProcessHandle, ProcessState};
use crate::error::{Error, Result, chain};
use crate::host::Host;
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
    /// Children launched so far, by pid.
    pub(crate) children: HashMap<String, ProcessHandle>,
}

impl Task {
    pub(crate) async fn run(mut self) {
        let end = match self.created().await {
            Ok(()) => {
                self.set_state(ProcessState::Running, Vec::new());
                self.emit(Event::Running);
                self.walk().await
            }
            Err(end) => end,
        };
        self.end(end);
    }

    /// CREATED: wait for start (a pause or a kill may come first).
    async fn created(&mut self) -> Result<(), End> {
        loop {
            let shared = self.handle.shared.clone();
            let notified = shared.wake.notified();
            self.apply_controls()?;
            let started = self.handle.shared.control().started;
            if started && !self.handle.is_paused() {
                return Ok(());
            }
            notified.await;
        }
    }

    /// Apply pending kill, pause and play requests.
    fn apply_controls(&mut self) -> Result<(), End> {
        let mut control = self.handle.shared.control();
        if let Some(message) = control.kill.take() {
            return Err(End::Killed(message));
        }
        let pause = control.pause.take();
        let play = std::mem::take(&mut control.play);
        drop(control);
        if let Some(message) = pause
            && !self.handle.is_paused()
        {
            // Publish what the process has done so far: a paused process is looked at.
            let data = self.guests.own.data();
            let (outputs, context) = (data.outputs.clone(), data.context.clone());
            self.handle.shared.record.send_modify(|r| {
                r.paused = true;
                r.outputs = Value::Object(outputs);
                r.context = context;
                if message.is_some() {
                    r.status = message.clone();
                }
            });
            self.emit(Event::Paused { message });
        } else if play && self.handle.is_paused() {
            let status = self.guests.own.data().status.clone();
            self.handle.shared.record.send_modify(|r| {
                r.paused = false;
                r.status = status;
            });
            self.emit(Event::Played);
        }
        Ok(())
    }

    /// Between two calls: apply requests, and stay here while paused.
    async fn checkpoint(&mut self) -> Result<(), End> {
        loop {
            let shared = self.handle.shared.clone();
            let notified = shared.wake.notified();
            self.apply_controls()?;
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
            if let Err(end) = self.checkpoint().await {
                return end;
            }
            match outline.next(&mut self.cursor) {
                Call::Step(name) => {
                    let position = outline.position(&self.cursor);
                    self.handle
                        .shared
                        .record
                        .send_modify(|r| r.position = position);
                    let result = {
                        let _permit = self.guests.host.step_permit().await;
                        self.guests.own.run_step(name).await
                    };
                    self.emit_outputs();
                    if let Some(message) = self.guests.own.data().pause.take() {
                        self.handle.shared.control().pause = Some(message);
                    }
                    let result = match result {
                        Ok(result) => result,
                        Err(Failure::Interrupted) => return self.killed(),
                        Err(failure) => return End::Excepted(format!("step '{name}' {failure}")),
                    };
                    // A kill that came as the step returned: the process ends KILLED before any
                    // more guest code (an output validator) runs and meets the interrupt.
                    if self
                        .handle
                        .shared
                        .interrupt
                        .load(std::sync::atomic::Ordering::Relaxed)
                    {
                        return self.killed();
                    }
                    if let Some(error) = self.check_outputs().await {
                        return End::Excepted(format!(
                            "step '{name}' emitted an invalid output: {error}"
                        ));
                    }
                    if let Err(error) = self.launch_children().await {
                        return End::Excepted(format!("step '{name}' {error}"));
                    }
                    let awaited = match self.awaited(result.awaits) {
                        Ok(awaited) => awaited,
                        Err(error) => return End::Excepted(format!("step '{name}' {error}")),
                    };
                    outline.step_done(&mut self.cursor);
                    if !awaited.is_empty()
                        && let Err(end) = self.wait(Until::Children(awaited), None).await
                    {
                        return end;
                    }
                    match result.next {
                        next::Continue => {}
                        next::Wait(wait) => {
                            let until = Until::Resume { event: wait.event };
                            if let Err(end) = self.wait(until, wait.message).await {
                                return end;
                            }
                        }
                        next::Finish(exit) => {
                            return End::Finished {
                                status: exit.status,
                                message: exit.message,
                            };
                        }
                        next::Kill(message) => return End::Killed(Some(message)),
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

    /// The end of a process whose guest call was interrupted by a kill.
    fn killed(&mut self) -> End {
        End::Killed(self.handle.shared.control().kill.take().flatten())
    }

    /// WAITING until `until` is met; paused meanwhile if asked (and then not resumed until
    /// played), killed if asked.
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
        self.set_state(ProcessState::Waiting, awaiting);
        self.emit(Event::Waiting { message });
        loop {
            let shared = self.handle.shared.clone();
            let notified = shared.wake.notified();
            self.apply_controls()?;
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

    /// Create and start the children the last step launched.
    async fn launch_children(&mut self) -> Result<(), String> {
        let launches = std::mem::take(&mut self.guests.own.data().launches);
        for launch in launches {
            let host = self.guests.host.clone();
            let plugin = host.load(&launch.plugin).await.map_err(|e| {
                format!(
                    "launched a '{}' child that cannot be loaded: {}",
                    launch.plugin,
                    chain(&e)
                )
            })?;
            let child = host
                .create_process(&plugin, launch.inputs, Some(launch.pid), Some(&self.handle))
                .await
                .map_err(|e| {
                    format!(
                        "launched a '{}' child that cannot be created: {}",
                        launch.plugin,
                        chain(&e)
                    )
                })?;
            child.start().map_err(|e| e.to_string())?;
            let pid = child.pid().to_string();
            self.handle
                .shared
                .record
                .send_modify(|r| r.children.push(pid.clone()));
            self.children.insert(pid, child);
        }
        Ok(())
    }

    fn awaited(&self, awaits: Vec<crate::wasm::WitAwait>) -> Result<Vec<Awaited>, String> {
        awaits
            .into_iter()
            .map(|a| {
                let handle = self.children.get(&a.pid).cloned().ok_or_else(|| {
                    format!(
                        "awaits process '{}', which is not a child it launched",
                        a.pid
                    )
                })?;
                Ok(Awaited {
                    handle,
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
        self.handle.shared.record.send_modify(|r| {
            r.state = state;
            r.awaiting = awaiting;
            r.outputs = Value::Object(outputs);
            r.context = context;
            if !r.paused {
                r.status = status;
            }
        });
    }

    fn emit(&self, event: Event) {
        self.handle.emit(&event);
    }

    fn end(mut self, end: End) {
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
        };
        // One change makes the process terminal, with everything it produced: whoever sees the
        // state sees the outputs.
        self.handle.shared.record.send_modify(|r| {
            r.outputs = outputs;
            r.context = context;
            if !r.paused {
                r.status = status;
            }
            if late_pause.is_some() {
                r.paused = true;
            }
            r.awaiting.clear();
            r.state = state;
        });
        tracing::debug!(pid = %self.handle.pid(), %state, "process ended");
        self.emit(event);
        if let Some(message) = late_pause {
            self.emit(Event::Paused { message });
        }
        self.handle.shared.done.send_replace(true);
        if let Some(parent) = self.handle.shared.parent.as_ref().and_then(|p| p.upgrade()) {
            parent.wake.notify_one();
        }
    }

    fn kill_children(&self, message: Option<&str>) {
        for child in self.children.values() {
            child.kill(message, true);
        }
    }
}

fn missing_message(missing: &[String]) -> Option<String> {
    (!missing.is_empty()).then(|| {
        let names: Vec<String> = missing.iter().map(|p| format!("'{p}'")).collect();
        let verb = if missing.len() == 1 { " was" } else { "s were" };
        format!("required output{verb} not emitted: {}", names.join(", "))
    })
}
