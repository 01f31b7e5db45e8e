//! `damson tenant create | set | list | delete`: the tenants of a store and their quotas (as
//! its owner: the audit log names the actor `local`).

use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::json;

use super::store::StoreOptions;
use super::{CommonOptions, exit, now_ms};
use crate::tenancy::{Accounts, LOCAL_ACTOR, Quota, Quotas};

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
        quotas: QuotaArgs,
        #[command(flatten)]
        on: On,
    },
    /// Change a tenant's quotas (the default tenant's too); those not named stay as they are.
    Set {
        /// Its name.
        name: String,
        #[command(flatten)]
        quotas: QuotaArgs,
        #[command(flatten)]
        on: On,
    },
    /// List the tenants (the default one first) with their quotas.
    List {
        /// Print a JSON array of {"name", "created_ms", "quotas"}.
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

/// `--quota NAME=VALUE`, repeated.
#[derive(Debug, Args)]
struct QuotaArgs {
    /// A limit on the tenant: memory-per-instance=BYTES (KiB/MiB/GiB), step-time=MS (or 2s),
    /// live-processes=N, stored-bytes=BYTES, plugin-size=BYTES, submissions-per-second=N;
    /// VALUE `none` lifts it. Repeat for several.
    #[arg(long = "quota", value_name = "NAME=VALUE")]
    quota: Vec<String>,
}

impl QuotaArgs {
    /// `quotas` with these applied.
    fn apply(&self, mut quotas: Quotas) -> anyhow::Result<Quotas> {
        for given in &self.quota {
            let (name, value) = given
                .split_once('=')
                .with_context(|| format!("--quota '{given}': write NAME=VALUE"))?;
            let quota: Quota = name.trim().parse()?;
            let value = quota.parse_value(value)?;
            quota.set(&mut quotas, value);
        }
        Ok(quotas)
    }
}

/// Quotas as `tenant list` prints them: those set, `name=value`.
fn described(quotas: &Quotas) -> String {
    let set: Vec<String> = Quota::ALL
        .iter()
        .filter_map(|q| q.of(quotas).map(|v| format!("{q}={v}")))
        .collect();
    if set.is_empty() {
        "no quotas".into()
    } else {
        set.join(" ")
    }
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
            | TenantAction::Set { on, .. }
            | TenantAction::List { on, .. }
            | TenantAction::Delete { on, .. } => on,
        };
        let accounts = Accounts::new(on.store.open_required(&on.common).await?);
        match self.action {
            TenantAction::Create { name, quotas, .. } => {
                let quotas = quotas.apply(Quotas::default())?;
                let made = accounts.create_tenant(&name, quotas, now_ms()).await;
                audit(&accounts, &name, "tenant.create", made.as_ref().map(|_| ())).await?;
                let made = made.with_context(|| format!("cannot create tenant '{name}'"))?;
                println!("created tenant {name} ({})", described(&made.quotas));
            }
            TenantAction::Set { name, quotas, .. } => {
                let current = accounts
                    .tenant(&name)
                    .await
                    .with_context(|| format!("cannot set the quotas of tenant '{name}'"))?;
                let quotas = quotas.apply(current.quotas)?;
                let set = accounts.set_quotas(&name, quotas).await;
                audit(&accounts, &name, "tenant.set", set.as_ref().map(|_| ())).await?;
                let set =
                    set.with_context(|| format!("cannot set the quotas of tenant '{name}'"))?;
                println!("tenant {name}: {}", described(&set.quotas));
            }
            TenantAction::List { json, .. } => {
                let tenants = accounts.tenants().await?;
                if json {
                    let rows: Vec<_> = tenants
                        .iter()
                        .map(|t| json!({"name": t.name, "created_ms": t.created_ms, "quotas": t.quotas}))
                        .collect();
                    println!("{}", serde_json::Value::Array(rows));
                } else {
                    for tenant in tenants {
                        println!("{}\t{}", tenant.name, described(&tenant.quotas));
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
