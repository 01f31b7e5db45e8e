//! `damson token create | list | revoke`: API tokens of a store's tenants, each shown once when
//! it is made; the store keeps only the SHA-256 of its secret.

use std::collections::BTreeSet;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::json;

use super::tenant::On;
use super::{exit, now_ms};
use crate::persist::{DEFAULT_TENANT, TokenRow};
use crate::tenancy::{Accounts, LOCAL_ACTOR, Scope};

/// Manage API tokens.
#[derive(Debug, Args)]
pub(crate) struct TokenCommand {
    #[command(subcommand)]
    action: TokenAction,
}

#[derive(Debug, Subcommand)]
enum TokenAction {
    /// Issue a token and print it, once (it cannot be shown again).
    Create {
        /// The tenant it acts for.
        #[arg(long, default_value = DEFAULT_TENANT)]
        tenant: String,
        /// What it may do: read, submit, control or admin. Repeatable.
        #[arg(long = "scope", value_name = "SCOPE", required = true)]
        scopes: Vec<String>,
        /// A note for people, e.g. who uses it.
        #[arg(long)]
        label: Option<String>,
        /// How long it works, e.g. `30d`, `12h`; for ever when not given.
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
        expires_in: Option<Duration>,
        #[command(flatten)]
        on: On,
    },
    /// List tokens (ids, tenants, scopes, expiry, revocation; never secrets).
    List {
        /// Only this tenant's.
        #[arg(long)]
        tenant: Option<String>,
        /// Print a JSON array of {"id", "tenant", "scopes", "label", "created_ms",
        /// "expires_ms", "revoked_ms"}.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        on: On,
    },
    /// Revoke a token by its id: it stops working at once.
    Revoke {
        /// Its id (as `token list` shows it).
        id: String,
        #[command(flatten)]
        on: On,
    },
}

impl TokenCommand {
    pub(crate) async fn execute(self) -> anyhow::Result<ExitCode> {
        let on = match &self.action {
            TokenAction::Create { on, .. }
            | TokenAction::List { on, .. }
            | TokenAction::Revoke { on, .. } => on,
        };
        let accounts = Accounts::new(on.store.open_required(&on.common).await?);
        match self.action {
            TokenAction::Create {
                tenant,
                scopes,
                label,
                expires_in,
                ..
            } => {
                let scopes = scopes
                    .iter()
                    .map(|s| s.parse::<Scope>())
                    .collect::<Result<BTreeSet<_>, _>>()?;
                let now = now_ms();
                let expires = expires_in.map(|d| now.saturating_add(d.as_millis() as u64));
                let made = accounts
                    .create_token(&tenant, &scopes, label.as_deref(), expires, now)
                    .await;
                let target = made.as_ref().ok().map(|(row, _)| row.id.clone());
                accounts
                    .audit(
                        LOCAL_ACTOR,
                        &tenant,
                        "token.create",
                        target.as_deref(),
                        made.as_ref().map(|_| ()).map_err(ToString::to_string),
                        now,
                    )
                    .await
                    .context("cannot append to the audit log")?;
                let (row, text) =
                    made.with_context(|| format!("cannot create a token for '{tenant}'"))?;
                eprintln!(
                    "damson: token {} for tenant {} ({}): keep it now, it is not shown again",
                    row.id,
                    row.tenant,
                    row.scopes.join(", ")
                );
                println!("{text}");
            }
            TokenAction::List { tenant, json, .. } => {
                let tokens = accounts.tokens(tenant.as_deref()).await?;
                if json {
                    let rows: Vec<_> = tokens.iter().map(row_json).collect();
                    println!("{}", serde_json::Value::Array(rows));
                } else {
                    println!(
                        "{:<18} {:<16} {:<28} {:<10} LABEL",
                        "ID", "TENANT", "SCOPES", "STATE"
                    );
                    let now = now_ms();
                    for t in tokens {
                        let state = if t.revoked_ms.is_some() {
                            "revoked"
                        } else if t.expires_ms.is_some_and(|at| at <= now) {
                            "expired"
                        } else {
                            "active"
                        };
                        println!(
                            "{:<18} {:<16} {:<28} {:<10} {}",
                            t.id,
                            t.tenant,
                            t.scopes.join(","),
                            state,
                            t.label.as_deref().unwrap_or("")
                        );
                    }
                }
            }
            TokenAction::Revoke { id, .. } => {
                let now = now_ms();
                let revoked = accounts.revoke_token(&id, now).await;
                let tenant = revoked.as_ref().map_or("", |row| row.tenant.as_str());
                accounts
                    .audit(
                        LOCAL_ACTOR,
                        tenant,
                        "token.revoke",
                        Some(&id),
                        revoked.as_ref().map(|_| ()).map_err(ToString::to_string),
                        now,
                    )
                    .await
                    .context("cannot append to the audit log")?;
                revoked.with_context(|| format!("cannot revoke token '{id}'"))?;
                println!("revoked token {id}");
            }
        }
        Ok(ExitCode::from(exit::OK))
    }
}

fn row_json(t: &TokenRow) -> serde_json::Value {
    json!({
        "id": t.id, "tenant": t.tenant, "scopes": t.scopes, "label": t.label,
        "created_ms": t.created_ms, "expires_ms": t.expires_ms, "revoked_ms": t.revoked_ms,
    })
}
