//! [`Commit`]: a process's checkpoint and what goes with it — the log lines logged before it,
//! the claim it is written under, taken with the first checkpoint or given up with the last —
//! as one write (see [`Persister::commit`](super::Persister::commit)). A store that can puts it
//! all in one transaction: one commit where there would be up to four.

use super::{CheckpointKey, Claim, Holder, LogLine, PersistError, Persister, ProcessSummary};

/// One write of a process's checkpoint: what [`Persister::commit`](super::Persister::commit)
/// stores.
#[derive(Debug, Clone, Copy)]
pub struct Commit<'a> {
    /// The checkpoint's key.
    pub key: &'a CheckpointKey,
    /// The bundle to store under it, replacing what was there.
    pub bundle: &'a [u8],
    /// The process's row in the summary index, for a current checkpoint (as in
    /// [`Persister::save`](super::Persister::save)).
    pub summary: Option<&'a ProcessSummary>,
    /// Lines appended to the process's log before the checkpoint is written (as
    /// [`Persister::append_logs`](super::Persister::append_logs) appends them); none by default.
    pub logs: Logged<'a>,
    /// The claim the checkpoint is written under.
    pub claim: Claiming<'a>,
}

/// Log lines to append with a checkpoint ([`Commit::logs`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct Logged<'a> {
    /// The lines, oldest first (their `seq` is ignored).
    pub lines: &'a [LogLine],
    /// Lines logged before them that never reached the store, counted as dropped.
    pub dropped: u64,
    /// How many lines the process keeps.
    pub keep: usize,
}

impl Logged<'_> {
    /// Whether there is nothing to append.
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty() && self.dropped == 0
    }
}

/// The claim a [`Commit`] is written under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claiming<'a> {
    /// None: the checkpoint is written whoever holds the process's claim (a host without
    /// claims).
    Unclaimed,
    /// Written only if `owner` holds the claim, checked in the same atomic step, as
    /// [`Persister::save_claimed`](super::Persister::save_claimed) does.
    Held {
        /// The owner that must hold it.
        owner: &'a str,
    },
    /// The claim taken for `owner` first, as [`Persister::claim`](super::Persister::claim) takes
    /// it; written only if it is granted (a new process's first checkpoint).
    Take {
        /// The owner that claims it.
        owner: &'a str,
        /// Now, in milliseconds since the Unix epoch.
        now_ms: u64,
        /// Until when the claim holds unless renewed.
        until_ms: u64,
    },
    /// Written only if `owner` holds the claim, which it then gives up (a terminated
    /// process's last checkpoint).
    Release {
        /// The owner that must hold it, and releases it.
        owner: &'a str,
    },
}

impl<'a> Claiming<'a> {
    /// The owner the checkpoint is written for, if claims are in play.
    pub fn owner(&self) -> Option<&'a str> {
        match *self {
            Claiming::Unclaimed => None,
            Claiming::Held { owner }
            | Claiming::Take { owner, .. }
            | Claiming::Release { owner } => Some(owner),
        }
    }
}

/// What came of a [`Commit`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Committed {
    /// Everything was written.
    Written,
    /// Nothing was written: the claim is not the owner's — held by this holder, when the store
    /// said whose it is (a refused [`Claiming::Take`]).
    NotHeld(Option<Holder>),
}

/// What [`Persister::commit`](super::Persister::commit) does for a store that has no single
/// atomic step for it: the claim taken, the lines appended, the checkpoint written under the
/// claim, the claim given up — one after another, each atomic. A failure or a refusal part way
/// leaves at most lines without a checkpoint after them, or a claim taken and kept: never a
/// checkpoint without the lines logged before it, nor one written under a claim not held.
pub async fn one_by_one(
    store: &(impl Persister + ?Sized),
    commit: &Commit<'_>,
) -> Result<Committed, PersistError> {
    let (tenant, pid) = (commit.key.tenant.as_str(), commit.key.pid.as_str());
    if let Claiming::Take {
        owner,
        now_ms,
        until_ms,
    } = commit.claim
        && let Claim::Held(holder) = store.claim(tenant, pid, owner, now_ms, until_ms).await?
    {
        return Ok(Committed::NotHeld(Some(holder)));
    }
    if !commit.logs.is_empty() {
        let logs = commit.logs;
        store
            .append_logs(tenant, pid, logs.lines, logs.dropped, logs.keep)
            .await?;
    }
    let Some(owner) = commit.claim.owner() else {
        store
            .save(commit.key, commit.bundle, commit.summary)
            .await?;
        return Ok(Committed::Written);
    };
    if !store
        .save_claimed(commit.key, commit.bundle, commit.summary, owner)
        .await?
    {
        return Ok(Committed::NotHeld(None));
    }
    if let Claiming::Release { owner } = commit.claim {
        store.release(tenant, pid, owner).await?;
    }
    Ok(Committed::Written)
}
