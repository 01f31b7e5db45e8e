//! A PostgreSQL store seen as one tenant: the connection acts as the tenant's database role
//! (made by `create_tenant`, `damson_<hash of database and tenant>`), so that the database's
//! row-level security policies (schema step 4) keep every query — a wrong one too — to that
//! tenant's rows.

use std::sync::Arc;

use tokio_postgres::Client;

use super::PostgresPersister;
use crate::persist::{PersistError, Persister};

impl PostgresPersister {
    /// Connect to `url` as its owner does, then act as `tenant`'s role for the rest of the
    /// connection (and for the presence sessions it opens): every row it reads, writes or
    /// deletes is the tenant's, whatever the statement says; another tenant's rows are as
    /// absent, and writing one is refused by the database. Tokens are out of its reach.
    ///
    /// The role is taken with `SET ROLE`, which guards against Damson's own mistakes, not
    /// against someone who runs SQL on the connection; for that, give the tenant's hosts a
    /// login of the role's own (`ALTER ROLE … LOGIN PASSWORD …`) and connect as it.
    ///
    /// # Errors
    /// [`PersistError::Backend`] when the database cannot be reached, or has no role for
    /// `tenant` (it was not made by `damson tenant create` on this database).
    pub async fn connect_as_tenant(url: &str, tenant: &str) -> Result<Self, PersistError> {
        let mut store = Self::connect(url).await?;
        let role: Option<String> = store
            .client
            .query_opt(
                "SELECT role FROM damson_tenant_roles WHERE tenant = $1",
                &[&tenant],
            )
            .await
            .map_err(|e| store.error(e))?
            .map(|row| row.get(0));
        let role = role.ok_or_else(|| PersistError::Backend {
            location: store.location.clone(),
            source: format!(
                "tenant '{tenant}' has no role in this database: make the tenant with \
                 `damson tenant create` on this store"
            )
            .into(),
        })?;
        act_as(&store.client, &role)
            .await
            .map_err(|e| store.error(e))?;
        store.role = Some(role);
        Ok(store)
    }
}

/// Act as `role` for the rest of the session on `client`.
pub(super) async fn act_as(client: &Client, role: &str) -> Result<(), tokio_postgres::Error> {
    // A role name cannot be a parameter; ours are `damson_` and hex digits, quoted anyway.
    let quoted = format!("\"{}\"", role.replace('"', "\"\""));
    client.batch_execute(&format!("SET ROLE {quoted}")).await
}

/// [`Persister::scoped`] for PostgreSQL: a connection of its own acting as the tenant.
pub(super) async fn scoped(
    store: &PostgresPersister,
    tenant: &str,
) -> Result<Option<Arc<dyn Persister>>, PersistError> {
    let scoped = PostgresPersister::connect_as_tenant(&store.url, tenant).await?;
    Ok(Some(Arc::new(scoped)))
}
