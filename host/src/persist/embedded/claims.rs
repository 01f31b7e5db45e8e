//! The embedded store's claims: a row per claimed process in its `claims` table, read and
//! changed inside a write transaction (so that a checkpoint can be written in the same one),
//! and the owners' presence files beside the database.

use std::path::{Path, PathBuf};

use redb::{ReadableTable, TableDefinition, WriteTransaction};

use super::BoxError;
use crate::persist::{Claim, Holder};

/// `tenant \0 pid` → (owner, until in ms since the Unix epoch).
pub(super) const CLAIMS: TableDefinition<&str, (&str, u64)> = TableDefinition::new("claims");

/// The row of process `pid` of `tenant` in [`CLAIMS`].
pub(super) fn row(tenant: &str, pid: &str) -> String {
    format!("{tenant}\0{pid}")
}

/// Claim `row` for `owner` until `until_ms` (see `Persister::claim`); `owners` is the
/// directory of the presence files.
pub(super) fn take(
    txn: &WriteTransaction,
    row: &str,
    owner: &str,
    now_ms: u64,
    until_ms: u64,
    owners: &Path,
) -> Result<Claim, BoxError> {
    let mut table = txn.open_table(CLAIMS)?;
    let held = match table.get(row)? {
        None => None,
        Some(held) => {
            let (holder, until) = held.value();
            let taken = holder != owner && until >= now_ms && present(owners, holder);
            taken.then(|| Holder {
                owner: holder.to_string(),
                until_ms: until,
            })
        }
    };
    Ok(match held {
        Some(holder) => Claim::Held(holder),
        None => {
            table.insert(row, (owner, until_ms))?;
            Claim::Granted
        }
    })
}

/// Whether `owner` holds the claim `row` (run out or not: nobody else has taken it).
pub(super) fn holds(txn: &WriteTransaction, row: &str, owner: &str) -> Result<bool, BoxError> {
    let table = txn.open_table(CLAIMS)?;
    let holder = table.get(row)?;
    Ok(holder.is_some_and(|held| held.value().0 == owner))
}

/// Give up `owner`'s claim `row`, if it holds it.
pub(super) fn release(txn: &WriteTransaction, row: &str, owner: &str) -> Result<(), BoxError> {
    if holds(txn, row, owner)? {
        txn.open_table(CLAIMS)?.remove(row)?;
    }
    Ok(())
}

/// An owner's presence: its file in the owners' directory, locked (`flock`) while the owner
/// lives. The system lets the lock go when the process ends, however it ends.
pub(super) struct PresenceFile {
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
pub(super) fn join_as(dir: &Path, owner: &str) -> Result<PresenceFile, BoxError> {
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
