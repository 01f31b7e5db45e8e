//! The summary index from the host's side: what a process's summary holds, and reading the
//! index of a store with the processes it has not indexed yet read once and indexed.

use crate::persist::{self, CheckpointKey, PersistError, Persister, ProcessSummary, SummaryFilter};
use crate::process::ProcessRecord;

/// The summary of `record`, as the index keeps it beside its checkpoint.
pub fn summarize(record: &ProcessRecord) -> ProcessSummary {
    ProcessSummary {
        pid: record.pid.clone(),
        plugin: record.plugin.clone(),
        state: record.state.name().to_string(),
        live: !record.state.is_terminal(),
        paused: record.paused,
        failed: record.successful() == Some(false),
        status: record.status.clone(),
        position: record.position.clone(),
        parent: record.parent.clone(),
        ctime: record.ctime,
        waiting_for: record.waiting_for.clone(),
        timer: record.timer,
        sleeping: record.sleeping,
    }
}

/// The summaries of `tenant`'s processes in `store` that match `filter`, oldest first, and the
/// pids and errors of the unindexed ones that could not be read (one damaged checkpoint does not hide
/// the others). An unindexed process (stored before the store kept summaries) is read from
/// its checkpoint once and indexed, so the next reader finds it in the index.
///
/// # Errors
/// When the store cannot be read.
pub async fn summaries(
    store: &dyn Persister,
    tenant: &str,
    filter: &SummaryFilter,
) -> Result<(Vec<ProcessSummary>, Vec<(String, PersistError)>), PersistError> {
    let found = store.summaries(tenant, filter).await?;
    if found.unindexed.is_empty() {
        return Ok((found.rows, Vec::new()));
    }
    let (mut rows, mut damaged) = (found.rows, Vec::new());
    for pid in found.unindexed {
        let key = CheckpointKey::of(tenant, &pid);
        let summary = match persist::load_checked::<ProcessRecord>(store, &key).await {
            Ok(Some(body)) => summarize(&body.record),
            Ok(None) => continue,
            Err(e) => {
                damaged.push((pid, e));
                continue;
            }
        };
        // A save may have come first with a newer summary: then that one is the index's.
        if store.index(tenant, &summary).await? && filter.matches(&summary) {
            rows.push(summary);
        } else if let Some(newer) = store
            .summaries(tenant, filter)
            .await?
            .rows
            .into_iter()
            .find(|s| s.pid == pid)
        {
            rows.push(newer);
        }
    }
    rows.sort_by(|a, b| (a.ctime, &a.pid).cmp(&(b.ctime, &b.pid)));
    Ok((rows, damaged))
}
