//! `damson tenant create | set | list | delete`: the tenants of a store and their quotas (as
//! its owner: the audit log names the actor `local`). With `--broker-admin`, `create` and
//! `delete` also make and remove the tenant's virtual host and user on RabbitMQ, through its
//! management API ([`BrokerAdmin`]).

use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::json;

use super::store::StoreOptions;
use super::{CommonOptions, exit, now_ms};
use crate::comms::BrokerAdmin;
use crate::tenancy::{Accounts, LOCAL_ACTOR, Quota, Quotas};

const AFTER_HELP: &str = "\
Examples:
  damson tenant create acme --quota live-processes=100
  damson tenant create acme --broker-admin http://admin:secret@rabbit:15672
  damson tenant delete acme --broker-admin http://admin:secret@rabbit:15672

With --broker-admin (or DAMSON_BROKER_ADMIN), `create` also gives the tenant a place on RabbitMQ
that only its credentials reach: the virtual host damson-<tenant> and the user damson-<tenant>
with a fresh random password, allowed to configure, write and read in that virtual host only.
It prints the tenant's AMQP URL, amqp://damson-<tenant>:<password>@<host>:5672/damson-<tenant>,
once, after the usual line: the password is kept nowhere. Give the URL to the tenant's workers
(`damson worker --broker <url> --token <a token of the tenant>`) and kiwipy clients. `delete`
removes the virtual host (with its queues) and the user. The admin URL needs the management
plugin (rabbitmq-plugins enable rabbitmq_management) and an administrator's credentials.";

/// Manage the tenants of a store.
#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
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
        broker: BrokerAdminArgs,
        /// The broker's AMQP address (HOST:PORT) to write in the tenant's URL. Defaults to the
        /// --broker-admin URL's host, port 5672.
        #[arg(long, value_name = "HOST:PORT", requires = "broker_admin")]
        broker_address: Option<String>,
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
        broker: BrokerAdminArgs,
        #[command(flatten)]
        on: On,
    },
}

/// `--broker-admin URL`: RabbitMQ's management API, to make or remove a tenant's place there.
#[derive(Debug, Args)]
struct BrokerAdminArgs {
    /// RabbitMQ's management API with an administrator's credentials,
    /// `http://USER:PASSWORD@HOST:15672`: also make (or remove) the tenant's virtual host and
    /// user on the broker.
    #[arg(
        long,
        env = "DAMSON_BROKER_ADMIN",
        value_name = "URL",
        hide_env_values = true
    )]
    broker_admin: Option<String>,
}

impl BrokerAdminArgs {
    /// The management API's client, if one was named.
    fn admin(&self) -> anyhow::Result<Option<BrokerAdmin>> {
        Ok(match &self.broker_admin {
            Some(url) => Some(BrokerAdmin::new(url)?),
            None => None,
        })
    }
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
            TenantAction::Create {
                name,
                quotas,
                broker,
                broker_address,
                ..
            } => {
                let quotas = quotas.apply(Quotas::default())?;
                let admin = broker.admin()?;
                let made = accounts.create_tenant(&name, quotas, now_ms()).await;
                audit(&accounts, &name, "tenant.create", made.as_ref().map(|_| ())).await?;
                let made = made.with_context(|| format!("cannot create tenant '{name}'"))?;
                // The store's tenant first (it checks the name and that there is none of it),
                // then the broker's part; if that fails, the tenant goes again.
                let url = match &admin {
                    Some(admin) => {
                        let address =
                            broker_address.unwrap_or_else(|| format!("{}:5672", admin.host()));
                        Some(
                            create_on_broker(&accounts, admin, &name)
                                .await?
                                .amqp_url(&address),
                        )
                    }
                    None => None,
                };
                println!("created tenant {name} ({})", described(&made.quotas));
                if let Some(url) = url {
                    let (vhost, user) = BrokerAdmin::names(&name);
                    eprintln!(
                        "damson: tenant {name}'s broker URL (virtual host {vhost}, user {user}) \
                         follows: keep it now, it is not shown again"
                    );
                    println!("{url}");
                }
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
            TenantAction::Delete { name, broker, .. } => {
                let admin = broker.admin()?;
                let deleted = accounts.delete_tenant(&name).await;
                audit(
                    &accounts,
                    &name,
                    "tenant.delete",
                    deleted.as_ref().map(|_| ()),
                )
                .await?;
                deleted.with_context(|| format!("cannot delete tenant '{name}'"))?;
                match &admin {
                    Some(admin) => {
                        let (vhost, user) = BrokerAdmin::names(&name);
                        let removed = admin.delete_tenant(&name).await;
                        audit_on(
                            &accounts,
                            &name,
                            "tenant.broker.delete",
                            Some(&vhost),
                            removed.as_ref().map(|_| ()),
                        )
                        .await?;
                        removed.with_context(|| {
                            format!(
                                "tenant '{name}' is deleted from the store, but its virtual host \
                                 {vhost} and user {user} may remain on the broker {admin} \
                                 (rabbitmqctl delete_vhost {vhost}; rabbitmqctl delete_user \
                                 {user})"
                            )
                        })?;
                        println!(
                            "deleted tenant {name} (and its virtual host {vhost} and user \
                             {user} on the broker)"
                        );
                    }
                    None => println!("deleted tenant {name}"),
                }
            }
        }
        Ok(ExitCode::from(exit::OK))
    }
}

/// Make `tenant`'s virtual host and user on the broker (audited as `tenant.broker.create`,
/// the virtual host the target; never the password). When that fails, the store's tenant, just
/// made, is deleted again (audited as `tenant.delete`), so that none is left half made.
async fn create_on_broker(
    accounts: &Accounts,
    admin: &BrokerAdmin,
    tenant: &str,
) -> anyhow::Result<crate::comms::TenantBroker> {
    let (vhost, _) = BrokerAdmin::names(tenant);
    let made = admin.create_tenant(tenant).await;
    audit_on(
        accounts,
        tenant,
        "tenant.broker.create",
        Some(&vhost),
        made.as_ref().map(|_| ()),
    )
    .await?;
    let error = match made {
        Ok(made) => return Ok(made),
        Err(error) => error,
    };
    let undone = accounts.delete_tenant(tenant).await;
    audit(
        accounts,
        tenant,
        "tenant.delete",
        undone.as_ref().map(|_| ()),
    )
    .await?;
    let left = match undone {
        Ok(()) => "the tenant was not made".to_string(),
        Err(e) => format!("and the tenant made in the store could not be deleted again: {e}"),
    };
    Err(anyhow::Error::new(error).context(format!(
        "cannot create tenant '{tenant}' on the broker {admin} ({left})"
    )))
}

/// Append an admin operation on `tenant` by the store's owner to the audit log.
pub(super) async fn audit<E: std::fmt::Display>(
    accounts: &Accounts,
    tenant: &str,
    action: &str,
    outcome: Result<(), &E>,
) -> anyhow::Result<()> {
    audit_on(accounts, tenant, action, None, outcome).await
}

/// [`audit`], naming what the operation was on (`target`).
async fn audit_on<E: std::fmt::Display>(
    accounts: &Accounts,
    tenant: &str,
    action: &str,
    target: Option<&str>,
    outcome: Result<(), &E>,
) -> anyhow::Result<()> {
    accounts
        .audit(
            LOCAL_ACTOR,
            tenant,
            action,
            target,
            outcome.map_err(ToString::to_string),
            now_ms(),
        )
        .await
        .context("cannot append to the audit log")?;
    Ok(())
}
