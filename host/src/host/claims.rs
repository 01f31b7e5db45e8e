//! Claims and leases: a host that shares its store claims each process it runs, renews its
//! claims while it lives, and saves a checkpoint only while they are known to hold.

use std::collections::HashSet;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{OnceCell, watch};

use super::Host;
use crate::error::{Error, Result, chain};
use crate::persist::{Claim, Claiming, Committed, PersistError, Persister, Presence};
use crate::process::ProcessHandle;

/// This host's claims in its store.
pub(super) struct Claims {
    /// Who this host is in the store's claims.
    pub(super) owner: String,
    /// How long a claim lasts unrenewed.
    ttl: Duration,
    /// Until when (ms since the Unix epoch) all of this host's claims are known to hold: the
    /// start of the last renewal that succeeded, plus the ttl. A process saves a checkpoint
    /// only before then (see [`Host::holds`]).
    lease: watch::Sender<u64>,
    /// Set once the task that renews the claims runs.
    renewing: OnceLock<()>,
    /// This host's presence in the store, from its first claim on: while it lives (while the
    /// host's process does), its claims hold until they run out; once it is gone, others may
    /// take them at once.
    presence: OnceCell<Presence>,
}

impl Claims {
    pub(super) fn new(ttl: Duration) -> Self {
        Self {
            owner: owner_name(),
            ttl,
            lease: watch::Sender::new(0),
            renewing: OnceLock::new(),
            presence: OnceCell::new(),
        }
    }

    fn ttl_ms(&self) -> u64 {
        self.ttl.as_millis() as u64
    }
}

impl Host {
    /// Claim process `pid` in the store for this host, so that no other host runs it.
    ///
    /// # Errors
    /// [`Error::Claimed`] naming the host that holds its claim, [`Error::Store`] when the store
    /// fails.
    pub(super) async fn claim(&self, store: &Arc<dyn Persister>, pid: &str) -> Result<()> {
        let doing = format!("claiming process {pid}");
        self.claim_with(store, pid, doing, |claiming| async move {
            let Claiming::Take {
                owner,
                now_ms,
                until_ms,
            } = claiming
            else {
                return Ok(Committed::Written);
            };
            Ok(
                match store
                    .claim(self.tenant(), pid, owner, now_ms, until_ms)
                    .await?
                {
                    Claim::Granted => Committed::Written,
                    Claim::Held(holder) => Committed::NotHeld(Some(holder)),
                },
            )
        })
        .await
    }

    /// Claim process `pid` for this host as [`claim`](Self::claim) does, by `write`, which is
    /// given the claim to take ([`Claiming::Unclaimed`] for a host without claims) and answers
    /// whether the store granted it (written) or not, naming the holder if it can — a write
    /// that takes the claim and saves a checkpoint in one step, say. `doing` says what the
    /// write does, for its error.
    ///
    /// # Errors
    /// As [`claim`](Self::claim)'s.
    pub(super) async fn claim_with<'a, W, F>(
        &'a self,
        store: &Arc<dyn Persister>,
        pid: &str,
        doing: String,
        write: W,
    ) -> Result<()>
    where
        W: FnOnce(Claiming<'a>) -> F,
        F: Future<Output = std::result::Result<Committed, PersistError>>,
    {
        let store_error = |doing: String| {
            move |source| Error::Store {
                doing,
                source: Box::new(source),
            }
        };
        let Some(claims) = &self.inner.claims else {
            write(Claiming::Unclaimed)
                .await
                .map_err(store_error(doing))?;
            return Ok(());
        };
        claims
            .presence
            .get_or_try_init(|| store.join(&claims.owner))
            .await
            .map_err(store_error(format!("joining as {}", claims.owner)))?;
        let now = now_ms();
        let claim = write(Claiming::Take {
            owner: &claims.owner,
            now_ms: now,
            until_ms: now + claims.ttl_ms(),
        })
        .await
        .map_err(store_error(doing))?;
        if let Committed::NotHeld(holder) = claim {
            return Err(Error::Claimed {
                pid: pid.to_string(),
                holder,
            });
        }
        // The first claim: the host's claims hold until this one runs out, at the earliest.
        claims.lease.send_if_modified(|lease| {
            let first = *lease == 0;
            if first {
                *lease = now + claims.ttl_ms();
            }
            first
        });
        claims.renewing.get_or_init(|| {
            let (inner, store, ttl) = (Arc::downgrade(&self.inner), store.clone(), claims.ttl);
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(ttl / 3).await;
                    let Some(inner) = inner.upgrade() else {
                        return;
                    };
                    Host { inner }.renew(&store).await;
                }
            });
        });
        Ok(())
    }

    /// Renew this host's claims; a live process whose claim another host has taken since (this
    /// host could not renew it in time: the store was out of reach, or the host stalled) is
    /// abandoned here — the other host runs it now.
    async fn renew(&self, store: &Arc<dyn Persister>) {
        let Some(claims) = &self.inner.claims else {
            return;
        };
        let owner = &claims.owner;
        let started = now_ms();
        let held = match store.renew(owner, started + claims.ttl_ms()).await {
            Ok(held) => held,
            Err(e) => {
                tracing::error!("cannot renew this host's claims: {}", chain(&e));
                return;
            }
        };
        let held: HashSet<&str> = held
            .iter()
            .filter(|(tenant, _)| tenant == self.tenant())
            .map(|(_, pid)| pid.as_str())
            .collect();
        // By pid: a dehydrated process's handle is made only if its claim is in question.
        for pid in self.inner.processes.live_pids() {
            let pid = pid.as_str();
            if held.contains(pid) {
                continue;
            }
            // Not renewed: claimed since the renewal began, or lost. Asking again tells which.
            let now = now_ms();
            match store
                .claim(self.tenant(), pid, owner, now, now + claims.ttl_ms())
                .await
            {
                Ok(Claim::Granted) => {}
                Ok(Claim::Held(_)) => {
                    tracing::warn!(
                        %pid,
                        "another host has taken this process over (this host's claim ran out): it stops here"
                    );
                    if let Some(process) = self.inner.processes.get(pid) {
                        process.abandon();
                    }
                }
                Err(e) => tracing::error!(%pid, "cannot check the claim: {}", chain(&e)),
            }
        }
        claims.lease.send_replace(started + claims.ttl_ms());
    }

    /// Whether `process` may save a checkpoint: true while this host's claims hold; false once
    /// the process is abandoned to another host. While the claims are unconfirmed (a renewal
    /// is late), waits for the next renewal: a host that cannot renew must not write.
    pub(super) async fn holds(&self, process: &ProcessHandle) -> bool {
        let Some(claims) = &self.inner.claims else {
            return true;
        };
        let mut lease = claims.lease.subscribe();
        loop {
            if process.is_abandoned() {
                return false;
            }
            if now_ms() < *lease.borrow_and_update() {
                return true;
            }
            let renewed = lease.changed();
            let _ = tokio::time::timeout(Duration::from_millis(200), renewed).await;
        }
    }

    /// Who this host is in the store's claims, if it claims its processes.
    pub(super) fn claimant(&self) -> Option<&str> {
        self.inner.claims.as_ref().map(|c| c.owner.as_str())
    }

    /// A process has terminated (or was not restored after all): give up its claim.
    pub(super) async fn release(&self, pid: &str) {
        if let (Some(claims), Some(store)) = (&self.inner.claims, self.store())
            && let Err(e) = store.release(self.tenant(), pid, &claims.owner).await
        {
            tracing::warn!(%pid, "cannot release the claim: {}", chain(&e));
        }
    }
}

/// How a host names itself in the store's claims: `damson@<machine>:<os pid>/<id>`, so that an
/// operator told a process is claimed can tell which host holds it.
fn owner_name() -> String {
    let machine = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|name| name.trim().to_string())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".into());
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("damson@{machine}:{}/{}", std::process::id(), &id[..12])
}

/// Milliseconds since the Unix epoch.
pub(super) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
