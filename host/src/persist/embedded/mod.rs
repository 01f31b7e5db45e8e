//! [`EmbeddedPersister`]: one file, no server (redb).

mod claims;
mod signals;
mod summaries;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use redb::{
    ConcurrencyMode, Database, ReadOnlyTable, ReadTransaction, ReadableDatabase, ReadableTable,
    TableDefinition, TableError,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{
    AuditRow, BoxError, CheckpointKey, Claim, Claiming, Commit, Committed, LogLine, Logged,
    PersistError, Persister, Posted, Presence, ProcessLog, ProcessSummary, Quotas, SignalRow,
    Summaries, SummaryFilter, TenantRow, TokenRow, check_key,
};

/// `tenant \0 pid \0 tag` (empty tag: the untagged checkpoint) → bundle.
const CHECKPOINTS: TableDefinition<&str, &[u8]> = TableDefinition::new("checkpoints");
/// SHA-256 digest (hex) → component bytes.
const PLUGINS: TableDefinition<&str, &[u8]> = TableDefinition::new("plugins");
/// Tenant name → its [`TenantRow`] (postcard).
const TENANTS: TableDefinition<&str, &[u8]> = TableDefinition::new("tenants");
/// Token id → its [`TokenRow`] (postcard).
const TOKENS: TableDefinition<&str, &[u8]> = TableDefinition::new("tokens");
/// Sequence number → the [`AuditRow`] (postcard), oldest first.
const AUDIT: TableDefinition<u64, &[u8]> = TableDefinition::new("audit");
/// (tenant, pid, seq) → the [`LogLine`] (postcard): a process's kept log lines, oldest first.
const LOGS: TableDefinition<(&str, &str, u64), &[u8]> = TableDefinition::new("logs");
/// (tenant, pid) → (the last seq given, the lines dropped) of a process's log.
const LOG_HEADS: TableDefinition<(&str, &str), (u64, u64)> = TableDefinition::new("log_heads");

/// Keeps checkpoints and plugins in one redb file. Every write is in one transaction: it
/// commits whole or not at all, and a crash mid-write leaves the previous state. A
/// [`Commit`] is one transaction; checkpoints, log lines, claims and releases written at once
/// by many processes share one (group commit), each answered once it has committed.
pub struct EmbeddedPersister {
    db: Arc<Database>,
    path: PathBuf,
    /// Checkpoints and log lines are written through it, many in one commit.
    writer: writer::Writer,
}

/// What redb keeps of the file in memory. Small: the kernel's page cache holds the file too,
/// and a host's resident memory must not grow with what it stores (redb's default is 1 GiB).
const CACHE_BYTES: usize = 16 << 20;

impl EmbeddedPersister {
    /// Open the store at `path`, creating the file (and its directory) if needed.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, PersistError> {
        let path = path.as_ref().to_path_buf();
        let backend = |source: BoxError| PersistError::Backend {
            location: path.display().to_string(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| backend(format!("cannot create its directory: {e}").into()))?;
        }
        // Several `damson` processes may use one store at once (a running host and `damson ps`,
        // two hosts): redb then coordinates with byte-range locks, one write at a time.
        let db = Database::builder()
            .set_concurrency_mode(ConcurrencyMode::MultiWriter)
            .set_cache_size(CACHE_BYTES)
            .create(&path)
            .map_err(|e| backend(e.into()))?;
        let upgrade = || -> Result<(), BoxError> {
            let txn = db.begin_write()?;
            summaries::upgrade(&txn)?;
            Ok(txn.commit()?)
        };
        upgrade().map_err(|e| backend(format!("cannot add its summary index: {e}").into()))?;
        let db = Arc::new(db);
        let writer = writer::Writer::start(db.clone())
            .map_err(|e| backend(format!("cannot start its writer thread: {e}").into()))?;
        Ok(Self { db, path, writer })
    }

    /// Where the owners of claims keep their presence files: `<store>.owners/` beside it.
    fn owners_dir(&self) -> PathBuf {
        let mut name = self.path.file_name().unwrap_or_default().to_os_string();
        name.push(".owners");
        self.path.with_file_name(name)
    }

    fn error(&self, source: impl Into<BoxError>) -> PersistError {
        PersistError::Backend {
            location: self.path.display().to_string(),
            source: source.into(),
        }
    }

    /// Apply `work` in the writer's next transaction (see [`writer`]): its answer, once that
    /// has committed.
    async fn write<T: Send + 'static>(
        &self,
        work: impl Fn(&redb::WriteTransaction) -> Result<T, BoxError> + Send + 'static,
    ) -> Result<T, PersistError> {
        self.writer.write(work).await.map_err(|e| self.error(e))
    }

    /// Run blocking redb work off the async threads.
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Database) -> Result<T, BoxError> + Send + 'static,
    ) -> Result<T, PersistError> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || work(&db))
            .await
            .map_err(|e| self.error(e))?
            .map_err(|e| self.error(e))
    }
}

fn encode(key: &CheckpointKey) -> String {
    format!(
        "{}\0{}\0{}",
        key.tenant,
        key.pid,
        key.tag.as_deref().unwrap_or("")
    )
}

fn decode(text: &str) -> Option<CheckpointKey> {
    let mut parts = text.splitn(3, '\0');
    let (tenant, pid, tag) = (parts.next()?, parts.next()?, parts.next()?);
    Some(CheckpointKey {
        tenant: tenant.into(),
        pid: pid.into(),
        tag: (!tag.is_empty()).then(|| tag.into()),
    })
}

/// Keys of the checkpoints whose encoded key is in `range`, or none if the table is new.
fn keys_in(db: &Database, prefix: Option<String>) -> Result<Vec<CheckpointKey>, BoxError> {
    let txn = db.begin_read()?;
    let table = match txn.open_table(CHECKPOINTS) {
        Ok(table) => table,
        Err(TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut keys = Vec::new();
    let iter = match &prefix {
        // NUL ends a prefix; \x01 sorts right after it.
        Some(prefix) => {
            table.range(format!("{prefix}\0").as_str()..format!("{prefix}\x01").as_str())
        }
        None => table.range::<&str>(..),
    }?;
    for entry in iter {
        let (key, _) = entry?;
        keys.extend(decode(key.value()));
    }
    Ok(keys)
}

/// `table` in `txn`, or `None` if it does not exist yet (nothing was ever written to it).
fn open_existing<K: redb::Key + 'static, V: redb::Value + 'static>(
    txn: &ReadTransaction,
    table: TableDefinition<K, V>,
) -> Result<Option<ReadOnlyTable<K, V>>, BoxError> {
    match txn.open_table(table) {
        Ok(table) => Ok(Some(table)),
        Err(TableError::TableDoesNotExist(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// A row as stored.
fn to_bytes(row: &impl Serialize) -> Result<Vec<u8>, BoxError> {
    Ok(postcard::to_stdvec(row)?)
}

/// A stored row of `what` (e.g. "token"), read back.
fn from_bytes<T: DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T, BoxError> {
    postcard::from_bytes(bytes).map_err(|e| format!("a stored {what} is unusable: {e}").into())
}

/// Every stored token, in id order.
fn all_tokens(db: &Database) -> Result<Vec<TokenRow>, BoxError> {
    let txn = db.begin_read()?;
    let Some(table) = open_existing(&txn, TOKENS)? else {
        return Ok(Vec::new());
    };
    let mut tokens = Vec::new();
    for entry in table.iter()? {
        let (_, row) = entry?;
        tokens.push(from_bytes("token", row.value())?);
    }
    Ok(tokens)
}

/// A checkpoint to write, encoded for the store: the bundle under its key, and for a current
/// checkpoint its summary (or none, leaving it unindexed).
struct Write {
    key: String,
    tenant: String,
    pid: String,
    bundle: Vec<u8>,
    /// `None` for a tagged checkpoint; `Some(None)` for a current one without a summary.
    summary: Option<Option<(Vec<u8>, bool)>>,
}

impl Write {
    fn new(
        key: &CheckpointKey,
        bundle: &[u8],
        summary: Option<&ProcessSummary>,
    ) -> Result<Self, BoxError> {
        let summary = match key.tag {
            Some(_) => None,
            None => Some(summary.map(summaries::encode).transpose()?),
        };
        Ok(Self {
            key: encode(key),
            tenant: key.tenant.clone(),
            pid: key.pid.clone(),
            bundle: bundle.to_vec(),
            summary,
        })
    }

    fn apply(&self, txn: &redb::WriteTransaction) -> Result<(), BoxError> {
        txn.open_table(CHECKPOINTS)?
            .insert(self.key.as_str(), self.bundle.as_slice())?;
        if let Some(summary) = &self.summary {
            let summary = summary.as_ref().map(|(row, live)| (row.as_slice(), *live));
            summaries::put(txn, &self.tenant, &self.pid, summary)?;
        }
        Ok(())
    }
}

/// Log lines to append, encoded for the store.
struct LogRows {
    tenant: String,
    pid: String,
    rows: Vec<Vec<u8>>,
    dropped: u64,
    keep: usize,
}

impl LogRows {
    fn new(tenant: &str, pid: &str, logs: Logged<'_>) -> Result<Self, BoxError> {
        Ok(Self {
            tenant: tenant.to_string(),
            pid: pid.to_string(),
            rows: logs.lines.iter().map(to_bytes).collect::<Result<_, _>>()?,
            dropped: logs.dropped,
            keep: logs.keep,
        })
    }

    /// Append the lines: their numbers and the count of those dropped change with them.
    fn apply(&self, txn: &redb::WriteTransaction) -> Result<(), BoxError> {
        let (tenant, pid) = (self.tenant.as_str(), self.pid.as_str());
        let mut heads = txn.open_table(LOG_HEADS)?;
        let (mut last, mut gone) = heads.get((tenant, pid))?.map_or((0, 0), |h| h.value());
        gone += self.dropped;
        let mut logs = txn.open_table(LOGS)?;
        for row in &self.rows {
            last += 1;
            logs.insert((tenant, pid, last), row.as_slice())?;
        }
        // Lines are numbered without gaps: those below `last - keep` are the oldest.
        let cut = last.saturating_sub(self.keep as u64);
        if cut > 0 {
            logs.retain_in((tenant, pid, 0)..=(tenant, pid, cut), |_, _| {
                gone += 1;
                false
            })?;
        }
        heads.insert((tenant, pid), (last, gone))?;
        Ok(())
    }
}

#[async_trait]
impl Persister for EmbeddedPersister {
    async fn save(
        &self,
        key: &CheckpointKey,
        bundle: &[u8],
        summary: Option<&ProcessSummary>,
    ) -> Result<(), PersistError> {
        check_key(key)?;
        let write = Write::new(key, bundle, summary).map_err(|e| self.error(e))?;
        self.write(move |txn| write.apply(txn).map(|()| true))
            .await
            .map(drop)
    }

    async fn save_claimed(
        &self,
        key: &CheckpointKey,
        bundle: &[u8],
        summary: Option<&ProcessSummary>,
        owner: &str,
    ) -> Result<bool, PersistError> {
        check_key(key)?;
        let row = claims::row(&key.tenant, &key.pid);
        let write = Write::new(key, bundle, summary).map_err(|e| self.error(e))?;
        let owner = owner.to_string();
        // One write transaction: the claim is read and the checkpoint written atomically.
        self.write(move |txn| {
            let held = claims::holds(txn, &row, &owner)?;
            if held {
                write.apply(txn)?;
            }
            Ok(held)
        })
        .await
    }

    async fn commit(&self, commit: &Commit<'_>) -> Result<Committed, PersistError> {
        let key = commit.key;
        check_key(key)?;
        let write = Write::new(key, commit.bundle, commit.summary).map_err(|e| self.error(e))?;
        let logs = (!commit.logs.is_empty())
            .then(|| LogRows::new(&key.tenant, &key.pid, commit.logs))
            .transpose()
            .map_err(|e| self.error(e))?;
        let row = claims::row(&key.tenant, &key.pid);
        let owners = self.owners_dir();
        let claim = match commit.claim {
            Claiming::Unclaimed => None,
            Claiming::Held { owner } | Claiming::Release { owner } => {
                Some((owner.to_string(), None))
            }
            Claiming::Take {
                owner,
                now_ms,
                until_ms,
            } => Some((owner.to_string(), Some((now_ms, until_ms)))),
        };
        let release = matches!(commit.claim, Claiming::Release { .. });
        // One write transaction: the claim taken or checked, the lines, the checkpoint, the
        // claim given up — all of it or none (a refused claim writes nothing).
        self.write(move |txn| {
            if let Some((owner, take)) = &claim {
                match take {
                    Some((now, until)) => {
                        if let Claim::Held(holder) =
                            claims::take(txn, &row, owner, *now, *until, &owners)?
                        {
                            return Ok(Committed::NotHeld(Some(holder)));
                        }
                    }
                    None if !claims::holds(txn, &row, owner)? => {
                        return Ok(Committed::NotHeld(None));
                    }
                    None => {}
                }
            }
            if let Some(logs) = &logs {
                logs.apply(txn)?;
            }
            write.apply(txn)?;
            if let (true, Some((owner, _))) = (release, &claim) {
                claims::release(txn, &row, owner)?;
            }
            Ok(Committed::Written)
        })
        .await
    }

    async fn load(&self, key: &CheckpointKey) -> Result<Option<Vec<u8>>, PersistError> {
        let key = encode(key);
        self.blocking(move |db| {
            let txn = db.begin_read()?;
            let table = match txn.open_table(CHECKPOINTS) {
                Ok(table) => table,
                Err(TableError::TableDoesNotExist(_)) => return Ok(None),
                Err(e) => return Err(e.into()),
            };
            let value = table.get(key.as_str())?;
            Ok(value.map(|v| v.value().to_vec()))
        })
        .await
    }

    async fn list(&self) -> Result<Vec<CheckpointKey>, PersistError> {
        self.blocking(|db| keys_in(db, None)).await
    }

    async fn list_process(
        &self,
        tenant: &str,
        pid: &str,
    ) -> Result<Vec<CheckpointKey>, PersistError> {
        let prefix = format!("{tenant}\0{pid}");
        self.blocking(move |db| keys_in(db, Some(prefix))).await
    }

    async fn summaries(
        &self,
        tenant: &str,
        filter: &SummaryFilter,
    ) -> Result<Summaries, PersistError> {
        let (tenant, filter) = (tenant.to_string(), filter.clone());
        self.blocking(move |db| summaries::read(&db.begin_read()?, &tenant, &filter))
            .await
    }

    async fn index(&self, tenant: &str, summary: &ProcessSummary) -> Result<bool, PersistError> {
        let (tenant, summary) = (tenant.to_string(), summary.clone());
        self.blocking(move |db| {
            let txn = db.begin_write()?;
            let indexed = summaries::index(&txn, &tenant, &summary)?;
            txn.commit()?;
            Ok(indexed)
        })
        .await
    }

    async fn delete(&self, key: &CheckpointKey) -> Result<(), PersistError> {
        let current = key
            .tag
            .is_none()
            .then(|| (key.tenant.clone(), key.pid.clone()));
        let key = encode(key);
        self.blocking(move |db| {
            let txn = db.begin_write()?;
            {
                let mut table = txn.open_table(CHECKPOINTS)?;
                table.remove(key.as_str())?;
            }
            if let Some((tenant, pid)) = current {
                summaries::remove(&txn, &tenant, &pid)?;
            }
            txn.commit().map_err(Into::into)
        })
        .await
    }

    async fn delete_process(&self, tenant: &str, pid: &str) -> Result<(), PersistError> {
        let keys = self.list_process(tenant, pid).await?;
        let (tenant, pid) = (tenant.to_string(), pid.to_string());
        self.blocking(move |db| {
            let txn = db.begin_write()?;
            {
                let mut table = txn.open_table(CHECKPOINTS)?;
                for key in &keys {
                    table.remove(encode(key).as_str())?;
                }
                let (tenant, pid) = (tenant.as_str(), pid.as_str());
                let mut logs = txn.open_table(LOGS)?;
                logs.retain_in((tenant, pid, 0)..=(tenant, pid, u64::MAX), |_, _| false)?;
                txn.open_table(LOG_HEADS)?.remove((tenant, pid))?;
                summaries::remove(&txn, tenant, pid)?;
                signals::remove(&txn, tenant, Some(pid))?;
            }
            txn.commit().map_err(Into::into)
        })
        .await
    }

    async fn save_plugin(&self, digest: &str, component: &[u8]) -> Result<(), PersistError> {
        if self.load_plugin(digest).await?.is_some() {
            return Ok(());
        }
        let (digest, component) = (digest.to_string(), component.to_vec());
        self.blocking(move |db| {
            let txn = db.begin_write()?;
            {
                let mut table = txn.open_table(PLUGINS)?;
                table.insert(digest.as_str(), component.as_slice())?;
            }
            txn.commit().map_err(Into::into)
        })
        .await
    }

    async fn load_plugin(&self, digest: &str) -> Result<Option<Vec<u8>>, PersistError> {
        let digest = digest.to_string();
        self.blocking(move |db| {
            let txn = db.begin_read()?;
            let table = match txn.open_table(PLUGINS) {
                Ok(table) => table,
                Err(TableError::TableDoesNotExist(_)) => return Ok(None),
                Err(e) => return Err(e.into()),
            };
            let value = table.get(digest.as_str())?;
            Ok(value.map(|v| v.value().to_vec()))
        })
        .await
    }

    async fn join(&self, owner: &str) -> Result<Presence, PersistError> {
        let (dir, owner) = (self.owners_dir(), owner.to_string());
        self.blocking(move |_| claims::join_as(&dir, &owner).map(Presence::new))
            .await
    }

    async fn claim(
        &self,
        tenant: &str,
        pid: &str,
        owner: &str,
        now_ms: u64,
        until_ms: u64,
    ) -> Result<Claim, PersistError> {
        let (row, owner) = (claims::row(tenant, pid), owner.to_string());
        let owners = self.owners_dir();
        // Through the writer: claims made at once share a commit (and one with checkpoints).
        self.write(move |txn| claims::take(txn, &row, &owner, now_ms, until_ms, &owners))
            .await
    }

    async fn renew(
        &self,
        owner: &str,
        until_ms: u64,
    ) -> Result<Vec<(String, String)>, PersistError> {
        let owner = owner.to_string();
        self.blocking(move |db| {
            let txn = db.begin_write()?;
            let mine = {
                let mut table = txn.open_table(claims::CLAIMS)?;
                let mine: Vec<String> = table
                    .iter()?
                    .filter_map(Result::ok)
                    .filter(|(_, held)| held.value().0 == owner)
                    .map(|(key, _)| key.value().to_string())
                    .collect();
                for key in &mine {
                    table.insert(key.as_str(), (owner.as_str(), until_ms))?;
                }
                mine
            };
            txn.commit()?;
            Ok(mine
                .into_iter()
                .filter_map(|key| {
                    let (tenant, pid) = key.split_once('\0')?;
                    Some((tenant.to_string(), pid.to_string()))
                })
                .collect())
        })
        .await
    }

    async fn release(&self, tenant: &str, pid: &str, owner: &str) -> Result<(), PersistError> {
        let (row, owner) = (claims::row(tenant, pid), owner.to_string());
        self.write(move |txn| claims::release(txn, &row, &owner))
            .await
    }

    async fn create_tenant(&self, tenant: &TenantRow) -> Result<bool, PersistError> {
        let (name, row) = (
            tenant.name.clone(),
            to_bytes(tenant).map_err(|e| self.error(e))?,
        );
        self.blocking(move |db| {
            let txn = db.begin_write()?;
            {
                let mut table = txn.open_table(TENANTS)?;
                if table.get(name.as_str())?.is_some() {
                    return Ok(false);
                }
                table.insert(name.as_str(), row.as_slice())?;
            }
            txn.commit()?;
            Ok(true)
        })
        .await
    }

    async fn tenants(&self) -> Result<Vec<TenantRow>, PersistError> {
        self.blocking(|db| {
            let txn = db.begin_read()?;
            let Some(table) = open_existing(&txn, TENANTS)? else {
                return Ok(Vec::new());
            };
            let mut tenants = Vec::new();
            for entry in table.iter()? {
                let (_, row) = entry?;
                tenants.push(from_bytes("tenant", row.value())?);
            }
            Ok(tenants)
        })
        .await
    }

    async fn set_quotas(&self, name: &str, quotas: &Quotas) -> Result<bool, PersistError> {
        let (name, quotas) = (name.to_string(), quotas.clone());
        self.blocking(move |db| {
            let txn = db.begin_write()?;
            {
                let mut table = txn.open_table(TENANTS)?;
                let Some(row) = table.get(name.as_str())? else {
                    return Ok(false);
                };
                let mut tenant: TenantRow = from_bytes("tenant", row.value())?;
                drop(row);
                tenant.quotas = quotas;
                table.insert(name.as_str(), to_bytes(&tenant)?.as_slice())?;
            }
            txn.commit()?;
            Ok(true)
        })
        .await
    }

    async fn stored_bytes(&self, tenant: &str) -> Result<u64, PersistError> {
        let tenant = tenant.to_string();
        self.blocking(move |db| {
            let txn = db.begin_read()?;
            let Some(table) = open_existing(&txn, CHECKPOINTS)? else {
                return Ok(0);
            };
            let mut bytes = 0;
            // NUL ends the tenant in a key; \x01 sorts right after it.
            for entry in
                table.range(format!("{tenant}\0").as_str()..format!("{tenant}\x01").as_str())?
            {
                bytes += entry?.1.value().len() as u64;
            }
            Ok(bytes)
        })
        .await
    }

    async fn delete_tenant(&self, name: &str) -> Result<bool, PersistError> {
        let name = name.to_string();
        self.blocking(move |db| {
            // One write transaction: the tenant and its tokens go together.
            let txn = db.begin_write()?;
            {
                let mut tenants = txn.open_table(TENANTS)?;
                if tenants.remove(name.as_str())?.is_none() {
                    return Ok(false);
                }
                let mut tokens = txn.open_table(TOKENS)?;
                let mut theirs = Vec::new();
                for entry in tokens.iter()? {
                    let (id, row) = entry?;
                    let token: TokenRow = from_bytes("token", row.value())?;
                    if token.tenant == name {
                        theirs.push(id.value().to_string());
                    }
                }
                for id in &theirs {
                    tokens.remove(id.as_str())?;
                }
                // Tenant names hold no NUL: every key of the tenant sorts below `name\0`.
                let after = format!("{name}\0");
                let (from, to) = ((name.as_str(), "", 0), (after.as_str(), "", 0));
                txn.open_table(LOGS)?.retain_in(from..to, |_, _| false)?;
                txn.open_table(LOG_HEADS)?
                    .retain_in((from.0, from.1)..(to.0, to.1), |_, _| false)?;
                signals::remove(&txn, &name, None)?;
            }
            txn.commit()?;
            Ok(true)
        })
        .await
    }

    async fn save_token(&self, token: &TokenRow) -> Result<(), PersistError> {
        let (id, row) = (
            token.id.clone(),
            to_bytes(token).map_err(|e| self.error(e))?,
        );
        self.blocking(move |db| {
            let txn = db.begin_write()?;
            {
                let mut table = txn.open_table(TOKENS)?;
                table.insert(id.as_str(), row.as_slice())?;
            }
            txn.commit().map_err(Into::into)
        })
        .await
    }

    async fn token(&self, id: &str) -> Result<Option<TokenRow>, PersistError> {
        let id = id.to_string();
        self.blocking(move |db| {
            let txn = db.begin_read()?;
            let Some(table) = open_existing(&txn, TOKENS)? else {
                return Ok(None);
            };
            let row = table.get(id.as_str())?;
            row.map(|row| from_bytes("token", row.value())).transpose()
        })
        .await
    }

    async fn tokens(&self, tenant: Option<&str>) -> Result<Vec<TokenRow>, PersistError> {
        let mut tokens = self.blocking(all_tokens).await?;
        tokens.retain(|token| tenant.is_none_or(|t| token.tenant == t));
        tokens.sort_by(|a, b| (a.created_ms, &a.id).cmp(&(b.created_ms, &b.id)));
        Ok(tokens)
    }

    async fn append_audit(&self, entry: &AuditRow) -> Result<u64, PersistError> {
        let entry = entry.clone();
        self.blocking(move |db| {
            // One write transaction: redb lets one writer in at a time, so each seq is new.
            let txn = db.begin_write()?;
            let seq = {
                let mut table = txn.open_table(AUDIT)?;
                let seq = match table.last()? {
                    Some((last, _)) => last.value() + 1,
                    None => 1,
                };
                let row = to_bytes(&AuditRow { seq, ..entry })?;
                table.insert(seq, row.as_slice())?;
                seq
            };
            txn.commit()?;
            Ok(seq)
        })
        .await
    }

    async fn audit(
        &self,
        tenant: Option<&str>,
        after: u64,
        limit: usize,
    ) -> Result<Vec<AuditRow>, PersistError> {
        let tenant = tenant.map(str::to_string);
        self.blocking(move |db| {
            let txn = db.begin_read()?;
            let Some(table) = open_existing(&txn, AUDIT)? else {
                return Ok(Vec::new());
            };
            let mut entries = Vec::new();
            let after = (std::ops::Bound::Excluded(after), std::ops::Bound::Unbounded);
            for entry in table.range::<u64>(after)? {
                if entries.len() >= limit {
                    break;
                }
                let (seq, row) = entry?;
                let row: AuditRow = from_bytes("audit entry", row.value())?;
                if tenant.as_deref().is_none_or(|t| row.tenant == t) {
                    entries.push(AuditRow {
                        seq: seq.value(),
                        ..row
                    });
                }
            }
            Ok(entries)
        })
        .await
    }

    async fn append_logs(
        &self,
        tenant: &str,
        pid: &str,
        lines: &[LogLine],
        dropped: u64,
        keep: usize,
    ) -> Result<(), PersistError> {
        let logs = Logged {
            lines,
            dropped,
            keep,
        };
        let rows = LogRows::new(tenant, pid, logs).map_err(|e| self.error(e))?;
        self.write(move |txn| rows.apply(txn)).await
    }

    async fn logs(
        &self,
        tenant: &str,
        pid: &str,
        after_seq: u64,
        limit: usize,
    ) -> Result<ProcessLog, PersistError> {
        let (tenant, pid) = (tenant.to_string(), pid.to_string());
        self.blocking(move |db| {
            let (tenant, pid) = (tenant.as_str(), pid.as_str());
            let txn = db.begin_read()?;
            let Some(heads) = open_existing(&txn, LOG_HEADS)? else {
                return Ok(ProcessLog::default());
            };
            let Some(head) = heads.get((tenant, pid))? else {
                return Ok(ProcessLog::default());
            };
            let dropped = head.value().1;
            let mut lines = Vec::new();
            if let (Some(logs), Some(from)) = (open_existing(&txn, LOGS)?, after_seq.checked_add(1))
            {
                for entry in logs.range((tenant, pid, from)..=(tenant, pid, u64::MAX))? {
                    if lines.len() >= limit {
                        break;
                    }
                    let (key, row) = entry?;
                    let line: LogLine = from_bytes("log line", row.value())?;
                    lines.push(LogLine {
                        seq: key.value().2,
                        ..line
                    });
                }
            }
            Ok(ProcessLog { lines, dropped })
        })
        .await
    }

    async fn post_signal(
        &self,
        tenant: &str,
        pid: &str,
        signal: &SignalRow,
    ) -> Result<Posted, PersistError> {
        let (tenant, pid, signal) = (tenant.to_string(), pid.to_string(), signal.clone());
        self.write(move |txn| signals::post(txn, &tenant, &pid, &signal))
            .await
    }

    async fn signals(
        &self,
        tenant: &str,
        pid: &str,
        after_seq: u64,
    ) -> Result<Vec<SignalRow>, PersistError> {
        let (tenant, pid) = (tenant.to_string(), pid.to_string());
        self.blocking(move |db| signals::after(&db.begin_read()?, &tenant, &pid, after_seq))
            .await
    }

    fn summary(&self) -> String {
        format!("embedded store at {}", self.path.display())
    }
}
