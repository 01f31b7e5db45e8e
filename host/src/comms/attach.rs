//! [`Attachment`]: a host's processes made reachable through a communicator, as plumpy's are
//! through theirs.
//!
//! Each process answers the RPC intents `pause`, `play`, `kill`, `status` and `signal` at its pid; the
//! `pause`, `play` and `kill` broadcasts reach every live process of the host; every state
//! change is broadcast as `state_changed.<from>.<to>` from the pid, in order.

use std::sync::{Arc, Weak};

use serde_json::Value;
use tokio::sync::mpsc;

use super::audit::{Control, ControlLog, accepted};
use super::control::{ProcessRpc, intent, state_changed};
use super::{Broadcast, BroadcastSubscriber, CommsError, Communicator};
use crate::process::{Inbox, ProcessHandle, ProcessState, ProcessTable};

/// A communicator attached to a host, and the queue of state changes it broadcasts in order.
pub(crate) struct Attachment {
    communicator: Arc<dyn Communicator>,
    changes: mpsc::UnboundedSender<Broadcast>,
    /// Where the control operations that arrive are recorded, as done by [`Self::peer`].
    log: Arc<dyn ControlLog>,
    peer: String,
    /// Where the signals that arrive are stored for their processes.
    inbox: Arc<dyn Inbox>,
}

impl Attachment {
    /// Attach `communicator` to the host whose processes `table` holds: it hears the broadcasts
    /// to all processes, and broadcasts their state changes; every pause, play and kill that
    /// arrives is recorded in `log`; signals are stored in `inbox`. Make each process
    /// reachable with [`reachable`](Self::reachable).
    ///
    /// # Errors
    /// When the communicator refuses the broadcast subscriber.
    pub(crate) async fn new(
        communicator: Arc<dyn Communicator>,
        table: Weak<ProcessTable>,
        log: Arc<dyn ControlLog>,
        inbox: Arc<dyn Inbox>,
    ) -> Result<Self, CommsError> {
        let peer = communicator.peer();
        let (changes, mut queue) = mpsc::unbounded_channel::<Broadcast>();
        let sender = communicator.clone();
        tokio::spawn(async move {
            while let Some(change) = queue.recv().await {
                match sender.broadcast_send(change).await {
                    Ok(()) => {}
                    // Closed while changes were queued: nobody is to hear them.
                    Err(CommsError::Closed) => break,
                    Err(e) => tracing::warn!("cannot broadcast a state change: {e}"),
                }
            }
        });
        let all = ControlAll {
            table,
            log: log.clone(),
            peer: peer.clone(),
        };
        communicator
            .add_broadcast_subscriber(Arc::new(all), None)
            .await?;
        Ok(Self {
            communicator,
            changes,
            log,
            peer,
            inbox,
        })
    }

    /// Who the messages arriving through this communicator come from, for the audit log.
    pub(crate) fn peer(&self) -> &str {
        &self.peer
    }

    /// Answer RPC intents for `process` at its pid.
    pub(crate) async fn reachable(&self, process: &ProcessHandle) -> Result<(), CommsError> {
        let subscribe = || {
            let rpc = Arc::new(ProcessRpc {
                process: process.clone(),
                log: self.log.clone(),
                peer: self.peer.clone(),
                inbox: self.inbox.clone(),
            });
            self.communicator
                .add_rpc_subscriber(rpc, Some(process.pid().to_string()))
        };
        match subscribe().await {
            // Restored again (a tagged checkpoint): the newest copy answers.
            Err(CommsError::DuplicateSubscriber { .. }) => {
                self.communicator
                    .remove_rpc_subscriber(process.pid())
                    .await?;
                subscribe().await.map(drop)
            }
            other => other.map(drop),
        }
    }

    /// Broadcast a state change of process `pid` (in order with the others).
    pub(crate) fn state_changed(&self, pid: &str, from: Option<ProcessState>, to: ProcessState) {
        let _ = self.changes.send(Broadcast {
            body: Value::Null,
            sender: Some(pid.to_string()),
            subject: Some(state_changed(from, to)),
            correlation_id: None,
        });
    }

    /// Process `pid` has stopped here: it answers no more RPC requests.
    pub(crate) fn ended(&self, pid: &str) {
        let communicator = self.communicator.clone();
        let pid = pid.to_string();
        tokio::spawn(async move {
            let _ = communicator.remove_rpc_subscriber(&pid).await;
        });
    }
}

/// Applies the `pause`, `play` and `kill` broadcasts to every live process of a host, and
/// records what each did.
struct ControlAll {
    table: Weak<ProcessTable>,
    log: Arc<dyn ControlLog>,
    peer: String,
}

impl BroadcastSubscriber for ControlAll {
    fn receive(&self, message: &Broadcast) {
        let Some(table) = self.table.upgrade() else {
            return;
        };
        let text = |key: &str| message.body.get(key).and_then(Value::as_str);
        let subject = message.subject.as_deref();
        // State changes and anything else are not for processes.
        if !matches!(subject, Some(intent::PAUSE | intent::PLAY | intent::KILL)) {
            return;
        }
        for process in table.live() {
            let (action, done) = match subject {
                Some(intent::PAUSE) => ("process.pause", process.pause(text("message"))),
                Some(intent::PLAY) => ("process.play", process.play()),
                _ => {
                    let force = message
                        .body
                        .get("force_kill")
                        .and_then(Value::as_bool)
                        .unwrap_or(false);
                    ("process.kill", process.kill(text("message"), force))
                }
            };
            let control = Control {
                actor: self.peer.clone(),
                action,
                pid: Some(process.pid().to_string()),
                outcome: accepted(done),
            };
            let log = self.log.clone();
            // Broadcasts are heard synchronously and answered by nobody.
            tokio::spawn(async move { log.record(control).await });
        }
    }
}
