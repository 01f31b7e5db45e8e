//! `damson audit`: the store's audit log of control and admin operations, oldest first.

use std::process::ExitCode;

use clap::Args;
use serde_json::json;

use super::store::StoreOptions;
use super::{CommonOptions, exit};
use crate::tenancy::Accounts;

/// List the audit log: who did what, to what, when, and how it went.
#[derive(Debug, Args)]
pub(crate) struct AuditCommand {
    /// Only this tenant's entries.
    #[arg(long)]
    tenant: Option<String>,
    /// Only entries after this sequence number.
    #[arg(long, default_value_t = 0)]
    after: u64,
    /// At most this many entries.
    #[arg(long, default_value_t = 1000)]
    limit: usize,
    /// Print a JSON array of {"seq", "at_ms", "tenant", "actor", "action", "target",
    /// "outcome"}.
    #[arg(long)]
    pub(crate) json: bool,
    #[command(flatten)]
    store: StoreOptions,
    #[command(flatten)]
    common: CommonOptions,
}

impl AuditCommand {
    pub(crate) async fn execute(self) -> anyhow::Result<ExitCode> {
        let accounts = Accounts::new(self.store.open_required(&self.common).await?);
        let entries = accounts
            .audit_log(self.tenant.as_deref(), self.after, self.limit)
            .await?;
        if self.json {
            let rows: Vec<_> = entries
                .iter()
                .map(|e| {
                    json!({
                        "seq": e.seq, "at_ms": e.at_ms, "tenant": e.tenant, "actor": e.actor,
                        "action": e.action, "target": e.target, "outcome": e.outcome,
                    })
                })
                .collect();
            println!("{}", serde_json::Value::Array(rows));
            return Ok(ExitCode::from(exit::OK));
        }
        for e in entries {
            let at = humantime::format_rfc3339_millis(
                std::time::UNIX_EPOCH + std::time::Duration::from_millis(e.at_ms),
            );
            println!(
                "{:>6} {at} {:<16} {:<18} {:<16} {:<18} {}",
                e.seq,
                e.tenant,
                e.actor,
                e.action,
                e.target.as_deref().unwrap_or("-"),
                e.outcome
            );
        }
        Ok(ExitCode::from(exit::OK))
    }
}
