//! Recovery: continuing the processes a host left in the store — all of them when a host starts
//! again, or those whose host died when a worker looks for work.

use std::sync::Arc;

use super::Host;
use crate::error::{Error, Result, chain};
use crate::persist::{self, CheckpointKey, Persister};
use crate::process::{ProcessHandle, ProcessRecord};

/// What [`Host::recover`] did.
#[derive(Debug, Default)]
pub struct Recovered {
    /// The processes continued (each started; a paused one stays paused until played).
    pub resumed: Vec<ProcessHandle>,
    /// Checkpoints that could not be continued, by pid, and why.
    pub failed: Vec<(String, Error)>,
    /// Processes left to the other hosts that run them, by pid ([`Error::Claimed`], naming the
    /// holder).
    pub elsewhere: Vec<(String, Error)>,
}

impl Host {
    /// Continue every process in the store that had not terminated: what a host does when it
    /// starts again after it stopped or died.
    ///
    /// # Errors
    /// [`Error::NoStore`], or [`Error::Store`] when the store cannot be listed; a process that
    /// cannot be continued is in [`Recovered::failed`].
    pub async fn recover(&self) -> Result<Recovered> {
        let (_, pids) = self.stored_pids().await?;
        let mut recovered = Recovered::default();
        for pid in pids {
            match self.continue_process(&pid, None).await {
                Ok(handle) if handle.state().is_terminal() => {}
                Ok(handle) => recovered.resumed.push(handle),
                Err(error @ Error::Claimed { .. }) => recovered.elsewhere.push((pid, error)),
                Err(error) => {
                    tracing::error!(%pid, "cannot continue: {}", chain(&error));
                    recovered.failed.push((pid, error));
                }
            }
        }
        Ok(recovered)
    }

    /// Continue the top-level processes in the store that no live host runs: those that had
    /// not terminated and whose claim has run out (their host died or stopped). Children are
    /// continued by their parents. What a worker does from time to time.
    ///
    /// # Errors
    /// [`Error::NoStore`], or [`Error::Store`] when the store cannot be listed; a process that
    /// cannot be continued is in [`Recovered::failed`].
    pub async fn take_over(&self) -> Result<Recovered> {
        let (store, pids) = self.stored_pids().await?;
        let mut recovered = Recovered::default();
        for pid in pids {
            if self.process(&pid).is_some() {
                continue;
            }
            let key = CheckpointKey::of(self.tenant(), &pid);
            let Ok(Some(body)) = persist::load_checked::<ProcessRecord>(&*store, &key).await else {
                continue;
            };
            let record = body.record;
            if record.state.is_terminal() || record.parent.is_some() {
                continue;
            }
            // Most of these run on live hosts: the claim tells, before the checkpoint is read
            // a second time to continue it.
            let continued = match self.claim(&store, &pid).await {
                Ok(()) => self.continue_process(&pid, None).await,
                Err(e) => Err(e),
            };
            match continued {
                Ok(handle) => recovered.resumed.push(handle),
                Err(Error::Claimed { .. }) => {}
                Err(error) => recovered.failed.push((pid, error)),
            }
        }
        Ok(recovered)
    }

    /// The store, and the pids of the processes it has checkpoints of (untagged, this
    /// tenant's).
    async fn stored_pids(&self) -> Result<(Arc<dyn Persister>, Vec<String>)> {
        let store = self.store().ok_or(Error::NoStore)?.clone();
        let keys = store.list().await.map_err(|source| Error::Store {
            doing: "listing checkpoints".into(),
            source: Box::new(source),
        })?;
        let pids = keys
            .into_iter()
            .filter(|key| key.tag.is_none() && key.tenant == self.tenant())
            .map(|key| key.pid)
            .collect();
        Ok((store, pids))
    }
}
