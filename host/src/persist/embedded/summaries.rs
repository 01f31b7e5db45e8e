//! The summary index of the embedded store: three tables kept in step with the current
//! checkpoints, in the transactions that write them.

use redb::{ReadTransaction, ReadableTable, TableDefinition, TableHandle, WriteTransaction};

use super::{BoxError, CHECKPOINTS, decode, from_bytes, open_existing, to_bytes};
use crate::persist::{ProcessSummary, Summaries, SummaryFilter};

/// (tenant, pid) → the [`ProcessSummary`] (postcard) of the process's current checkpoint. Its
/// second form: summaries with what a waiting process waits for (the first, `summaries`, is
/// dropped and every current checkpoint indexed again).
const SUMMARIES: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("summaries_2");
/// The summaries before they said what a process waits for.
const FIRST_SUMMARIES: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("summaries");
/// (tenant, pid) of the processes whose summary says they have not terminated: what recovery
/// reads, without the rest.
const LIVE: TableDefinition<(&str, &str), ()> = TableDefinition::new("live");
/// (tenant, pid) of the processes with a current checkpoint and no summary (saved without
/// one, or before the store kept them).
const UNINDEXED: TableDefinition<(&str, &str), ()> = TableDefinition::new("unindexed");

/// Make the summary of process `pid` of `tenant` `summary` (encoded), or mark it unindexed.
pub(super) fn put(
    txn: &WriteTransaction,
    tenant: &str,
    pid: &str,
    summary: Option<(&[u8], bool)>,
) -> Result<(), BoxError> {
    let key = (tenant, pid);
    let (mut summaries, mut live) = (txn.open_table(SUMMARIES)?, txn.open_table(LIVE)?);
    let mut unindexed = txn.open_table(UNINDEXED)?;
    match summary {
        Some((row, alive)) => {
            summaries.insert(key, row)?;
            unindexed.remove(key)?;
            if alive {
                live.insert(key, ())?;
            } else {
                live.remove(key)?;
            }
        }
        None => {
            summaries.remove(key)?;
            live.remove(key)?;
            unindexed.insert(key, ())?;
        }
    }
    Ok(())
}

/// Forget the summary of process `pid` of `tenant` (its current checkpoint is deleted).
pub(super) fn remove(txn: &WriteTransaction, tenant: &str, pid: &str) -> Result<(), BoxError> {
    let key = (tenant, pid);
    txn.open_table(SUMMARIES)?.remove(key)?;
    txn.open_table(LIVE)?.remove(key)?;
    txn.open_table(UNINDEXED)?.remove(key)?;
    Ok(())
}

/// `summary` encoded as stored, with whether it is live.
pub(super) fn encode(summary: &ProcessSummary) -> Result<(Vec<u8>, bool), BoxError> {
    Ok((to_bytes(summary)?, summary.live))
}

/// Give the unindexed process `summary.pid` of `tenant` its summary; `false` when it is not
/// unindexed.
pub(super) fn index(
    txn: &WriteTransaction,
    tenant: &str,
    summary: &ProcessSummary,
) -> Result<bool, BoxError> {
    let waiting = txn
        .open_table(UNINDEXED)?
        .get((tenant, summary.pid.as_str()))?
        .is_some();
    if waiting {
        let (row, live) = encode(summary)?;
        put(txn, tenant, &summary.pid, Some((&row, live)))?;
    }
    Ok(waiting)
}

/// The summaries of `tenant` that match `filter`, and its unindexed processes: from the live
/// set when only live processes are asked for.
pub(super) fn read(
    txn: &ReadTransaction,
    tenant: &str,
    filter: &SummaryFilter,
) -> Result<Summaries, BoxError> {
    // Tenant names hold no NUL: every key of the tenant sorts from (tenant, "") to (tenant\0, "").
    let after = format!("{tenant}\0");
    let range = (tenant, "")..(after.as_str(), "");
    let mut unindexed = Vec::new();
    if let Some(table) = open_existing(txn, UNINDEXED)? {
        for entry in table.range(range.clone())? {
            unindexed.push(entry?.0.value().1.to_string());
        }
    }
    let mut rows = Vec::new();
    let Some(summaries) = open_existing(txn, SUMMARIES)? else {
        return Ok(Summaries::sorted(rows, unindexed));
    };
    let mut keep = |bytes: &[u8]| -> Result<(), BoxError> {
        let summary: ProcessSummary = from_bytes("process summary", bytes)?;
        if filter.matches(&summary) {
            rows.push(summary);
        }
        Ok(())
    };
    if filter.live {
        if let Some(live) = open_existing(txn, LIVE)? {
            for entry in live.range(range)? {
                let (key, _) = entry?;
                if let Some(row) = summaries.get(key.value())? {
                    keep(row.value())?;
                }
            }
        }
    } else {
        for entry in summaries.range(range)? {
            keep(entry?.1.value())?;
        }
    }
    Ok(Summaries::sorted(rows, unindexed))
}

/// A store written before it kept summaries, or kept them in their first form: mark every
/// current checkpoint unindexed, once (the table of this form's existence says it was done).
pub(super) fn upgrade(txn: &WriteTransaction) -> Result<(), BoxError> {
    let (mut has_checkpoints, mut first_form) = (false, false);
    for table in txn.list_tables()? {
        match table.name() {
            "summaries_2" => return Ok(()),
            "summaries" => first_form = true,
            "checkpoints" => has_checkpoints = true,
            _ => {}
        }
    }
    if first_form {
        txn.delete_table(FIRST_SUMMARIES)?;
        txn.delete_table(LIVE)?;
    }
    txn.open_table(SUMMARIES)?;
    if !has_checkpoints {
        return Ok(());
    }
    let current: Vec<_> = {
        let checkpoints = txn.open_table(CHECKPOINTS)?;
        let mut current = Vec::new();
        for entry in checkpoints.iter()? {
            let (key, _) = entry?;
            current.extend(decode(key.value()).filter(|k| k.tag.is_none()));
        }
        current
    };
    txn.open_table(SUMMARIES)?;
    let mut unindexed = txn.open_table(UNINDEXED)?;
    for key in &current {
        unindexed.insert((key.tenant.as_str(), key.pid.as_str()), ())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::persist::{CheckpointKey, EmbeddedPersister, Persister};

    const DEFAULT: &str = "default";

    #[tokio::test(flavor = "multi_thread")]
    async fn a_store_from_before_the_index_has_its_processes_unindexed_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.redb");
        {
            // What an earlier Damson wrote: checkpoints, and no summary tables.
            let db = redb::Database::create(&path).unwrap();
            let txn = db.begin_write().unwrap();
            {
                let mut checkpoints = txn.open_table(CHECKPOINTS).unwrap();
                for key in [
                    CheckpointKey::new("old"),
                    CheckpointKey::new("old").tagged("kept"),
                ] {
                    checkpoints
                        .insert(super::super::encode(&key).as_str(), b"bundle".as_slice())
                        .unwrap();
                }
            }
            txn.commit().unwrap();
        }
        let store = EmbeddedPersister::open(&path).unwrap();
        let found = store
            .summaries("default", &SummaryFilter::default())
            .await
            .unwrap();
        assert_eq!(found.unindexed, ["old"], "the current checkpoint only");
        let summary = ProcessSummary {
            pid: "old".into(),
            plugin: "add".into(),
            state: "WAITING".into(),
            live: true,
            paused: false,
            failed: false,
            status: None,
            position: String::new(),
            parent: None,
            ctime: 1,
            waiting_for: None,
            timer: None,
            sleeping: false,
        };
        assert!(store.index("default", &summary).await.unwrap());
        drop(store);
        // Opening it again does not mark it unindexed a second time.
        let store = EmbeddedPersister::open(&path).unwrap();
        let live = SummaryFilter {
            live: true,
            ..SummaryFilter::default()
        };
        let found = store.summaries("default", &live).await.unwrap();
        assert_eq!((found.rows, found.unindexed), (vec![summary], vec![]));
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn summaries_of_the_first_form_are_dropped_and_their_processes_indexed_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("first.redb");
        {
            // A store whose summaries do not say what a process waits for.
            let db = redb::Database::create(&path).unwrap();
            let txn = db.begin_write().unwrap();
            {
                let key = CheckpointKey::new("waits");
                txn.open_table(CHECKPOINTS)
                    .unwrap()
                    .insert(super::super::encode(&key).as_str(), b"bundle".as_slice())
                    .unwrap();
                let row = (DEFAULT, "waits");
                txn.open_table(FIRST_SUMMARIES)
                    .unwrap()
                    .insert(row, b"first form".as_slice())
                    .unwrap();
                txn.open_table(LIVE).unwrap().insert(row, ()).unwrap();
                txn.open_table(UNINDEXED).unwrap();
            }
            txn.commit().unwrap();
        }
        let store = EmbeddedPersister::open(&path).unwrap();
        let live = SummaryFilter {
            live: true,
            ..SummaryFilter::default()
        };
        let found = store.summaries(DEFAULT, &live).await.unwrap();
        assert_eq!(
            (found.rows, found.unindexed),
            (vec![], vec!["waits".to_string()]),
            "read from its checkpoint again, not from the old row"
        );
    }
}
