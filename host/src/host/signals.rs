//! Signals to a host's processes ([`Host::signal`]), kept in its store until taken
//! ([`StoreInbox`], the host's [`Inbox`]).

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;

use super::Host;
use crate::error::{Error, Result};
use crate::persist::{self, CheckpointKey, MemoryPersister, Persister, Posted, SignalRow};
use crate::process::{Inbox, ProcessRecord, Sent, Signal, refuse_terminated, send_signal};

/// The signals of one tenant's processes, in a store: the host's, or one in memory for a host
/// without a store (kept as long as the host).
pub(crate) struct StoreInbox {
    store: Arc<dyn Persister>,
    tenant: String,
}

impl StoreInbox {
    /// The inbox of `tenant`'s processes in `store` (in memory when `None`).
    pub(crate) fn new(store: Option<Arc<dyn Persister>>, tenant: &str) -> Self {
        Self {
            store: store.unwrap_or_else(|| Arc::new(MemoryPersister::new())),
            tenant: tenant.to_string(),
        }
    }

    fn failed(pid: &str, doing: &str) -> impl FnOnce(persist::PersistError) -> Error {
        let doing = format!("{doing} process {pid}");
        move |source| Error::Store {
            doing,
            source: Box::new(source),
        }
    }
}

#[async_trait]
impl Inbox for StoreInbox {
    async fn post(&self, pid: &str, signal: &Signal) -> Result<Sent> {
        let sent_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let row = SignalRow {
            seq: 0,
            event: signal.event.clone(),
            data: signal.data.as_ref().map(ToString::to_string),
            key: signal.key.clone(),
            sent_ms,
        };
        let posted = self
            .store
            .post_signal(&self.tenant, pid, &row)
            .await
            .map_err(Self::failed(pid, "storing a signal to"))?;
        Ok(match posted {
            Posted::Queued { seq } => Sent::Queued { seq },
            Posted::Duplicate { seq } => Sent::Duplicate { seq },
        })
    }

    async fn received(&self, pid: &str) -> Result<Vec<(u64, Signal)>> {
        let rows = self
            .store
            .signals(&self.tenant, pid, 0)
            .await
            .map_err(Self::failed(pid, "reading the signals sent to"))?;
        rows.into_iter()
            .map(|row| {
                let data = row
                    .data
                    .map(|text| serde_json::from_str(&text))
                    .transpose()
                    .map_err(|e| Error::Store {
                        doing: format!("reading signal {} sent to process {pid}", row.seq),
                        source: Box::new(persist::PersistError::Backend {
                            location: self.store.summary(),
                            source: Box::new(e),
                        }),
                    })?;
                let signal = Signal {
                    event: row.event,
                    data,
                    key: row.key,
                };
                Ok((row.seq, signal))
            })
            .collect()
    }
}

impl Host {
    /// Send `signal` to process `pid`: stored first (in the host's store, or in memory without
    /// one), then taken by the process's wait for its event — now if it waits for it, or when
    /// it next does (see [`Signal`]). A process in the store that runs on no host yet takes it
    /// once it is continued.
    ///
    /// # Errors
    /// [`Error::Terminated`] when the process has terminated; [`Error::NoCheckpoint`] when
    /// neither this host nor its store has it; [`Error::Store`] when the signal cannot be
    /// stored (then it is not sent) or the process looked up.
    pub async fn signal(&self, pid: &str, signal: &Signal) -> Result<Sent> {
        if let Some(process) = self.process(pid) {
            return send_signal(&*self.inner.inbox, &process, signal).await;
        }
        let key = CheckpointKey::of(self.tenant(), pid);
        let found = match self.store() {
            Some(store) => persist::load_checked::<ProcessRecord>(&**store, &key)
                .await
                .map_err(StoreInbox::failed(pid, "looking for"))?,
            None => None,
        };
        let Some(body) = found else {
            return Err(Error::NoCheckpoint {
                store: self
                    .store()
                    .map_or_else(|| "no store".to_string(), |s| s.summary()),
                key,
            });
        };
        refuse_terminated(pid, body.record.state)?;
        self.inner.inbox.post(pid, signal).await
    }
}
