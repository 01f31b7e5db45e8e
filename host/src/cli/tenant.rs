//! `damson tenant create | list | delete`: the tenants of a store (as its owner: the audit log
//! names the actor `local`).

use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::json;

use super::store::StoreOptions;
use super::{CommonOptions, exit, now_ms};
use crate::tenancy::{Accounts, LOCAL_ACTOR};

/// Manage the tenants of a store.
#[derive(Debug, Args)]
pub(crate) struct TenantCommand {
    #[command(subcommand)]
    action: TenantAction,
}

#[derive(Debug, Subcommand)]
enum TenantAction {
    /// Make a tenant (lower-case letters, digits and '-').
    Create {
        /// Its name.
        name: String,
        #[command(flatten)]
        on: On,
    },
    /// List the tenants (the default one first).
    List {
        /// Print a JSON array of {"name", "created_ms"}.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        on: On,
    },
    /// Delete a tenant with no stored processes, and its tokens.
    Delete {
        /// Its name.
        name: String,
        #[command(flatten)]
        on: On,
    },
}

/// The store an account command works on.
#[derive(Debug, Args)]
pub(super) struct On {
    #[command(flatten)]
    pub(super) store: StoreOptions,
    #[command(flatten)]
    pub(super) common: CommonOptions,
}

impl TenantCommand {
    pub(crate) async fn execute(self) -> anyhow::Result<ExitCode> {
        let on = match &self.action {
            TenantAction::Create { on, .. }
            | TenantAction::List { on, .. }
            | TenantAction::Delete { on, .. } => on,
        };
        let accounts = Accounts::new(on.store.open_required(&on.common).await?);
        match self.action {
            TenantAction::Create { name, .. } => {
                let made = accounts.create_tenant(&name, now_ms()).await;
                audit(&accounts, &name, "tenant.create", made.as_ref().map(|_| ())).await?;
                made.with_context(|| format!("cannot create tenant '{name}'"))?;
                println!("created tenant {name}");
            }
            TenantAction::List { json, .. } => {
                let tenants = accounts.tenants().await?;
                if json {
                    let rows: Vec<_> = tenants
                        .iter()
                        .map(|t| json!({"name": t.name, "created_ms": t.created_ms}))
                        .collect();
                    println!("{}", serde_json::Value::Array(rows));
                } else {
                    for tenant in tenants {
                        println!("{}", tenant.name);
                    }
                }
            }
            TenantAction::Delete { name, .. } => {
                let deleted = accounts.delete_tenant(&name).await;
                audit(
                    &accounts,
                    &name,
                    "tenant.delete",
                    deleted.as_ref().map(|_| ()),
                )
                .await?;
                deleted.with_context(|| format!("cannot delete tenant '{name}'"))?;
                println!("deleted tenant {name}");
            }
        }
        Ok(ExitCode::from(exit::OK))
    }
}

/// Append an admin operation on `tenant` by the store's owner to the audit log.
pub(super) async fn audit<E: std::fmt::Display>(
    accounts: &Accounts,
    tenant: &str,
    action: &str,
    outcome: Result<(), &E>,
) -> anyhow::Result<()> {
    accounts
        .audit(
            LOCAL_ACTOR,
            tenant,
            action,
            None,
            outcome.map_err(ToString::to_string),
            now_ms(),
        )
        .await
        .context("cannot append to the audit log")?;
    Ok(())
}
