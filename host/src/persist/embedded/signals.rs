//! The embedded store's signals: a row per signal in its `signals` table, and the keys already
//! used in `signal_keys`, read and written inside one write transaction (so that a post checks
//! its key and stores the signal in one step).

use redb::{ReadTransaction, ReadableTable, TableDefinition, WriteTransaction};

use super::{BoxError, from_bytes, open_existing, to_bytes};
use crate::persist::{Posted, SignalRow};

/// (tenant, pid, seq) → the [`SignalRow`] (postcard), oldest first.
pub(super) const SIGNALS: TableDefinition<(&str, &str, u64), &[u8]> =
    TableDefinition::new("signals");
/// (tenant, pid, idempotency key) → the seq of the signal that used it.
pub(super) const SIGNAL_KEYS: TableDefinition<(&str, &str, &str), u64> =
    TableDefinition::new("signal_keys");

/// Store `signal` for process `pid` of `tenant` (see `Persister::post_signal`).
pub(super) fn post(
    txn: &WriteTransaction,
    tenant: &str,
    pid: &str,
    signal: &SignalRow,
) -> Result<Posted, BoxError> {
    let mut keys = txn.open_table(SIGNAL_KEYS)?;
    if let Some(key) = &signal.key
        && let Some(earlier) = keys.get((tenant, pid, key.as_str()))?
    {
        return Ok(Posted::Duplicate {
            seq: earlier.value(),
        });
    }
    let mut signals = txn.open_table(SIGNALS)?;
    let last = signals
        .range((tenant, pid, 0)..=(tenant, pid, u64::MAX))?
        .next_back()
        .transpose()?
        .map_or(0, |(key, _)| key.value().2);
    let seq = last + 1;
    let row = SignalRow {
        seq,
        ..signal.clone()
    };
    signals.insert((tenant, pid, seq), to_bytes(&row)?.as_slice())?;
    if let Some(key) = &signal.key {
        keys.insert((tenant, pid, key.as_str()), seq)?;
    }
    Ok(Posted::Queued { seq })
}

/// The signals of process `pid` of `tenant` after `after_seq`, oldest first.
pub(super) fn after(
    txn: &ReadTransaction,
    tenant: &str,
    pid: &str,
    after_seq: u64,
) -> Result<Vec<SignalRow>, BoxError> {
    let (Some(signals), Some(from)) = (open_existing(txn, SIGNALS)?, after_seq.checked_add(1))
    else {
        return Ok(Vec::new());
    };
    let mut rows = Vec::new();
    for entry in signals.range((tenant, pid, from)..=(tenant, pid, u64::MAX))? {
        let (_, row) = entry?;
        rows.push(from_bytes("signal", row.value())?);
    }
    Ok(rows)
}

/// Remove every signal (and key) of process `pid` of `tenant`, or of all its processes with
/// `None`.
pub(super) fn remove(
    txn: &WriteTransaction,
    tenant: &str,
    pid: Option<&str>,
) -> Result<(), BoxError> {
    let mut signals = txn.open_table(SIGNALS)?;
    let mut keys = txn.open_table(SIGNAL_KEYS)?;
    match pid {
        Some(pid) => {
            signals.retain_in((tenant, pid, 0)..=(tenant, pid, u64::MAX), |_, _| false)?;
            // Pids hold no NUL: `pid\0` is the first pid after this one.
            let next = format!("{pid}\0");
            keys.retain_in((tenant, pid, "")..(tenant, next.as_str(), ""), |_, _| false)?;
        }
        None => {
            // Tenant names hold no NUL: every key of the tenant sorts below `tenant\0`.
            let after = format!("{tenant}\0");
            signals.retain_in((tenant, "", 0)..(after.as_str(), "", 0), |_, _| false)?;
            keys.retain_in((tenant, "", "")..(after.as_str(), "", ""), |_, _| false)?;
        }
    }
    Ok(())
}
