//! [`MemoryPersister`]: checkpoints in the process's memory.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, Weak};

use async_trait::async_trait;

use super::{CheckpointKey, Claim, Holder, PersistError, Persister, Presence, check_key};

/// Keeps checkpoints and plugins in memory; they are gone when the value is dropped.
#[derive(Default)]
pub struct MemoryPersister {
    checkpoints: Mutex<BTreeMap<CheckpointKey, Vec<u8>>>,
    plugins: Mutex<BTreeMap<String, Vec<u8>>>,
    /// (tenant, pid) → (owner, until).
    claims: Mutex<HashMap<(String, String), (String, u64)>>,
    /// The owners that joined, alive while their presence is kept.
    owners: Mutex<HashMap<String, Weak<()>>>,
}

impl MemoryPersister {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl Persister for MemoryPersister {
    async fn save(&self, key: &CheckpointKey, bundle: &[u8]) -> Result<(), PersistError> {
        check_key(key)?;
        self.checkpoints
            .lock()
            .expect("checkpoints")
            .insert(key.clone(), bundle.to_vec());
        Ok(())
    }

    async fn save_claimed(
        &self,
        key: &CheckpointKey,
        bundle: &[u8],
        owner: &str,
    ) -> Result<bool, PersistError> {
        check_key(key)?;
        // Held across the write: a claim cannot change hands halfway.
        let claims = self.claims.lock().expect("claims");
        let held = claims
            .get(&(key.tenant.clone(), key.pid.clone()))
            .is_some_and(|(holder, _)| holder == owner);
        if held {
            self.checkpoints
                .lock()
                .expect("checkpoints")
                .insert(key.clone(), bundle.to_vec());
        }
        Ok(held)
    }

    async fn load(&self, key: &CheckpointKey) -> Result<Option<Vec<u8>>, PersistError> {
        Ok(self
            .checkpoints
            .lock()
            .expect("checkpoints")
            .get(key)
            .cloned())
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

    fn summary(&self) -> String {
        "in-memory store".into()
    }
}
