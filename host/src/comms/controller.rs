//! [`RemoteProcessController`]: control processes and send tasks from anywhere the
//! communicator reaches.

use std::sync::Arc;

use serde_json::{Value, json};

use super::{Broadcast, CommsError, Communicator, intent};

/// Sends control messages and tasks to processes anywhere the communicator reaches (plumpy's
/// `RemoteProcessController`).
#[derive(Clone)]
pub struct RemoteProcessController {
    communicator: Arc<dyn Communicator>,
}

impl RemoteProcessController {
    /// A controller that sends through `communicator`.
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

    /// Send a signal to a process (`event` `None`: a plain resume): `{seq, duplicate}` once it
    /// is stored for the process, `false` when the process has terminated.
    pub async fn signal_process(
        &self,
        pid: &str,
        event: Option<&str>,
        data: Option<&Value>,
        key: Option<&str>,
    ) -> Result<Value, CommsError> {
        self.communicator
            .rpc_send(
                pid,
                json!({"intent": intent::SIGNAL, "event": event, "data": data, "key": key}),
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
