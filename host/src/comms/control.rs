//! Processes on the wire, as plumpy puts them there: the RPC intents a process answers, its
//! status reply, and the subjects of state-change broadcasts. [`attach`](super::attach) makes a
//! host's processes answer them, a [`ProcessLauncher`](super::ProcessLauncher) takes launch /
//! create / continue tasks, and a [`RemoteProcessController`](super::RemoteProcessController)
//! sends all of these from anywhere.
//!
//! Message bodies are kiwipy's (see `shared/design/kiwipy-wire.md`): RPC `{intent, message[,
//! force_kill]}`, and Damson's `{intent: signal, event, data, key}`; broadcasts with subject `pause` / `play` / `kill` and body `{intent, message[,
//! force_kill]}` (or none for play); state changes `state_changed.<from>.<to>` from the pid with
//! no body; tasks `{task: launch|create|continue, args: {…}}`.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{Value, json};

use super::RpcSubscriber;
use super::audit::{Control, ControlLog, accepted};
use crate::error::{Error, chain};
use crate::process::{
    Inbox, ProcessHandle, ProcessRecord, ProcessState, Sent, Signal, send_signal,
};

/// The RPC intents a process answers (and the subjects of the broadcasts to all processes).
pub mod intent {
    /// Pause the process (after its running step).
    pub const PAUSE: &str = "pause";
    /// Play a paused process.
    pub const PLAY: &str = "play";
    /// Kill the process.
    pub const KILL: &str = "kill";
    /// The process's status.
    pub const STATUS: &str = "status";
    /// A signal to the process: `{intent: signal, event, data, key}` (Damson's, not plumpy's).
    pub const SIGNAL: &str = "signal";
}

/// A state as plumpy names it on the wire (`ProcessState.WAITING.value`).
fn wire_state(state: ProcessState) -> &'static str {
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

/// plumpy's status reply, `{ctime, paused, process_string, state}` as a plumpy process makes it
/// (`state` is `str(ProcessState.WAITING)`, `ProcessState.WAITING`; `ctime` in seconds), and
/// Damson's additions, which plumpy clients ignore: `status` (the status message), `position`
/// (in the outline), `outputs` (as published at the last state change or pause), and while it
/// waits `waiting_for` (the signal's event), `timer` (when its timer fires, ms since the Unix
/// epoch) and `sleeping`.
pub(crate) fn status(record: &ProcessRecord) -> Value {
    let state = format!("ProcessState.{}", record.state);
    json!({
        "ctime": record.ctime as f64 / 1000.0,
        "paused": record.paused,
        "process_string": format!("<{}> ({state})", record.plugin),
        "state": state,
        "status": record.status,
        "position": record.position,
        "outputs": record.outputs,
        "waiting_for": record.waiting_for,
        "timer": record.timer,
        "sleeping": record.sleeping,
    })
}

/// The signal a `signal` request carries: `event` (a string, or absent or null for a plain
/// resume), `data` (any JSON; absent or null: none) and `key` (a string, or absent or null).
fn signal_in(body: &Value) -> Result<Signal, String> {
    let text = |field: &str| match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(other) => Err(format!(
            "the signal's '{field}' must be a string or null, not {other}"
        )),
    };
    Ok(Signal {
        event: text("event")?,
        data: body.get("data").filter(|d| !d.is_null()).cloned(),
        key: text("key")?,
    })
}

/// Answers the RPC intents sent to one process, and records the pauses, plays and kills.
pub(crate) struct ProcessRpc {
    pub(crate) process: ProcessHandle,
    pub(crate) log: Arc<dyn ControlLog>,
    /// Who the requests come from.
    pub(crate) peer: String,
    /// Where the signals that arrive are stored.
    pub(crate) inbox: Arc<dyn Inbox>,
}

impl ProcessRpc {
    /// Record that `action` was accepted (`done`) or refused.
    async fn record(&self, action: &'static str, done: bool) -> bool {
        let control = Control {
            actor: self.peer.clone(),
            action,
            pid: Some(self.process.pid().to_string()),
            outcome: accepted(done),
        };
        self.log.record(control).await;
        done
    }
}

#[async_trait]
impl RpcSubscriber for ProcessRpc {
    async fn call(&self, body: Value) -> Result<Value, String> {
        let process = &self.process;
        let intent = body
            .get("intent")
            .and_then(Value::as_str)
            .ok_or("the request has no 'intent'")?;
        let message = body.get("message").and_then(Value::as_str);
        match intent {
            intent::PAUSE => {
                if !self.record("process.pause", process.pause(message)).await {
                    return Ok(json!(false));
                }
                // Replies once it is paused (after the running step, if any), as plumpy does.
                let record = process
                    .wait_for(|r| r.paused || r.state.is_terminal())
                    .await;
                Ok(json!(record.paused))
            }
            intent::PLAY => {
                if !self.record("process.play", process.play()).await {
                    return Ok(json!(false));
                }
                // Replies once it plays, so that a status asked next says so, as plumpy's does.
                process
                    .wait_for(|r| !r.paused || r.state.is_terminal())
                    .await;
                Ok(json!(true))
            }
            intent::KILL => {
                let force = body
                    .get("force_kill")
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                if !self
                    .record("process.kill", process.kill(message, force))
                    .await
                {
                    return Ok(json!(false));
                }
                let record = process.wait().await;
                Ok(json!(record.state == ProcessState::Killed))
            }
            intent::STATUS => Ok(status(&process.record())),
            intent::SIGNAL => {
                let signal = signal_in(&body)?;
                let sent = send_signal(&*self.inbox, process, &signal).await;
                let control = Control {
                    actor: self.peer.clone(),
                    action: "process.signal",
                    pid: Some(process.pid().to_string()),
                    outcome: sent.as_ref().map(drop).map_err(|e| chain(e)),
                };
                self.log.record(control).await;
                match sent {
                    Ok(sent) => Ok(
                        json!({"seq": sent.seq(), "duplicate": matches!(sent, Sent::Duplicate { .. })}),
                    ),
                    // As a pause of a terminated process is answered.
                    Err(Error::Terminated { .. }) => Ok(json!(false)),
                    Err(e) => Err(chain(&e)),
                }
            }
            other => Err(format!("unknown intent '{other}'")),
        }
    }

    /// plumpy's processes answer these with a future (`Process._schedule_rpc`).
    fn answers_later(&self, body: &Value) -> bool {
        matches!(
            body.get("intent").and_then(Value::as_str),
            Some(intent::PAUSE | intent::PLAY | intent::KILL)
        )
    }
}
