//! Tasks that cannot be done: answered with an error and kept in a dead-letter queue for an
//! operator to look at — never acknowledged and dropped, never requeued forever.
//!
//! A task that cannot be read, or that is not a task, is refused at once. A task that every
//! subscriber here rejects (kiwipy's `TaskRejected`: not for this worker) goes back to the queue
//! for another worker, counted in a header; after [`MAX_PASSES`] it is refused too, as no worker
//! takes tasks of its kind. The dead-letter queue is `<task queue>.dead-letter`, durable; each
//! message there is the task as it came, with a header saying why it was refused.

use lapin::BasicProperties;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicNackOptions, BasicPublishOptions};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use serde_json::json;

use super::Inner;
use super::consumers::with_host;

/// How many times a task is passed on to other workers before it is refused.
pub(super) const MAX_PASSES: i64 = 5;
/// The header that counts the passes.
const PASSES: &str = "x-damson-passes";
/// The header that says why a task was refused.
const REFUSED: &str = "x-damson-refused";

/// The dead-letter queue of the task queue `task_queue`.
pub(super) fn dead_letter_queue(task_queue: &str) -> String {
    format!("{task_queue}.dead-letter")
}

impl Inner {
    /// Refuse a task for good: keep it in the dead-letter queue saying `why`, tell its sender
    /// (when `reply` and it waits for an answer), and only then acknowledge it. Should it not
    /// be kept (the connection went), it is left unacknowledged, to be delivered again.
    pub(super) async fn refuse(&self, delivery: &Delivery, why: &str, reply: bool) {
        let queue = dead_letter_queue(&self.options.task_queue);
        tracing::warn!("a task is refused ({why}); it is kept in the queue '{queue}'");
        let mut headers = delivery.properties.headers().clone().unwrap_or_default();
        headers.insert(REFUSED.into(), AMQPValue::LongString(why.into()));
        let properties = delivery.properties.clone().with_headers(headers);
        let kept = self
            .publish(
                "",
                &queue,
                BasicPublishOptions::default(),
                &delivery.data,
                properties,
                true,
            )
            .await;
        if let Err(e) = kept {
            tracing::error!("cannot keep a refused task in '{queue}' ({e}): it will come again");
            return;
        }
        if reply {
            let exchange = &self.options.task_exchange;
            let refused = with_host(json!({"exception": why}));
            self.reply(exchange, &delivery.properties, refused).await;
        }
        let _ = delivery.ack(BasicAckOptions::default()).await;
    }

    /// A task no subscriber here takes: back to the queue for another worker, one more pass
    /// counted; refused once it has been passed on [`MAX_PASSES`] times.
    pub(super) async fn pass_on(&self, delivery: &Delivery, no_reply: bool) {
        let passes = passes(delivery.properties.headers()) + 1;
        if passes >= MAX_PASSES {
            let why = format!(
                "no worker takes this task (it was passed on {passes} times): its type is unknown"
            );
            return self.refuse(delivery, &why, !no_reply).await;
        }
        let mut headers = delivery.properties.headers().clone().unwrap_or_default();
        headers.insert(PASSES.into(), AMQPValue::LongLongInt(passes));
        let properties: BasicProperties = delivery.properties.clone().with_headers(headers);
        let exchange = delivery.exchange.as_str();
        let routing_key = delivery.routing_key.as_str();
        let again = self
            .publish(
                exchange,
                routing_key,
                BasicPublishOptions::default(),
                &delivery.data,
                properties,
                true,
            )
            .await;
        match again {
            Ok(_) => {
                let _ = delivery.ack(BasicAckOptions::default()).await;
            }
            Err(_) => {
                let requeue = BasicNackOptions {
                    requeue: true,
                    ..Default::default()
                };
                let _ = delivery.nack(requeue).await;
            }
        }
    }
}

/// How many times the task was passed on before.
fn passes(headers: &Option<FieldTable>) -> i64 {
    let key = ShortString::from(PASSES);
    match headers.as_ref().and_then(|h| h.inner().get(&key)) {
        Some(AMQPValue::LongLongInt(n)) => *n,
        Some(AMQPValue::LongInt(n)) => i64::from(*n),
        _ => 0,
    }
}
