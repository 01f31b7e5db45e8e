//! Sending: the connection to send on (waiting while it is replaced), publishing, replies, and
//! requests that wait for their reply.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use lapin::BasicProperties;
use lapin::Confirmation;
use lapin::options::BasicPublishOptions;
use serde_json::Value;
use tokio::sync::oneshot;

use super::link::Link;
use super::{Inner, broker, redacted};
use crate::comms::{CommsError, codec};

impl Inner {
    /// The connection in use, waiting for it while reconnecting (up to the options'
    /// `reconnect_timeout`).
    pub(super) async fn link(&self) -> Result<Arc<Link>, CommsError> {
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
    pub(super) async fn publish(
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
    pub(super) async fn publish_on(
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
    pub(super) async fn reply(&self, exchange: &str, request: &BasicProperties, response: Value) {
        let Some(reply_to) = request.reply_to() else {
            return;
        };
        let mut properties = BasicProperties::default();
        if let Some(id) = request.correlation_id() {
            properties = properties.with_correlation_id(id.clone());
        }
        let body = codec::encode(&response);
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
    pub(super) async fn request(
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
        let one_at_a_time = self.mandatory.lock().await;
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
        drop(one_at_a_time);
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
    pub(super) fn current(&self) -> Option<Arc<Link>> {
        self.link.borrow().clone().filter(|link| link.healthy())
    }
}
