//! [`MemoryPersister`]: checkpoints in the process's memory.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, Weak};

use async_trait::async_trait;

use super::{
    AuditRow, CheckpointKey, Claim, Holder, LogLine, PersistError, Persister, Posted, Presence,
    ProcessLog, ProcessSummary, Quotas, SignalRow, Summaries, SummaryFilter, TenantRow, TokenRow,
    check_key,
};

/// Keeps checkpoints and plugins in memory; they are gone when the value is dropped.
#[derive(Default)]
pub struct MemoryPersister {
    checkpoints: Mutex<BTreeMap<CheckpointKey, Stored>>,
    plugins: Mutex<BTreeMap<String, Vec<u8>>>,
    /// (tenant, pid) → (owner, until).
    claims: Mutex<HashMap<(String, String), (String, u64)>>,
    /// The owners that joined, alive while their presence is kept.
    owners: Mutex<HashMap<String, Weak<()>>>,
    /// Name → tenant.
    tenants: Mutex<BTreeMap<String, TenantRow>>,
    /// Id → token.
    tokens: Mutex<BTreeMap<String, TokenRow>>,
    /// The audit log, oldest first; each entry's `seq` is one more than the one before.
    audit: Mutex<Vec<AuditRow>>,
    /// (tenant, pid) → the process's log.
    logs: Mutex<HashMap<(String, String), Log>>,
    /// (tenant, pid) → the signals sent to the process, oldest first.
    signals: Mutex<HashMap<(String, String), Vec<SignalRow>>>,
}

/// A checkpoint as kept: the bundle, and (current checkpoints only) the process's summary, if
/// it is indexed.
type Stored = (Vec<u8>, Option<ProcessSummary>);

/// One process's log: its kept lines, oldest first, the last seq given and the lines dropped.
#[derive(Default)]
struct Log {
    lines: VecDeque<LogLine>,
    last_seq: u64,
    dropped: u64,
}

impl MemoryPersister {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl Persister for MemoryPersister {
    async fn save(
        &self,
        key: &CheckpointKey,
        bundle: &[u8],
        summary: Option<&ProcessSummary>,
    ) -> Result<(), PersistError> {
        check_key(key)?;
        let summary = summary.filter(|_| key.tag.is_none()).cloned();
        self.checkpoints
            .lock()
            .expect("checkpoints")
            .insert(key.clone(), (bundle.to_vec(), summary));
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
        // Held across the write: a claim cannot change hands halfway.
        let claims = self.claims.lock().expect("claims");
        let held = claims
            .get(&(key.tenant.clone(), key.pid.clone()))
            .is_some_and(|(holder, _)| holder == owner);
        if held {
            let summary = summary.filter(|_| key.tag.is_none()).cloned();
            self.checkpoints
                .lock()
                .expect("checkpoints")
                .insert(key.clone(), (bundle.to_vec(), summary));
        }
        Ok(held)
    }

    async fn load(&self, key: &CheckpointKey) -> Result<Option<Vec<u8>>, PersistError> {
        Ok(self
            .checkpoints
            .lock()
            .expect("checkpoints")
            .get(key)
            .map(|(bundle, _)| bundle.clone()))
    }

    async fn summaries(
        &self,
        tenant: &str,
        filter: &SummaryFilter,
    ) -> Result<Summaries, PersistError> {
        let all = self.checkpoints.lock().expect("checkpoints");
        let (mut rows, mut unindexed) = (Vec::new(), Vec::new());
        for (key, (_, summary)) in all.iter() {
            if key.tenant != tenant || key.tag.is_some() {
                continue;
            }
            match summary {
                Some(summary) if filter.matches(summary) => rows.push(summary.clone()),
                Some(_) => {}
                None => unindexed.push(key.pid.clone()),
            }
        }
        Ok(Summaries::sorted(rows, unindexed))
    }

    async fn index(&self, tenant: &str, summary: &ProcessSummary) -> Result<bool, PersistError> {
        let key = CheckpointKey::of(tenant, &summary.pid);
        let mut all = self.checkpoints.lock().expect("checkpoints");
        match all.get_mut(&key) {
            Some((_, slot @ None)) => {
                *slot = Some(summary.clone());
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn list(&self) -> Result<Vec<CheckpointKey>, PersistError> {
        Ok(self
            .checkpoints
            .lock()
            .expect("checkpoints")
            .keys()
            .cloned()
            .collect())
    }

    async fn list_process(
        &self,
        tenant: &str,
        pid: &str,
    ) -> Result<Vec<CheckpointKey>, PersistError> {
        let all = self.checkpoints.lock().expect("checkpoints");
        Ok(all
            .keys()
            .filter(|k| k.tenant == tenant && k.pid == pid)
            .cloned()
            .collect())
    }

    async fn delete(&self, key: &CheckpointKey) -> Result<(), PersistError> {
        self.checkpoints.lock().expect("checkpoints").remove(key);
        Ok(())
    }

    async fn delete_process(&self, tenant: &str, pid: &str) -> Result<(), PersistError> {
        self.checkpoints
            .lock()
            .expect("checkpoints")
            .retain(|k, _| !(k.tenant == tenant && k.pid == pid));
        let process = (tenant.to_string(), pid.to_string());
        self.logs.lock().expect("logs").remove(&process);
        self.signals.lock().expect("signals").remove(&process);
        Ok(())
    }

    async fn save_plugin(&self, digest: &str, component: &[u8]) -> Result<(), PersistError> {
        self.plugins
            .lock()
            .expect("plugins")
            .entry(digest.to_string())
            .or_insert_with(|| component.to_vec());
        Ok(())
    }

    async fn load_plugin(&self, digest: &str) -> Result<Option<Vec<u8>>, PersistError> {
        Ok(self.plugins.lock().expect("plugins").get(digest).cloned())
    }

    async fn join(&self, owner: &str) -> Result<Presence, PersistError> {
        let token = Arc::new(());
        let mut owners = self.owners.lock().expect("owners");
        owners.retain(|_, alive| alive.strong_count() > 0);
        owners.insert(owner.to_string(), Arc::downgrade(&token));
        Ok(Presence::new(token))
    }

    async fn claim(
        &self,
        tenant: &str,
        pid: &str,
        owner: &str,
        now_ms: u64,
        until_ms: u64,
    ) -> Result<Claim, PersistError> {
        let mut claims = self.claims.lock().expect("claims");
        let key = (tenant.to_string(), pid.to_string());
        if let Some((holder, until)) = claims.get(&key) {
            let present = || {
                self.owners
                    .lock()
                    .expect("owners")
                    .get(holder)
                    .is_some_and(|alive| alive.strong_count() > 0)
            };
            if holder != owner && *until >= now_ms && present() {
                return Ok(Claim::Held(Holder {
                    owner: holder.clone(),
                    until_ms: *until,
                }));
            }
        }
        claims.insert(key, (owner.to_string(), until_ms));
        Ok(Claim::Granted)
    }

    async fn renew(
        &self,
        owner: &str,
        until_ms: u64,
    ) -> Result<Vec<(String, String)>, PersistError> {
        let mut held = Vec::new();
        for (key, (holder, until)) in self.claims.lock().expect("claims").iter_mut() {
            if holder == owner {
                *until = until_ms;
                held.push(key.clone());
            }
        }
        Ok(held)
    }

    async fn release(&self, tenant: &str, pid: &str, owner: &str) -> Result<(), PersistError> {
        let mut claims = self.claims.lock().expect("claims");
        let key = (tenant.to_string(), pid.to_string());
        if claims.get(&key).is_some_and(|(holder, _)| holder == owner) {
            claims.remove(&key);
        }
        Ok(())
    }

    async fn create_tenant(&self, tenant: &TenantRow) -> Result<bool, PersistError> {
        let mut tenants = self.tenants.lock().expect("tenants");
        if tenants.contains_key(&tenant.name) {
            return Ok(false);
        }
        tenants.insert(tenant.name.clone(), tenant.clone());
        Ok(true)
    }

    async fn tenants(&self) -> Result<Vec<TenantRow>, PersistError> {
        Ok(self
            .tenants
            .lock()
            .expect("tenants")
            .values()
            .cloned()
            .collect())
    }

    async fn set_quotas(&self, name: &str, quotas: &Quotas) -> Result<bool, PersistError> {
        let mut tenants = self.tenants.lock().expect("tenants");
        let Some(tenant) = tenants.get_mut(name) else {
            return Ok(false);
        };
        tenant.quotas = quotas.clone();
        Ok(true)
    }

    async fn stored_bytes(&self, tenant: &str) -> Result<u64, PersistError> {
        Ok(self
            .checkpoints
            .lock()
            .expect("checkpoints")
            .iter()
            .filter(|(key, _)| key.tenant == tenant)
            .map(|(_, (bundle, _))| bundle.len() as u64)
            .sum())
    }

    async fn delete_tenant(&self, name: &str) -> Result<bool, PersistError> {
        // Held across both: nobody sees the tenant gone but its tokens there.
        let mut tenants = self.tenants.lock().expect("tenants");
        if tenants.remove(name).is_none() {
            return Ok(false);
        }
        self.tokens
            .lock()
            .expect("tokens")
            .retain(|_, token| token.tenant != name);
        self.logs
            .lock()
            .expect("logs")
            .retain(|(tenant, _), _| tenant != name);
        self.signals
            .lock()
            .expect("signals")
            .retain(|(tenant, _), _| tenant != name);
        Ok(true)
    }

    async fn save_token(&self, token: &TokenRow) -> Result<(), PersistError> {
        self.tokens
            .lock()
            .expect("tokens")
            .insert(token.id.clone(), token.clone());
        Ok(())
    }

    async fn token(&self, id: &str) -> Result<Option<TokenRow>, PersistError> {
        Ok(self.tokens.lock().expect("tokens").get(id).cloned())
    }

    async fn tokens(&self, tenant: Option<&str>) -> Result<Vec<TokenRow>, PersistError> {
        let mut tokens: Vec<TokenRow> = self
            .tokens
            .lock()
            .expect("tokens")
            .values()
            .filter(|token| tenant.is_none_or(|t| token.tenant == t))
            .cloned()
            .collect();
        tokens.sort_by(|a, b| (a.created_ms, &a.id).cmp(&(b.created_ms, &b.id)));
        Ok(tokens)
    }

    async fn append_audit(&self, entry: &AuditRow) -> Result<u64, PersistError> {
        let mut audit = self.audit.lock().expect("audit");
        let seq = audit.last().map_or(1, |last| last.seq + 1);
        audit.push(AuditRow {
            seq,
            ..entry.clone()
        });
        Ok(seq)
    }

    async fn audit(
        &self,
        tenant: Option<&str>,
        after: u64,
        limit: usize,
    ) -> Result<Vec<AuditRow>, PersistError> {
        let audit = self.audit.lock().expect("audit");
        // Oldest first, so sorted by seq.
        let start = audit.partition_point(|entry| entry.seq <= after);
        Ok(audit[start..]
            .iter()
            .filter(|entry| tenant.is_none_or(|t| entry.tenant == t))
            .take(limit)
            .cloned()
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
        let mut logs = self.logs.lock().expect("logs");
        let log = logs
            .entry((tenant.to_string(), pid.to_string()))
            .or_default();
        log.dropped += dropped;
        for line in lines {
            log.last_seq += 1;
            log.lines.push_back(LogLine {
                seq: log.last_seq,
                ..line.clone()
            });
        }
        while log.lines.len() > keep {
            log.lines.pop_front();
            log.dropped += 1;
        }
        Ok(())
    }

    async fn logs(
        &self,
        tenant: &str,
        pid: &str,
        after_seq: u64,
        limit: usize,
    ) -> Result<ProcessLog, PersistError> {
        let logs = self.logs.lock().expect("logs");
        let Some(log) = logs.get(&(tenant.to_string(), pid.to_string())) else {
            return Ok(ProcessLog::default());
        };
        Ok(ProcessLog {
            lines: log
                .lines
                .iter()
                .filter(|line| line.seq > after_seq)
                .take(limit)
                .cloned()
                .collect(),
            dropped: log.dropped,
        })
    }

    async fn post_signal(
        &self,
        tenant: &str,
        pid: &str,
        signal: &SignalRow,
    ) -> Result<Posted, PersistError> {
        let mut signals = self.signals.lock().expect("signals");
        let theirs = signals
            .entry((tenant.to_string(), pid.to_string()))
            .or_default();
        if let Some(earlier) = signal
            .key
            .as_ref()
            .and_then(|key| theirs.iter().find(|s| s.key.as_ref() == Some(key)))
        {
            return Ok(Posted::Duplicate { seq: earlier.seq });
        }
        let seq = theirs.last().map_or(1, |last| last.seq + 1);
        theirs.push(SignalRow {
            seq,
            ..signal.clone()
        });
        Ok(Posted::Queued { seq })
    }

    async fn signals(
        &self,
        tenant: &str,
        pid: &str,
        after_seq: u64,
    ) -> Result<Vec<SignalRow>, PersistError> {
        let signals = self.signals.lock().expect("signals");
        let theirs = signals.get(&(tenant.to_string(), pid.to_string()));
        Ok(theirs
            .into_iter()
            .flatten()
            .filter(|s| s.seq > after_seq)
            .cloned()
            .collect())
    }

    fn summary(&self) -> String {
        "in-memory store".into()
    }
}
