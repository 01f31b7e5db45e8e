//! [`RabbitMqCommunicator`]: the communicator over RabbitMQ (AMQP 0-9-1, `lapin`), laid out as
//! kiwipy 0.9 lays it out, so that a kiwipy client configured with a JSON encoder and decoder
//! can talk to Damson (see `shared/design/kiwipy-wire.md`):
//!
//! | what | kiwipy's layout |
//! |---|---|
//! | RPC and broadcast | topic exchange `kiwipy.messages` |
//! | RPC subscriber | exclusive server-named queue, consumer tag = identifier, bound to `[rpc].<id>` |
//! | broadcast | one exclusive queue `broadcast-<uuid>` per communicator, bound to `[broadcast]`; body `{body, sender, subject, correlation_id}` |
//! | tasks | topic exchange `kiwipy.tasks`, durable queue `kiwipy.tasks` (7-day message TTL) bound to its own name; body `[task, no_reply]`; persistent |
//! | replies | to the requester's reply queue (`reply_to`), bound to the exchange with its own name, with the request's `correlation_id`; `{result}`, `{exception}`, `{cancelled}` or `{pending}` |
//!
//! A task delivery is acknowledged as soon as its subscriber accepts it (the launcher does once
//! the process has a durable checkpoint) — not when the process ends, which could be past the
//! broker's consumer timeout. A subscriber that rejects a task sends it back to the queue.
//! Prefetch is set explicitly; heartbeats come from the URL (`?heartbeat=30`). Connections are
//! opened with lapin's automatic recovery (exchanges, queues, bindings and consumers declared
//! again; RPC queues are named by us so that they would come back under the same name).
//!
//! **Not yet reliable:** surviving a broker restart. A test that restarted the broker under a
//! worker with running processes passed here but failed in CI: the worker's message channel
//! stayed closed (`invalid channel state: Closed (queue.declare)` when a new process subscribed
//! to RPC), while its task channel recovered.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures_lite::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions,
    BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions, ExchangeDeclareOptions,
    QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use serde_json::{Value, json};
use tokio::sync::oneshot;

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

/// The communicator over RabbitMQ. See the module documentation for the layout.
pub struct RabbitMqCommunicator {
    connection: Connection,
    /// Publishing, replies, RPC and broadcast consumers.
    channel: Channel,
    /// Task consumers, with the prefetch set.
    task_channel: Channel,
    options: RabbitMqOptions,
    /// This communicator's reply queue (bound to both exchanges under its name).
    reply_queue: String,
    pending: Arc<Mutex<HashMap<String, oneshot::Sender<Value>>>>,
    broadcast: Listeners,
    rpc: Mutex<HashMap<String, String>>,
    tasks: Mutex<std::collections::HashSet<String>>,
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
    /// declare kiwipy's exchanges, a reply queue and a broadcast queue.
    pub async fn connect(url: &str, options: RabbitMqOptions) -> Result<Arc<Self>, CommsError> {
        let connection = Connection::connect(
            url,
            // Reconnect after a broker restart or a network failure, declaring the exchanges,
            // queues, bindings and consumers again.
            ConnectionProperties::default()
                .with_connection_name("damson".into())
                .enable_auto_recover(),
        )
        .await
        .map_err(|e| CommsError::Other(format!("cannot connect to RabbitMQ at {url}: {e}")))?;
        let channel = connection.create_channel().await.map_err(broker)?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(broker)?;
        let task_channel = connection.create_channel().await.map_err(broker)?;
        task_channel
            .basic_qos(options.prefetch, BasicQosOptions::default())
            .await
            .map_err(broker)?;
        let exchange = ExchangeDeclareOptions {
            auto_delete: options.testing,
            ..Default::default()
        };
        for name in [&options.message_exchange, &options.task_exchange] {
            channel
                .exchange_declare(
                    name.as_str().into(),
                    ExchangeKind::Topic,
                    exchange,
                    FieldTable::default(),
                )
                .await
                .map_err(broker)?;
        }
        let reply_queue = format!(
            "{}-reply-{}",
            options.message_exchange,
            uuid::Uuid::new_v4()
        );
        channel
            .queue_declare(
                reply_queue.as_str().into(),
                QueueDeclareOptions {
                    exclusive: true,
                    auto_delete: true,
                    ..Default::default()
                },
                table(&[("x-expires", QUEUE_EXPIRES_MS)]),
            )
            .await
            .map_err(broker)?;
        for exchange in [&options.message_exchange, &options.task_exchange] {
            channel
                .queue_bind(
                    reply_queue.as_str().into(),
                    exchange.as_str().into(),
                    reply_queue.as_str().into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await
                .map_err(broker)?;
        }
        let communicator = Arc::new(Self {
            connection,
            channel,
            task_channel,
            options,
            reply_queue,
            pending: Arc::default(),
            broadcast: Listeners::default(),
            rpc: Mutex::default(),
            tasks: Mutex::default(),
        });
        communicator.consume_replies().await?;
        communicator.consume_broadcasts().await?;
        Ok(communicator)
    }

    async fn consume_replies(&self) -> Result<(), CommsError> {
        let consumer = self
            .channel
            .basic_consume(
                self.reply_queue.as_str().into(),
                format!("{}-consumer", self.reply_queue).as_str().into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(broker)?;
        let (pending, recovery) = (self.pending.clone(), self.channel.clone());
        on_deliveries(consumer, recovery, move |delivery| {
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

    async fn consume_broadcasts(&self) -> Result<(), CommsError> {
        let queue = format!("broadcast-{}", uuid::Uuid::new_v4());
        self.channel
            .queue_declare(
                queue.as_str().into(),
                QueueDeclareOptions {
                    exclusive: true,
                    ..Default::default()
                },
                table(&[("x-message-ttl", MESSAGE_TTL_MS)]),
            )
            .await
            .map_err(broker)?;
        self.channel
            .queue_bind(
                queue.as_str().into(),
                self.options.message_exchange.as_str().into(),
                BROADCAST_TOPIC.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(broker)?;
        let consumer = self
            .channel
            .basic_consume(
                queue.as_str().into(),
                queue.as_str().into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(broker)?;
        let (subscribers, recovery) = (self.broadcast.clone(), self.channel.clone());
        on_deliveries(
            consumer,
            recovery,
            move |delivery| match serde_json::from_slice::<Value>(&delivery.data) {
                Ok(envelope) => subscribers.deliver(&Broadcast::from_envelope(&envelope)),
                Err(_) => tracing::warn!("a broadcast that is not JSON: {:?}", delivery.data),
            },
        );
        Ok(())
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
        let id = uuid::Uuid::new_v4().to_string();
        let (tx, rx) = oneshot::channel();
        self.pending.lock().expect("pending").insert(id.clone(), tx);
        let mut properties = BasicProperties::default()
            .with_reply_to(self.reply_queue.as_str().into())
            .with_correlation_id(id.as_str().into());
        if persistent {
            properties = properties.with_delivery_mode(2);
        }
        let confirm = self
            .channel
            .basic_publish(
                exchange.into(),
                routing_key.into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..Default::default()
                },
                &body,
                properties,
            )
            .await
            .map_err(broker)?
            .await
            .map_err(broker)?;
        if confirm.take_message().is_some() {
            self.pending.lock().expect("pending").remove(&id);
            return Err(if persistent {
                CommsError::NoTaskSubscriber
            } else {
                CommsError::UnroutableRpc(recipient.to_string())
            });
        }
        let response = rx.await.map_err(|_| CommsError::Closed)?;
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
}

/// Send a reply to `reply_to` through `exchange`.
async fn reply(
    channel: &Channel,
    exchange: &str,
    reply_to: Option<&ShortString>,
    correlation_id: Option<&ShortString>,
    response: Value,
) {
    let Some(reply_to) = reply_to else {
        return;
    };
    let mut properties = BasicProperties::default();
    if let Some(id) = correlation_id {
        properties = properties.with_correlation_id(id.clone());
    }
    let body = serde_json::to_vec(&response).expect("JSON values serialise");
    let published = channel
        .basic_publish(
            exchange.into(),
            reply_to.clone(),
            BasicPublishOptions::default(),
            &body,
            properties,
        )
        .await;
    if let Err(e) = published {
        tracing::warn!("cannot send a reply to {}: {e}", reply_to.as_str());
    }
}

#[async_trait]
impl Communicator for RabbitMqCommunicator {
    async fn add_rpc_subscriber(
        &self,
        subscriber: Arc<dyn RpcSubscriber>,
        identifier: Option<String>,
    ) -> Result<String, CommsError> {
        let id = given_or_new(identifier);
        if self.rpc.lock().expect("rpc").contains_key(&id) {
            return Err(CommsError::DuplicateSubscriber {
                kind: "RPC",
                identifier: id,
            });
        }
        // Named by us, not by the broker, so that it is declared again under the same name
        // (with its binding) when the connection recovers.
        let queue = self
            .channel
            .queue_declare(
                format!(
                    "{}-rpc-{id}-{}",
                    self.options.message_exchange,
                    uuid::Uuid::new_v4()
                )
                .as_str()
                .into(),
                QueueDeclareOptions {
                    exclusive: true,
                    ..Default::default()
                },
                table(&[
                    ("x-message-ttl", MESSAGE_TTL_MS),
                    ("x-expires", QUEUE_EXPIRES_MS),
                ]),
            )
            .await
            .map_err(broker)?;
        let queue = queue.name().clone();
        let consumer = self
            .channel
            .basic_consume(
                queue.clone(),
                id.as_str().into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(broker)?;
        self.channel
            .queue_bind(
                queue.clone(),
                self.options.message_exchange.as_str().into(),
                format!("{RPC_TOPIC}.{id}").as_str().into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(broker)?;
        self.rpc
            .lock()
            .expect("rpc")
            .insert(id.clone(), queue.as_str().to_string());
        let (channel, exchange) = (self.channel.clone(), self.options.message_exchange.clone());
        on_deliveries(consumer, channel.clone(), move |delivery| {
            let (subscriber, channel, exchange) =
                (subscriber.clone(), channel.clone(), exchange.clone());
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
                let properties = &delivery.properties;
                reply(
                    &channel,
                    &exchange,
                    properties.reply_to().as_ref(),
                    properties.correlation_id().as_ref(),
                    response,
                )
                .await;
            });
        });
        Ok(id)
    }

    async fn remove_rpc_subscriber(&self, identifier: &str) -> Result<(), CommsError> {
        let queue = self.rpc.lock().expect("rpc").remove(identifier);
        if let Some(queue) = queue {
            self.channel
                .basic_cancel(identifier.into(), BasicCancelOptions::default())
                .await
                .map_err(broker)?;
            // Gone, so that a request to it is returned unroutable rather than left unanswered.
            self.channel
                .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
                .await
                .map_err(broker)?;
        }
        Ok(())
    }

    async fn add_broadcast_subscriber(
        &self,
        subscriber: Arc<dyn BroadcastSubscriber>,
        identifier: Option<String>,
    ) -> Result<String, CommsError> {
        self.broadcast.add(subscriber, identifier)
    }

    async fn remove_broadcast_subscriber(&self, identifier: &str) -> Result<(), CommsError> {
        self.broadcast.remove(identifier);
        Ok(())
    }

    async fn add_task_subscriber(
        &self,
        subscriber: Arc<dyn TaskSubscriber>,
        identifier: Option<String>,
    ) -> Result<String, CommsError> {
        let id = given_or_new(identifier);
        if self.tasks.lock().expect("tasks").contains(&id) {
            return Err(CommsError::DuplicateSubscriber {
                kind: "task",
                identifier: id,
            });
        }
        let mut arguments = vec![("x-message-ttl", TASK_MESSAGE_TTL_MS)];
        if self.options.testing {
            arguments.push(("x-expires", QUEUE_EXPIRES_MS));
        }
        let queue = self.options.task_queue.as_str();
        self.task_channel
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    durable: !self.options.testing,
                    ..Default::default()
                },
                table(&arguments),
            )
            .await
            .map_err(broker)?;
        self.task_channel
            .queue_bind(
                queue.into(),
                self.options.task_exchange.as_str().into(),
                queue.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(broker)?;
        let consumer = self
            .task_channel
            .basic_consume(
                queue.into(),
                id.as_str().into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(broker)?;
        self.tasks.lock().expect("tasks").insert(id.clone());
        let (channel, exchange) = (
            self.task_channel.clone(),
            self.options.task_exchange.clone(),
        );
        on_deliveries(consumer, channel.clone(), move |delivery| {
            let (subscriber, channel, exchange) =
                (subscriber.clone(), channel.clone(), exchange.clone());
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
                let (accepted, on_accept) = Accepted::new();
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
                if !no_reply {
                    let properties = &delivery.properties;
                    reply(
                        &channel,
                        &exchange,
                        properties.reply_to().as_ref(),
                        properties.correlation_id().as_ref(),
                        response,
                    )
                    .await;
                }
            });
        });
        Ok(id)
    }

    async fn remove_task_subscriber(&self, identifier: &str) -> Result<(), CommsError> {
        if self.tasks.lock().expect("tasks").remove(identifier) {
            self.task_channel
                .basic_cancel(identifier.into(), BasicCancelOptions::default())
                .await
                .map_err(broker)?;
        }
        Ok(())
    }

    async fn rpc_send(&self, recipient: &str, body: Value) -> Result<Value, CommsError> {
        let body = serde_json::to_vec(&body).expect("JSON values serialise");
        self.request(
            &self.options.message_exchange,
            &format!("{RPC_TOPIC}.{recipient}"),
            body,
            false,
            recipient,
        )
        .await
    }

    async fn broadcast_send(&self, message: Broadcast) -> Result<(), CommsError> {
        let envelope = message.envelope();
        self.channel
            .basic_publish(
                self.options.message_exchange.as_str().into(),
                BROADCAST_TOPIC.into(),
                BasicPublishOptions::default(),
                &serde_json::to_vec(&envelope).expect("JSON values serialise"),
                BasicProperties::default().with_delivery_mode(1),
            )
            .await
            .map_err(broker)?
            .await
            .map_err(broker)?;
        Ok(())
    }

    async fn task_send(&self, task: Value) -> Result<Value, CommsError> {
        // kiwipy's body: the task and its `no_reply` flag.
        let body = serde_json::to_vec(&json!([task, false])).expect("JSON values serialise");
        self.request(
            &self.options.task_exchange,
            &self.options.task_queue,
            body,
            true,
            &self.options.task_queue,
        )
        .await
    }

    async fn close(&self) {
        let _ = self.connection.close(200, "closing".into()).await;
        self.pending.lock().expect("pending").clear();
    }
}

/// Run `each` on every delivery of `consumer`, on a task of its own, riding out connection
/// failures (until lapin cannot recover).
fn on_deliveries(
    mut consumer: lapin::Consumer,
    channel: Channel,
    mut each: impl FnMut(lapin::message::Delivery) + Send + 'static,
) {
    tokio::spawn(async move {
        while let Some(delivery) = consumer.next().await {
            match delivery {
                Ok(delivery) => each(delivery),
                Err(error) => {
                    if !recover(&channel, error).await {
                        break;
                    }
                }
            }
        }
    });
}

/// After a consumer's error: wait until lapin has recovered the connection (true), or say it
/// cannot (false).
async fn recover(channel: &Channel, error: lapin::Error) -> bool {
    tracing::warn!("RabbitMQ: {error}; waiting for the connection to recover");
    match channel.wait_for_recovery(error).await {
        Ok(()) => true,
        Err(e) => {
            tracing::error!("RabbitMQ: cannot recover: {e}");
            false
        }
    }
}
