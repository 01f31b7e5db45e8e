//! A tenant's stored processes as JSON, the same for the CLI's `ps`, `show`, `checkpoints` and
//! `logs` and for the HTTP API: read from the store, never from a running host.

use serde_json::{Value, json};

use crate::persist::{
    self, CheckpointKey, LogLine, PersistError, Persister, ProcessLog, ProcessSummary,
    SummaryFilter,
};
use crate::{Plugin, ProcessRecord};

/// A stored checkpoint, decoded.
pub struct Stored {
    /// The bundle's size in bytes.
    pub size: usize,
    /// The memory image's size in bytes, if the bundle has one.
    pub image: Option<usize>,
    /// The process record.
    pub record: ProcessRecord,
}

/// The checkpoint under `key`, if there is one.
///
/// # Errors
/// The store failing, or [`PersistError::Corrupt`] naming the key for a damaged bundle.
pub async fn read(
    store: &dyn Persister,
    key: &CheckpointKey,
) -> Result<Option<Stored>, PersistError> {
    let Some(bytes) = store.load(key).await? else {
        return Ok(None);
    };
    let body = persist::bundle::decode::<ProcessRecord>(&bytes).map_err(|source| {
        PersistError::Corrupt {
            key: key.clone(),
            source,
        }
    })?;
    Ok(Some(Stored {
        size: bytes.len(),
        image: body.image.as_ref().map(Vec::len),
        record: body.record,
    }))
}

/// One process as `ps` lists it: {"pid", "plugin", "state", "paused", "status", "position",
/// "parent", "ctime", "waiting_for", "timer", "sleeping"}.
pub fn row(r: &ProcessRecord) -> Value {
    summary_row(&crate::host::index::summarize(r))
}

/// One process as `ps` lists it, from its summary (see [`row`]).
pub fn summary_row(s: &ProcessSummary) -> Value {
    json!({
        "pid": s.pid, "plugin": s.plugin, "state": s.state, "paused": s.paused,
        "status": s.status, "position": s.position, "parent": s.parent, "ctime": s.ctime,
        "waiting_for": s.waiting_for, "timer": s.timer, "sleeping": s.sleeping,
    })
}

/// The processes of `tenant` in `store` that `filter` matches as [`row`]s, oldest first, from
/// the store's summary index, and the errors of those that cannot be read (one damaged
/// checkpoint does not hide the others).
///
/// # Errors
/// When the store cannot be read.
pub async fn processes(
    store: &dyn Persister,
    tenant: &str,
    filter: &SummaryFilter,
) -> Result<(Vec<Value>, Vec<PersistError>), PersistError> {
    let (summaries, damaged) = crate::host::index::summaries(store, tenant, filter).await?;
    let damaged = damaged.into_iter().map(|(_, error)| error).collect();
    Ok((summaries.iter().map(summary_row).collect(), damaged))
}

/// Process `pid` of `tenant` as `show --json` prints it: its record with "children" (each
/// {"pid", "plugin", "state", "successful"}), "checkpoint_bytes", "memory_image_bytes" and
/// "signals" (each {"seq", "event", "data", "key", "sent_ms", "taken"}, oldest first).
/// `None` when the tenant has no such process.
///
/// # Errors
/// The store failing or a damaged checkpoint.
pub async fn process(
    store: &dyn Persister,
    tenant: &str,
    pid: &str,
) -> Result<Option<(Value, Stored)>, PersistError> {
    let Some(stored) = read(store, &CheckpointKey::of(tenant, pid)).await? else {
        return Ok(None);
    };
    let mut children = Vec::new();
    for child in &stored.record.children {
        children.push(match read(store, &CheckpointKey::of(tenant, child)).await? {
            Some(Stored { record: r, .. }) => json!({
                "pid": r.pid, "plugin": r.plugin, "state": r.state, "successful": r.successful(),
            }),
            None => json!({"pid": child, "state": null}),
        });
    }
    let mut json = serde_json::to_value(&stored.record).expect("a record serializes");
    json["children"] = Value::Array(children);
    json["checkpoint_bytes"] = json!(stored.size);
    json["memory_image_bytes"] = json!(stored.image);
    let taken = &stored.record.taken_signals;
    let signals = store.signals(tenant, pid, 0).await?.into_iter().map(|s| {
        let data = s.data.as_deref().map(|text| {
            serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()))
        });
        json!({
            "seq": s.seq, "event": s.event, "data": data, "key": s.key, "sent_ms": s.sent_ms,
            "taken": taken.contains(&s.seq),
        })
    });
    json["signals"] = Value::Array(signals.collect());
    Ok(Some((json, stored)))
}

/// The checkpoints of process `pid` of `tenant` (the current one and tagged ones), each
/// {"tag", "bytes", "memory_image_bytes", "state", "position"}; empty when it has none.
///
/// # Errors
/// The store failing or a damaged checkpoint.
pub async fn checkpoints(
    store: &dyn Persister,
    tenant: &str,
    pid: &str,
) -> Result<Vec<Value>, PersistError> {
    let mut rows = Vec::new();
    for key in &store.list_process(tenant, pid).await? {
        if let Some(stored) = read(store, key).await? {
            rows.push(json!({
                "tag": key.tag, "bytes": stored.size, "memory_image_bytes": stored.image,
                "state": stored.record.state, "position": stored.record.position,
            }));
        }
    }
    Ok(rows)
}

/// A log line as `damson logs --json` prints it: {"seq", "at_ms", "level", "source",
/// "message"}.
pub fn log_line(line: &LogLine) -> Value {
    json!({
        "seq": line.seq, "at_ms": line.at_ms, "level": line.level, "source": line.source,
        "message": line.message,
    })
}

/// Up to `limit` lines of the log of process `pid` of `tenant` numbered after `after`, oldest
/// first, and the count of its lines dropped; `None` when the tenant has no such process (no
/// checkpoint), whatever lines the store may have.
///
/// # Errors
/// The store failing.
pub async fn logs(
    store: &dyn Persister,
    tenant: &str,
    pid: &str,
    after: u64,
    limit: usize,
) -> Result<Option<ProcessLog>, PersistError> {
    if store.list_process(tenant, pid).await?.is_empty() {
        return Ok(None);
    }
    store.logs(tenant, pid, after, limit).await.map(Some)
}

/// A plugin as `describe --json` prints it: `name`, `version`, `digest` (SHA-256 of the
/// component), `world`, `memory_images` (`safe`, `reasons`), `description` (only when the
/// plugin has one), `spec` with `inputs` and `outputs` (each a namespace description: see
/// `damson::ports` `describe`), `exit_codes` and `outline`.
pub fn plugin(plugin: &Plugin) -> Value {
    let spec = plugin.spec();
    let mut description = json!({
        "name": spec.name,
        "version": spec.version,
        "digest": plugin.digest(),
        "world": plugin.world(),
        "memory_images": {
            "safe": plugin.snapshot_safety().is_safe(),
            "reasons": plugin.snapshot_safety().reasons,
        },
        "spec": { "inputs": spec.inputs.description(), "outputs": spec.outputs.description() },
        "exit_codes": spec.exit_codes,
        "outline": spec.outline,
    });
    // As plumpy's `get_description`: the description only when there is one.
    if let Some(text) = &spec.description {
        description["description"] = json!(text);
    }
    description
}
