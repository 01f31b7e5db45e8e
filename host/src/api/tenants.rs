//! [`TenantHosts`]: one [`Host`] per tenant in a daemon serving several, made when a tenant is
//! first served and continuing that tenant's unfinished processes then.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use crate::error::chain;
use crate::persist::{DEFAULT_TENANT, Persister};
use crate::tenancy::{Accounts, TenancyError};
use crate::{Error, Host};

/// The hosts of a daemon, by tenant: the default tenant's is the daemon's own host; every other
/// tenant's is made from it with [`Host::for_tenant`], with the tenant's quotas as they are
/// when it is made and its plugins in `<tenant plugin root>/<tenant>/` before the daemon's own
/// plugin directories.
#[derive(Clone)]
pub struct TenantHosts {
    base: Host,
    accounts: Accounts,
    plugin_root: Option<PathBuf>,
    hosts: Arc<tokio::sync::Mutex<HashMap<String, Host>>>,
}

/// Why a tenant cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum TenantHostError {
    /// The daemon's host has no store, where tenants are kept.
    #[error("tenants are kept in a store: this daemon has none")]
    NoStore,
    /// The tenant's account cannot be read.
    #[error("cannot read the account of tenant '{tenant}'")]
    Account {
        /// The tenant.
        tenant: String,
        /// Why.
        #[source]
        source: Box<TenancyError>,
    },
    /// Its processes cannot be listed to continue them.
    #[error("cannot continue the processes of tenant '{tenant}'")]
    Recover {
        /// The tenant.
        tenant: String,
        /// Why.
        #[source]
        source: Box<Error>,
    },
}

impl TenantHosts {
    /// The hosts of a daemon whose own host (the default tenant's) is `base`, with tenants'
    /// plugins under `plugin_root` if given.
    ///
    /// # Errors
    /// [`TenantHostError::NoStore`] when `base` has no store.
    pub fn new(base: Host, plugin_root: Option<PathBuf>) -> Result<Self, TenantHostError> {
        let store: Arc<dyn Persister> = base.store().ok_or(TenantHostError::NoStore)?.clone();
        Ok(Self {
            base,
            accounts: Accounts::new(store),
            plugin_root,
            hosts: Arc::default(),
        })
    }

    /// The accounts of the daemon's store.
    pub fn accounts(&self) -> &Accounts {
        &self.accounts
    }

    /// The host acting for `tenant`, made (and its unfinished processes continued) on first
    /// use.
    ///
    /// # Errors
    /// [`TenantHostError::Account`] for a tenant that does not exist or cannot be read,
    /// [`TenantHostError::Recover`] when its processes cannot be listed.
    pub async fn host(&self, tenant: &str) -> Result<Host, TenantHostError> {
        if tenant == DEFAULT_TENANT {
            return Ok(self.base.clone());
        }
        let mut hosts = self.hosts.lock().await;
        if let Some(host) = hosts.get(tenant) {
            return Ok(host.clone());
        }
        let account = |source| TenantHostError::Account {
            tenant: tenant.to_string(),
            source: Box::new(source),
        };
        let row = self.accounts.tenant(tenant).await.map_err(account)?;
        let dirs = self
            .plugin_root
            .iter()
            .map(|root| root.join(tenant))
            .collect();
        // Where the store can keep a connection to the tenant's rows itself, it does.
        let base_store = self.base.store().ok_or(TenantHostError::NoStore)?;
        let store = match base_store.scoped(tenant).await {
            Ok(scoped) => scoped.unwrap_or_else(|| base_store.clone()),
            Err(e) => return Err(account(TenancyError::Store(e))),
        };
        let host = self
            .base
            .for_tenant_on(tenant, row.quotas, dirs, Some(store));
        let recovered = host
            .recover()
            .await
            .map_err(|source| TenantHostError::Recover {
                tenant: tenant.to_string(),
                source: Box::new(source),
            })?;
        for (pid, error) in &recovered.failed {
            tracing::warn!(%tenant, %pid, "cannot continue the process: {}", chain(error));
        }
        hosts.insert(tenant.to_string(), host.clone());
        Ok(host)
    }

    /// Make the hosts of every tenant in the store, continuing their unfinished processes, as
    /// a daemon does when it starts; the tenants that could not be served, with why.
    ///
    /// # Errors
    /// When the tenants cannot be listed.
    pub async fn start_all(&self) -> Result<Vec<TenantHostError>, TenancyError> {
        let mut failed = Vec::new();
        for tenant in self.accounts.tenants().await? {
            if let Err(e) = self.host(&tenant.name).await {
                failed.push(e);
            }
        }
        Ok(failed)
    }
}
