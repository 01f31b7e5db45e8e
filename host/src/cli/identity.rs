//! `--token` / `DAMSON_TOKEN`: who a command acts as on a store. With a token, a command acts
//! for the token's tenant within its scopes; without one, for the default tenant, as the owner
//! of the machine's store (whoever can open the store file or database).

use std::sync::Arc;

use anyhow::Context;
use clap::Args;

use super::now_ms;
use crate::persist::{DEFAULT_TENANT, Persister};
use crate::tenancy::{Accounts, Scope};

/// The `--token` option of the commands that read a store.
#[derive(Debug, Clone, Args)]
pub(crate) struct TokenOption {
    /// An API token (`damson token create`): the command then sees only the token's tenant.
    /// Without one it acts for the default tenant.
    #[arg(
        long,
        env = "DAMSON_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    token: Option<String>,
}

impl TokenOption {
    /// The tenant the command acts for (as [`tenant`](Self::tenant)) and the store as that
    /// tenant sees it: for a token on a store that can keep a connection to one tenant's rows
    /// itself (PostgreSQL's row-level security), that connection.
    pub(crate) async fn scoped(
        &self,
        store: Arc<dyn Persister>,
        scope: Scope,
    ) -> anyhow::Result<(String, Arc<dyn Persister>)> {
        let tenant = self.tenant(&store, scope).await?;
        if !self.given() {
            return Ok((tenant, store));
        }
        let scoped = store
            .scoped(&tenant)
            .await
            .with_context(|| format!("cannot open the store as tenant '{tenant}'"))?
            .unwrap_or(store);
        Ok((tenant, scoped))
    }

    /// Whether a token was given.
    pub(crate) fn given(&self) -> bool {
        self.token.is_some()
    }

    /// The tenant the command acts for on `store`, once the token (if any) is checked to be
    /// valid and to have `scope`.
    pub(crate) async fn tenant(
        &self,
        store: &Arc<dyn Persister>,
        scope: Scope,
    ) -> anyhow::Result<String> {
        let Some(token) = &self.token else {
            return Ok(DEFAULT_TENANT.to_string());
        };
        let principal = Accounts::new(store.clone())
            .authenticate(Some(token), now_ms())
            .await?;
        principal.may(scope)?;
        Ok(principal.tenant)
    }
}
