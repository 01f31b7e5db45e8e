//! [`EmbeddedPersister`]: one file, no server (redb).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use redb::{
    ConcurrencyMode, Database, ReadableDatabase, ReadableTable, TableDefinition, TableError,
};

use super::{BoxError, CheckpointKey, Claim, Holder, PersistError, Persister, Presence, check_key};

/// `tenant \0 pid \0 tag` (empty tag: the untagged checkpoint) → bundle.
const CHECKPOINTS: TableDefinition<&str, &[u8]> = TableDefinition::new("checkpoints");
/// SHA-256 digest (hex) → component bytes.
const PLUGINS: TableDefinition<&str, &[u8]> = TableDefinition::new("plugins");
/// `tenant \0 pid` → (owner, until in ms since the Unix epoch).
const CLAIMS: TableDefinition<&str, (&str, u64)> = TableDefinition::new("claims");

/// Keeps checkpoints and plugins in one redb file. Every write is one transaction: it commits
/// whole or not at all, and a crash mid-write leaves the previous state.
pub struct EmbeddedPersister {
    db: Arc<Database>,
    path: PathBuf,
}

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
            .create(&path)
            .map_err(|e| backend(e.into()))?;
        Ok(Self {
            db: Arc::new(db),
            path,
        })
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

/// An owner's presence: its file in the owners' directory, locked (`flock`) while the owner
/// lives. The system lets the lock go when the process ends, however it ends.
struct PresenceFile {
    file: std::fs::File,
    path: PathBuf,
}

impl Drop for PresenceFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
        let _ = self.file.unlock();
    }
}

fn presence_path(dir: &Path, owner: &str) -> PathBuf {
    dir.join(format!("{}.lock", hex::encode(owner)))
}

/// Lock the presence file of `owner`, making it first if need be.
fn join_as(dir: &Path, owner: &str) -> Result<PresenceFile, BoxError> {
    use std::os::unix::fs::MetadataExt;
    std::fs::create_dir_all(dir)?;
    let path = presence_path(dir, owner);
    loop {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(format!("the owner '{owner}' is present already").into());
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(e.into()),
        }
        // Someone who found the file unlocked (before it was locked here) may have removed it:
        // the lock must be on the file the path names.
        let same = std::fs::metadata(&path).is_ok_and(|m| {
            file.metadata()
                .is_ok_and(|f| f.ino() == m.ino() && f.dev() == m.dev())
        });
        if same {
            return Ok(PresenceFile { file, path });
        }
    }
}

/// Whether `owner` is present: its presence file exists and is locked. A file left unlocked (its
/// process ended without removing it) is removed.
fn present(dir: &Path, owner: &str) -> bool {
    let path = presence_path(dir, owner);
    let Ok(file) = std::fs::File::open(&path) else {
        return false;
    };
    match file.try_lock() {
        Ok(()) => {
            let _ = std::fs::remove_file(&path);
            false
        }
        Err(std::fs::TryLockError::WouldBlock) => true,
        // Cannot tell: count it as present, which is safe (the claim then runs out by time).
        Err(std::fs::TryLockError::Error(_)) => true,
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

#[async_trait]
impl Persister for EmbeddedPersister {
    async fn save(&self, key: &CheckpointKey, bundle: &[u8]) -> Result<(), PersistError> {
        check_key(key)?;
        let (key, bundle) = (encode(key), bundle.to_vec());
        self.blocking(move |db| {
            let txn = db.begin_write()?;
            {
                let mut table = txn.open_table(CHECKPOINTS)?;
                table.insert(key.as_str(), bundle.as_slice())?;
            }
            txn.commit().map_err(Into::into)
        })
        .await
    }

    async fn save_claimed(
        &self,
        key: &CheckpointKey,
        bundle: &[u8],
        owner: &str,
    ) -> Result<bool, PersistError> {
        check_key(key)?;
        let claim = format!("{}\0{}", key.tenant, key.pid);
        let (key, bundle, owner) = (encode(key), bundle.to_vec(), owner.to_string());
        self.blocking(move |db| {
            // One write transaction: the claim is read and the checkpoint written atomically.
            let txn = db.begin_write()?;
            let held = {
                let claims = txn.open_table(CLAIMS)?;
                let holder = claims.get(claim.as_str())?;
                holder.is_some_and(|held| held.value().0 == owner)
            };
            if !held {
                return Ok(false);
            }
            {
                let mut table = txn.open_table(CHECKPOINTS)?;
                table.insert(key.as_str(), bundle.as_slice())?;
            }
            txn.commit()?;
            Ok(true)
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

    async fn delete(&self, key: &CheckpointKey) -> Result<(), PersistError> {
        let key = encode(key);
        self.blocking(move |db| {
            let txn = db.begin_write()?;
            {
                let mut table = txn.open_table(CHECKPOINTS)?;
                table.remove(key.as_str())?;
            }
            txn.commit().map_err(Into::into)
        })
        .await
    }

    async fn delete_process(&self, tenant: &str, pid: &str) -> Result<(), PersistError> {
        let keys = self.list_process(tenant, pid).await?;
        self.blocking(move |db| {
            let txn = db.begin_write()?;
            {
                let mut table = txn.open_table(CHECKPOINTS)?;
                for key in &keys {
                    table.remove(encode(key).as_str())?;
                }
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
        self.blocking(move |_| join_as(&dir, &owner).map(Presence::new))
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
        let (key, owner) = (format!("{tenant}\0{pid}"), owner.to_string());
        let owners = self.owners_dir();
        // One write transaction: redb lets one writer in at a time, across processes too.
        self.blocking(move |db| {
            let txn = db.begin_write()?;
            let claim = {
                let mut table = txn.open_table(CLAIMS)?;
                let held = match table.get(key.as_str())? {
                    None => None,
                    Some(held) => {
                        let (holder, until) = held.value();
                        let taken = holder != owner && until >= now_ms && present(&owners, holder);
                        taken.then(|| Holder {
                            owner: holder.to_string(),
                            until_ms: until,
                        })
                    }
                };
                match held {
                    Some(holder) => Claim::Held(holder),
                    None => {
                        table.insert(key.as_str(), (owner.as_str(), until_ms))?;
                        Claim::Granted
                    }
                }
            };
            txn.commit()?;
            Ok(claim)
        })
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
                let mut table = txn.open_table(CLAIMS)?;
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
        let (key, owner) = (format!("{tenant}\0{pid}"), owner.to_string());
        self.blocking(move |db| {
            let txn = db.begin_write()?;
            {
                let mut table = txn.open_table(CLAIMS)?;
                let mine = table
                    .get(key.as_str())?
                    .is_some_and(|held| held.value().0 == owner);
                if mine {
                    table.remove(key.as_str())?;
                }
            }
            txn.commit().map_err(Into::into)
        })
        .await
    }

    fn summary(&self) -> String {
        format!("embedded store at {}", self.path.display())
    }
}
