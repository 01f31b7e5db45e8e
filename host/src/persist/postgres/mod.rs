//! [`PostgresPersister`]: checkpoints in PostgreSQL, shared by many hosts.

use std::sync::Arc;

use async_trait::async_trait;
use tokio_postgres::{Client, NoTls, Row};

mod schema;
mod summaries;
mod tenants;

use schema::migrate;

use super::{
    AuditRow, CheckpointKey, Claim, Holder, LogLevel, LogLine, LogSource, PersistError, Persister,
    Posted, Presence, ProcessLog, ProcessSummary, Quotas, SignalRow, Summaries, SummaryFilter,
    TenantRow, TokenRow, check_key,
};

/// The advisory lock that keeps audit appends in order.
const AUDIT_LOCK: i64 = 0x64_616d_736f_6e41; // "damsonA"

/// Keeps checkpoints and plugins in a PostgreSQL database (tables `damson_checkpoints`,
/// `damson_plugins`, `damson_claims`, `damson_tenants`, `damson_tokens`, `damson_audit`,
/// `damson_logs`, `damson_log_heads`, `damson_summaries` and `damson_signals`, and `damson_schema` for the schema's version, made or brought up to date when a persister
/// connects). Each save is one statement: atomic.
pub struct PostgresPersister {
    client: Client,
    /// Where to connect again, for each owner's presence session (see [`Persister::join`]).
    url: String,
    location: String,
    /// The tenant role the connections act as, if any (see
    /// [`connect_as_tenant`](Self::connect_as_tenant)).
    role: Option<String>,
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
            role: None,
        })
    }

    /// Save the current checkpoint of `key` with its summary in one statement (only while
    /// `owner` holds the claim, if given); whether it was written.
    async fn save_current(
        &self,
        key: &CheckpointKey,
        bundle: &[u8],
        summary: Option<&ProcessSummary>,
        owner: Option<&str>,
    ) -> Result<bool, PersistError> {
        let columns = summaries::columns(summary);
        let mut params: Vec<summaries::Param> = vec![&key.tenant, &key.pid, &bundle];
        params.extend(columns.params());
        if let Some(owner) = &owner {
            params.push(owner);
        }
        let statement = summaries::save_statement(owner.is_some());
        let written = self
            .client
            .execute(&statement, &params)
            .await
            .map_err(|e| self.error(e))?;
        Ok(written == 1)
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

/// The columns of a [`TokenRow`], in the order [`token_of`] reads them.
const TOKEN_COLUMNS: &str =
    "id, tenant, secret_sha256, scopes, label, created_ms, expires_ms, revoked_ms";

fn token_of(row: &Row) -> TokenRow {
    let ms = |i| row.get::<_, Option<i64>>(i).map(|ms| ms as u64);
    TokenRow {
        id: row.get(0),
        tenant: row.get(1),
        secret_sha256: row.get(2),
        scopes: row.get(3),
        label: row.get(4),
        created_ms: row.get::<_, i64>(5) as u64,
        expires_ms: ms(6),
        revoked_ms: ms(7),
    }
}

#[async_trait]
impl Persister for PostgresPersister {
    async fn save(
        &self,
        key: &CheckpointKey,
        bundle: &[u8],
        summary: Option<&ProcessSummary>,
    ) -> Result<(), PersistError> {
        check_key(key)?;
        if key.tag.is_none() {
            return self
                .save_current(key, bundle, summary, None)
                .await
                .map(drop);
        }
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
        summary: Option<&ProcessSummary>,
        owner: &str,
    ) -> Result<bool, PersistError> {
        check_key(key)?;
        // One statement; the claim row is locked (FOR SHARE) until it commits, so a host
        // taking the claim over waits for this write and then loads it.
        if key.tag.is_none() {
            return self.save_current(key, bundle, summary, Some(owner)).await;
        }
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

    async fn summaries(
        &self,
        tenant: &str,
        filter: &SummaryFilter,
    ) -> Result<Summaries, PersistError> {
        let unindexed = self
            .client
            .query(
                "SELECT pid FROM damson_summaries WHERE tenant = $1 AND state IS NULL",
                &[&tenant],
            )
            .await
            .map_err(|e| self.error(e))?
            .iter()
            .map(|row| row.get(0))
            .collect();
        let mut params: Vec<summaries::Param> = vec![&tenant];
        for value in [&filter.state, &filter.plugin].into_iter().flatten() {
            params.push(value);
        }
        let rows = self
            .client
            .query(&summaries::select(filter), &params)
            .await
            .map_err(|e| self.error(e))?;
        let rows = rows.iter().map(summaries::summary_of).collect();
        Ok(Summaries::sorted(rows, unindexed))
    }

    async fn index(&self, tenant: &str, summary: &ProcessSummary) -> Result<bool, PersistError> {
        let columns = summaries::columns(Some(summary));
        let mut params: Vec<summaries::Param> = vec![&tenant, &summary.pid];
        params.extend(columns.params());
        let updated = self
            .client
            .execute(summaries::INDEX, &params)
            .await
            .map_err(|e| self.error(e))?;
        Ok(updated == 1)
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
        // One statement: a current checkpoint's summary goes with it.
        self.client
            .execute(
                "WITH summary AS (DELETE FROM damson_summaries
                                  WHERE tenant = $1 AND pid = $2 AND $3 = '')
                 DELETE FROM damson_checkpoints WHERE tenant = $1 AND pid = $2 AND tag = $3",
                &[&key.tenant, &key.pid, &tag(key)],
            )
            .await
            .map_err(|e| self.error(e))?;
        Ok(())
    }

    async fn delete_process(&self, tenant: &str, pid: &str) -> Result<(), PersistError> {
        // One statement: the checkpoints, the summary, the log and the signals go together.
        self.client
            .execute(
                "WITH logs AS (DELETE FROM damson_logs WHERE tenant = $1 AND pid = $2),
                      heads AS (DELETE FROM damson_log_heads WHERE tenant = $1 AND pid = $2),
                      summary AS (DELETE FROM damson_summaries WHERE tenant = $1 AND pid = $2),
                      signals AS (DELETE FROM damson_signals WHERE tenant = $1 AND pid = $2)
                 DELETE FROM damson_checkpoints WHERE tenant = $1 AND pid = $2",
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
        if let Some(role) = &self.role {
            tenants::act_as(&session, role)
                .await
                .map_err(|e| self.error(e))?;
        }
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

    async fn create_tenant(&self, tenant: &TenantRow) -> Result<bool, PersistError> {
        let created = self
            .client
            .execute(
                // One statement: the tenant and its database role are made together.
                "WITH made AS (
                     INSERT INTO damson_tenants (name, created_ms, quotas) VALUES ($1, $2, $3)
                     ON CONFLICT (name) DO NOTHING RETURNING name)
                 SELECT damson_add_tenant_role(name) FROM made",
                &[
                    &tenant.name,
                    &(tenant.created_ms as i64),
                    &quotas_text(&tenant.quotas),
                ],
            )
            .await
            .map_err(|e| self.error(e))?;
        Ok(created == 1)
    }

    async fn tenants(&self) -> Result<Vec<TenantRow>, PersistError> {
        // Byte order ("C"), as the other stores sort, whatever the database's collation.
        let rows = self
            .client
            .query(
                "SELECT name, created_ms, quotas FROM damson_tenants ORDER BY name COLLATE \"C\"",
                &[],
            )
            .await
            .map_err(|e| self.error(e))?;
        rows.iter()
            .map(|row| {
                let name: String = row.get(0);
                let quotas =
                    serde_json::from_str(row.get(2)).map_err(|e| PersistError::Backend {
                        location: format!("{}, the quotas of tenant '{name}'", self.location),
                        source: Box::new(e),
                    })?;
                Ok(TenantRow {
                    name,
                    created_ms: row.get::<_, i64>(1) as u64,
                    quotas,
                })
            })
            .collect()
    }

    async fn set_quotas(&self, name: &str, quotas: &Quotas) -> Result<bool, PersistError> {
        let updated = self
            .client
            .execute(
                "UPDATE damson_tenants SET quotas = $2 WHERE name = $1",
                &[&name, &quotas_text(quotas)],
            )
            .await
            .map_err(|e| self.error(e))?;
        Ok(updated == 1)
    }

    async fn stored_bytes(&self, tenant: &str) -> Result<u64, PersistError> {
        let bytes: i64 = self
            .client
            .query_one(
                "SELECT COALESCE(SUM(octet_length(bundle)), 0)::BIGINT
                 FROM damson_checkpoints WHERE tenant = $1",
                &[&tenant],
            )
            .await
            .map_err(|e| self.error(e))?
            .get(0);
        Ok(bytes as u64)
    }

    async fn delete_tenant(&self, name: &str) -> Result<bool, PersistError> {
        // One statement, so one transaction: the tenant, its tokens and its logs go together.
        let deleted: i64 = self
            .client
            .query_one(
                "WITH gone AS (DELETE FROM damson_tenants WHERE name = $1 RETURNING name),
                      tokens AS (DELETE FROM damson_tokens WHERE tenant IN (SELECT name FROM gone)),
                      logs AS (DELETE FROM damson_logs WHERE tenant IN (SELECT name FROM gone)),
                      heads AS (DELETE FROM damson_log_heads
                                WHERE tenant IN (SELECT name FROM gone)),
                      signals AS (DELETE FROM damson_signals
                                  WHERE tenant IN (SELECT name FROM gone)),
                      roles AS (SELECT damson_drop_tenant_role(name) FROM gone)
                 SELECT (SELECT count(*) FROM gone) + 0 * (SELECT count(*) FROM roles)",
                &[&name],
            )
            .await
            .map_err(|e| self.error(e))?
            .get(0);
        Ok(deleted > 0)
    }

    async fn save_token(&self, token: &TokenRow) -> Result<(), PersistError> {
        let ms = |ms: Option<u64>| ms.map(|ms| ms as i64);
        self.client
            .execute(
                "INSERT INTO damson_tokens
                     (id, tenant, secret_sha256, scopes, label, created_ms, expires_ms, revoked_ms)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                 ON CONFLICT (id) DO UPDATE SET tenant = EXCLUDED.tenant,
                     secret_sha256 = EXCLUDED.secret_sha256, scopes = EXCLUDED.scopes,
                     label = EXCLUDED.label, created_ms = EXCLUDED.created_ms,
                     expires_ms = EXCLUDED.expires_ms, revoked_ms = EXCLUDED.revoked_ms",
                &[
                    &token.id,
                    &token.tenant,
                    &token.secret_sha256,
                    &token.scopes,
                    &token.label,
                    &(token.created_ms as i64),
                    &ms(token.expires_ms),
                    &ms(token.revoked_ms),
                ],
            )
            .await
            .map_err(|e| self.error(e))?;
        Ok(())
    }

    async fn token(&self, id: &str) -> Result<Option<TokenRow>, PersistError> {
        let row = self
            .client
            .query_opt(
                &format!("SELECT {TOKEN_COLUMNS} FROM damson_tokens WHERE id = $1"),
                &[&id],
            )
            .await
            .map_err(|e| self.error(e))?;
        Ok(row.as_ref().map(token_of))
    }

    async fn tokens(&self, tenant: Option<&str>) -> Result<Vec<TokenRow>, PersistError> {
        let rows = self
            .client
            .query(
                &format!(
                    "SELECT {TOKEN_COLUMNS} FROM damson_tokens
                     WHERE $1::text IS NULL OR tenant = $1
                     ORDER BY created_ms, id COLLATE \"C\""
                ),
                &[&tenant],
            )
            .await
            .map_err(|e| self.error(e))?;
        Ok(rows.iter().map(token_of).collect())
    }

    async fn append_audit(&self, entry: &AuditRow) -> Result<u64, PersistError> {
        let seq: i64 = self
            .client
            // Appends one at a time (the lock is held until the statement commits), so that
            // sequence numbers are taken in commit order: a reader that goes on "after the last
            // seq it saw" never skips an entry that committed later with a smaller one.
            .query_one(
                "WITH one_at_a_time AS (SELECT pg_advisory_xact_lock($7::BIGINT))
                 INSERT INTO damson_audit (at_ms, tenant, actor, action, target, outcome)
                 SELECT $1::BIGINT, $2::TEXT, $3::TEXT, $4::TEXT, $5::TEXT, $6::TEXT
                 FROM one_at_a_time RETURNING seq",
                &[
                    &(entry.at_ms as i64),
                    &entry.tenant,
                    &entry.actor,
                    &entry.action,
                    &entry.target,
                    &entry.outcome,
                    &AUDIT_LOCK,
                ],
            )
            .await
            .map_err(|e| self.error(e))?
            .get(0);
        Ok(seq as u64)
    }

    async fn audit(
        &self,
        tenant: Option<&str>,
        after: u64,
        limit: usize,
    ) -> Result<Vec<AuditRow>, PersistError> {
        // A BIGSERIAL never goes past i64::MAX: nothing comes after that.
        let Ok(after) = i64::try_from(after) else {
            return Ok(Vec::new());
        };
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self
            .client
            .query(
                "SELECT seq, at_ms, tenant, actor, action, target, outcome FROM damson_audit
                 WHERE seq > $1 AND ($2::text IS NULL OR tenant = $2)
                 ORDER BY seq LIMIT $3",
                &[&after, &tenant, &limit],
            )
            .await
            .map_err(|e| self.error(e))?;
        Ok(rows
            .iter()
            .map(|row| AuditRow {
                seq: row.get::<_, i64>(0) as u64,
                at_ms: row.get::<_, i64>(1) as u64,
                tenant: row.get(2),
                actor: row.get(3),
                action: row.get(4),
                target: row.get(5),
                outcome: row.get(6),
            })
            .collect())
    }

    async fn append_logs(
        &self,
        tenant: &str,
        pid: &str,
        lines: &[LogLine],
        dropped: u64,
        keep: usize,
    ) -> Result<(), PersistError> {
        let count = lines.len() as i64;
        let keep = i64::try_from(keep).unwrap_or(i64::MAX);
        let at_ms: Vec<i64> = lines.iter().map(|l| l.at_ms as i64).collect();
        let levels: Vec<&str> = lines.iter().map(|l| l.level.name()).collect();
        let sources: Vec<&str> = lines.iter().map(|l| l.source.name()).collect();
        let messages: Vec<&str> = lines.iter().map(|l| l.message.as_str()).collect();
        // One statement, so one transaction. The head row, taken by the upsert, is locked
        // until it commits: appends to one log take their numbers one at a time. The lines
        // numbered at or below `last_seq - keep` are dropped: the old ones deleted, the new
        // ones never inserted; `logs` counts them from the numbers.
        self.client
            .execute(
                "WITH head AS (
                     INSERT INTO damson_log_heads AS h (tenant, pid, last_seq, dropped)
                     VALUES ($1, $2, $3::BIGINT, $4::BIGINT)
                     ON CONFLICT (tenant, pid) DO UPDATE
                         SET last_seq = h.last_seq + EXCLUDED.last_seq,
                             dropped = h.dropped + EXCLUDED.dropped
                     RETURNING last_seq),
                 added AS (
                     INSERT INTO damson_logs (tenant, pid, seq, at_ms, level, source, message)
                     SELECT $1, $2, head.last_seq - $3 + l.n, l.at_ms, l.level, l.source, l.message
                     FROM head, unnest($6::BIGINT[], $7::TEXT[], $8::TEXT[], $9::TEXT[])
                         WITH ORDINALITY AS l(at_ms, level, source, message, n)
                     WHERE head.last_seq - $3 + l.n > head.last_seq - $5::BIGINT)
                 DELETE FROM damson_logs USING head
                 WHERE damson_logs.tenant = $1 AND damson_logs.pid = $2
                     AND damson_logs.seq <= head.last_seq - $5::BIGINT",
                &[
                    &tenant,
                    &pid,
                    &count,
                    &(dropped as i64),
                    &keep,
                    &at_ms,
                    &levels,
                    &sources,
                    &messages,
                ],
            )
            .await
            .map_err(|e| self.error(e))?;
        Ok(())
    }

    async fn logs(
        &self,
        tenant: &str,
        pid: &str,
        after_seq: u64,
        limit: usize,
    ) -> Result<ProcessLog, PersistError> {
        let after = i64::try_from(after_seq).unwrap_or(i64::MAX);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        // One statement, one snapshot: the lines and the count agree. Lines are numbered
        // without gaps and dropped oldest first, so those numbered but not kept are dropped.
        let rows = self
            .client
            .query(
                "WITH head AS (SELECT last_seq, dropped FROM damson_log_heads
                               WHERE tenant = $1 AND pid = $2),
                      kept AS (SELECT count(*) AS n FROM damson_logs
                               WHERE tenant = $1 AND pid = $2)
                 SELECT head.dropped + head.last_seq - kept.n,
                        l.seq, l.at_ms, l.level, l.source, l.message
                 FROM head CROSS JOIN kept LEFT JOIN LATERAL (
                     SELECT seq, at_ms, level, source, message FROM damson_logs
                     WHERE tenant = $1 AND pid = $2 AND seq > $3 ORDER BY seq LIMIT $4
                 ) l ON true
                 ORDER BY l.seq",
                &[&tenant, &pid, &after, &limit],
            )
            .await
            .map_err(|e| self.error(e))?;
        let mut log = ProcessLog::default();
        for row in &rows {
            log.dropped = row.get::<_, i64>(0) as u64;
            let Some(seq) = row.get::<_, Option<i64>>(1) else {
                continue;
            };
            let (level, source): (String, String) = (row.get(3), row.get(4));
            let unusable = |what: &str, value: &str| PersistError::Backend {
                location: format!("{}, the log of process {pid}", self.location),
                source: format!("line {seq} has an unknown {what} '{value}'").into(),
            };
            log.lines.push(LogLine {
                seq: seq as u64,
                at_ms: row.get::<_, i64>(2) as u64,
                level: LogLevel::from_name(&level).ok_or_else(|| unusable("level", &level))?,
                source: LogSource::from_name(&source).ok_or_else(|| unusable("source", &source))?,
                message: row.get(5),
            });
        }
        Ok(log)
    }

    async fn scoped(&self, tenant: &str) -> Result<Option<Arc<dyn Persister>>, PersistError> {
        tenants::scoped(self, tenant).await
    }

    async fn post_signal(
        &self,
        tenant: &str,
        pid: &str,
        signal: &SignalRow,
    ) -> Result<Posted, PersistError> {
        // One statement checks the key and numbers the signal. Two posts at once may pick the
        // same number (or key): the second stores nothing, and is tried again.
        const POST: &str = "WITH earlier AS (SELECT seq FROM damson_signals
                                WHERE tenant = $1 AND pid = $2 AND key = $5),
                  posted AS (INSERT INTO damson_signals (tenant, pid, seq, event, data, key, sent_ms)
                             SELECT $1, $2, COALESCE((SELECT MAX(seq) FROM damson_signals
                                                      WHERE tenant = $1 AND pid = $2), 0) + 1,
                                    $3, $4, $5, $6
                             WHERE NOT EXISTS (SELECT 1 FROM earlier)
                             ON CONFLICT DO NOTHING RETURNING seq)
             SELECT (SELECT seq FROM posted), (SELECT seq FROM earlier)";
        let sent_ms = signal.sent_ms as i64;
        for _ in 0..16 {
            let row = self
                .client
                .query_one(
                    POST,
                    &[
                        &tenant,
                        &pid,
                        &signal.event,
                        &signal.data,
                        &signal.key,
                        &sent_ms,
                    ],
                )
                .await
                .map_err(|e| self.error(e))?;
            let (posted, earlier): (Option<i64>, Option<i64>) = (row.get(0), row.get(1));
            match (posted, earlier) {
                (Some(seq), _) => return Ok(Posted::Queued { seq: seq as u64 }),
                (None, Some(seq)) => return Ok(Posted::Duplicate { seq: seq as u64 }),
                (None, None) => continue,
            }
        }
        Err(PersistError::Backend {
            location: self.location.clone(),
            source: format!(
                "cannot number a signal to process {pid}: other posts kept taking the number"
            )
            .into(),
        })
    }

    async fn signals(
        &self,
        tenant: &str,
        pid: &str,
        after_seq: u64,
    ) -> Result<Vec<SignalRow>, PersistError> {
        let rows = self
            .client
            .query(
                "SELECT seq, event, data, key, sent_ms FROM damson_signals
                 WHERE tenant = $1 AND pid = $2 AND seq > $3 ORDER BY seq",
                &[&tenant, &pid, &(after_seq as i64)],
            )
            .await
            .map_err(|e| self.error(e))?;
        Ok(rows
            .iter()
            .map(|row| SignalRow {
                seq: row.get::<_, i64>(0) as u64,
                event: row.get(1),
                data: row.get(2),
                key: row.get(3),
                sent_ms: row.get::<_, i64>(4) as u64,
            })
            .collect())
    }

    fn summary(&self) -> String {
        format!("PostgreSQL store at {}", self.location)
    }
}

/// Quotas as the `quotas` column keeps them: JSON, so that a quota added later needs no
/// migration.
fn quotas_text(quotas: &Quotas) -> String {
    serde_json::to_string(quotas).expect("quotas serialize")
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
