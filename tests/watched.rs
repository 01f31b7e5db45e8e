//! [`Watched`]: a store seen through a window the test controls.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_trait::async_trait;
use damson::persist::{
    AuditRow, CheckpointKey, Claim, LogLine, MemoryPersister, PersistError, Persister, Posted,
    Presence, ProcessLog, ProcessSummary, Quotas, SignalRow, Summaries, SummaryFilter, TenantRow,
    TokenRow,
};

/// A store (by default a fresh in-memory one) that keeps every bundle saved through it, in
/// order and with when; the test can cut off the renewal of claims, as if the store were out
/// of reach for that.
pub struct Watched {
    store: Arc<dyn Persister>,
    renewals_cut: AtomicBool,
    saves: Mutex<Vec<(Instant, Vec<u8>)>>,
}

impl Default for Watched {
    fn default() -> Self {
        Self::new(Arc::new(MemoryPersister::new()))
    }
}

impl Watched {
    /// `store`, watched.
    pub fn new(store: Arc<dyn Persister>) -> Self {
        Self {
            store,
            renewals_cut: AtomicBool::new(false),
            saves: Mutex::new(Vec::new()),
        }
    }

    /// Every bundle saved, in order.
    pub fn bundles(&self) -> Vec<Vec<u8>> {
        let saves = self.saves.lock().unwrap();
        saves.iter().map(|(_, bundle)| bundle.clone()).collect()
    }

    /// When each save at or after `since` came.
    pub fn saved_since(&self, since: Instant) -> Vec<Instant> {
        let saves = self.saves.lock().unwrap();
        saves
            .iter()
            .map(|(at, _)| *at)
            .filter(|at| *at >= since)
            .collect()
    }

    /// Make renewals of claims fail (`true`) or pass again.
    pub fn cut_renewals(&self, cut: bool) {
        self.renewals_cut.store(cut, Ordering::SeqCst);
    }
}

#[async_trait]
impl Persister for Watched {
    async fn save(
        &self,
        key: &CheckpointKey,
        bundle: &[u8],
        summary: Option<&ProcessSummary>,
    ) -> Result<(), PersistError> {
        self.saves
            .lock()
            .unwrap()
            .push((Instant::now(), bundle.to_vec()));
        self.store.save(key, bundle, summary).await
    }
    async fn save_claimed(
        &self,
        key: &CheckpointKey,
        bundle: &[u8],
        summary: Option<&ProcessSummary>,
        owner: &str,
    ) -> Result<bool, PersistError> {
        self.saves
            .lock()
            .unwrap()
            .push((Instant::now(), bundle.to_vec()));
        self.store.save_claimed(key, bundle, summary, owner).await
    }
    async fn summaries(
        &self,
        tenant: &str,
        filter: &SummaryFilter,
    ) -> Result<Summaries, PersistError> {
        self.store.summaries(tenant, filter).await
    }
    async fn index(&self, tenant: &str, summary: &ProcessSummary) -> Result<bool, PersistError> {
        self.store.index(tenant, summary).await
    }
    async fn load(&self, key: &CheckpointKey) -> Result<Option<Vec<u8>>, PersistError> {
        self.store.load(key).await
    }
    async fn list(&self) -> Result<Vec<CheckpointKey>, PersistError> {
        self.store.list().await
    }
    async fn list_process(
        &self,
        tenant: &str,
        pid: &str,
    ) -> Result<Vec<CheckpointKey>, PersistError> {
        self.store.list_process(tenant, pid).await
    }
    async fn delete(&self, key: &CheckpointKey) -> Result<(), PersistError> {
        self.store.delete(key).await
    }
    async fn delete_process(&self, tenant: &str, pid: &str) -> Result<(), PersistError> {
        self.store.delete_process(tenant, pid).await
    }
    async fn save_plugin(&self, digest: &str, component: &[u8]) -> Result<(), PersistError> {
        self.store.save_plugin(digest, component).await
    }
    async fn load_plugin(&self, digest: &str) -> Result<Option<Vec<u8>>, PersistError> {
        self.store.load_plugin(digest).await
    }
    async fn join(&self, owner: &str) -> Result<Presence, PersistError> {
        self.store.join(owner).await
    }
    async fn claim(
        &self,
        tenant: &str,
        pid: &str,
        owner: &str,
        now_ms: u64,
        until_ms: u64,
    ) -> Result<Claim, PersistError> {
        self.store.claim(tenant, pid, owner, now_ms, until_ms).await
    }
    async fn renew(
        &self,
        owner: &str,
        until_ms: u64,
    ) -> Result<Vec<(String, String)>, PersistError> {
        if self.renewals_cut.load(Ordering::SeqCst) {
            return Err(PersistError::Backend {
                location: self.store.summary(),
                source: "out of reach (cut off by the test)".into(),
            });
        }
        self.store.renew(owner, until_ms).await
    }
    async fn release(&self, tenant: &str, pid: &str, owner: &str) -> Result<(), PersistError> {
        self.store.release(tenant, pid, owner).await
    }
    async fn create_tenant(&self, tenant: &TenantRow) -> Result<bool, PersistError> {
        self.store.create_tenant(tenant).await
    }
    async fn tenants(&self) -> Result<Vec<TenantRow>, PersistError> {
        self.store.tenants().await
    }
    async fn set_quotas(&self, name: &str, quotas: &Quotas) -> Result<bool, PersistError> {
        self.store.set_quotas(name, quotas).await
    }
    async fn stored_bytes(&self, tenant: &str) -> Result<u64, PersistError> {
        self.store.stored_bytes(tenant).await
    }
    async fn delete_tenant(&self, name: &str) -> Result<bool, PersistError> {
        self.store.delete_tenant(name).await
    }
    async fn save_token(&self, token: &TokenRow) -> Result<(), PersistError> {
        self.store.save_token(token).await
    }
    async fn token(&self, id: &str) -> Result<Option<TokenRow>, PersistError> {
        self.store.token(id).await
    }
    async fn tokens(&self, tenant: Option<&str>) -> Result<Vec<TokenRow>, PersistError> {
        self.store.tokens(tenant).await
    }
    async fn append_audit(&self, entry: &AuditRow) -> Result<u64, PersistError> {
        self.store.append_audit(entry).await
    }
    async fn audit(
        &self,
        tenant: Option<&str>,
        after: u64,
        limit: usize,
    ) -> Result<Vec<AuditRow>, PersistError> {
        self.store.audit(tenant, after, limit).await
    }
    async fn append_logs(
        &self,
        tenant: &str,
        pid: &str,
        lines: &[LogLine],
        dropped: u64,
        keep: usize,
    ) -> Result<(), PersistError> {
        self.store
            .append_logs(tenant, pid, lines, dropped, keep)
            .await
    }
    async fn logs(
        &self,
        tenant: &str,
        pid: &str,
        after_seq: u64,
        limit: usize,
    ) -> Result<ProcessLog, PersistError> {
        self.store.logs(tenant, pid, after_seq, limit).await
    }
    async fn post_signal(
        &self,
        tenant: &str,
        pid: &str,
        signal: &SignalRow,
    ) -> Result<Posted, PersistError> {
        self.store.post_signal(tenant, pid, signal).await
    }
    async fn signals(
        &self,
        tenant: &str,
        pid: &str,
        after_seq: u64,
    ) -> Result<Vec<SignalRow>, PersistError> {
        self.store.signals(tenant, pid, after_seq).await
    }
    fn summary(&self) -> String {
        format!("{} (watched)", self.store.summary())
    }
}
