//! Messaging: plumpy's (kiwipy's) three patterns behind one [`Communicator`] trait.
//!
//! - **RPC**: a request to one recipient (a process, by its pid), answered by that recipient's
//!   [`RpcSubscriber`];
//! - **broadcast**: a message with a `subject` and a `sender` to every [`BroadcastSubscriber`]
//!   (which may filter by subject, see [`BroadcastFilter`]);
//! - **task queue**: durable work (launch, continue, create a process) taken by one of the
//!   [`TaskSubscriber`]s, which may reject it so that another one gets it.
//!
//! Bodies are JSON values, as kiwipy sends them with its JSON encoder. Subscribers have
//! identifiers: given, or made up (a UUID) and returned, and used to remove them.
//!
//! Implementations: [`InProcessCommunicator`] (tokio, one host and tests),
//! [`RabbitMqCommunicator`] (many hosts, kiwipy's layout on the wire), and
//! [`SocketCommunicator`], a client of `damson serve`'s Unix socket ([`socket`]).

mod attach;
mod audit;
pub(crate) mod codec;
mod control;
mod controller;
mod inprocess;
mod launcher;
mod rabbitmq;
pub mod socket;

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

pub(crate) use attach::Attachment;
pub use audit::{Control, ControlLog};
pub use control::intent;
pub(crate) use control::status as status_of;
pub use controller::RemoteProcessController;
pub use inprocess::InProcessCommunicator;
pub use launcher::{ProcessLauncher, Processes};
pub(crate) use rabbitmq::redacted;
pub use rabbitmq::{
    BrokerAdmin, BrokerAdminError, RabbitMqCommunicator, RabbitMqOptions, TenantBroker,
};
pub use socket::SocketCommunicator;

/// A broadcast message, as kiwipy's broadcast envelope carries it.
#[derive(Debug, Clone, PartialEq)]
pub struct Broadcast {
    /// The message (JSON).
    pub body: Value,
    /// Who sent it (for a state change: the pid).
    pub sender: Option<String>,
    /// What it is about, e.g. `pause` or `state_changed.running.waiting`.
    pub subject: Option<String>,
    /// An identifier the sender gave it, if any.
    pub correlation_id: Option<Value>,
}

impl Broadcast {
    /// kiwipy's broadcast envelope: `{body, sender, subject, correlation_id}`.
    pub(crate) fn envelope(&self) -> Value {
        serde_json::json!({
            "body": self.body,
            "sender": self.sender,
            "subject": self.subject,
            "correlation_id": self.correlation_id,
        })
    }

    /// The message an envelope carries (missing fields are none).
    pub(crate) fn from_envelope(envelope: &Value) -> Self {
        let text = |key: &str| envelope.get(key).and_then(Value::as_str).map(String::from);
        Self {
            body: envelope.get("body").cloned().unwrap_or(Value::Null),
            sender: text("sender"),
            subject: text("subject"),
            correlation_id: envelope
                .get("correlation_id")
                .cloned()
                .filter(|v| !v.is_null()),
        }
    }
}

/// The identifier given, or a new one (a UUID).
pub(crate) fn given_or_new(given: Option<String>) -> String {
    given.unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

/// Broadcast subscribers by identifier, in the order they were added: the registry every
/// communicator keeps. Cheap to clone (the clones share it), so a consumer task can deliver.
#[derive(Clone, Default)]
pub(crate) struct Listeners(
    Arc<std::sync::Mutex<indexmap::IndexMap<String, Arc<dyn BroadcastSubscriber>>>>,
);

impl Listeners {
    fn map(
        &self,
    ) -> std::sync::MutexGuard<'_, indexmap::IndexMap<String, Arc<dyn BroadcastSubscriber>>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Add `subscriber` under `identifier` (a new one if `None`), refusing a duplicate.
    pub(crate) fn add(
        &self,
        subscriber: Arc<dyn BroadcastSubscriber>,
        identifier: Option<String>,
    ) -> Result<String, CommsError> {
        let id = given_or_new(identifier);
        let mut map = self.map();
        if map.contains_key(&id) {
            return Err(CommsError::DuplicateSubscriber {
                kind: "broadcast",
                identifier: id,
            });
        }
        map.insert(id.clone(), subscriber);
        Ok(id)
    }

    pub(crate) fn remove(&self, identifier: &str) {
        self.map().shift_remove(identifier);
    }

    pub(crate) fn clear(&self) {
        self.map().clear();
    }

    /// Give `message` to every subscriber (outside the lock: a subscriber may add or remove).
    pub(crate) fn deliver(&self, message: &Broadcast) {
        let subscribers: Vec<_> = self.map().values().cloned().collect();
        for subscriber in subscribers {
            subscriber.receive(message);
        }
    }
}

/// Answers RPC requests sent to its identifier.
#[async_trait]
pub trait RpcSubscriber: Send + Sync {
    /// The reply to `body`; an `Err` is sent back to the requester as a remote error.
    async fn call(&self, body: Value) -> Result<Value, String>;

    /// Whether the answer to `body` is one that comes later, as plumpy's processes answer
    /// `pause`, `play` and `kill` (with a future): over RabbitMQ a `{pending: null}` reply then
    /// goes first, as kiwipy sends one, and kiwipy's clients (plumpy's controllers) read the
    /// answer as a future of a future. By default, no.
    fn answers_later(&self, body: &Value) -> bool {
        let _ = body;
        false
    }
}

/// Hears every broadcast.
pub trait BroadcastSubscriber: Send + Sync {
    /// Hear `message` (on the communicator's delivery task: do not block).
    fn receive(&self, message: &Broadcast);
}

impl<F: Fn(&Broadcast) + Send + Sync> BroadcastSubscriber for F {
    fn receive(&self, message: &Broadcast) {
        self(message)
    }
}

/// What a task subscriber made of a task.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TaskError {
    /// Not for this subscriber: the task goes to another one (kiwipy's `TaskRejected`).
    #[error("the task was rejected")]
    Rejected,
    /// The subscriber took the task and failed; the sender gets the message.
    #[error("{0}")]
    Failed(String),
}

/// Takes tasks from the queue.
#[async_trait]
pub trait TaskSubscriber: Send + Sync {
    /// Do `task` and return its result. Call [`Accepted::accept`] once the task is durably
    /// taken (for a process: once it has a checkpoint), so that a broker can forget the
    /// delivery while the task runs on; the result still goes back to the sender at the end.
    async fn take(&self, task: Value, accepted: Accepted) -> Result<Value, TaskError>;

    /// Whether this subscriber takes `task` and answers it later, as plumpy's workers do
    /// (their launcher's answer is a future): over RabbitMQ a `{pending: null}` reply then goes
    /// first, and plumpy's controllers read the answer as a future of a future. By default, no.
    fn answers_later(&self, task: &Value) -> bool {
        let _ = task;
        false
    }
}

/// Lets a task subscriber say that it has durably taken its task, and names the task. Dropping
/// it unused means the task counts as taken when it is done.
pub struct Accepted {
    signal: Option<tokio::sync::oneshot::Sender<()>>,
    id: Option<String>,
}

impl Accepted {
    /// One that nobody listens to (a communicator with nothing to acknowledge), for a task
    /// that is delivered once.
    pub fn ignored() -> Self {
        Self {
            signal: None,
            id: None,
        }
    }

    /// One for a task named `id` by its sender (if it is), and the receiver that hears when the
    /// subscriber accepts it: what a communicator hands a [`TaskSubscriber`] with each
    /// delivery.
    pub fn new(id: Option<String>) -> (Self, tokio::sync::oneshot::Receiver<()>) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let accepted = Self {
            signal: Some(tx),
            id,
        };
        (accepted, rx)
    }

    /// The sender's identifier of this task (on RabbitMQ, the message's correlation id): the
    /// same each time the task is delivered, so that a redelivery can be recognised.
    pub fn task_id(&self) -> Option<&str> {
        self.id.as_deref()
    }

    /// The task is durably taken.
    pub fn accept(&mut self) {
        if let Some(tx) = self.signal.take() {
            let _ = tx.send(());
        }
    }
}

/// What went wrong in a communicator.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum CommsError {
    /// A subscriber of this kind has this identifier already.
    #[error("a {kind} subscriber with identifier '{identifier}' exists already")]
    DuplicateSubscriber {
        /// `rpc`, `broadcast` or `task`.
        kind: &'static str,
        /// The identifier.
        identifier: String,
    },
    /// Nobody answers RPC requests at this identifier (a pid).
    #[error("no RPC subscriber '{0}': the recipient is unknown or gone")]
    UnroutableRpc(String),
    /// The recipient answered with an error.
    #[error("the RPC recipient '{recipient}' failed: {message}")]
    Remote {
        /// Who was asked.
        recipient: String,
        /// What it said.
        message: String,
    },
    /// Every task subscriber rejected the task, or there is none.
    #[error("no task subscriber took the task")]
    NoTaskSubscriber,
    /// The subscriber that took the task failed, saying this.
    #[error("the task failed: {0}")]
    TaskFailed(String),
    /// The communicator was closed.
    #[error("the communicator is closed")]
    Closed,
    /// Anything else (the broker's error, a malformed reply), said in words.
    #[error("{0}")]
    Other(String),
}

/// plumpy's communicator: RPC, broadcast and task queue.
#[async_trait]
pub trait Communicator: Send + Sync {
    /// Subscribe to RPC requests sent to `identifier` (a made-up one if `None`); returns it.
    async fn add_rpc_subscriber(
        &self,
        subscriber: Arc<dyn RpcSubscriber>,
        identifier: Option<String>,
    ) -> Result<String, CommsError>;
    /// Stop answering RPC requests at `identifier` (nothing happens if nobody does).
    async fn remove_rpc_subscriber(&self, identifier: &str) -> Result<(), CommsError>;
    /// Subscribe to broadcasts; returns the identifier.
    async fn add_broadcast_subscriber(
        &self,
        subscriber: Arc<dyn BroadcastSubscriber>,
        identifier: Option<String>,
    ) -> Result<String, CommsError>;
    /// Remove a broadcast subscriber (nothing happens if there is none).
    async fn remove_broadcast_subscriber(&self, identifier: &str) -> Result<(), CommsError>;
    /// Subscribe to the task queue; returns the identifier.
    async fn add_task_subscriber(
        &self,
        subscriber: Arc<dyn TaskSubscriber>,
        identifier: Option<String>,
    ) -> Result<String, CommsError>;
    /// Remove a task subscriber (nothing happens if there is none).
    async fn remove_task_subscriber(&self, identifier: &str) -> Result<(), CommsError>;
    /// Send an RPC request and wait for its reply.
    async fn rpc_send(&self, recipient: &str, body: Value) -> Result<Value, CommsError>;
    /// Send a broadcast to every subscriber.
    async fn broadcast_send(&self, message: Broadcast) -> Result<(), CommsError>;
    /// Queue a task and wait until a subscriber has done it; returns its result.
    async fn task_send(&self, task: Value) -> Result<Value, CommsError>;
    /// Stop: subscribers hear nothing more, sends fail with [`CommsError::Closed`].
    async fn close(&self);

    /// Who the messages arriving through this communicator come from, as the audit log names
    /// them: `local` (the default) for one that only this machine's user reaches (in-process,
    /// `damson serve`'s owner-only socket); `amqp:<user>@<vhost>` for a broker's.
    fn peer(&self) -> String {
        "local".to_string()
    }
}

/// A broadcast subscriber that hears only some subjects and senders (kiwipy's
/// `BroadcastFilter`). A filter ending in `*` matches by prefix.
pub struct BroadcastFilter<S> {
    inner: S,
    subjects: Vec<String>,
    senders: Vec<String>,
}

impl<S: BroadcastSubscriber> BroadcastFilter<S> {
    /// Pass everything to `inner` until filters are added.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            subjects: Vec::new(),
            senders: Vec::new(),
        }
    }

    /// Also hear this subject (or subjects starting with it, if it ends in `*`).
    pub fn subject(mut self, subject: impl Into<String>) -> Self {
        self.subjects.push(subject.into());
        self
    }

    /// Also hear this sender.
    pub fn sender(mut self, sender: impl Into<String>) -> Self {
        self.senders.push(sender.into());
        self
    }
}

fn matches(filters: &[String], value: Option<&str>) -> bool {
    filters.is_empty()
        || value.is_some_and(|v| {
            filters.iter().any(|f| match f.strip_suffix('*') {
                Some(prefix) => v.starts_with(prefix),
                None => v == f,
            })
        })
}

impl<S: BroadcastSubscriber> BroadcastSubscriber for BroadcastFilter<S> {
    fn receive(&self, message: &Broadcast) {
        if matches(&self.subjects, message.subject.as_deref())
            && matches(&self.senders, message.sender.as_deref())
        {
            self.inner.receive(message);
        }
    }
}
