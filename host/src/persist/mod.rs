//! Persistence: checkpoint bundles and the persisters that keep them.
//!
//! A [`Persister`] stores checkpoints as opaque bundles (see [`bundle`]) under a
//! [`CheckpointKey`] — tenant, pid and an optional tag — with plumpy's operations: save, load,
//! list all, list a process's, delete one, delete all of a process's. It also stores plugins
//! content-addressed (SHA-256 digest → component bytes), so that any host sharing the store can
//! load the exact component a checkpoint names. Writes are atomic: a failed save leaves the
//! previous checkpoint as it was. Beside its checkpoints, each process has a log: its last
//! lines (the plugin's and the host's), numbered, with a count of those dropped.
//!
//! Backends:
//! - [`MemoryPersister`]: in the process, for tests and short-lived hosts;
//! - [`EmbeddedPersister`]: one file, no server (redb: pure Rust, copy-on-write B-trees with
//!   atomic, crash-safe commits, and several processes may open the same file — so `damson`
//!   commands can read a store a running host writes);
//! - [`PostgresPersister`]: a PostgreSQL database that many hosts share.
//!
//! A host with a store (`Host::with_store`) checkpoints every
//! process into it as its [`ProcessRecord`](crate::ProcessRecord) plus, for snapshot-safe
//! plugins, a memory image of the plugin instance: read one back with
//! `load_checked::<ProcessRecord>`.
//!
//! **Architecture invariant:** stores know bundles and keys, not processes: nothing here uses
//! the rest of the host.

mod accounts;
pub mod bundle;
pub mod commit;
pub mod conformance;
mod embedded;
mod logs;
mod memory;
mod postgres;
mod signals;
mod summary;

use std::sync::Arc;

use async_trait::async_trait;

pub use accounts::{AuditRow, Quotas, TenantRow, TokenRow};
pub use commit::{Claiming, Commit, Committed, Logged};
pub use embedded::EmbeddedPersister;
pub use logs::{LogLevel, LogLine, LogSource, ProcessLog};
pub use memory::MemoryPersister;
pub use postgres::PostgresPersister;
pub use signals::{Posted, SignalRow};
pub use summary::{ProcessSummary, Summaries, SummaryFilter};

/// The tenant everything belongs to until tenants exist.
pub const DEFAULT_TENANT: &str = "default";

/// Which checkpoint: a process's (of a tenant), optionally tagged.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CheckpointKey {
    /// The tenant that owns the process.
    pub tenant: String,
    /// The process id.
    pub pid: String,
    /// `None` is the process's current checkpoint; a tag names a kept one.
    pub tag: Option<String>,
}

impl CheckpointKey {
    /// The current checkpoint of `pid` in the default tenant.
    pub fn new(pid: impl Into<String>) -> Self {
        Self {
            tenant: DEFAULT_TENANT.into(),
            pid: pid.into(),
            tag: None,
        }
    }

    /// The current checkpoint of `pid` of `tenant`.
    pub fn of(tenant: impl Into<String>, pid: impl Into<String>) -> Self {
        Self {
            tenant: tenant.into(),
            pid: pid.into(),
            tag: None,
        }
    }

    /// The same process's checkpoint with this tag.
    pub fn tagged(mut self, tag: impl Into<String>) -> Self {
        self.tag = Some(tag.into());
        self
    }
}

impl std::fmt::Display for CheckpointKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "process {}", self.pid)?;
        if let Some(tag) = &self.tag {
            write!(f, " (tag '{tag}')")?;
        }
        if self.tenant != DEFAULT_TENANT {
            write!(f, " of tenant '{}'", self.tenant)?;
        }
        Ok(())
    }
}

/// The cause of a [`PersistError::Backend`]: the backend's own error.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What went wrong in a persister.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PersistError {
    /// The stored bundle is damaged or of another format.
    #[error("the checkpoint of {key} is unusable")]
    Corrupt {
        /// Whose checkpoint.
        key: CheckpointKey,
        /// What is wrong with it.
        #[source]
        source: bundle::BundleError,
    },
    /// The key cannot be stored.
    #[error("invalid checkpoint key for {key}: {reason}")]
    InvalidKey {
        /// The key.
        key: CheckpointKey,
        /// Why.
        reason: &'static str,
    },
    /// The store itself failed (a database error, a file that cannot be written).
    #[error("the store at '{location}' failed")]
    Backend {
        /// Which store, e.g. its path or URL (without a password).
        location: String,
        /// What went wrong: the database's or the file system's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
}

/// Stores checkpoint bundles and plugins. Implementations must make `save` atomic.
#[async_trait]
pub trait Persister: Send + Sync {
    /// Store `bundle` under `key`, replacing what was there, atomically. For a process's
    /// current (untagged) checkpoint, `summary` is its row in the summary index (see
    /// [`summaries`](Self::summaries)), written in the same atomic step; `None` leaves the
    /// process unindexed until [`index`](Self::index) gives it one. A tagged checkpoint has no
    /// summary: `summary` is ignored.
    async fn save(
        &self,
        key: &CheckpointKey,
        bundle: &[u8],
        summary: Option<&ProcessSummary>,
    ) -> Result<(), PersistError>;
    /// Store `bundle` (and `summary`) under `key` as [`save`](Self::save) does, but only if `owner` holds the
    /// claim of the key's process (see [`claim`](Self::claim)), checked in the same atomic
    /// step; `false`, with nothing written, if it does not. Whether the claim has run out does
    /// not matter here — only that no other owner has taken it — so a host that lost its
    /// process to another can never write over the other's checkpoints.
    async fn save_claimed(
        &self,
        key: &CheckpointKey,
        bundle: &[u8],
        summary: Option<&ProcessSummary>,
        owner: &str,
    ) -> Result<bool, PersistError>;
    /// Write `commit`: the log lines it carries, then its checkpoint under its claim — taken
    /// first, or given up after, as it says — and nothing at all when the claim is not the
    /// owner's. One atomic step where the store has one (the embedded store: one transaction,
    /// shared with the other writes waiting); by default the parts
    /// [one by one](commit::one_by_one), each atomic.
    async fn commit(&self, commit: &Commit<'_>) -> Result<Committed, PersistError> {
        commit::one_by_one(self, commit).await
    }
    /// The bundle stored under `key`, if any (not yet checked: see [`load_checked`]).
    async fn load(&self, key: &CheckpointKey) -> Result<Option<Vec<u8>>, PersistError>;
    /// Every stored checkpoint's key (plumpy's `get_checkpoints`).
    async fn list(&self) -> Result<Vec<CheckpointKey>, PersistError>;
    /// The keys of one process's checkpoints (plumpy's `get_process_checkpoints`).
    async fn list_process(
        &self,
        tenant: &str,
        pid: &str,
    ) -> Result<Vec<CheckpointKey>, PersistError>;
    /// The summaries of `tenant`'s processes that match `filter`, oldest first, read from the
    /// summary index (no bundle is read: the cost follows the rows that match, as far as the
    /// store can select them), and the processes that have a current checkpoint but no
    /// summary yet.
    async fn summaries(
        &self,
        tenant: &str,
        filter: &SummaryFilter,
    ) -> Result<Summaries, PersistError>;
    /// Give process `summary.pid` of `tenant`, which has a current checkpoint and no summary,
    /// this one: what a reader of [`Summaries::unindexed`] does once it has decoded the
    /// checkpoint. `false`, with nothing changed, when the process has a summary already (a
    /// save came first, with a newer one) or no current checkpoint.
    async fn index(&self, tenant: &str, summary: &ProcessSummary) -> Result<bool, PersistError>;
    /// Delete one checkpoint (the current one with its summary); deleting a missing one does
    /// nothing.
    async fn delete(&self, key: &CheckpointKey) -> Result<(), PersistError>;
    /// Delete all of one process's checkpoints, its summary, its log and its signals.
    async fn delete_process(&self, tenant: &str, pid: &str) -> Result<(), PersistError>;
    /// Store a plugin's component under its digest (storing it again does nothing).
    async fn save_plugin(&self, digest: &str, component: &[u8]) -> Result<(), PersistError>;
    /// The component stored under `digest`, if any.
    async fn load_plugin(&self, digest: &str) -> Result<Option<Vec<u8>>, PersistError>;
    /// Announce that `owner` is alive, for as long as the returned [`Presence`] is kept (by the
    /// owner's own process: the embedded store locks a file beside the database, which the
    /// system lets go when the process ends however it ends; PostgreSQL holds an advisory lock
    /// in a session of the owner's own, which ends with its connection — the server notices a
    /// moment after). A host joins before it claims anything.
    async fn join(&self, owner: &str) -> Result<Presence, PersistError>;
    /// Claim process `pid` for `owner` until `until_ms` (milliseconds since the Unix epoch).
    /// Granted when nobody holds it, when its holder's claim ran out before `now_ms`, when its
    /// holder is gone (no [`Presence`]: its process ended, or its session), or when `owner`
    /// holds it already (then it is extended); otherwise the answer names the holder. Claims
    /// keep two hosts sharing a store from running one process at once; a host that dies
    /// stops renewing its claims, and another may take its processes over at once, or, if it
    /// cannot tell the host is gone (a host that stalled, or lost its network), once they run
    /// out.
    async fn claim(
        &self,
        tenant: &str,
        pid: &str,
        owner: &str,
        now_ms: u64,
        until_ms: u64,
    ) -> Result<Claim, PersistError>;
    /// Extend every claim `owner` holds to `until_ms`; the `(tenant, pid)` of each. A claim
    /// that ran out and was taken by another owner is not among them: its process is that
    /// owner's now.
    async fn renew(
        &self,
        owner: &str,
        until_ms: u64,
    ) -> Result<Vec<(String, String)>, PersistError>;
    /// Give up `owner`'s claim of `pid` (nothing happens if it holds none).
    async fn release(&self, tenant: &str, pid: &str, owner: &str) -> Result<(), PersistError>;
    /// Add `tenant`; `false`, with nothing changed, when one of that name exists.
    async fn create_tenant(&self, tenant: &TenantRow) -> Result<bool, PersistError>;
    /// Every tenant, by name.
    async fn tenants(&self) -> Result<Vec<TenantRow>, PersistError>;
    /// A view of this store that the store itself keeps to `tenant`'s rows (PostgreSQL: a
    /// connection acting as the tenant's role, bound by row-level security), or `None` when
    /// the store has no such thing (the embedded and in-memory stores, where the tenant in
    /// every key is what separates tenants).
    async fn scoped(&self, tenant: &str) -> Result<Option<Arc<dyn Persister>>, PersistError> {
        let _ = tenant;
        Ok(None)
    }
    /// Replace the quotas of tenant `name`; `false`, with nothing changed, when there is none.
    async fn set_quotas(&self, name: &str, quotas: &Quotas) -> Result<bool, PersistError>;
    /// The bytes of `tenant`'s checkpoints (current and tagged), as stored.
    async fn stored_bytes(&self, tenant: &str) -> Result<u64, PersistError>;
    /// Remove the tenant `name`, its tokens and its processes' logs; `false` (with nothing
    /// removed) when there was none.
    async fn delete_tenant(&self, name: &str) -> Result<bool, PersistError>;
    /// Store `token` under its id, replacing what was there (a revocation saves it again).
    async fn save_token(&self, token: &TokenRow) -> Result<(), PersistError>;
    /// The token of this id, if any.
    async fn token(&self, id: &str) -> Result<Option<TokenRow>, PersistError>;
    /// Every token, or a tenant's, by creation time (then id).
    async fn tokens(&self, tenant: Option<&str>) -> Result<Vec<TokenRow>, PersistError>;
    /// Append `entry` to the audit log (its `seq` is ignored); the `seq` it was given, greater
    /// than every earlier one.
    async fn append_audit(&self, entry: &AuditRow) -> Result<u64, PersistError>;
    /// Up to `limit` audit entries after `seq` `after` (of one tenant, or all), oldest first.
    async fn audit(
        &self,
        tenant: Option<&str>,
        after: u64,
        limit: usize,
    ) -> Result<Vec<AuditRow>, PersistError>;
    /// Append `lines` to the log of process `pid` of `tenant`, numbering them on from the
    /// last line appended before (their own `seq` is ignored), then keep only the last `keep`
    /// lines of the process, counting those dropped. `dropped` more lines were logged before
    /// `lines` but never reached the store (the host keeps a bound of its own): they are
    /// counted as dropped and take no number. Atomic: all of it or nothing.
    async fn append_logs(
        &self,
        tenant: &str,
        pid: &str,
        lines: &[LogLine],
        dropped: u64,
        keep: usize,
    ) -> Result<(), PersistError>;
    /// Up to `limit` of the kept lines of process `pid` of `tenant` numbered after `after_seq`,
    /// oldest first, and how many of its lines were dropped in all; nothing for a process with
    /// no log.
    async fn logs(
        &self,
        tenant: &str,
        pid: &str,
        after_seq: u64,
        limit: usize,
    ) -> Result<ProcessLog, PersistError>;
    /// Store `signal` for process `pid` of `tenant`, numbered after the process's last one (its
    /// own `seq` is ignored) — unless it has a key and the process has a signal with that key
    /// already: then nothing is stored and the answer names the earlier one. Atomic: the check
    /// and the write are one step, so two posts with one key store one signal.
    async fn post_signal(
        &self,
        tenant: &str,
        pid: &str,
        signal: &SignalRow,
    ) -> Result<Posted, PersistError>;
    /// The signals of process `pid` of `tenant` numbered after `after_seq`, oldest first.
    async fn signals(
        &self,
        tenant: &str,
        pid: &str,
        after_seq: u64,
    ) -> Result<Vec<SignalRow>, PersistError>;
    /// A short description for logs, e.g. "embedded store at /home/me/.damson/store.redb".
    fn summary(&self) -> String;
}

/// The answer to a [`Persister::claim`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The claim is the owner's now.
    Granted,
    /// Another owner holds it.
    Held(Holder),
}

impl Claim {
    /// Whether the claim was granted.
    pub fn is_granted(&self) -> bool {
        matches!(self, Claim::Granted)
    }
}

/// Who holds a claim, and until when unless it is renewed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// The holder, as it named itself (a host names itself `damson@<machine>:<os pid>/<id>`).
    pub owner: String,
    /// Until when the claim holds unless renewed, in milliseconds since the Unix epoch.
    pub until_ms: u64,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let until = std::time::UNIX_EPOCH + std::time::Duration::from_millis(self.until_ms);
        write!(
            f,
            "held by {}, whose claim lasts until {} unless renewed",
            self.owner,
            humantime::format_rfc3339_seconds(until)
        )
    }
}

/// Keeps an owner of claims present in a store while it is kept (see [`Persister::join`]):
/// dropping it, or the end of the process that holds it, makes the owner's claims free.
pub struct Presence {
    _token: Box<dyn std::any::Any + Send + Sync>,
}

impl Presence {
    /// A presence that lasts as long as `token` (a lock, a connection) is kept.
    pub fn new(token: impl std::any::Any + Send + Sync) -> Self {
        Self {
            _token: Box::new(token),
        }
    }
}

impl std::fmt::Debug for Presence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Presence")
    }
}

/// Load and check the bundle under `key`: `Ok(None)` when there is none, an error naming the
/// pid and tag when it is damaged.
pub async fn load_checked<R: for<'de> serde::Deserialize<'de>>(
    persister: &dyn Persister,
    key: &CheckpointKey,
) -> Result<Option<bundle::Body<R>>, PersistError> {
    let Some(bytes) = persister.load(key).await? else {
        return Ok(None);
    };
    bundle::decode_owned(bytes)
        .map(Some)
        .map_err(|source| PersistError::Corrupt {
            key: key.clone(),
            source,
        })
}

/// Keys are stored as text: refuse the characters that would make two keys collide.
pub(crate) fn check_key(key: &CheckpointKey) -> Result<(), PersistError> {
    let invalid = |reason| {
        Err(PersistError::InvalidKey {
            key: key.clone(),
            reason,
        })
    };
    let parts = [
        Some(key.tenant.as_str()),
        Some(key.pid.as_str()),
        key.tag.as_deref(),
    ];
    if parts.iter().flatten().any(|p| p.contains('\0')) {
        return invalid("a tenant, pid or tag cannot contain a NUL character");
    }
    if key.pid.is_empty() || key.tenant.is_empty() {
        return invalid("the tenant and pid cannot be empty");
    }
    if key.tag.as_deref() == Some("") {
        return invalid("a tag cannot be empty (use no tag)");
    }
    Ok(())
}
