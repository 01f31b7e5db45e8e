//! [`RabbitMqCommunicator`]: the communicator over RabbitMQ (AMQP 0-9-1, `lapin`), laid out as
//! kiwipy 0.9 lays it out, so that kiwipy clients — plumpy's controllers and AiiDA's tools with
//! kiwipy's default (YAML) codec, or with a JSON one — talk to Damson (see
//! `shared/design/kiwipy-wire.md`):
//!
//! | what | kiwipy's layout |
//! |---|---|
//! | RPC and broadcast | topic exchange `kiwipy.messages` |
//! | RPC subscriber | exclusive queue `<message exchange>-rpc-<id>-<uuid>`, consumer tag = identifier, bound to `[rpc].<id>` |
//! | broadcast | one exclusive queue `<message exchange>-broadcast-<uuid>` per communicator, bound to `[broadcast]`; body `{body, sender, subject, correlation_id}` |
//! | tasks | topic exchange `kiwipy.tasks`, durable queue `kiwipy.tasks` (7-day message TTL) bound to its own name; body `[task, no_reply]`; persistent |
//! | replies | to the requester's reply queue (`reply_to`, exclusive), bound to the exchange with its own name, with the request's `correlation_id`; `{result}`, `{exception}`, `{cancelled}` or `{pending}` |
//! | refused tasks | durable queue `<task queue>.dead-letter`, for an operator to inspect |
//!
//! Every queue is durable or exclusive (RabbitMQ 4.3 refuses transient shared ones), and named
//! after the communicator's exchanges or task queue. Bodies are read as JSON or as YAML
//! ([`codec`](super::codec)) and written as JSON, which YAML readers read too.
//!
//! A task delivery is acknowledged as soon as its subscriber accepts it (the launcher does once
//! the process has a durable checkpoint) — not when the process ends, which could be past the
//! broker's consumer timeout. A subscriber that rejects a task sends it back to the queue.
//! Prefetch is set explicitly; heartbeats come from the URL (`?heartbeat=30`, else the
//! broker's).
//!
//! # Lost connections
//!
//! The communicator keeps its own record of what it declared (exchanges, its reply and broadcast
//! queues, every RPC and task subscriber) and, when the connection is lost — a broker restart, a
//! network failure, a missed heartbeat, a channel closed by the broker — it opens a new
//! connection and declares all of it again, retrying with a growing pause (up to 5 s) until it
//! succeeds or is closed. It does not use lapin's own recovery, which replays the old channels'
//! operations and could leave a channel closed after a restart.
//!
//! While it reconnects:
//! - subscribing and unsubscribing succeed at once; the new connection carries the subscribers
//!   as they are then;
//! - a send waits for the connection, up to [`RabbitMqOptions::reconnect_timeout`];
//! - requests waiting for a reply when the connection was lost fail with an error saying so
//!   (their reply queue went with the connection): an RPC may be sent again; a task is in the
//!   durable queue and is still carried out.
//!
//! Tasks delivered but not yet acknowledged go back to the queue with the lost connection and
//! are delivered again, perhaps to another worker; the launcher makes a redelivered launch
//! continue the process the first delivery created rather than create another (see
//! [`ProcessLauncher`](super::ProcessLauncher)).
//!
//! # Tenants
//!
//! A tenant's workers and clients connect to a virtual host of its own, `damson-<tenant>`, as
//! a user of its own that may reach only that virtual host; [`BrokerAdmin`] makes and removes
//! both through RabbitMQ's management API (`damson tenant create | delete --broker-admin`).
//! Everything above then happens inside the tenant's virtual host, with kiwipy's names.

mod admin;
mod consumers;
mod link;
mod refusals;
mod sending;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use indexmap::IndexMap;
use lapin::BasicProperties;
use lapin::options::{
    BasicCancelOptions, BasicGetOptions, BasicPublishOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::uri::AMQPUri;
use serde_json::{Value, json};
use tokio::sync::{RwLock, oneshot, watch};

use super::{
    Broadcast, BroadcastSubscriber, CommsError, Communicator, Listeners, RpcSubscriber,
    TaskSubscriber, codec, given_or_new,
};

pub use admin::{BrokerAdmin, BrokerAdminError, TenantBroker};
use link::{Link, supervise};

/// kiwipy's names and settings (`kiwipy/rmq/defaults.py`).
const MESSAGE_EXCHANGE: &str = "kiwipy.messages";
const TASK_EXCHANGE: &str = "kiwipy.tasks";
const TASK_QUEUE: &str = "kiwipy.tasks";
const BROADCAST_TOPIC: &str = "[broadcast]";
const RPC_TOPIC: &str = "[rpc]";
const MESSAGE_TTL_MS: i32 = 66_000;
const QUEUE_EXPIRES_MS: i32 = 60_000;
const TASK_MESSAGE_TTL_MS: i32 = 7 * 24 * 3600 * 1000;

/// How often the connection's health is looked at, besides the errors that report its loss.
const HEALTH_CHECK: Duration = Duration::from_secs(1);
/// The first pause between attempts to reconnect; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// How a [`RabbitMqCommunicator`] connects and lays out its exchanges and queues.
#[derive(Debug, Clone)]
pub struct RabbitMqOptions {
    /// The exchange for RPC and broadcasts. By default kiwipy's, `kiwipy.messages`.
    pub message_exchange: String,
    /// The exchange for tasks. By default kiwipy's, `kiwipy.tasks`.
    pub task_exchange: String,
    /// The task queue. By default kiwipy's, `kiwipy.tasks` (durable).
    pub task_queue: String,
    /// How many tasks one subscriber holds unacknowledged at a time. By default 16 (kiwipy's
    /// default, 0, means unlimited: a slow worker would hoard the queue).
    pub prefetch: u16,
    /// How long a send waits for a lost connection to come back before it fails. By default
    /// 60 s (a broker restart takes a few seconds).
    pub reconnect_timeout: Duration,
    /// Throw-away topology for tests: the task queue and its dead-letter queue expire when
    /// unused (they are durable all the same: RabbitMQ 4 refuses transient shared queues).
    pub testing: bool,
}

impl Default for RabbitMqOptions {
    fn default() -> Self {
        Self {
            message_exchange: MESSAGE_EXCHANGE.into(),
            task_exchange: TASK_EXCHANGE.into(),
            task_queue: TASK_QUEUE.into(),
            prefetch: 16,
            reconnect_timeout: Duration::from_secs(60),
            testing: false,
        }
    }
}

impl RabbitMqOptions {
    /// Names of their own (kiwipy's with a suffix), for a test that must not meet others.
    pub fn isolated(suffix: &str) -> Self {
        Self {
            message_exchange: format!("{MESSAGE_EXCHANGE}.{suffix}"),
            task_exchange: format!("{TASK_EXCHANGE}.{suffix}"),
            task_queue: format!("{TASK_QUEUE}.{suffix}"),
            testing: true,
            ..Self::default()
        }
    }
}

/// The communicator over RabbitMQ. See the module documentation for the layout and for what
/// happens when the connection is lost.
pub struct RabbitMqCommunicator {
    inner: Arc<Inner>,
}

struct Inner {
    /// As given, for logs (see [`redacted`]).
    url: String,
    /// As connected to.
    uri: AMQPUri,
    options: RabbitMqOptions,
    /// This communicator's reply queue (bound to both exchanges under its name).
    reply_queue: String,
    /// Its broadcast queue.
    broadcast_queue: String,
    /// The connection in use; `None` while reconnecting (or closed).
    link: watch::Sender<Option<Arc<Link>>>,
    /// Subscribing and unsubscribing share it; declaring everything on a new connection holds
    /// it alone, so that each subscriber is declared exactly once on each connection.
    topology: RwLock<()>,
    pending: Arc<Mutex<HashMap<String, oneshot::Sender<Value>>>>,
    /// Held from a mandatory publish until its confirm: with several in flight on one channel,
    /// a returned (unroutable) message was seen matched to another publish's confirm, so one
    /// sender heard "unroutable" for a routed request and the other nothing at all.
    mandatory: tokio::sync::Mutex<()>,
    broadcast: Listeners,
    rpc: Mutex<IndexMap<String, RpcEntry>>,
    tasks: Mutex<IndexMap<String, Arc<dyn TaskSubscriber>>>,
    closed: AtomicBool,
}

#[derive(Clone)]
struct RpcEntry {
    subscriber: Arc<dyn RpcSubscriber>,
    /// Named by us, so that it is declared again under the same name on a new connection.
    queue: String,
}

/// `url` with its password (if any) replaced by `***`, to be shown in logs and errors.
pub(crate) fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority = rest.find(['/', '?']).map_or(rest, |end| &rest[..end]);
    match authority.rsplit_once('@') {
        Some((user_info, _)) if user_info.contains(':') => {
            let user = user_info
                .split_once(':')
                .map_or(user_info, |(user, _)| user);
            format!("{scheme}://{user}:***@{}", &rest[user_info.len() + 1..])
        }
        _ => url.to_string(),
    }
}

/// `url` parsed as kiwipy (through aio-pika) reads it: an empty virtual host, as in
/// `amqp://guest:guest@127.0.0.1:5672/` (the URL AiiDA builds), is the default one, `/`.
fn broker_uri(url: &str) -> Result<AMQPUri, CommsError> {
    let mut uri: AMQPUri = url.parse().map_err(|e| {
        CommsError::Other(format!(
            "the broker URL {} is not valid: {e}",
            redacted(url)
        ))
    })?;
    if uri.vhost.is_empty() {
        uri.vhost = "/".into();
    }
    Ok(uri)
}

fn broker(e: impl std::fmt::Display) -> CommsError {
    CommsError::Other(format!("RabbitMQ: {e}"))
}

fn table(entries: &[(&str, i32)]) -> FieldTable {
    let mut table = FieldTable::default();
    for (key, value) in entries {
        table.insert((*key).into(), AMQPValue::LongInt(*value));
    }
    table
}

impl RabbitMqCommunicator {
    /// Connect to the broker at `url` (`amqp://user:password@host:5672/%2f?heartbeat=30`) and
    /// declare kiwipy's exchanges, a reply queue and a broadcast queue. From then on a lost
    /// connection is replaced on its own (see the module documentation).
    ///
    /// # Errors
    /// [`CommsError::Other`] when the broker cannot be reached or refuses the declarations.
    pub async fn connect(url: &str, options: RabbitMqOptions) -> Result<Arc<Self>, CommsError> {
        let uri = broker_uri(url)?;
        let reply_queue = format!(
            "{}-reply-{}",
            options.message_exchange,
            uuid::Uuid::new_v4()
        );
        let broadcast_queue = format!(
            "{}-broadcast-{}",
            options.message_exchange,
            uuid::Uuid::new_v4()
        );
        let inner = Arc::new(Inner {
            url: url.to_string(),
            uri,
            options,
            reply_queue,
            broadcast_queue,
            link: watch::channel(None).0,
            topology: RwLock::new(()),
            pending: Arc::default(),
            mandatory: tokio::sync::Mutex::new(()),
            broadcast: Listeners::default(),
            rpc: Mutex::default(),
            tasks: Mutex::default(),
            closed: AtomicBool::new(false),
        });
        let link = inner.establish().await.map_err(|e| {
            CommsError::Other(format!(
                "cannot connect to RabbitMQ at {}: {e}",
                redacted(url)
            ))
        })?;
        tokio::spawn(supervise(Arc::downgrade(&inner), link));
        Ok(Arc::new(Self { inner }))
    }
}

#[async_trait]
impl Communicator for RabbitMqCommunicator {
    async fn add_rpc_subscriber(
        &self,
        subscriber: Arc<dyn RpcSubscriber>,
        identifier: Option<String>,
    ) -> Result<String, CommsError> {
        let inner = &self.inner;
        let id = given_or_new(identifier);
        let _shared = inner.topology.read().await;
        let entry = {
            let mut rpc = inner.rpc.lock().expect("rpc");
            if rpc.contains_key(&id) {
                return Err(CommsError::DuplicateSubscriber {
                    kind: "RPC",
                    identifier: id,
                });
            }
            let entry = RpcEntry {
                subscriber,
                queue: format!(
                    "{}-rpc-{id}-{}",
                    inner.options.message_exchange,
                    uuid::Uuid::new_v4()
                ),
            };
            rpc.insert(id.clone(), entry.clone());
            entry
        };
        // Without a connection now, the next one declares it.
        if let Some(link) = inner.current()
            && let Err(e) = inner.consume_rpc(&link, &id, entry).await
        {
            link.lose(&e);
        }
        Ok(id)
    }

    async fn remove_rpc_subscriber(&self, identifier: &str) -> Result<(), CommsError> {
        let inner = &self.inner;
        let _shared = inner.topology.read().await;
        let entry = inner.rpc.lock().expect("rpc").shift_remove(identifier);
        if let (Some(entry), Some(link)) = (entry, inner.current()) {
            let queue = entry.queue.as_str();
            let removed = async {
                // Unbound first, so that a request sent from now on is returned unroutable,
                // then the requests already in the queue are answered rather than deleted
                // with it unanswered.
                link.channel
                    .queue_unbind(
                        queue.into(),
                        inner.options.message_exchange.as_str().into(),
                        format!("{RPC_TOPIC}.{identifier}").into(),
                        FieldTable::default(),
                    )
                    .await?;
                link.channel
                    .basic_cancel(identifier.into(), BasicCancelOptions::default())
                    .await?;
                let communicator = Arc::downgrade(inner);
                while let Some(request) = link
                    .channel
                    .basic_get(queue.into(), BasicGetOptions::default())
                    .await?
                {
                    consumers::answer_request(&communicator, &*entry.subscriber, &request.delivery)
                        .await;
                }
                link.channel
                    .queue_delete(queue.into(), QueueDeleteOptions::default())
                    .await
            }
            .await;
            // A lost connection took the (exclusive) queue with it.
            if let Err(e) = removed {
                link.lose(&e);
            }
        }
        Ok(())
    }

    async fn add_broadcast_subscriber(
        &self,
        subscriber: Arc<dyn BroadcastSubscriber>,
        identifier: Option<String>,
    ) -> Result<String, CommsError> {
        self.inner.broadcast.add(subscriber, identifier)
    }

    async fn remove_broadcast_subscriber(&self, identifier: &str) -> Result<(), CommsError> {
        self.inner.broadcast.remove(identifier);
        Ok(())
    }

    async fn add_task_subscriber(
        &self,
        subscriber: Arc<dyn TaskSubscriber>,
        identifier: Option<String>,
    ) -> Result<String, CommsError> {
        let inner = &self.inner;
        let id = given_or_new(identifier);
        let _shared = inner.topology.read().await;
        {
            let mut tasks = inner.tasks.lock().expect("tasks");
            if tasks.contains_key(&id) {
                return Err(CommsError::DuplicateSubscriber {
                    kind: "task",
                    identifier: id,
                });
            }
            tasks.insert(id.clone(), subscriber.clone());
        }
        if let Some(link) = inner.current() {
            let consumed = async {
                inner.declare_task_queue(&link).await?;
                inner.consume_tasks(&link, &id, subscriber).await
            }
            .await;
            if let Err(e) = consumed {
                link.lose(&e);
            }
        }
        Ok(id)
    }

    async fn remove_task_subscriber(&self, identifier: &str) -> Result<(), CommsError> {
        let inner = &self.inner;
        let _shared = inner.topology.read().await;
        let removed = inner.tasks.lock().expect("tasks").shift_remove(identifier);
        if let (Some(_), Some(link)) = (removed, inner.current())
            && let Err(e) = link
                .task_channel
                .basic_cancel(identifier.into(), BasicCancelOptions::default())
                .await
        {
            link.lose(&e);
        }
        Ok(())
    }

    async fn rpc_send(&self, recipient: &str, body: Value) -> Result<Value, CommsError> {
        let body = codec::encode(&body);
        self.inner
            .request(
                &self.inner.options.message_exchange,
                &format!("{RPC_TOPIC}.{recipient}"),
                body,
                false,
                recipient,
            )
            .await
    }

    async fn broadcast_send(&self, message: Broadcast) -> Result<(), CommsError> {
        let body = codec::encode(&message.envelope());
        self.inner
            .publish(
                &self.inner.options.message_exchange,
                BROADCAST_TOPIC,
                BasicPublishOptions::default(),
                &body,
                BasicProperties::default().with_delivery_mode(1),
                true,
            )
            .await?;
        Ok(())
    }

    async fn task_send(&self, task: Value) -> Result<Value, CommsError> {
        // kiwipy's body: the task and its `no_reply` flag.
        let body = codec::encode(&json!([task, false]));
        let options = &self.inner.options;
        self.inner
            .request(
                &options.task_exchange,
                &options.task_queue,
                body,
                true,
                &options.task_queue,
            )
            .await
    }

    async fn close(&self) {
        let inner = &self.inner;
        inner.closed.store(true, Ordering::SeqCst);
        if let Some(link) = inner.link.send_replace(None) {
            // The supervisor sees `closed` and stops.
            link.on_lost.notify_one();
            link.close().await;
        }
        inner.pending.lock().expect("pending").clear();
    }

    /// `amqp:<user>@<vhost>`: whoever holds that broker user's credentials (a tenant's, as
    /// `damson tenant create --broker-admin` makes them) sent what arrives here.
    fn peer(&self) -> String {
        let uri = &self.inner.uri;
        format!("amqp:{}@{}", uri.authority.userinfo.username, uri.vhost)
    }
}

#[cfg(test)]
mod tests {
    use super::{broker_uri, redacted};

    #[test]
    fn an_empty_virtual_host_is_the_default_one_as_for_kiwipy() {
        let vhost = |url| broker_uri(url).unwrap().vhost;
        assert_eq!(vhost("amqp://guest:guest@127.0.0.1:5672/"), "/");
        assert_eq!(vhost("amqp://guest:guest@127.0.0.1:5672"), "/");
        assert_eq!(vhost("amqp://127.0.0.1:5672/%2f"), "/");
        assert_eq!(vhost("amqp://127.0.0.1:5672/tenant-a"), "tenant-a");
    }

    #[test]
    fn an_invalid_broker_url_is_named_without_its_password() {
        let e = broker_uri("amqp://guest:secret@127.0.0.1:notaport/").unwrap_err();
        let text = e.to_string();
        assert!(text.contains("guest:***@"), "{text}");
        assert!(!text.contains("secret"), "{text}");
    }

    #[test]
    fn passwords_are_not_shown() {
        assert_eq!(
            redacted("amqp://guest:secret@host:5672/%2f?heartbeat=30"),
            "amqp://guest:***@host:5672/%2f?heartbeat=30"
        );
        assert_eq!(redacted("amqp://host/%2f"), "amqp://host/%2f");
        assert_eq!(redacted("amqp://user@host"), "amqp://user@host");
        assert_eq!(redacted("not a url"), "not a url");
    }
}
