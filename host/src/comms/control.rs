//! Processes over a communicator, as plumpy does it: each process answers RPC intents at its
//! pid, the host hears the `pause` / `play` / `kill` broadcasts for all its processes and
//! broadcasts every state change, a [`ProcessLauncher`] takes launch / create / continue tasks,
//! and a [`RemoteProcessController`] sends all of these from anywhere.
//!
//! Message bodies are kiwipy's (see `shared/design/kiwipy-wire.md`): RPC `{intent, message[,
//! force_kill]}`; broadcasts with subject `pause` / `play` / `kill` and body `{intent, message[,
//! force_kill]}` (or none for play); state changes `state_changed.<from>.<to>` from the pid with
//! no body; tasks `{task: launch|create|continue, args: {…}}`.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{Value, json};

use super::{
    Accepted, Broadcast, CommsError, Communicator, RpcSubscriber, TaskError, TaskSubscriber,
};
use crate::error::chain;
use crate::{Host, ProcessHandle, ProcessRecord, ProcessState};

/// The RPC intents a process answers.
pub mod intent {
    pub const PAUSE: &str = "pause";
    pub const PLAY: &str = "play";
    pub const KILL: &str = "kill";
    pub const STATUS: &str = "status";
}

/// A state as plumpy names it on the wire (`ProcessState.WAITING.value`).
pub(crate) fn wire_state(state: ProcessState) -> &'static str {
    match state {
        ProcessState::Created => "created",
        ProcessState::Running => "running",
        ProcessState::Waiting => "waiting",
        ProcessState::Finished => "finished",
        ProcessState::Excepted => "excepted",
        ProcessState::Killed => "killed",
    }
}

/// The subject of the broadcast that announces a state change.
pub(crate) fn state_changed(from: Option<ProcessState>, to: ProcessState) -> String {
    format!(
        "state_changed.{}.{}",
        from.map_or("None", wire_state),
        wire_state(to)
    )
}

/// plumpy's status reply, `{ctime, paused, process_string, state}` (ctime in seconds), and
/// Damson's additions, which plumpy clients ignore: `status` (the status message), `position`
/// (in the outline) and `outputs` (as published at the last state change or pause).
pub(crate) fn status(record: &ProcessRecord) -> Value {
    json!({
        "ctime": record.ctime as f64 / 1000.0,
        "paused": record.paused,
        "process_string": format!("<{}> (ProcessState.{})", record.plugin, record.state),
        "state": wire_state(record.state),
        "status": record.status,
        "position": record.position,
        "outputs": record.outputs,
    })
}

/// Answers the RPC intents sent to one process.
pub(crate) struct ProcessRpc(pub(crate) ProcessHandle);

#[async_trait]
impl RpcSubscriber for ProcessRpc {
    async fn call(&self, body: Value) -> Result<Value, String> {
        let process = &self.0;
        let intent = body
            .get("intent")
            .and_then(Value::as_str)
            .ok_or("the request has no 'intent'")?;
        let message = body.get("message").and_then(Value::as_str);
        match intent {
            intent::PAUSE => {
                if !process.pause(message) {
                    return Ok(json!(false));
                }
                // Replies once it is paused (after the running step, if any), as plumpy does.
                let record = process
                    .wait_for(|r| r.paused || r.state.is_terminal())
                    .await;
                Ok(json!(record.paused))
            }
            intent::PLAY => Ok(json!(process.play())),
            intent::KILL => {
                let force = body
                    .get("force_kill")
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                if !process.kill(message, force) {
                    return Ok(json!(false));
                }
                let record = process.wait().await;
                Ok(json!(record.state == ProcessState::Killed))
            }
            intent::STATUS => Ok(status(&process.record())),
            other => Err(format!("unknown intent '{other}'")),
        }
    }
}

/// Sends control messages and tasks to processes anywhere the communicator reaches (plumpy's
/// `RemoteProcessController`).
#[derive(Clone)]
pub struct RemoteProcessController {
    communicator: Arc<dyn Communicator>,
}

impl RemoteProcessController {
    pub fn new(communicator: Arc<dyn Communicator>) -> Self {
        Self { communicator }
    }

    /// Pause a process; `true` once it is paused.
    pub async fn pause_process(
        &self,
        pid: &str,
        message: Option<&str>,
    ) -> Result<Value, CommsError> {
        self.communicator
            .rpc_send(pid, json!({"intent": intent::PAUSE, "message": message}))
            .await
    }

    /// Play a process; `true` unless it has terminated.
    pub async fn play_process(&self, pid: &str) -> Result<Value, CommsError> {
        self.communicator
            .rpc_send(pid, json!({"intent": intent::PLAY, "message": null}))
            .await
    }

    /// Kill a process; `true` once it is killed.
    pub async fn kill_process(
        &self,
        pid: &str,
        message: Option<&str>,
        force: bool,
    ) -> Result<Value, CommsError> {
        self.communicator
            .rpc_send(
                pid,
                json!({"intent": intent::KILL, "message": message, "force_kill": force}),
            )
            .await
    }

    /// A process's status: `{ctime, paused, process_string, state}`.
    pub async fn get_status(&self, pid: &str) -> Result<Value, CommsError> {
        self.communicator
            .rpc_send(pid, json!({"intent": intent::STATUS, "message": null}))
            .await
    }

    /// Pause every process of every host listening.
    pub async fn pause_all(&self, message: Option<&str>) -> Result<(), CommsError> {
        self.broadcast(
            intent::PAUSE,
            json!({"intent": intent::PAUSE, "message": message}),
        )
        .await
    }

    /// Play every process.
    pub async fn play_all(&self) -> Result<(), CommsError> {
        self.broadcast(intent::PLAY, Value::Null).await
    }

    /// Kill every process.
    pub async fn kill_all(&self, message: Option<&str>, force: bool) -> Result<(), CommsError> {
        self.broadcast(
            intent::KILL,
            json!({"intent": intent::KILL, "message": message, "force_kill": force}),
        )
        .await
    }

    async fn broadcast(&self, subject: &str, body: Value) -> Result<(), CommsError> {
        self.communicator
            .broadcast_send(Broadcast {
                body,
                sender: None,
                subject: Some(subject.to_string()),
                correlation_id: None,
            })
            .await
    }

    /// Launch a process of `plugin` through the task queue: its pid with `nowait`, else its
    /// outputs once it has finished.
    pub async fn launch_process(
        &self,
        plugin: &str,
        inputs: Value,
        persist: bool,
        nowait: bool,
    ) -> Result<Value, CommsError> {
        self.communicator
            .task_send(json!({"task": "launch", "args": {
                "process_class": plugin, "init_args": null,
                "init_kwargs": {"inputs": inputs}, "persist": persist, "nowait": nowait,
            }}))
            .await
    }

    /// Continue a stored process through the task queue (from the checkpoint with `tag`).
    pub async fn continue_process(
        &self,
        pid: &str,
        tag: Option<&str>,
        nowait: bool,
    ) -> Result<Value, CommsError> {
        self.communicator
            .task_send(json!({"task": "continue", "args": {
                "pid": pid, "tag": tag, "nowait": nowait,
            }}))
            .await
    }

    /// Create a durable process (not started) and then continue it: plumpy's
    /// `execute_process`.
    pub async fn execute_process(
        &self,
        plugin: &str,
        inputs: Value,
        nowait: bool,
    ) -> Result<Value, CommsError> {
        let pid = self
            .communicator
            .task_send(json!({"task": "create", "args": {
                "process_class": plugin, "init_args": null,
                "init_kwargs": {"inputs": inputs}, "persist": true,
            }}))
            .await?;
        let pid = pid
            .as_str()
            .ok_or_else(|| CommsError::Other(format!("a create task returned {pid}, not a pid")))?;
        self.continue_process(pid, None, nowait).await
    }
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
    host: Host,
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
    pub fn new(host: Host) -> Self {
        Self {
            host,
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
        let failed = |e: crate::Error| TaskError::Failed(chain(&e));
        let plugin = args
            .get("process_class")
            .and_then(Value::as_str)
            .ok_or_else(|| TaskError::Failed("the task names no process_class".into()))?;
        let persist = args
            .get("persist")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        if persist && self.host.store().is_none() {
            return Err(TaskError::Failed(
                "the task asks for a persisted process, but this host has no store".into(),
            ));
        }
        let inputs = args
            .pointer("/init_kwargs/inputs")
            .cloned()
            .filter(|v| !v.is_null())
            .unwrap_or_else(|| json!({}));
        let named = task_id.zip(self.host.store().cloned());
        let Some((id, store)) = named else {
            let plugin = self.host.load(plugin).await.map_err(failed)?;
            let process = self.create(&plugin, inputs, None, start).await;
            return process.map(Launched::Here).map_err(failed);
        };
        let pid = uuid::Uuid::new_v5(&LAUNCH_NAMESPACE, id.as_bytes()).to_string();
        // Another delivery of this task is being launched here: wait for it.
        let _launching = loop {
            if let Some(guard) = Launching::start(&self.launching, &pid) {
                break guard;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        };
        let known = self.host.process(&pid).is_some()
            || store
                .load(&crate::persist::CheckpointKey::new(&pid))
                .await
                .map_err(|e| {
                    TaskError::Failed(format!("cannot look for process {pid} in the store: {e}"))
                })?
                .is_some();
        if !known {
            let plugin = self.host.load(plugin).await.map_err(failed)?;
            let process = self.create(&plugin, inputs, Some(pid), start).await;
            return process.map(Launched::Here).map_err(failed);
        }
        tracing::info!(%pid, "a launch task delivered again: continuing its process");
        let process = match self.host.load_process(&pid, None).await {
            Ok(process) => process,
            Err(crate::Error::Claimed { .. }) => return Ok(Launched::Elsewhere(pid)),
            Err(e) => return Err(failed(e)),
        };
        if start && !process.state().is_terminal() {
            process.start().map_err(failed)?;
        }
        Ok(Launched::Here(process))
    }

    async fn create(
        &self,
        plugin: &Arc<crate::Plugin>,
        inputs: Value,
        pid: Option<String>,
        start: bool,
    ) -> crate::Result<ProcessHandle> {
        let process = self.host.create_process(plugin, inputs, pid, None).await?;
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

#[async_trait]
impl TaskSubscriber for ProcessLauncher {
    async fn take(&self, task: Value, mut accepted: Accepted) -> Result<Value, TaskError> {
        let args = task.get("args").cloned().unwrap_or(Value::Null);
        let nowait = args.get("nowait").and_then(Value::as_bool).unwrap_or(false);
        match task.get("task").and_then(Value::as_str) {
            Some(kind @ ("launch" | "create")) => {
                let start = kind == "launch";
                let process = match self.launch(&args, start, accepted.task_id()).await? {
                    Launched::Here(process) => process,
                    Launched::Elsewhere(pid) => {
                        // Its outputs are the other host's to report; the sender learns the pid.
                        if nowait || !start {
                            return Ok(json!(pid));
                        }
                        return Err(TaskError::Failed(format!(
                            "process {pid} runs on another host, where this task was delivered \
                             before"
                        )));
                    }
                };
                if !start {
                    return Ok(json!(process.pid()));
                }
                // Created with a checkpoint (with a store): another host can carry it on.
                if self.host.store().is_some() {
                    accepted.accept();
                }
                if nowait {
                    return Ok(json!(process.pid()));
                }
                outcome(process.wait().await)
            }
            Some("continue") => {
                let pid = args
                    .get("pid")
                    .and_then(Value::as_str)
                    .ok_or_else(|| TaskError::Failed("the continue task names no pid".into()))?;
                let tag = args.get("tag").and_then(Value::as_str);
                let process = self
                    .host
                    .continue_process(pid, tag)
                    .await
                    .map_err(|e| TaskError::Failed(chain(&e)))?;
                accepted.accept();
                if nowait {
                    return Ok(json!(pid));
                }
                outcome(process.wait().await)
            }
            _ => Err(TaskError::Rejected),
        }
    }
}
