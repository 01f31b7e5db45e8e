//! [`Host`]: the entry point a program embeds to load plugins and run processes.
//!
//! A host composes the parts below it, one module per job: [`plugins`] (finding, loading and
//! caching plugins), [`processes`] (creating processes and restoring them from checkpoints, on
//! one guest set-up), [`claims`] (this host's claims on its processes in a shared store),
//! [`recovery`] (continuing what a host left), [`dormant`] (waiting processes out of memory
//! until a request brings them back), [`outside`] (what the host is to a running process) and [`audit`] (recording the control operations that arrive through a
//! communicator). Making processes reachable through a communicator is
//! [`comms::Attachment`](crate::comms).

mod audit;
mod claims;
mod dormant;
pub mod index;
mod outside;
mod plugins;
mod processes;
mod recovery;
mod signals;
mod timers;

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use crate::fair::FairPermits;

pub use recovery::Recovered;

use crate::comms::{Attachment, Communicator};
use crate::config::HostConfig;
use crate::error::{BoxError, Error, Result};
use crate::persist::Persister;
use crate::process::{ProcessHandle, ProcessTable};
use crate::tenancy::quota::SubmissionRate;
use crate::tenancy::{Quota, QuotaExceeded, Quotas};
use crate::wasm::{Limits, Runtime};

/// Loads plugins and runs processes, each on its own tokio task. Cheap to clone: clones share
/// the engine, the loaded plugins and the processes.
///
/// Must be used inside a tokio runtime (processes are spawned on it).
///
/// ```no_run
/// # async fn demo() -> damson::Result<()> {
/// let mut config = damson::HostConfig::new();
/// config.plugin_dir("target/wasm32-wasip2/release");
/// let host = damson::Host::new(&config)?;
/// let add = host.load("add").await?;
/// let record = host.run(&add, serde_json::json!({"x": 1, "y": 2})).await?;
/// assert_eq!(record.outputs["sum"], 3);
///
/// let collatz = host.load("collatz").await?;
/// let process = host.launch(&collatz, serde_json::json!({"n": 27})).await?;
/// process.pause(Some("having a look"));
/// process.play();
/// println!("{:?}", process.wait().await.outputs);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Host {
    inner: Arc<Inner>,
}

struct Inner {
    runtime: Runtime,
    config: HostConfig,
    plugins: plugins::Plugins,
    /// Every process of this host, by pid.
    processes: Arc<ProcessTable>,
    /// Bounds the processes running a guest call at once, shared fairly between the tenants
    /// of the hosts made with [`Host::for_tenant`].
    steps: Arc<FairPermits>,
    /// The tenant, as the step permits count it.
    tenant_name: Arc<str>,
    /// Where durable processes checkpoint, if anywhere.
    store: Option<Arc<dyn Persister>>,
    /// This host's claims in the store, when it has one.
    claims: Option<claims::Claims>,
    /// Held while a process is loaded from the store, so that one pid is never restored twice.
    restoring: tokio::sync::Mutex<()>,
    /// The communicator processes are reachable through, once attached.
    comms: OnceLock<Attachment>,
    /// The tenant's limits (see [`Host::for_tenant`]).
    quotas: Quotas,
    /// The tenant's submissions in the last second, for [`Quota::SubmissionsPerSecond`].
    submissions: SubmissionRate,
    /// Whether plugins are found by name only, never by path (a host for a tenant).
    names_only: bool,
    /// What brings this host's dehydrated processes back, once one has dehydrated.
    rehydrator: OnceLock<Arc<dyn crate::process::Rehydrate>>,
    /// Where the signals to its processes wait for them.
    inbox: Arc<signals::StoreInbox>,
    /// When its processes' timers fire.
    timers: timers::Timers,
}

impl Host {
    /// A host with this configuration. Starts wasmtime's engine and the epoch thread. Its
    /// processes live in memory only: see [`with_store`](Self::with_store) for durable ones.
    ///
    /// # Errors
    /// [`Error::Engine`] when wasmtime's engine cannot be set up with this configuration;
    /// [`Error::InstancePool`] when the instance pool's address space cannot be reserved.
    pub fn new(config: &HostConfig) -> Result<Self> {
        Self::build(config, None)
    }

    /// A host whose processes are durable: each checkpoints into `store` (when it is created,
    /// after every step, when it pauses, waits or terminates — see [`HostConfig`]) and can be
    /// continued from there by this host or another one after a crash
    /// ([`continue_process`](Self::continue_process), [`recover`](Self::recover)).
    ///
    /// ```no_run
    /// # async fn demo() -> damson::Result<()> {
    /// use std::sync::Arc;
    /// let store = Arc::new(damson::persist::EmbeddedPersister::open("/tmp/damson.redb").unwrap());
    /// let mut config = damson::HostConfig::new();
    /// config.plugin_dir("target/wasm32-wasip2/release");
    /// let host = damson::Host::with_store(&config, store)?;
    /// let collatz = host.load("collatz").await?;
    /// let pid = host.launch(&collatz, serde_json::json!({"n": 27})).await?.pid().to_string();
    /// // … the machine restarts; a new host continues from the last checkpoint:
    /// let record = host.continue_process(&pid, None).await?.wait().await;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::Engine`], as for [`new`](Self::new).
    pub fn with_store(config: &HostConfig, store: Arc<dyn Persister>) -> Result<Self> {
        Self::build(config, Some(store))
    }

    fn build(config: &HostConfig, store: Option<Arc<dyn Persister>>) -> Result<Self> {
        let claims = store
            .as_ref()
            .map(|_| claims::Claims::new(config.claim_ttl));
        Ok(Self {
            inner: Arc::new(Inner {
                runtime: Runtime::new(config)?,
                config: config.clone(),
                plugins: plugins::Plugins::default(),
                processes: Arc::default(),
                steps: FairPermits::new(
                    config.max_concurrent_steps,
                    FairPermits::three_quarters(config.max_concurrent_steps),
                ),
                tenant_name: Arc::from(config.tenant.as_str()),
                inbox: Arc::new(signals::StoreInbox::new(store.clone(), &config.tenant)),
                store,
                claims,
                restoring: tokio::sync::Mutex::new(()),
                comms: OnceLock::new(),
                quotas: Quotas::default(),
                submissions: SubmissionRate::default(),
                names_only: false,
                rehydrator: OnceLock::new(),
                timers: timers::Timers::default(),
            }),
        })
    }

    /// A host acting for `tenant` beside this one, as a daemon serving several tenants makes
    /// them: it shares this host's engine, store and step permits, and
    /// has its own processes, claims and communicator. Its instances get the lower of this
    /// host's limits and the tenant's `quotas` (memory per instance, time per step); it
    /// refuses a process over the tenant's live-processes, stored-bytes or
    /// submissions-per-second quota ([`Error::OverQuota`]; children of its running processes
    /// are never refused, and count as live) and a plugin over its plugin-size quota. It finds plugins by name only (never by path: [`Error::PluginPath`]), in
    /// `plugin_dirs` and then this host's plugin directories.
    pub fn for_tenant(&self, tenant: &str, quotas: Quotas, plugin_dirs: Vec<PathBuf>) -> Self {
        self.for_tenant_on(tenant, quotas, plugin_dirs, self.inner.store.clone())
    }

    /// As [`for_tenant`](Self::for_tenant), with its processes in `store` (`None`: none): a
    /// view of this host's store that the store keeps to the tenant's rows
    /// ([`Persister::scoped`](crate::persist::Persister::scoped)).
    pub fn for_tenant_on(
        &self,
        tenant: &str,
        quotas: Quotas,
        plugin_dirs: Vec<PathBuf>,
        store: Option<Arc<dyn Persister>>,
    ) -> Self {
        let mut config = self.inner.config.clone();
        config.tenant(tenant);
        config.plugin_dirs = plugin_dirs
            .into_iter()
            .chain(config.plugin_dirs.iter().cloned())
            .collect();
        let own = self.inner.runtime.limits();
        let lower = |quota: Option<u64>, own: u64| quota.map_or(own, |q| q.min(own));
        let limits = Limits {
            max_memory: lower(quotas.memory_per_instance, own.max_memory as u64) as usize,
            step_timeout: std::time::Duration::from_millis(lower(
                quotas.step_time_ms,
                own.step_timeout.as_millis() as u64,
            )),
        };
        Self {
            inner: Arc::new(Inner {
                runtime: self.inner.runtime.for_tenant(limits, tenant),
                claims: store
                    .as_ref()
                    .map(|_| claims::Claims::new(config.claim_ttl)),
                config,
                plugins: plugins::Plugins::default(),
                processes: Arc::default(),
                steps: self.inner.steps.clone(),
                tenant_name: Arc::from(tenant),
                inbox: Arc::new(signals::StoreInbox::new(store.clone(), tenant)),
                store,
                restoring: tokio::sync::Mutex::new(()),
                comms: OnceLock::new(),
                quotas,
                submissions: SubmissionRate::default(),
                names_only: true,
                rehydrator: OnceLock::new(),
                timers: timers::Timers::default(),
            }),
        }
    }

    /// The tenant this host acts for ([`HostConfig::tenant`]).
    pub fn tenant(&self) -> &str {
        &self.inner.config.tenant
    }

    /// The tenant's quotas this host enforces (none for a host made with [`new`](Self::new) or
    /// [`with_store`](Self::with_store)).
    pub fn quotas(&self) -> &Quotas {
        &self.inner.quotas
    }

    /// Refuse a request that would take the tenant over `quota`, now at `used` of it.
    fn within(&self, quota: Quota, used: u64) -> Result<()> {
        match quota.of(&self.inner.quotas) {
            Some(limit) if used >= limit => Err(Error::OverQuota(QuotaExceeded {
                tenant: self.tenant().to_string(),
                quota,
                limit,
                used,
            })),
            _ => Ok(()),
        }
    }

    /// The store durable processes checkpoint into, if this host has one.
    pub fn store(&self) -> Option<&Arc<dyn Persister>> {
        self.inner.store.as_ref()
    }

    pub(crate) fn config(&self) -> &HostConfig {
        &self.inner.config
    }

    /// Make this host's processes reachable through `communicator`, as plumpy's processes are
    /// through theirs: each process answers the RPC intents `pause`, `play`, `kill` and
    /// `status` at its pid; the `pause`, `play` and `kill` broadcasts reach every process of
    /// the host; every state change is broadcast as `state_changed.<from>.<to>` from the pid.
    /// Serve tasks too with a [`ProcessLauncher`](crate::comms::ProcessLauncher). Every pause,
    /// play, kill and task that arrives is appended to the store's audit log (with no store,
    /// only logged), by the communicator's [`peer`](Communicator::peer), before it is answered.
    ///
    /// # Errors
    /// [`Error::Comms`] when a communicator is attached already or refuses the subscribers.
    pub async fn attach(&self, communicator: Arc<dyn Communicator>) -> Result<()> {
        let comms_error = |source: BoxError| Error::Comms {
            doing: "attaching to the host".into(),
            source,
        };
        if self.inner.comms.get().is_some() {
            return Err(comms_error("this host has a communicator already".into()));
        }
        let log = Arc::new(audit::Audit {
            store: self.inner.store.clone(),
            tenant: self.inner.tenant_name.clone(),
        });
        let processes = Arc::downgrade(&self.inner.processes);
        let attachment = Attachment::new(communicator, processes, log, self.inner.inbox.clone())
            .await
            .map_err(|e| comms_error(e.into()))?;
        if self.inner.comms.set(attachment).is_err() {
            return Err(comms_error("this host has a communicator already".into()));
        }
        for process in self.inner.processes.live() {
            self.reachable(&process).await?;
        }
        Ok(())
    }

    /// Answer RPC intents for `process` at its pid, if a communicator is attached.
    async fn reachable(&self, process: &ProcessHandle) -> Result<()> {
        let Some(attachment) = self.inner.comms.get() else {
            return Ok(());
        };
        attachment
            .reachable(process)
            .await
            .map_err(|e| Error::Comms {
                doing: format!("making process {} reachable", process.pid()),
                source: e.into(),
            })
    }

    /// Who the messages arriving through the attached communicator come from (`local` when
    /// none is attached), for the audit log.
    pub(crate) fn peer(&self) -> String {
        self.inner
            .comms
            .get()
            .map_or_else(|| "local".to_string(), |a| a.peer().to_string())
    }

    /// The process with this pid, if this host has it.
    pub fn process(&self, pid: &str) -> Option<ProcessHandle> {
        self.inner.processes.get(pid)
    }
}
