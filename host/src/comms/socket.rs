//! The broker-less control endpoint of `damson serve`: a Unix socket in the Damson home
//! directory, over which a [`SocketCommunicator`] reaches the daemon's in-process communicator.
//!
//! The protocol is JSON lines. A request is one line with an `id` and an `op`; the reply is one
//! line with the same `id` and either `result` or `error`:
//!
//! ```text
//! {"id": 1, "op": "rpc", "recipient": "<pid>", "body": {...}}    → {"id": 1, "result": ...}
//! {"id": 2, "op": "task", "body": {...}}                         → {"id": 2, "result": ...}
//! {"id": 3, "op": "broadcast", "body": ..., "sender": ..., "subject": ..., "correlation_id": ...}
//! {"id": 4, "op": "subscribe"}   → {"id": 4, "result": null}, then {"broadcast": {...}} lines
//! ```
//!
//! Only the user who runs the daemon can talk to it: the socket is owner-only (mode 0600) from
//! the moment it can be found at its path, so it acts for the default tenant with no token.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};

use super::{
    Broadcast, BroadcastSubscriber, CommsError, Communicator, Listeners, RpcSubscriber,
    TaskSubscriber,
};

/// Serve `communicator` on a Unix socket at `path`, readable and writable by its owner only,
/// until the returned task is aborted. A stale socket file (no daemon behind it) is replaced;
/// a live one is an error.
pub async fn serve(
    path: &Path,
    communicator: Arc<dyn Communicator>,
) -> Result<tokio::task::JoinHandle<()>, CommsError> {
    if UnixStream::connect(path).await.is_ok() {
        return Err(CommsError::Other(format!(
            "a daemon already listens on {}",
            path.display()
        )));
    }
    let _ = std::fs::remove_file(path);
    let listener = bind_owner_only(path)
        .map_err(|e| CommsError::Other(format!("cannot listen on {}: {e}", path.display())))?;
    Ok(tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(connection(stream, communicator.clone()));
        }
    }))
}

/// A listener at `path` that only its owner can connect to. It is bound under a hidden name,
/// made owner-only and then renamed into place, so that nobody else ever finds it open at
/// `path` (a chmod after binding there would leave a moment when anyone could connect).
fn bind_owner_only(path: &Path) -> std::io::Result<UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    let name = path
        .file_name()
        .map_or_else(|| "damson.sock".into(), |n| n.to_string_lossy());
    let hidden = path.with_file_name(format!(".{name}.{}", std::process::id()));
    let _ = std::fs::remove_file(&hidden);
    let listener = UnixListener::bind(&hidden)?;
    let placed = std::fs::set_permissions(&hidden, std::fs::Permissions::from_mode(0o600))
        .and_then(|()| std::fs::rename(&hidden, path));
    if let Err(e) = placed {
        let _ = std::fs::remove_file(&hidden);
        return Err(e);
    }
    Ok(listener)
}

/// One client: requests in, replies and broadcasts out (through one writer task, so lines
/// never interleave).
async fn connection(stream: UnixStream, communicator: Arc<dyn Communicator>) {
    let (read, mut write) = stream.into_split();
    let (out, mut lines) = mpsc::unbounded_channel::<Value>();
    let writer = tokio::spawn(async move {
        while let Some(line) = lines.recv().await {
            let mut text = line.to_string();
            text.push('\n');
            if write.write_all(text.as_bytes()).await.is_err() {
                break;
            }
        }
    });
    let mut subscriptions = Vec::new();
    let mut reader = BufReader::new(read).lines();
    while let Ok(Some(line)) = reader.next_line().await {
        let Ok(request) = serde_json::from_str::<Value>(&line) else {
            let _ = out.send(json!({"id": null, "error": "the request is not JSON"}));
            continue;
        };
        let id = request.get("id").cloned().unwrap_or(Value::Null);
        let body = request.get("body").cloned().unwrap_or(Value::Null);
        let op = request.get("op").and_then(Value::as_str).unwrap_or("");
        if op == "subscribe" {
            let lines = out.clone();
            let forward = move |message: &Broadcast| {
                let _ = lines.send(json!({"broadcast": message.envelope()}));
            };
            match communicator
                .add_broadcast_subscriber(Arc::new(forward), None)
                .await
            {
                Ok(identifier) => {
                    subscriptions.push(identifier);
                    let _ = out.send(json!({"id": id, "result": null}));
                }
                Err(e) => {
                    let _ = out.send(json!({"id": id, "error": e.to_string()}));
                }
            }
            continue;
        }
        // Each request on its own task: a pause waiting for a step holds up nothing else.
        let (communicator, out, request) = (communicator.clone(), out.clone(), request.clone());
        let op = op.to_string();
        tokio::spawn(async move {
            let result = match op.as_str() {
                "rpc" => {
                    let recipient = request
                        .get("recipient")
                        .and_then(Value::as_str)
                        .unwrap_or("");
                    communicator.rpc_send(recipient, body).await
                }
                "task" => communicator.task_send(body).await,
                "broadcast" => communicator
                    .broadcast_send(Broadcast::from_envelope(&request))
                    .await
                    .map(|()| Value::Null),
                other => Err(CommsError::Other(format!("unknown op '{other}'"))),
            };
            let reply = match result {
                Ok(result) => json!({"id": id, "result": result}),
                Err(e) => json!({"id": id, "error": payload(&e), "kind": kind(&e)}),
            };
            let _ = out.send(reply);
        });
    }
    for identifier in subscriptions {
        let _ = communicator.remove_broadcast_subscriber(&identifier).await;
    }
    drop(out);
    let _ = writer.await;
}

/// What the client rebuilds the error from: the variant's own text, not its whole message
/// (which the rebuilt variant says again).
fn payload(error: &CommsError) -> String {
    match error {
        CommsError::UnroutableRpc(recipient) => recipient.clone(),
        CommsError::TaskFailed(message) => message.clone(),
        other => other.to_string(),
    }
}

/// The error's kind, so the client can rebuild the same [`CommsError`] variant.
fn kind(error: &CommsError) -> &'static str {
    match error {
        CommsError::UnroutableRpc(_) => "unroutable",
        CommsError::NoTaskSubscriber => "no-task-subscriber",
        CommsError::TaskFailed(_) => "task-failed",
        CommsError::Remote { .. } => "remote",
        _ => "other",
    }
}

/// A client of `damson serve`: sends RPC requests, tasks and broadcasts to the daemon, and
/// hears its broadcasts. It has no subscribers of its own for RPC or tasks: the daemon's host
/// answers those.
pub struct SocketCommunicator {
    path: PathBuf,
    requests: mpsc::UnboundedSender<(Value, oneshot::Sender<Value>)>,
    next: AtomicU64,
    broadcast: Listeners,
    subscribed: tokio::sync::OnceCell<()>,
}

impl SocketCommunicator {
    /// Connect to the daemon listening at `path`.
    pub async fn connect(path: &Path) -> Result<Arc<Self>, CommsError> {
        let stream = UnixStream::connect(path).await.map_err(|e| {
            CommsError::Other(format!(
                "no `damson serve` answers at {} ({e}): start one, or pass --broker",
                path.display()
            ))
        })?;
        let (read, mut write) = stream.into_split();
        let (requests, mut queue) = mpsc::unbounded_channel::<(Value, oneshot::Sender<Value>)>();
        let waiting: Arc<Mutex<HashMap<u64, oneshot::Sender<Value>>>> = Arc::default();
        let broadcast = Listeners::default();
        let pending = waiting.clone();
        tokio::spawn(async move {
            while let Some((request, reply)) = queue.recv().await {
                if let Some(id) = request["id"].as_u64() {
                    pending.lock().expect("waiting").insert(id, reply);
                }
                let mut text = request.to_string();
                text.push('\n');
                if write.write_all(text.as_bytes()).await.is_err() {
                    break;
                }
            }
        });
        let subscribers = broadcast.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(read).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let Ok(message) = serde_json::from_str::<Value>(&line) else {
                    continue;
                };
                if let Some(envelope) = message.get("broadcast") {
                    subscribers.deliver(&Broadcast::from_envelope(envelope));
                } else if let Some(id) = message["id"].as_u64() {
                    let waiter = waiting.lock().expect("waiting").remove(&id);
                    if let Some(waiter) = waiter {
                        let _ = waiter.send(message);
                    }
                }
            }
            // The daemon went away: whoever waits hears so.
            waiting.lock().expect("waiting").clear();
        });
        Ok(Arc::new(Self {
            path: path.to_path_buf(),
            requests,
            next: AtomicU64::new(1),
            broadcast,
            subscribed: tokio::sync::OnceCell::new(),
        }))
    }

    async fn request(&self, mut request: Value) -> Result<Value, CommsError> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        request["id"] = json!(id);
        let (tx, rx) = oneshot::channel();
        self.requests
            .send((request, tx))
            .map_err(|_| CommsError::Closed)?;
        let reply = rx.await.map_err(|_| {
            CommsError::Other(format!("the daemon at {} went away", self.path.display()))
        })?;
        if let Some(error) = reply.get("error") {
            let message = error.as_str().unwrap_or("").to_string();
            return Err(match reply["kind"].as_str() {
                Some("unroutable") => CommsError::UnroutableRpc(message),
                Some("no-task-subscriber") => CommsError::NoTaskSubscriber,
                Some("task-failed") => CommsError::TaskFailed(message),
                _ => CommsError::Other(message),
            });
        }
        Ok(reply.get("result").cloned().unwrap_or(Value::Null))
    }
}

#[async_trait]
impl Communicator for SocketCommunicator {
    async fn add_rpc_subscriber(
        &self,
        _subscriber: Arc<dyn RpcSubscriber>,
        _identifier: Option<String>,
    ) -> Result<String, CommsError> {
        Err(CommsError::Other(
            "a client of `damson serve` cannot serve RPC requests".into(),
        ))
    }

    async fn remove_rpc_subscriber(&self, _identifier: &str) -> Result<(), CommsError> {
        Ok(())
    }

    async fn add_broadcast_subscriber(
        &self,
        subscriber: Arc<dyn BroadcastSubscriber>,
        identifier: Option<String>,
    ) -> Result<String, CommsError> {
        self.subscribed
            .get_or_try_init(|| async { self.request(json!({"op": "subscribe"})).await.map(drop) })
            .await?;
        self.broadcast.add(subscriber, identifier)
    }

    async fn remove_broadcast_subscriber(&self, identifier: &str) -> Result<(), CommsError> {
        self.broadcast.remove(identifier);
        Ok(())
    }

    async fn add_task_subscriber(
        &self,
        _subscriber: Arc<dyn TaskSubscriber>,
        _identifier: Option<String>,
    ) -> Result<String, CommsError> {
        Err(CommsError::Other(
            "a client of `damson serve` cannot take tasks".into(),
        ))
    }

    async fn remove_task_subscriber(&self, _identifier: &str) -> Result<(), CommsError> {
        Ok(())
    }

    async fn rpc_send(&self, recipient: &str, body: Value) -> Result<Value, CommsError> {
        self.request(json!({"op": "rpc", "recipient": recipient, "body": body}))
            .await
            .map_err(|e| match e {
                CommsError::UnroutableRpc(_) => CommsError::UnroutableRpc(recipient.to_string()),
                other => other,
            })
    }

    async fn broadcast_send(&self, message: Broadcast) -> Result<(), CommsError> {
        let mut request = message.envelope();
        request["op"] = json!("broadcast");
        self.request(request).await.map(drop)
    }

    async fn task_send(&self, task: Value) -> Result<Value, CommsError> {
        self.request(json!({"op": "task", "body": task})).await
    }

    async fn close(&self) {}
}
