//! Recovery: continuing the processes a host left in the store — all of them when a host starts
//! again, or those whose host died when a worker looks for work.

use std::sync::Arc;

use super::{Host, index};
use crate::error::{Error, Result, chain};
use crate::persist::{Persister, SummaryFilter};
use crate::process::ProcessHandle;

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

/// What [`Host::stored_pids`] found.
type Listed = (
    Arc<dyn Persister>,
    Vec<String>,
    Vec<(String, crate::persist::PersistError)>,
);

impl Host {
    /// Continue every process in the store that had not terminated: what a host does when it
    /// starts again after it stopped or died.
    ///
    /// # Errors
    /// [`Error::NoStore`], or [`Error::Store`] when the store cannot be listed; a process that
    /// cannot be continued is in [`Recovered::failed`].
    pub async fn recover(&self) -> Result<Recovered> {
        let live = SummaryFilter {
            live: true,
            ..SummaryFilter::default()
        };
        let (_, pids, damaged) = self.stored_pids(&live).await?;
        let mut recovered = Recovered::default();
        for (pid, source) in damaged {
            let error = Error::Store {
                doing: format!("reading the checkpoint of process {pid}"),
                source: Box::new(source),
            };
            tracing::error!(%pid, "cannot continue: {}", chain(&error));
            recovered.failed.push((pid, error));
        }
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
        let top_level = SummaryFilter {
            live: true,
            top_level: true,
            ..SummaryFilter::default()
        };
        // A damaged checkpoint is not a worker's to report each round: `recover` reports it.
        let (store, pids, _) = self.stored_pids(&top_level).await?;
        let mut recovered = Recovered::default();
        for pid in pids {
            if self.process(&pid).is_some() {
                continue;
            }
            // Most of these run on live hosts: the claim tells, before the checkpoint is read
            // to continue it.
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

    /// The store, the pids of this tenant's processes that `filter` matches, from the store's
    /// summary index (no checkpoint is read but those not indexed yet), and the unindexed ones
    /// whose checkpoint cannot be read.
    async fn stored_pids(&self, filter: &SummaryFilter) -> Result<Listed> {
        let store = self.store().ok_or(Error::NoStore)?.clone();
        let (rows, damaged) = index::summaries(&*store, self.tenant(), filter)
            .await
            .map_err(|source| Error::Store {
                doing: "listing processes".into(),
                source: Box::new(source),
            })?;
        Ok((store, rows.into_iter().map(|s| s.pid).collect(), damaged))
    }
}
