//! A connection to the broker (`Link`), and the supervisor that replaces it when it is lost and
//! declares everything on the new one.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use lapin::options::{BasicQosOptions, ConfirmSelectOptions, ExchangeDeclareOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties, ExchangeKind};
use tokio::sync::Notify;

use super::{FIRST_BACKOFF, HEALTH_CHECK, Inner, MAX_BACKOFF, redacted};

/// One connection and its two channels.
pub(super) struct Link {
    pub(super) connection: Connection,
    /// Publishing (with confirms), replies, RPC and broadcast consumers.
    pub(super) channel: Channel,
    /// Task consumers, with the prefetch set.
    pub(super) task_channel: Channel,
    pub(super) lost: AtomicBool,
    pub(super) on_lost: Notify,
    /// Closed by us (replaced, or the communicator closed).
    pub(super) closing: AtomicBool,
}

impl Link {
    /// Say the connection is gone (once), so that the supervisor replaces it.
    pub(super) fn lose(&self, why: &dyn std::fmt::Display) {
        if !self.lost.swap(true, Ordering::SeqCst) && !self.closing.load(Ordering::SeqCst) {
            tracing::warn!("RabbitMQ: connection lost ({why}); reconnecting");
            self.on_lost.notify_one();
        }
    }

    pub(super) fn healthy(&self) -> bool {
        !self.lost.load(Ordering::SeqCst)
            && self.connection.status().connected()
            && self.channel.status().connected()
            && self.task_channel.status().connected()
    }

    pub(super) async fn close(&self) {
        // What fails from now on fails because of this, not because the connection was lost.
        self.closing.store(true, Ordering::SeqCst);
        // A dead connection may never answer.
        let closing = self.connection.close(200, "closing".into());
        let _ = tokio::time::timeout(Duration::from_secs(1), closing).await;
    }
}

/// Watch the connection in use; when it is lost, open a new one and declare everything again.
pub(super) async fn supervise(inner: Weak<Inner>, mut link: Arc<Link>) {
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
    pub(super) async fn establish(self: &Arc<Self>) -> Result<Arc<Link>, lapin::Error> {
        let connection = Connection::connect_uri(
            self.uri.clone(),
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

    pub(super) async fn declare_all(
        self: &Arc<Self>,
        link: &Arc<Link>,
    ) -> Result<(), lapin::Error> {
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
}
