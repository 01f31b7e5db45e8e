//! [`InProcessCommunicator`]: the communicator of one host, with no broker.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use indexmap::IndexMap;
use serde_json::Value;

use super::{
    Accepted, Broadcast, BroadcastSubscriber, CommsError, Communicator, Listeners, RpcSubscriber,
    TaskError, TaskSubscriber, given_or_new,
};

/// Delivers RPC requests, broadcasts and tasks between subscribers of one program. Tasks go to
/// the task subscribers in turn; one that rejects a task passes it to the next.
#[derive(Default)]
pub struct InProcessCommunicator {
    subscribers: Mutex<Subscribers>,
    broadcast: Listeners,
    next_task: AtomicUsize,
    closed: AtomicBool,
}

#[derive(Default)]
struct Subscribers {
    rpc: HashMap<String, Arc<dyn RpcSubscriber>>,
    task: IndexMap<String, Arc<dyn TaskSubscriber>>,
}

impl InProcessCommunicator {
    /// A communicator with no subscribers yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// `Closed` once closed.
    fn open(&self) -> Result<(), CommsError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(CommsError::Closed);
        }
        Ok(())
    }

    fn subscribers(&self) -> Result<std::sync::MutexGuard<'_, Subscribers>, CommsError> {
        self.open()?;
        Ok(self
            .subscribers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()))
    }
}

fn duplicate(kind: &'static str, identifier: String) -> CommsError {
    CommsError::DuplicateSubscriber { kind, identifier }
}

#[async_trait]
impl Communicator for InProcessCommunicator {
    async fn add_rpc_subscriber(
        &self,
        subscriber: Arc<dyn RpcSubscriber>,
        identifier: Option<String>,
    ) -> Result<String, CommsError> {
        let id = given_or_new(identifier);
        let mut s = self.subscribers()?;
        if s.rpc.contains_key(&id) {
            return Err(duplicate("RPC", id));
        }
        s.rpc.insert(id.clone(), subscriber);
        Ok(id)
    }

    async fn remove_rpc_subscriber(&self, identifier: &str) -> Result<(), CommsError> {
        self.subscribers()?.rpc.remove(identifier);
        Ok(())
    }

    async fn add_broadcast_subscriber(
        &self,
        subscriber: Arc<dyn BroadcastSubscriber>,
        identifier: Option<String>,
    ) -> Result<String, CommsError> {
        self.open()?;
        self.broadcast.add(subscriber, identifier)
    }

    async fn remove_broadcast_subscriber(&self, identifier: &str) -> Result<(), CommsError> {
        self.open()?;
        self.broadcast.remove(identifier);
        Ok(())
    }

    async fn add_task_subscriber(
        &self,
        subscriber: Arc<dyn TaskSubscriber>,
        identifier: Option<String>,
    ) -> Result<String, CommsError> {
        let id = given_or_new(identifier);
        let mut s = self.subscribers()?;
        if s.task.contains_key(&id) {
            return Err(duplicate("task", id));
        }
        s.task.insert(id.clone(), subscriber);
        Ok(id)
    }

    async fn remove_task_subscriber(&self, identifier: &str) -> Result<(), CommsError> {
        self.subscribers()?.task.shift_remove(identifier);
        Ok(())
    }

    async fn rpc_send(&self, recipient: &str, body: Value) -> Result<Value, CommsError> {
        let subscriber = self
            .subscribers()?
            .rpc
            .get(recipient)
            .cloned()
            .ok_or_else(|| CommsError::UnroutableRpc(recipient.to_string()))?;
        subscriber
            .call(body)
            .await
            .map_err(|message| CommsError::Remote {
                recipient: recipient.to_string(),
                message,
            })
    }

    async fn broadcast_send(&self, message: Broadcast) -> Result<(), CommsError> {
        self.open()?;
        self.broadcast.deliver(&message);
        Ok(())
    }

    async fn task_send(&self, task: Value) -> Result<Value, CommsError> {
        let subscribers: Vec<_> = self.subscribers()?.task.values().cloned().collect();
        if subscribers.is_empty() {
            return Err(CommsError::NoTaskSubscriber);
        }
        let first = self.next_task.fetch_add(1, Ordering::Relaxed);
        for i in 0..subscribers.len() {
            match subscribers[(first + i) % subscribers.len()]
                .take(task.clone(), Accepted::ignored())
                .await
            {
                Ok(result) => return Ok(result),
                Err(TaskError::Rejected) => continue,
                Err(TaskError::Failed(message)) => return Err(CommsError::TaskFailed(message)),
            }
        }
        Err(CommsError::NoTaskSubscriber)
    }

    async fn close(&self) {
        self.closed.store(true, Ordering::Release);
        let mut s = self
            .subscribers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *s = Subscribers::default();
        self.broadcast.clear();
    }
}
