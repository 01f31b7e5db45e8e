//! [`PostgresPersister`]: checkpoints in PostgreSQL, shared by many hosts.

use async_trait::async_trait;
use tokio_postgres::{Client, NoTls};

use super::{CheckpointKey, Claim, Holder, PersistError, Persister, Presence, check_key};

/// The schema, one step per version. A database is brought up to the last version when a
/// persister connects: under an advisory lock, in one transaction, so that hosts starting
/// together on a fresh database do not race (PostgreSQL's `CREATE TABLE IF NOT EXISTS` is not
/// safe against a concurrent one), and each step runs once. Never change a step: add one.
const MIGRATIONS: &[(i32, &str)] = &[(
    1,
    "CREATE TABLE IF NOT EXISTS damson_checkpoints (
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
    );",
)];

/// The advisory lock the schema is brought up to date under (`damson` in ASCII).
const MIGRATION_LOCK: i64 = 0x0000_6461_6d73_6f6e;

/// Keeps checkpoints and plugins in a PostgreSQL database (tables `damson_checkpoints`,
/// `damson_plugins`, `damson_claims`, and `damson_schema` for the schema's version, made or
/// brought up to date when a persister connects). Each save is one statement: atomic.
pub struct PostgresPersister {
    client: Client,
    /// Where to connect again, for each owner's presence session (see [`Persister::join`]).
    url: String,
    location: String,
}

impl PostgresPersister {
    /// Connect to `url` (e.g. `postgres://user@localhost:5432/damson`) and bring the schema up
    /// to date (safe when several hosts do it at once).
    ///
    /// # Errors
    /// [`PersistError::Backend`] with the database's error when it cannot be reached or the
    /// schema cannot be set up.
    pub async fn connect(url: &str) -> Result<Self, PersistError> {
        let location = redact(url);
        let backend = |e: tokio_postgres::Error| PersistError::Backend {
            location: location.clone(),
            source: Box::new(e),
        };
        let mut client = open(url, &location).await.map_err(backend)?;
        migrate(&mut client).await.map_err(backend)?;
        Ok(Self {
            client,
            url: url.to_string(),
            location,
        })
    }

    fn error(&self, e: tokio_postgres::Error) -> PersistError {
        PersistError::Backend {
            location: self.location.clone(),
            source: Box::new(e),
        }
    }
}

/// A connection, its driver running on its own task until the client is dropped.
async fn open(url: &str, location: &str) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
    let location = location.to_string();
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::error!(store = %location, "PostgreSQL connection lost: {e}");
        }
    });
    Ok(client)
}

/// Apply the migrations the database has not had yet.
async fn migrate(client: &mut Client) -> Result<(), tokio_postgres::Error> {
    let txn = client.transaction().await?;
    txn.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    txn.batch_execute(
        "CREATE TABLE IF NOT EXISTS damson_schema (
            version INTEGER PRIMARY KEY,
            applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
        )",
    )
    .await?;
    let current: i32 = txn
        .query_one("SELECT COALESCE(MAX(version), 0) FROM damson_schema", &[])
        .await?
        .get(0);
    for (version, step) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        txn.batch_execute(step).await?;
        txn.execute(
            "INSERT INTO damson_schema (version) VALUES ($1)",
            &[version],
        )
        .await?;
        tracing::info!(
            version,
            "PostgreSQL store: schema brought up to version {version}"
        );
    }
    txn.commit().await
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

    async fn join(&self, owner: &str) -> Result<Presence, PersistError> {
        // A session of the owner's own holds its presence lock: the server lets it go when
        // the connection ends, however the owner's process ended.
        let session = open(&self.url, &self.location)
            .await
            .map_err(|e| self.error(e))?;
        let locked: bool = session
            .query_one(
                "SELECT pg_try_advisory_lock(hashtextextended($1, 0))",
                &[&owner],
            )
            .await
            .map_err(|e| self.error(e))?
            .get(0);
        if !locked {
            return Err(PersistError::Backend {
                location: self.location.clone(),
                source: format!("the owner '{owner}' is present already").into(),
            });
        }
        Ok(Presence::new(session))
    }

    async fn claim(
        &self,
        tenant: &str,
        pid: &str,
        owner: &str,
        now_ms: u64,
        until_ms: u64,
    ) -> Result<Claim, PersistError> {
        loop {
            // One statement: the row is taken, or left to its live holder, atomically. A
            // holder whose presence lock can be had is gone (the lock, had here, goes with the
            // statement's transaction).
            let row = self
                .client
                .query_opt(
                    "INSERT INTO damson_claims (tenant, pid, owner, until_ms) VALUES ($1, $2, $3, $5)
                     ON CONFLICT (tenant, pid) DO UPDATE SET owner = EXCLUDED.owner,
                         until_ms = EXCLUDED.until_ms
                     WHERE damson_claims.owner = EXCLUDED.owner OR damson_claims.until_ms < $4
                         OR pg_try_advisory_xact_lock(hashtextextended(damson_claims.owner, 0))
                     RETURNING owner",
                    &[&tenant, &pid, &owner, &(now_ms as i64), &(until_ms as i64)],
                )
                .await
                .map_err(|e| self.error(e))?;
            if row.is_some() {
                return Ok(Claim::Granted);
            }
            let holder = self
                .client
                .query_opt(
                    "SELECT owner, until_ms FROM damson_claims WHERE tenant = $1 AND pid = $2",
                    &[&tenant, &pid],
                )
                .await
                .map_err(|e| self.error(e))?;
            // Released in between: ask again.
            if let Some(row) = holder {
                return Ok(Claim::Held(Holder {
                    owner: row.get(0),
                    until_ms: row.get::<_, i64>(1) as u64,
                }));
            }
        }
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
