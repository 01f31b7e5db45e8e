//! [`PostgresPersister`]: checkpoints in PostgreSQL, shared by many hosts.

use async_trait::async_trait;
use tokio_postgres::{Client, NoTls};

use super::{CheckpointKey, PersistError, Persister, check_key};

const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS damson_checkpoints (
        tenant TEXT NOT NULL,
        pid TEXT NOT NULL,
        tag TEXT NOT NULL DEFAULT '',
        bundle BYTEA NOT NULL,
        saved_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        PRIMARY KEY (tenant, pid, tag)
    );
    CREATE TABLE IF NOT EXISTS damson_plugins (
        digest TEXT PRIMARY KEY,
        component BYTEA NOT NULL
    );
    CREATE TABLE IF NOT EXISTS damson_claims (
        tenant TEXT NOT NULL,
        pid TEXT NOT NULL,
        owner TEXT NOT NULL,
        until_ms BIGINT NOT NULL,
        PRIMARY KEY (tenant, pid)
    );";

/// Keeps checkpoints and plugins in a PostgreSQL database (tables `damson_checkpoints` and
/// `damson_plugins`, created when missing). Each save is one upsert statement: atomic.
pub struct PostgresPersister {
    client: Client,
    location: String,
}

impl PostgresPersister {
    /// Connect to `url` (e.g. `postgres://user@localhost:5432/damson`) and create the tables if
    /// needed.
    pub async fn connect(url: &str) -> Result<Self, PersistError> {
        let location = redact(url);
        let backend = |e: tokio_postgres::Error| PersistError::Backend {
            location: location.clone(),
            source: Box::new(e),
        };
        let (client, connection) = tokio_postgres::connect(url, NoTls).await.map_err(backend)?;
        let for_log = location.clone();
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::error!(store = %for_log, "PostgreSQL connection lost: {e}");
            }
        });
        client.batch_execute(SCHEMA).await.map_err(backend)?;
        Ok(Self { client, location })
    }

    fn error(&self, e: tokio_postgres::Error) -> PersistError {
        PersistError::Backend {
            location: self.location.clone(),
            source: Box::new(e),
        }
    }
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

fn tag(key: &CheckpointKey) -> &str {
    key.tag.as_deref().unwrap_or("")
}

fn key_of(tenant: String, pid: String, tag: String) -> CheckpointKey {
    CheckpointKey {
        tenant,
        pid,
        tag: (!tag.is_empty()).then_some(tag),
    }
}

#[async_trait]
impl Persister for PostgresPersister {
    async fn save(&self, key: &CheckpointKey, bundle: &[u8]) -> Result<(), PersistError> {
        check_key(key)?;
        self.client
            .execute(
                "INSERT INTO damson_checkpoints (tenant, pid, tag, bundle) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (tenant, pid, tag) DO UPDATE SET bundle = EXCLUDED.bundle, saved_at = now()",
                &[&key.tenant, &key.pid, &tag(key), &bundle],
            )
            .await
            .map_err(|e| self.error(e))?;
        Ok(())
    }

    async fn save_claimed(
        &self,
        key: &CheckpointKey,
        bundle: &[u8],
        owner: &str,
    ) -> Result<bool, PersistError> {
        check_key(key)?;
        // One statement; the claim row is locked (FOR SHARE) until it commits, so a host
        // taking the claim over waits for this write and then loads it.
        let written = self
            .client
            .execute(
                "INSERT INTO damson_checkpoints (tenant, pid, tag, bundle)
                 SELECT $1::text, $2::text, $3::text, $4::bytea
                 WHERE EXISTS (SELECT 1 FROM damson_claims
                               WHERE tenant = $1 AND pid = $2 AND owner = $5 FOR SHARE)
                 ON CONFLICT (tenant, pid, tag) DO UPDATE SET bundle = EXCLUDED.bundle, saved_at = now()",
                &[&key.tenant, &key.pid, &tag(key), &bundle, &owner],
            )
            .await
            .map_err(|e| self.error(e))?;
        Ok(written == 1)
    }

    async fn load(&self, key: &CheckpointKey) -> Result<Option<Vec<u8>>, PersistError> {
        let row = self
            .client
            .query_opt(
                "SELECT bundle FROM damson_checkpoints WHERE tenant = $1 AND pid = $2 AND tag = $3",
                &[&key.tenant, &key.pid, &tag(key)],
            )
            .await
            .map_err(|e| self.error(e))?;
        Ok(row.map(|r| r.get(0)))
    }

    async fn list(&self) -> Result<Vec<CheckpointKey>, PersistError> {
        let rows = self
            .client
            .query(
                "SELECT tenant, pid, tag FROM damson_checkpoints ORDER BY tenant, pid, tag",
                &[],
            )
            .await
            .map_err(|e| self.error(e))?;
        Ok(rows
            .into_iter()
            .map(|r| key_of(r.get(0), r.get(1), r.get(2)))
            .collect())
    }

    async fn list_process(
        &self,
        tenant: &str,
        pid: &str,
    ) -> Result<Vec<CheckpointKey>, PersistError> {
        let rows = self
            .client
            .query(
                "SELECT tenant, pid, tag FROM damson_checkpoints WHERE tenant = $1 AND pid = $2 ORDER BY tag",
                &[&tenant, &pid],
            )
            .await
            .map_err(|e| self.error(e))?;
        Ok(rows
            .into_iter()
            .map(|r| key_of(r.get(0), r.get(1), r.get(2)))
            .collect())
    }

    async fn delete(&self, key: &CheckpointKey) -> Result<(), PersistError> {
        self.client
            .execute(
                "DELETE FROM damson_checkpoints WHERE tenant = $1 AND pid = $2 AND tag = $3",
                &[&key.tenant, &key.pid, &tag(key)],
            )
            .await
            .map_err(|e| self.error(e))?;
        Ok(())
    }

    async fn delete_process(&self, tenant: &str, pid: &str) -> Result<(), PersistError> {
        self.client
            .execute(
                "DELETE FROM damson_checkpoints WHERE tenant = $1 AND pid = $2",
                &[&tenant, &pid],
            )
            .await
            .map_err(|e| self.error(e))?;
        Ok(())
    }

    async fn save_plugin(&self, digest: &str, component: &[u8]) -> Result<(), PersistError> {
        self.client
            .execute(
                "INSERT INTO damson_plugins (digest, component) VALUES ($1, $2) ON CONFLICT (digest) DO NOTHING",
                &[&digest, &component],
            )
            .await
            .map_err(|e| self.error(e))?;
        Ok(())
    }

    async fn load_plugin(&self, digest: &str) -> Result<Option<Vec<u8>>, PersistError> {
        let row = self
            .client
            .query_opt(
                "SELECT component FROM damson_plugins WHERE digest = $1",
                &[&digest],
            )
            .await
            .map_err(|e| self.error(e))?;
        Ok(row.map(|r| r.get(0)))
    }

    async fn claim(
        &self,
        tenant: &str,
        pid: &str,
        owner: &str,
        now_ms: u64,
        until_ms: u64,
    ) -> Result<bool, PersistError> {
        // One statement: the row is taken, or left to its live holder, atomically.
        let row = self
            .client
            .query_opt(
                "INSERT INTO damson_claims (tenant, pid, owner, until_ms) VALUES ($1, $2, $3, $5)
                 ON CONFLICT (tenant, pid) DO UPDATE SET owner = EXCLUDED.owner,
                     until_ms = EXCLUDED.until_ms
                 WHERE damson_claims.owner = EXCLUDED.owner OR damson_claims.until_ms < $4
                 RETURNING owner",
                &[&tenant, &pid, &owner, &(now_ms as i64), &(until_ms as i64)],
            )
            .await
            .map_err(|e| self.error(e))?;
        Ok(row.is_some())
    }

    async fn renew(
        &self,
        owner: &str,
        until_ms: u64,
    ) -> Result<Vec<(String, String)>, PersistError> {
        let rows = self
            .client
            .query(
                "UPDATE damson_claims SET until_ms = $2 WHERE owner = $1 RETURNING tenant, pid",
                &[&owner, &(until_ms as i64)],
            )
            .await
            .map_err(|e| self.error(e))?;
        Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
    }

    async fn release(&self, tenant: &str, pid: &str, owner: &str) -> Result<(), PersistError> {
        self.client
            .execute(
                "DELETE FROM damson_claims WHERE tenant = $1 AND pid = $2 AND owner = $3",
                &[&tenant, &pid, &owner],
            )
            .await
            .map_err(|e| self.error(e))?;
        Ok(())
    }

    fn summary(&self) -> String {
        format!("PostgreSQL store at {}", self.location)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_stay_out_of_messages() {
        assert_eq!(
            redact("postgres://me:secret@db:5432/x"),
            "postgres://me:***@db:5432/x"
        );
        assert_eq!(redact("postgres://me@db/x"), "postgres://me@db/x");
    }
}
