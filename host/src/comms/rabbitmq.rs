//! [`RabbitMqCommunicator`]: the communicator over RabbitMQ (AMQP 0-9-1, `lapin`), laid out as
//! kiwipy 0.9 lays it out, so that a kiwipy client configured with a JSON encoder and decoder
//! can talk to Damson (see `shared/design/kiwipy-wire.md`):
//!
//! | what | kiwipy's layout |
//! |---|---|
//! | RPC and broadcast | topic exchange `kiwipy.messages` |
//! | RPC subscriber | exclusive queue, consumer tag = identifier, bound to `[rpc].<id>` |
//! | broadcast | one exclusive queue `broadcast-<uuid>` per communicator, bound to `[broadcast]`; body `{body, sender, subject, correlation_id}` |
//! | tasks | topic exchange `kiwipy.tasks`, durable queue `kiwipy.tasks` (7-day message TTL) bound to its own name; body `[task, no_reply]`; persistent |
//! | replies | to the requester's reply queue (`reply_to`), bound to the exchange with its own name, with the request's `correlation_id`; `{result}`, `{exception}`, `{cancelled}` or `{pending}` |
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

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use async_trait::async_trait;
use futures_lite::StreamExt;
use indexmap::IndexMap;
use lapin::Confirmation;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions,
    BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions, ExchangeDeclareOptions,
    QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use serde_json::{Value, json};
use tokio::sync::{Notify, RwLock, oneshot, watch};

use super::{
    Accepted, Broadcast, BroadcastSubscriber, CommsError, Communicator, Listeners, RpcSubscriber,
    TaskError, TaskSubscriber, given_or_new,
};

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
    /// Throw-away topology for tests: the task queue is not durable and expires when unused.
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
    url: String,
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

/// One connection and its two channels.
struct Link {
    connection: Connection,
    /// Publishing (with confirms), replies, RPC and broadcast consumers.
    channel: Channel,
    /// Task consumers, with the prefetch set.
    task_channel: Channel,
    lost: AtomicBool,
    on_lost: Notify,
    /// Closed by us (replaced, or the communicator closed).
    closing: AtomicBool,
}

impl Link {
    /// Say the connection is gone (once), so that the supervisor replaces it.
    fn lose(&self, why: &dyn std::fmt::Display) {
        if !self.lost.swap(true, Ordering::SeqCst) && !self.closing.load(Ordering::SeqCst) {
            tracing::warn!("RabbitMQ: connection lost ({why}); reconnecting");
            self.on_lost.notify_one();
        }
    }

    fn healthy(&self) -> bool {
        !self.lost.load(Ordering::SeqCst)
            && self.connection.status().connected()
            && self.channel.status().connected()
            && self.task_channel.status().connected()
    }

    async fn close(&self) {
        // What fails from now on fails because of this, not because the connection was lost.
        self.closing.store(true, Ordering::SeqCst);
        // A dead connection may never answer.
        let closing = self.connection.close(200, "closing".into());
        let _ = tokio::time::timeout(Duration::from_secs(1), closing).await;
    }
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
        let reply_queue = format!(
            "{}-reply-{}",
            options.message_exchange,
            uuid::Uuid::new_v4()
        );
        let inner = Arc::new(Inner {
            url: url.to_string(),
            options,
            reply_queue,
            broadcast_queue: format!("broadcast-{}", uuid::Uuid::new_v4()),
            link: watch::channel(None).0,
            topology: RwLock::new(()),
            pending: Arc::default(),
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

/// Watch the connection in use; when it is lost, open a new one and declare everything again.
async fn supervise(inner: Weak<Inner>, mut link: Arc<Link>) {
    loop {
        loop {
            tokio::select! {
                _ = link.on_lost.notified() => {}
                _ = tokio::time::sleep(HEALTH_CHECK) => {}
            }
            let Some(strong) = inner.upgrade() else {
                link.close().await;
                return;
            };
            if strong.closed.load(Ordering::SeqCst) {
                // Closed while this link was being made: `close` may not have seen it.
                link.close().await;
                return;
            }
            if !link.healthy() {
                link.lose(&"the connection or a channel is closed");
                break;
            }
        }
        let Some(strong) = inner.upgrade() else {
            return;
        };
        strong.link.send_replace(None);
        // Their reply queue went with the connection: the waiters are told (see `request`).
        strong.pending.lock().expect("pending").clear();
        drop(strong);
        link.close().await;
        let mut backoff = FIRST_BACKOFF;
        link = loop {
            let Some(strong) = inner.upgrade() else {
                return;
            };
            if strong.closed.load(Ordering::SeqCst) {
                return;
            }
            match strong.establish().await {
                Ok(link) => {
                    tracing::info!("RabbitMQ: reconnected to {}", redacted(&strong.url));
                    break link;
                }
                Err(e) => {
                    tracing::warn!("RabbitMQ: cannot reconnect yet ({e}); again in {backoff:?}")
                }
            }
            drop(strong);
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        };
    }
}

impl Inner {
    /// Open a connection, declare this communicator's exchanges and queues and every
    /// subscriber on it, and make it the one in use.
    async fn establish(self: &Arc<Self>) -> Result<Arc<Link>, lapin::Error> {
        let connection = Connection::connect(
            &self.url,
            ConnectionProperties::default().with_connection_name("damson".into()),
        )
        .await?;
        let channels = async {
            let channel = connection.create_channel().await?;
            channel
                .confirm_select(ConfirmSelectOptions::default())
                .await?;
            let task_channel = connection.create_channel().await?;
            task_channel
                .basic_qos(self.options.prefetch, BasicQosOptions::default())
                .await?;
            Ok::<_, lapin::Error>((channel, task_channel))
        }
        .await;
        let (channel, task_channel) = match channels {
            Ok(channels) => channels,
            Err(e) => {
                let _ = connection.close(200, "failed".into()).await;
                return Err(e);
            }
        };
        let link = Arc::new(Link {
            connection,
            channel,
            task_channel,
            lost: AtomicBool::new(false),
            on_lost: Notify::new(),
            closing: AtomicBool::new(false),
        });
        let _alone = self.topology.write().await;
        match self.declare_all(&link).await {
            Ok(()) => {
                if self.closed.load(Ordering::SeqCst) {
                    link.close().await;
                    return Err(lapin::ErrorKind::InvalidConnectionState(
                        lapin::ConnectionState::Closed,
                    )
                    .into());
                }
                self.link.send_replace(Some(link.clone()));
                Ok(link)
            }
            Err(e) => {
                link.close().await;
                Err(e)
            }
        }
    }

    async fn declare_all(self: &Arc<Self>, link: &Arc<Link>) -> Result<(), lapin::Error> {
        let options = &self.options;
        let exchange = ExchangeDeclareOptions {
            auto_delete: options.testing,
            ..Default::default()
        };
        for name in [&options.message_exchange, &options.task_exchange] {
            link.channel
                .exchange_declare(
                    name.as_str().into(),
                    ExchangeKind::Topic,
                    exchange,
                    FieldTable::default(),
                )
                .await?;
        }
        self.consume_replies(link).await?;
        self.consume_broadcasts(link).await?;
        let rpc: Vec<_> = self
            .rpc
            .lock()
            .expect("rpc")
            .iter()
            .map(|(id, entry)| (id.clone(), entry.clone()))
            .collect();
        for (id, entry) in rpc {
            self.consume_rpc(link, &id, entry).await?;
        }
        let tasks: Vec<_> = self
            .tasks
            .lock()
            .expect("tasks")
            .iter()
            .map(|(id, subscriber)| (id.clone(), subscriber.clone()))
            .collect();
        if !tasks.is_empty() {
            self.declare_task_queue(link).await?;
        }
        for (id, subscriber) in tasks {
            self.consume_tasks(link, &id, subscriber).await?;
        }
        Ok(())
    }

    async fn consume_replies(&self, link: &Arc<Link>) -> Result<(), lapin::Error> {
        let queue = self.reply_queue.as_str();
        link.channel
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    exclusive: true,
                    auto_delete: true,
                    ..Default::default()
                },
                table(&[("x-expires", QUEUE_EXPIRES_MS)]),
            )
            .await?;
        for exchange in [&self.options.message_exchange, &self.options.task_exchange] {
            bind(&link.channel, queue, exchange, queue).await?;
        }
        let consumer = consume(&link.channel, queue, &format!("{queue}-consumer"), true).await?;
        let pending = self.pending.clone();
        on_deliveries(consumer, link, move |delivery| {
            let Some(id) = delivery.properties.correlation_id().clone() else {
                return;
            };
            let Ok(response) = serde_json::from_slice::<Value>(&delivery.data) else {
                tracing::warn!("a reply that is not JSON: {:?}", delivery.data);
                return;
            };
            // `{pending: …}` says the answer comes later.
            if response.get("pending").is_some() {
                return;
            }
            let waiter = pending.lock().expect("pending").remove(id.as_str());
            if let Some(waiter) = waiter {
                let _ = waiter.send(response);
            }
        });
        Ok(())
    }

    async fn consume_broadcasts(&self, link: &Arc<Link>) -> Result<(), lapin::Error> {
        let queue = self.broadcast_queue.as_str();
        link.channel
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    exclusive: true,
                    ..Default::default()
                },
                table(&[("x-message-ttl", MESSAGE_TTL_MS)]),
            )
            .await?;
        bind(
            &link.channel,
            queue,
            &self.options.message_exchange,
            BROADCAST_TOPIC,
        )
        .await?;
        let consumer = consume(&link.channel, queue, queue, true).await?;
        let subscribers = self.broadcast.clone();
        on_deliveries(
            consumer,
            link,
            move |delivery| match serde_json::from_slice::<Value>(&delivery.data) {
                Ok(envelope) => subscribers.deliver(&Broadcast::from_envelope(&envelope)),
                Err(_) => tracing::warn!("a broadcast that is not JSON: {:?}", delivery.data),
            },
        );
        Ok(())
    }

    /// Declare RPC subscriber `id`'s queue on `link` and answer its requests.
    async fn consume_rpc(
        self: &Arc<Self>,
        link: &Arc<Link>,
        id: &str,
        entry: RpcEntry,
    ) -> Result<(), lapin::Error> {
        let queue = entry.queue.as_str();
        link.channel
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    exclusive: true,
                    ..Default::default()
                },
                table(&[
                    ("x-message-ttl", MESSAGE_TTL_MS),
                    ("x-expires", QUEUE_EXPIRES_MS),
                ]),
            )
            .await?;
        let consumer = consume(&link.channel, queue, id, false).await?;
        bind(
            &link.channel,
            queue,
            &self.options.message_exchange,
            &format!("{RPC_TOPIC}.{id}"),
        )
        .await?;
        let (subscriber, communicator) = (entry.subscriber, Arc::downgrade(self));
        on_deliveries(consumer, link, move |delivery| {
            let (subscriber, communicator) = (subscriber.clone(), communicator.clone());
            // Each request on its own task: a pause that waits for a step does not hold up
            // a status request.
            tokio::spawn(async move {
                let _ = delivery.ack(BasicAckOptions::default()).await;
                let response = match serde_json::from_slice::<Value>(&delivery.data) {
                    Ok(body) => match subscriber.call(body).await {
                        Ok(result) => json!({"result": result}),
                        Err(message) => json!({"exception": message}),
                    },
                    Err(e) => json!({"exception": format!("the request is not JSON: {e}")}),
                };
                if let Some(communicator) = communicator.upgrade() {
                    let exchange = &communicator.options.message_exchange;
                    communicator
                        .reply(exchange, &delivery.properties, response)
                        .await;
                }
            });
        });
        Ok(())
    }

    async fn declare_task_queue(&self, link: &Link) -> Result<(), lapin::Error> {
        let mut arguments = vec![("x-message-ttl", TASK_MESSAGE_TTL_MS)];
        if self.options.testing {
            arguments.push(("x-expires", QUEUE_EXPIRES_MS));
        }
        let queue = self.options.task_queue.as_str();
        link.task_channel
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    durable: !self.options.testing,
                    ..Default::default()
                },
                table(&arguments),
            )
            .await?;
        bind(
            &link.task_channel,
            queue,
            &self.options.task_exchange,
            queue,
        )
        .await?;
        Ok(())
    }

    /// Take tasks from the queue on `link` for task subscriber `id`.
    async fn consume_tasks(
        self: &Arc<Self>,
        link: &Arc<Link>,
        id: &str,
        subscriber: Arc<dyn TaskSubscriber>,
    ) -> Result<(), lapin::Error> {
        let consumer = consume(&link.task_channel, &self.options.task_queue, id, false).await?;
        let communicator = Arc::downgrade(self);
        on_deliveries(consumer, link, move |delivery| {
            let (subscriber, communicator) = (subscriber.clone(), communicator.clone());
            tokio::spawn(async move {
                let (task, no_reply) = match serde_json::from_slice::<Value>(&delivery.data) {
                    Ok(Value::Array(mut pair)) if pair.len() == 2 => {
                        let no_reply = pair[1].as_bool().unwrap_or(false);
                        (pair.swap_remove(0), no_reply)
                    }
                    Ok(task) => (task, false),
                    Err(e) => {
                        tracing::warn!("dropping a task that is not JSON: {e}");
                        let _ = delivery.ack(BasicAckOptions::default()).await;
                        return;
                    }
                };
                let (accepted, on_accept) = Accepted::new(
                    delivery
                        .properties
                        .correlation_id()
                        .as_ref()
                        .map(|id| id.as_str().to_string()),
                );
                let work = subscriber.take(task, accepted);
                tokio::pin!(work);
                let mut acked = false;
                let outcome = tokio::select! {
                    outcome = &mut work => outcome,
                    Ok(()) = on_accept => {
                        // Durably taken: the broker may forget the delivery now.
                        let _ = delivery.ack(BasicAckOptions::default()).await;
                        acked = true;
                        work.await
                    }
                };
                let response = match outcome {
                    Err(TaskError::Rejected) if !acked => {
                        let _ = delivery
                            .nack(BasicNackOptions {
                                requeue: true,
                                ..Default::default()
                            })
                            .await;
                        return;
                    }
                    Ok(result) => json!({"result": result}),
                    Err(e) => json!({"exception": e.to_string()}),
                };
                if !acked {
                    let _ = delivery.ack(BasicAckOptions::default()).await;
                }
                if !no_reply && let Some(communicator) = communicator.upgrade() {
                    let exchange = &communicator.options.task_exchange;
                    communicator
                        .reply(exchange, &delivery.properties, response)
                        .await;
                }
            });
        });
        Ok(())
    }

    /// The connection in use, waiting for it while reconnecting (up to the options'
    /// `reconnect_timeout`).
    async fn link(&self) -> Result<Arc<Link>, CommsError> {
        let mut link = self.link.subscribe();
        let closed = &self.closed;
        let wait = link.wait_for(|l| l.is_some() || closed.load(Ordering::SeqCst));
        let timeout = self.options.reconnect_timeout;
        let link = match tokio::time::timeout(timeout, wait).await {
            Ok(Ok(link)) => link.clone(),
            Ok(Err(_)) => None,
            Err(_) => {
                return Err(CommsError::Other(format!(
                    "RabbitMQ: not connected to {}; still reconnecting after {timeout:?}",
                    redacted(&self.url)
                )));
            }
        };
        match link {
            Some(link) if !closed.load(Ordering::SeqCst) => Ok(link),
            _ => Err(CommsError::Closed),
        }
    }

    /// Publish on the connection in use; with `confirm`, wait for the broker's confirmation
    /// (which carries the message back if it was mandatory and unroutable).
    async fn publish(
        &self,
        exchange: &str,
        routing_key: &str,
        options: BasicPublishOptions,
        body: &[u8],
        properties: BasicProperties,
        confirm: bool,
    ) -> Result<Option<Confirmation>, CommsError> {
        let link = self.link().await?;
        self.publish_on(
            &link,
            exchange,
            routing_key,
            options,
            body,
            properties,
            confirm,
        )
        .await
    }

    /// [`publish`](Self::publish) on `link`.
    #[allow(clippy::too_many_arguments)]
    async fn publish_on(
        &self,
        link: &Link,
        exchange: &str,
        routing_key: &str,
        options: BasicPublishOptions,
        body: &[u8],
        properties: BasicProperties,
        confirm: bool,
    ) -> Result<Option<Confirmation>, CommsError> {
        let published = async {
            let pending = link
                .channel
                .basic_publish(
                    exchange.into(),
                    routing_key.into(),
                    options,
                    body,
                    properties,
                )
                .await?;
            match confirm {
                true => pending.await.map(Some),
                false => Ok(None),
            }
        }
        .await;
        published.map_err(|e| {
            if self.closed.load(Ordering::SeqCst) {
                return CommsError::Closed;
            }
            link.lose(&e);
            broker(e)
        })
    }

    /// Send a reply to the requester's `reply_to` queue through `exchange`.
    async fn reply(&self, exchange: &str, request: &BasicProperties, response: Value) {
        let Some(reply_to) = request.reply_to() else {
            return;
        };
        let mut properties = BasicProperties::default();
        if let Some(id) = request.correlation_id() {
            properties = properties.with_correlation_id(id.clone());
        }
        let body = serde_json::to_vec(&response).expect("JSON values serialise");
        let published = self
            .publish(
                exchange,
                reply_to.as_str(),
                BasicPublishOptions::default(),
                &body,
                properties,
                false,
            )
            .await;
        if let Err(e) = published {
            tracing::warn!("cannot send a reply to {}: {e}", reply_to.as_str());
        }
    }

    /// Publish `body` and wait for the reply with its correlation id.
    async fn request(
        &self,
        exchange: &str,
        routing_key: &str,
        body: Vec<u8>,
        persistent: bool,
        recipient: &str,
    ) -> Result<Value, CommsError> {
        let lost = || {
            CommsError::Other(if persistent {
                "the connection to RabbitMQ was lost before the task's reply came; the task \
                 is queued durably and is still carried out"
                    .into()
            } else {
                format!(
                    "the connection to RabbitMQ was lost before '{recipient}' replied; the \
                     request may be sent again"
                )
            })
        };
        // The waiter is registered once the connection is known: waiters are dropped when a
        // connection is lost (their reply queue goes with it), and this one must not be
        // dropped for the loss of an earlier connection.
        let link = self.link().await?;
        let id = uuid::Uuid::new_v4().to_string();
        let (tx, rx) = oneshot::channel();
        self.pending.lock().expect("pending").insert(id.clone(), tx);
        let mut properties = BasicProperties::default()
            .with_reply_to(self.reply_queue.as_str().into())
            .with_correlation_id(id.as_str().into());
        if persistent {
            properties = properties.with_delivery_mode(2);
        }
        let options = BasicPublishOptions {
            mandatory: true,
            ..Default::default()
        };
        let confirm = match self
            .publish_on(
                &link,
                exchange,
                routing_key,
                options,
                &body,
                properties,
                true,
            )
            .await
        {
            Ok(confirm) => confirm.expect("confirmed"),
            Err(e) => {
                self.pending.lock().expect("pending").remove(&id);
                return Err(e);
            }
        };
        if confirm.take_message().is_some() {
            self.pending.lock().expect("pending").remove(&id);
            return Err(if persistent {
                CommsError::NoTaskSubscriber
            } else {
                CommsError::UnroutableRpc(recipient.to_string())
            });
        }
        // Lost meanwhile (perhaps after its waiters were dropped): no reply can come.
        if link.lost.load(Ordering::SeqCst) {
            self.pending.lock().expect("pending").remove(&id);
            return Err(lost());
        }
        let Ok(response) = rx.await else {
            if self.closed.load(Ordering::SeqCst) {
                return Err(CommsError::Closed);
            }
            return Err(lost());
        };
        if let Some(result) = response.get("result") {
            return Ok(result.clone());
        }
        let message = response
            .get("exception")
            .or_else(|| response.get("cancelled"))
            .map(|m| m.as_str().map_or_else(|| m.to_string(), String::from))
            .unwrap_or_else(|| format!("an unknown reply: {response}"));
        Err(if persistent {
            CommsError::TaskFailed(message)
        } else {
            CommsError::Remote {
                recipient: recipient.to_string(),
                message,
            }
        })
    }

    /// The connection in use, if there is a healthy one now (no waiting).
    fn current(&self) -> Option<Arc<Link>> {
        self.link.borrow().clone().filter(|link| link.healthy())
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
            let removed = async {
                link.channel
                    .basic_cancel(identifier.into(), BasicCancelOptions::default())
                    .await?;
                // Gone, so that a request to it is returned unroutable rather than left
                // unanswered.
                link.channel
                    .queue_delete(entry.queue.as_str().into(), QueueDeleteOptions::default())
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
        let body = serde_json::to_vec(&body).expect("JSON values serialise");
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
        let body = serde_json::to_vec(&message.envelope()).expect("JSON values serialise");
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
        let body = serde_json::to_vec(&json!([task, false])).expect("JSON values serialise");
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
}

/// Bind `queue` to `exchange` under `routing_key`.
async fn bind(
    channel: &Channel,
    queue: &str,
    exchange: &str,
    routing_key: &str,
) -> Result<(), lapin::Error> {
    let (options, arguments) = (QueueBindOptions::default(), FieldTable::default());
    channel
        .queue_bind(
            queue.into(),
            exchange.into(),
            routing_key.into(),
            options,
            arguments,
        )
        .await
}

/// Consume `queue` under consumer tag `tag`; with `no_ack`, deliveries are not acknowledged.
async fn consume(
    channel: &Channel,
    queue: &str,
    tag: &str,
    no_ack: bool,
) -> Result<lapin::Consumer, lapin::Error> {
    let options = BasicConsumeOptions {
        no_ack,
        ..Default::default()
    };
    channel
        .basic_consume(queue.into(), tag.into(), options, FieldTable::default())
        .await
}

/// Run `each` on every delivery of `consumer`, on a task of its own, until the consumer is
/// cancelled or its connection is lost (which it reports, so that a new one is made).
fn on_deliveries(
    mut consumer: lapin::Consumer,
    link: &Arc<Link>,
    mut each: impl FnMut(lapin::message::Delivery) + Send + 'static,
) {
    let link = Arc::downgrade(link);
    tokio::spawn(async move {
        while let Some(delivery) = consumer.next().await {
            match delivery {
                Ok(delivery) => each(delivery),
                Err(error) => {
                    if let Some(link) = link.upgrade() {
                        link.lose(&error);
                    }
                    break;
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::redacted;

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
