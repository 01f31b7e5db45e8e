//! The consumers on a connection: replies, broadcasts, each RPC subscriber's queue, the task
//! queue.

use std::sync::{Arc, Weak};

use futures_lite::StreamExt;
use lapin::Channel;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use serde_json::{Value, json};

use super::link::Link;
use super::refusals::dead_letter_queue;
use super::{
    BROADCAST_TOPIC, Inner, MESSAGE_TTL_MS, QUEUE_EXPIRES_MS, RPC_TOPIC, RpcEntry,
    TASK_MESSAGE_TTL_MS, table,
};
use crate::comms::{Accepted, Broadcast, RpcSubscriber, TaskError, TaskSubscriber, codec};

impl Inner {
    pub(super) async fn consume_replies(&self, link: &Arc<Link>) -> Result<(), lapin::Error> {
        let queue = self.reply_queue.as_str();
        declare_exclusive(
            &link.channel,
            queue,
            true,
            &[("x-expires", QUEUE_EXPIRES_MS)],
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
            let response = match codec::decode(&delivery.data) {
                Ok(response) => response,
                Err(e) => {
                    tracing::warn!("a reply that cannot be read: {e}");
                    return;
                }
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

    pub(super) async fn consume_broadcasts(&self, link: &Arc<Link>) -> Result<(), lapin::Error> {
        let queue = self.broadcast_queue.as_str();
        declare_exclusive(
            &link.channel,
            queue,
            false,
            &[("x-message-ttl", MESSAGE_TTL_MS)],
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
        on_deliveries(consumer, link, move |delivery| {
            match codec::decode(&delivery.data) {
                Ok(envelope) => subscribers.deliver(&Broadcast::from_envelope(&envelope)),
                Err(e) => tracing::warn!("a broadcast that cannot be read is dropped: {e}"),
            }
        });
        Ok(())
    }

    /// Declare RPC subscriber `id`'s queue on `link` and answer its requests.
    pub(super) async fn consume_rpc(
        self: &Arc<Self>,
        link: &Arc<Link>,
        id: &str,
        entry: RpcEntry,
    ) -> Result<(), lapin::Error> {
        let queue = entry.queue.as_str();
        declare_exclusive(
            &link.channel,
            queue,
            false,
            &[
                ("x-message-ttl", MESSAGE_TTL_MS),
                ("x-expires", QUEUE_EXPIRES_MS),
            ],
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
            tokio::spawn(
                async move { answer_request(&communicator, &*subscriber, &delivery).await },
            );
        });
        Ok(())
    }

    /// Declare the task queue (durable: RabbitMQ 4 declares no shared transient queue) and its
    /// dead-letter queue, and bind the task queue to the task exchange.
    pub(super) async fn declare_task_queue(&self, link: &Link) -> Result<(), lapin::Error> {
        let mut arguments = vec![("x-message-ttl", TASK_MESSAGE_TTL_MS)];
        let mut dead_arguments = vec![];
        if self.options.testing {
            arguments.push(("x-expires", QUEUE_EXPIRES_MS));
            dead_arguments.push(("x-expires", QUEUE_EXPIRES_MS));
        }
        let durable = QueueDeclareOptions {
            durable: true,
            ..Default::default()
        };
        let queue = self.options.task_queue.as_str();
        link.task_channel
            .queue_declare(queue.into(), durable, table(&arguments))
            .await?;
        let dead = dead_letter_queue(queue);
        link.task_channel
            .queue_declare(dead.as_str().into(), durable, table(&dead_arguments))
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
    pub(super) async fn consume_tasks(
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
                let (task, no_reply) = match codec::decode(&delivery.data) {
                    Ok(Value::Array(mut pair)) if pair.len() == 2 && pair[1].is_boolean() => {
                        let no_reply = pair[1].as_bool().unwrap_or(false);
                        (pair.swap_remove(0), no_reply)
                    }
                    Ok(task) => (task, false),
                    Err(e) => {
                        let Some(communicator) = communicator.upgrade() else {
                            return;
                        };
                        let why = format!("the task cannot be read: {e}");
                        communicator.refuse(&delivery, &why, true).await;
                        return;
                    }
                };
                if !no_reply
                    && subscriber.answers_later(&task)
                    && let Some(communicator) = communicator.upgrade()
                {
                    let exchange = &communicator.options.task_exchange;
                    let pending = json!({"pending": null});
                    communicator
                        .reply(exchange, &delivery.properties, with_host(pending))
                        .await;
                }
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
                        if let Some(communicator) = communicator.upgrade() {
                            communicator.pass_on(&delivery, no_reply).await;
                        }
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
                        .reply(exchange, &delivery.properties, with_host(response))
                        .await;
                }
            });
        });
        Ok(())
    }
}

/// A reply to a task, with who answered it, as kiwipy adds it (`host: {hostname, pid}`).
pub(super) fn with_host(mut response: Value) -> Value {
    static HOST: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    let host = HOST.get_or_init(|| {
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|name| name.trim().to_string())
            .unwrap_or_else(|_| "localhost".into());
        json!({"hostname": hostname, "pid": std::process::id()})
    });
    response["host"] = host.clone();
    response
}

/// Declare `queue` exclusive to this connection (RabbitMQ 4 declares no shared transient queue;
/// an exclusive one goes with its connection), with these arguments; `auto_delete` also when its
/// consumer goes, as kiwipy's reply queue is.
async fn declare_exclusive(
    channel: &Channel,
    queue: &str,
    auto_delete: bool,
    arguments: &[(&str, i32)],
) -> Result<(), lapin::Error> {
    let options = QueueDeclareOptions {
        exclusive: true,
        auto_delete,
        ..Default::default()
    };
    channel
        .queue_declare(queue.into(), options, table(arguments))
        .await?;
    Ok(())
}

/// Bind `queue` to `exchange` under `routing_key`.
pub(super) async fn bind(
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
pub(super) async fn consume(
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
pub(super) fn on_deliveries(
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

/// Acknowledge one request to an RPC subscriber and answer it (after a pending reply where the
/// subscriber answers later, as plumpy's processes do).
pub(super) async fn answer_request(
    communicator: &Weak<Inner>,
    subscriber: &dyn RpcSubscriber,
    delivery: &Delivery,
) {
    let _ = delivery.ack(BasicAckOptions::default()).await;
    let answer = async {
        let body = match codec::decode(&delivery.data) {
            Ok(body) => body,
            Err(e) => {
                return json!({"exception": format!("the request cannot be read: {e}")});
            }
        };
        if subscriber.answers_later(&body)
            && let Some(communicator) = communicator.upgrade()
        {
            let exchange = &communicator.options.message_exchange;
            let pending = json!({"pending": null});
            communicator
                .reply(exchange, &delivery.properties, pending)
                .await;
        }
        match subscriber.call(body).await {
            Ok(result) => json!({"result": result}),
            Err(message) => json!({"exception": message}),
        }
    };
    let response = answer.await;
    if let Some(communicator) = communicator.upgrade() {
        let exchange = &communicator.options.message_exchange;
        communicator
            .reply(exchange, &delivery.properties, response)
            .await;
    }
}
