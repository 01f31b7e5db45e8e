//! The host's part of the audit log: the pauses, plays, kills and tasks that arrive through its
//! communicator carry no token, so neither the HTTP API nor the CLI sees them — the host that
//! carries them out appends them to its store's log, under its tenant.

use std::sync::Arc;

use async_trait::async_trait;

use super::claims::now_ms;
use crate::comms::{Control, ControlLog};
use crate::error::chain;
use crate::persist::{AuditRow, Persister};

/// Appends [`Control`]s to the audit log of `store` (with no store, they are only logged).
pub(super) struct Audit {
    pub(super) store: Option<Arc<dyn Persister>>,
    pub(super) tenant: Arc<str>,
}

#[async_trait]
impl ControlLog for Audit {
    async fn record(&self, control: Control) {
        let Control {
            actor,
            action,
            pid,
            outcome,
        } = control;
        let outcome = outcome.err().unwrap_or_else(|| "ok".to_string());
        tracing::info!(target: "damson::audit", %actor, %action, pid = pid.as_deref().unwrap_or("-"), %outcome);
        let Some(store) = &self.store else {
            return;
        };
        let row = AuditRow {
            seq: 0,
            at_ms: now_ms(),
            tenant: self.tenant.to_string(),
            actor,
            action: action.to_string(),
            target: pid,
            outcome,
        };
        if let Err(e) = store.append_audit(&row).await {
            tracing::error!(%action, "cannot append to the audit log: {}", chain(&e));
        }
    }
}
