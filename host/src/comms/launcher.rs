//! [`ProcessLauncher`]: takes launch, create and continue tasks for a host.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{Value, json};

use super::{Accepted, TaskError, TaskSubscriber, codec};
use crate::error::{Error, Result, chain};
use crate::process::{ProcessHandle, ProcessRecord, ProcessState};

/// What a [`ProcessLauncher`] needs of the host it launches processes on: implemented by
/// `damson::Host`.
#[async_trait]
pub trait Processes: Send + Sync + 'static {
    /// Whether processes here are durable (checkpointed into a store).
    fn durable(&self) -> bool;

    /// Create a process of the plugin named `plugin` with `inputs` (and this pid, if given): not
    /// yet started.
    ///
    /// # Errors
    /// When the plugin cannot be loaded or the inputs are invalid ([`Error::InvalidInputs`]).
    async fn create(
        &self,
        plugin: &str,
        inputs: Value,
        pid: Option<String>,
    ) -> Result<ProcessHandle>;

    /// The process with this pid, if this host has it.
    fn process(&self, pid: &str) -> Option<ProcessHandle>;

    /// Whether the store has a current checkpoint of `pid`.
    ///
    /// # Errors
    /// [`Error::Store`] when the store cannot be read.
    async fn stored(&self, pid: &str) -> Result<bool>;

    /// The process `pid` from its checkpoint (the one tagged `tag`, if given), not yet started;
    /// the one this host runs if it has it.
    ///
    /// # Errors
    /// [`Error::Claimed`] when another host runs it, and the errors of
    /// `Host::load_process`.
    async fn load_process(&self, pid: &str, tag: Option<&str>) -> Result<ProcessHandle>;

    /// Append to the audit log that a task did `action` (`process.submit`, `process.create`,
    /// `process.continue`) to `pid` (none if it failed before its process had one), and how it
    /// went; the actor is whoever reaches the communicator the host is attached to.
    async fn record(&self, action: &'static str, pid: Option<&str>, outcome: Result<(), String>);
}

/// Takes launch, create and continue tasks for a host (plumpy's `ProcessLauncher`). Other
/// tasks are rejected, so that another subscriber can take them.
///
/// A launch is acknowledged once its process has a checkpoint. A task that the communicator
/// names ([`Accepted::task_id`]) launches a process whose pid is made from that name, so that a
/// task delivered again — its acknowledgement lost with a connection or a worker — continues
/// the process of its first delivery (or, if another host runs it, answers with its pid)
/// instead of creating a second one. This needs the host's store, where the first delivery's
/// process is found.
pub struct ProcessLauncher {
    host: Arc<dyn Processes>,
    /// The pids of the tasks being launched here, so that two deliveries of one task on this
    /// host do not both create its process.
    launching: Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
}

/// A pid in [`ProcessLauncher::launching`], until dropped.
struct Launching {
    set: Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
    pid: String,
}

impl Launching {
    fn start(
        set: &Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
        pid: &str,
    ) -> Option<Self> {
        set.lock()
            .expect("launching")
            .insert(pid.to_string())
            .then(|| Self {
                set: set.clone(),
                pid: pid.to_string(),
            })
    }
}

impl Drop for Launching {
    fn drop(&mut self) {
        self.set.lock().expect("launching").remove(&self.pid);
    }
}

impl ProcessLauncher {
    /// A launcher of processes on `host` (a `damson::Host`).
    pub fn new(host: impl Processes) -> Self {
        Self {
            host: Arc::new(host),
            launching: Arc::default(),
        }
    }

    /// Launch (or, if `start` is false, create) the process a task describes. A task named by
    /// its sender (`task_id`) gets a pid made from that name, so that when the task is
    /// delivered again — its acknowledgement was lost with a connection or a worker — the
    /// process the first delivery created is continued, not created twice.
    async fn launch(
        &self,
        args: &Value,
        start: bool,
        task_id: Option<&str>,
    ) -> Result<Launched, TaskError> {
        let plugin = args
            .get("process_class")
            .and_then(Value::as_str)
            .ok_or_else(|| TaskError::Failed("the task names no process_class".into()))?;
        let failed = |e: Error| TaskError::Failed(for_the_wire(&e, plugin));
        if plugin.contains(['/', '\\']) || plugin.ends_with(".wasm") || plugin.is_empty() {
            return Err(TaskError::Failed(format!(
                "process_class '{plugin}' is not a plugin name: a task names a plugin in this \
                 worker's plugin directory, or a digest in its store, never a file"
            )));
        }
        let persist = args
            .get("persist")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        if persist && !self.host.durable() {
            return Err(TaskError::Failed(
                "the task asks for a persisted process, but this host has no store".into(),
            ));
        }
        let inputs = args
            .pointer("/init_kwargs/inputs")
            .cloned()
            .filter(|v| !v.is_null())
            .unwrap_or_else(|| json!({}));
        // A pid the sender chose (plumpy's `pid` argument; AiiDA's are integers), or else one
        // made from the task's name, so that a delivery of the task again finds its process.
        let chosen = match args.pointer("/init_kwargs/pid") {
            None | Some(Value::Null) => None,
            Some(pid) => Some(codec::pid(pid).ok_or_else(|| {
                TaskError::Failed(format!("the task's pid {pid} is not a process id"))
            })?),
        };
        let named = task_id
            .filter(|_| self.host.durable())
            .map(|id| uuid::Uuid::new_v5(&LAUNCH_NAMESPACE, id.as_bytes()).to_string());
        let Some(pid) = chosen.or(named) else {
            let process = self.create(plugin, inputs, None, start).await;
            return process.map(Launched::Here).map_err(failed);
        };
        // Another delivery of this task is being launched here: wait for it.
        let _launching = loop {
            if let Some(guard) = Launching::start(&self.launching, &pid) {
                break guard;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        };
        let known = self.host.process(&pid).is_some()
            || self.host.stored(&pid).await.map_err(|e| {
                tracing::warn!(%pid, "cannot look for the process in the store: {}", chain(&e));
                TaskError::Failed(format!(
                    "cannot look for process {pid} in the worker's store (its log says why)"
                ))
            })?;
        if !known {
            let process = self.create(plugin, inputs, Some(pid), start).await;
            return process.map(Launched::Here).map_err(failed);
        }
        tracing::info!(%pid, "a launch task delivered again: continuing its process");
        let process = match self.host.load_process(&pid, None).await {
            Ok(process) => process,
            Err(Error::Claimed { .. }) => return Ok(Launched::Elsewhere(pid)),
            Err(e) => return Err(failed(e)),
        };
        if start && !process.state().is_terminal() {
            process.start().map_err(failed)?;
        }
        Ok(Launched::Here(process))
    }

    async fn create(
        &self,
        plugin: &str,
        inputs: Value,
        pid: Option<String>,
        start: bool,
    ) -> Result<ProcessHandle> {
        let process = self.host.create(plugin, inputs, pid).await?;
        if start {
            process.start()?;
        }
        Ok(process)
    }
}

/// Where a launched process runs.
enum Launched {
    Here(ProcessHandle),
    /// On another host: an earlier delivery of the task created it there, and it is claimed.
    Elsewhere(String),
}

/// The namespace of the pids made from launch tasks' identifiers (a UUID of Damson's own).
const LAUNCH_NAMESPACE: uuid::Uuid =
    uuid::Uuid::from_u128(0x6d1f_3c2a_8b4e_4f0a_9c7d_2e5b_1a38_d964);

/// What a remote sender is told of an error: what was wrong, without this worker's paths (its
/// plugin directories, its files, its store), which the worker's log has in full.
fn for_the_wire(error: &Error, what: &str) -> String {
    let text = match error {
        Error::PluginNotFound { name, .. } => format!("no plugin named '{name}' on this worker"),
        Error::ReadPlugin { .. }
        | Error::NotWasm { .. }
        | Error::CoreModule { .. }
        | Error::InvalidComponent { .. }
        | Error::WrongWorld { .. }
        | Error::Declare { .. }
        | Error::Expose { .. } => {
            format!("plugin '{what}' cannot be loaded on this worker (its log says why)")
        }
        Error::Store { doing, .. } => {
            format!("the worker's store failed while {doing} (its log says why)")
        }
        Error::NoCheckpoint { key, .. } => format!("no checkpoint of {key} in the worker's store"),
        other => return chain(other),
    };
    tracing::warn!("a task failed: {}", chain(error));
    text
}

/// The outputs of a process that has ended, or why it did not finish.
fn outcome(record: ProcessRecord) -> Result<Value, TaskError> {
    match record.state {
        ProcessState::Finished => Ok(record.outputs),
        state if !state.is_terminal() => Err(TaskError::Failed(format!(
            "process {} is carried on by another host, which took it over",
            record.pid
        ))),
        ProcessState::Excepted => Err(TaskError::Failed(format!(
            "process {} excepted: {}",
            record.pid,
            record.error.unwrap_or_default()
        ))),
        _ => Err(TaskError::Failed(format!(
            "process {} was killed{}",
            record.pid,
            record
                .exit_message
                .map(|m| format!(": {m}"))
                .unwrap_or_default()
        ))),
    }
}

/// `pid` as its sender wrote it: an integer if it sent one (AiiDA's pids are integers, and
/// plumpy answers with the pid it was given), else the string the store keys it by.
fn as_sent(pid: &str, sent: Option<&Value>) -> Value {
    match sent {
        Some(Value::Number(number)) if number.to_string() == pid => Value::Number(number.clone()),
        _ => json!(pid),
    }
}

#[async_trait]
impl TaskSubscriber for ProcessLauncher {
    async fn take(&self, task: Value, mut accepted: Accepted) -> Result<Value, TaskError> {
        let Some(kind) = task.get("task").and_then(Value::as_str) else {
            // plumpy's launcher fails on such a body too (it is not a task message at all).
            return Err(TaskError::Failed(format!(
                "not a task: a task is a mapping with 'task' (launch, create or continue) and \
                 'args', not {}",
                codec::describe(&task)
            )));
        };
        let args = task.get("args").cloned().unwrap_or(Value::Null);
        let nowait = args.get("nowait").and_then(Value::as_bool).unwrap_or(false);
        match kind {
            "launch" | "create" => {
                let start = kind == "launch";
                let action = if start {
                    "process.submit"
                } else {
                    "process.create"
                };
                let chosen = args.pointer("/init_kwargs/pid");
                let launched = self.launch(&args, start, accepted.task_id()).await;
                let pid = match &launched {
                    Ok(Launched::Here(process)) => Some(process.pid().to_string()),
                    Ok(Launched::Elsewhere(pid)) => Some(pid.clone()),
                    Err(_) => None,
                };
                let done = launched.as_ref().map(drop).map_err(ToString::to_string);
                self.host.record(action, pid.as_deref(), done).await;
                let process = match launched? {
                    Launched::Here(process) => process,
                    Launched::Elsewhere(pid) => {
                        // Its outputs are the other host's to report; the sender learns the pid.
                        if nowait || !start {
                            return Ok(as_sent(&pid, chosen));
                        }
                        return Err(TaskError::Failed(format!(
                            "process {pid} runs on another host, where this task was delivered \
                             before"
                        )));
                    }
                };
                if !start {
                    return Ok(as_sent(process.pid(), chosen));
                }
                // Created with a checkpoint (with a store): another host can carry it on.
                if self.host.durable() {
                    accepted.accept();
                }
                if nowait {
                    return Ok(as_sent(process.pid(), chosen));
                }
                outcome(process.wait().await)
            }
            "continue" => {
                let pid = args.get("pid").and_then(codec::pid).ok_or_else(|| {
                    TaskError::Failed(format!(
                        "the continue task names no process id (its pid is {})",
                        args.get("pid").unwrap_or(&Value::Null)
                    ))
                })?;
                let pid = pid.as_str();
                let tag = args.get("tag").and_then(Value::as_str);
                let continued = match self.host.load_process(pid, tag).await {
                    Ok(process) if !process.state().is_terminal() => process
                        .start()
                        .map(|()| process)
                        .map_err(|e| TaskError::Failed(chain(&e))),
                    Ok(process) => Ok(process),
                    Err(e) => Err(TaskError::Failed(for_the_wire(&e, pid))),
                };
                let done = continued.as_ref().map(drop).map_err(ToString::to_string);
                self.host.record("process.continue", Some(pid), done).await;
                let process = continued?;
                accepted.accept();
                if nowait {
                    return Ok(as_sent(pid, args.get("pid")));
                }
                outcome(process.wait().await)
            }
            _ => Err(TaskError::Rejected),
        }
    }

    /// Every task is answered later, as a plumpy worker answers (its launcher is a coroutine),
    /// a body that is no task at all included — but not a task of a type this launcher does
    /// not know: that one is passed on to another worker, with no reply from this one.
    fn answers_later(&self, task: &Value) -> bool {
        !matches!(
            task.get("task").and_then(Value::as_str),
            Some(kind) if !matches!(kind, "launch" | "create" | "continue")
        )
    }
}
