//! [`Host`]: the entry point a program embeds to load plugins and run processes.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};
use tokio::sync::{Semaphore, SemaphorePermit};

use crate::comms::{Broadcast, BroadcastSubscriber, Communicator, control};
use crate::config::HostConfig;
use crate::error::{Error, InvalidSpec, Result};
use crate::persist::{self, CheckpointKey, DEFAULT_TENANT, Persister, ProcessCheckpoint, bundle};
use crate::process::{
    Guests, ProcessHandle, ProcessRecord, ProcessState, Shared, Task, prepare_inputs,
};
use crate::wasm::{DecodedImage, Plugin, Runtime};
use crate::workchain::Cursor;

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
    /// Loaded plugins by file.
    plugins: Mutex<HashMap<PathBuf, Cached>>,
    /// Every process of this host, by pid.
    processes: Mutex<HashMap<String, ProcessHandle>>,
    /// Bounds the processes running a guest call at once.
    steps: Semaphore,
    /// Where durable processes checkpoint, if anywhere.
    store: Option<Arc<dyn Persister>>,
    /// Digests of the plugins this host has put in the store.
    stored_plugins: Mutex<HashSet<String>>,
    /// Held while a process is loaded from the store, so that one pid is never restored twice.
    restoring: tokio::sync::Mutex<()>,
    /// The communicator processes are reachable through, once attached.
    comms: OnceLock<Attached>,
    /// Who this host is in the store's claims.
    owner: String,
    /// Set once the task that renews this host's claims runs.
    renewing: OnceLock<()>,
    /// Until when (ms since the Unix epoch) all of this host's claims are known to hold: the
    /// start of the last renewal that succeeded, plus the ttl. A process saves a checkpoint
    /// only before then (see [`Host::holds`]).
    lease: tokio::sync::watch::Sender<u64>,
}

/// A communicator attached to a host, and the queue of state changes it broadcasts in order.
struct Attached {
    communicator: Arc<dyn Communicator>,
    changes: tokio::sync::mpsc::UnboundedSender<Broadcast>,
}

impl Inner {
    /// The processes of this host that have not terminated.
    fn live(&self) -> Vec<ProcessHandle> {
        self.processes
            .lock()
            .expect("process table")
            .values()
            .filter(|p| !p.state().is_terminal())
            .cloned()
            .collect()
    }
}

/// A process rebuilt from its checkpoint, not yet running.
pub(crate) struct Restored {
    pub(crate) record: ProcessRecord,
    interrupt: Arc<AtomicBool>,
    /// `None` for a terminated process, which never runs again.
    pub(crate) guests: Option<Guests>,
    cursor: Cursor,
    after: Option<persist::AfterStep>,
}

/// What [`Host::recover`] did.
#[derive(Debug, Default)]
pub struct Recovered {
    /// The processes continued (each started; a paused one stays paused until played).
    pub resumed: Vec<ProcessHandle>,
    /// Checkpoints that could not be continued, by pid, and why.
    pub failed: Vec<(String, Error)>,
}

/// A loaded plugin and what its file looked like then (modification time, length).
type Cached = (Option<SystemTime>, u64, Arc<Plugin>);

impl Host {
    /// A host with this configuration. Starts wasmtime's engine and the epoch thread. Its
    /// processes live in memory only: see [`with_store`](Self::with_store) for durable ones.
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
    pub fn with_store(config: &HostConfig, store: Arc<dyn Persister>) -> Result<Self> {
        Self::build(config, Some(store))
    }

    fn build(config: &HostConfig, store: Option<Arc<dyn Persister>>) -> Result<Self> {
        Ok(Self {
            inner: Arc::new(Inner {
                runtime: Runtime::new(config)?,
                config: config.clone(),
                plugins: Mutex::new(HashMap::new()),
                processes: Mutex::new(HashMap::new()),
                steps: Semaphore::new(config.max_concurrent_steps),
                store,
                stored_plugins: Mutex::new(HashSet::new()),
                restoring: tokio::sync::Mutex::new(()),
                comms: OnceLock::new(),
                owner: uuid::Uuid::new_v4().to_string(),
                renewing: OnceLock::new(),
                lease: tokio::sync::watch::Sender::new(0),
            }),
        })
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
    /// Serve tasks too with a [`ProcessLauncher`](crate::comms::ProcessLauncher).
    ///
    /// # Errors
    /// [`Error::Comms`] when a communicator is attached already or refuses the subscribers.
    pub async fn attach(&self, communicator: Arc<dyn Communicator>) -> Result<()> {
        let (changes, mut queue) = tokio::sync::mpsc::unbounded_channel::<Broadcast>();
        let attached = Attached {
            communicator: communicator.clone(),
            changes,
        };
        if self.inner.comms.set(attached).is_err() {
            return Err(Error::Comms(crate::comms::CommsError::Other(
                "this host has a communicator already".into(),
            )));
        }
        let sender = communicator.clone();
        tokio::spawn(async move {
            while let Some(change) = queue.recv().await {
                match sender.broadcast_send(change).await {
                    Ok(()) => {}
                    // Closed while changes were queued: nobody is to hear them.
                    Err(crate::comms::CommsError::Closed) => break,
                    Err(e) => tracing::warn!("cannot broadcast a state change: {e}"),
                }
            }
        });
        communicator
            .add_broadcast_subscriber(Arc::new(ControlAll(Arc::downgrade(&self.inner))), None)
            .await?;
        for process in self.inner.live() {
            self.reachable(&process).await?;
        }
        Ok(())
    }

    /// Answer RPC intents for `process` at its pid.
    async fn reachable(&self, process: &ProcessHandle) -> Result<()> {
        if let Some(attached) = self.inner.comms.get() {
            let rpc = Arc::new(control::ProcessRpc(process.clone()));
            match attached
                .communicator
                .add_rpc_subscriber(rpc, Some(process.pid().to_string()))
                .await
            {
                // Restored again (a tagged checkpoint): the newest copy answers.
                Err(crate::comms::CommsError::DuplicateSubscriber { .. }) => {
                    attached
                        .communicator
                        .remove_rpc_subscriber(process.pid())
                        .await?;
                    let rpc = Arc::new(control::ProcessRpc(process.clone()));
                    attached
                        .communicator
                        .add_rpc_subscriber(rpc, Some(process.pid().to_string()))
                        .await?;
                }
                other => {
                    other?;
                }
            }
        }
        Ok(())
    }

    /// Claim process `pid` in the store for this host, so that no other host runs it.
    async fn claim(&self, store: &Arc<dyn Persister>, pid: &str) -> Result<()> {
        let Some(ttl) = self.inner.config.claim_ttl else {
            return Ok(());
        };
        let ttl = ttl.as_millis() as u64;
        let now = now_ms();
        let granted = store
            .claim(DEFAULT_TENANT, pid, &self.inner.owner, now, now + ttl)
            .await
            .map_err(|source| Error::Store {
                doing: format!("claiming process {pid}"),
                source: Box::new(source),
            })?;
        if !granted {
            return Err(Error::Claimed {
                pid: pid.to_string(),
            });
        }
        // The first claim: the host's claims hold until this one runs out, at the earliest.
        self.inner.lease.send_if_modified(|lease| {
            let first = *lease == 0;
            if first {
                *lease = now + ttl;
            }
            first
        });
        self.inner.renewing.get_or_init(|| {
            let (inner, store) = (Arc::downgrade(&self.inner), store.clone());
            tokio::spawn(async move {
                loop {
                    let Some(ttl) = inner.upgrade().and_then(|i| i.config.claim_ttl) else {
                        return;
                    };
                    tokio::time::sleep(ttl / 3).await;
                    let Some(inner) = inner.upgrade() else {
                        return;
                    };
                    Host { inner }.renew(&store, ttl).await;
                }
            });
        });
        Ok(())
    }

    /// Renew this host's claims; a live process whose claim another host has taken since (this
    /// host could not renew it in time: the store was out of reach, or the host stalled) is
    /// abandoned here — the other host runs it now.
    async fn renew(&self, store: &Arc<dyn Persister>, ttl: std::time::Duration) {
        let owner = &self.inner.owner;
        let started = now_ms();
        let held = match store.renew(owner, started + ttl.as_millis() as u64).await {
            Ok(held) => held,
            Err(e) => {
                tracing::error!("cannot renew this host's claims: {e}");
                return;
            }
        };
        let held: HashSet<&str> = held
            .iter()
            .filter(|(tenant, _)| tenant == DEFAULT_TENANT)
            .map(|(_, pid)| pid.as_str())
            .collect();
        for process in self.inner.live() {
            let pid = process.pid();
            if held.contains(pid) {
                continue;
            }
            // Not renewed: claimed since the renewal began, or lost. Asking again tells which.
            let now = now_ms();
            match store
                .claim(
                    DEFAULT_TENANT,
                    pid,
                    owner,
                    now,
                    now + ttl.as_millis() as u64,
                )
                .await
            {
                Ok(true) => {}
                Ok(false) => {
                    tracing::warn!(
                        %pid,
                        "another host has taken this process over (this host's claim ran out): it stops here"
                    );
                    process.abandon();
                }
                Err(e) => tracing::error!(%pid, "cannot check the claim: {e}"),
            }
        }
        self.inner
            .lease
            .send_replace(started + ttl.as_millis() as u64);
    }

    /// Whether `process` may save a checkpoint: true while this host's claims hold; false once
    /// the process is abandoned to another host. While the claims are unconfirmed (a renewal
    /// is late), waits for the next renewal: a host that cannot renew must not write.
    pub(crate) async fn holds(&self, process: &ProcessHandle) -> bool {
        if self.inner.config.claim_ttl.is_none() {
            return true;
        }
        let mut lease = self.inner.lease.subscribe();
        loop {
            if process.is_abandoned() {
                return false;
            }
            if now_ms() < *lease.borrow_and_update() {
                return true;
            }
            let renewed = lease.changed();
            let _ = tokio::time::timeout(std::time::Duration::from_millis(200), renewed).await;
        }
    }

    /// Who this host is in the store's claims, if it claims its processes.
    pub(crate) fn claimant(&self) -> Option<&str> {
        self.inner
            .config
            .claim_ttl
            .map(|_| self.inner.owner.as_str())
    }

    /// Forget a process abandoned to another host, which may give it back one day.
    pub(crate) fn forget(&self, pid: &str) {
        self.inner
            .processes
            .lock()
            .expect("process table")
            .remove(pid);
    }

    /// A process has terminated: give up its claim.
    pub(crate) async fn release(&self, pid: &str) {
        if self.inner.config.claim_ttl.is_some()
            && let Some(store) = self.store()
            && let Err(e) = store.release(DEFAULT_TENANT, pid, &self.inner.owner).await
        {
            tracing::warn!(%pid, "cannot release the claim: {e}");
        }
    }

    /// Continue the top-level processes in the store that no live host runs: those that had
    /// not terminated and whose claim has run out (their host died or stopped). Children are
    /// continued by their parents. What a worker does from time to time.
    pub async fn take_over(&self) -> Result<Recovered> {
        let (store, pids) = self.stored_pids().await?;
        let mut recovered = Recovered::default();
        for pid in pids {
            if self.process(&pid).is_some() {
                continue;
            }
            let key = CheckpointKey::new(&pid);
            let Ok(Some(body)) = persist::load_checked::<ProcessCheckpoint>(&*store, &key).await
            else {
                continue;
            };
            let checkpoint = body.record;
            if checkpoint.state.is_terminal() || checkpoint.parent.is_some() {
                continue;
            }
            // Most of these run on live hosts: the claim tells, before the checkpoint is read
            // a second time to continue it.
            let continued = match self.claim(&store, &pid).await {
                Ok(()) => self.continue_process(&pid, None).await,
                Err(e) => Err(e),
            };
            match continued {
                Ok(handle) => recovered.resumed.push(handle),
                Err(Error::Claimed { .. }) => {}
                Err(error) => recovered.failed.push((pid, error)),
            }
        }
        Ok(recovered)
    }

    /// The store, and the pids of the processes it has checkpoints of (untagged, this
    /// tenant's).
    async fn stored_pids(&self) -> Result<(Arc<dyn Persister>, Vec<String>)> {
        let store = self.store().ok_or(Error::NoStore)?.clone();
        let keys = store.list().await.map_err(|source| Error::Store {
            doing: "listing checkpoints".into(),
            source: Box::new(source),
        })?;
        let pids = keys
            .into_iter()
            .filter(|key| key.tag.is_none() && key.tenant == DEFAULT_TENANT)
            .map(|key| key.pid)
            .collect();
        Ok((store, pids))
    }

    /// Broadcast a state change of process `pid` (in order with the others).
    pub(crate) fn state_changed(&self, pid: &str, from: Option<ProcessState>, to: ProcessState) {
        if let Some(attached) = self.inner.comms.get() {
            let _ = attached.changes.send(Broadcast {
                body: Value::Null,
                sender: Some(pid.to_string()),
                subject: Some(control::state_changed(from, to)),
                correlation_id: None,
            });
        }
    }

    /// A process has terminated: it answers no more RPC requests.
    pub(crate) fn ended(&self, pid: &str) {
        if let Some(attached) = self.inner.comms.get() {
            let communicator = attached.communicator.clone();
            let pid = pid.to_string();
            tokio::spawn(async move {
                let _ = communicator.remove_rpc_subscriber(&pid).await;
            });
        }
    }

    pub(crate) fn runtime(&self) -> &Runtime {
        &self.inner.runtime
    }

    /// A permit to run one guest call; waits while the limit of concurrent steps is reached.
    pub(crate) async fn step_permit(&self) -> SemaphorePermit<'_> {
        self.inner
            .steps
            .acquire()
            .await
            .expect("the step semaphore is never closed")
    }

    /// The file a plugin reference means: a path to a `.wasm` file (anything with a `/` or
    /// ending in `.wasm`), or a name looked up as `<name>.wasm` in the plugin directories.
    pub fn find_plugin(&self, reference: &str) -> Result<PathBuf> {
        let as_path = Path::new(reference);
        if reference.contains(std::path::MAIN_SEPARATOR)
            || reference.ends_with(".wasm")
            || as_path.is_file()
        {
            return Ok(as_path.to_path_buf());
        }
        // Cargo names a crate's artifact with underscores.
        let candidates = [reference.to_string(), reference.replace('-', "_")];
        for dir in &self.inner.config.plugin_dirs {
            for name in &candidates {
                let file = dir.join(format!("{name}.wasm"));
                if file.is_file() {
                    return Ok(file);
                }
            }
        }
        Err(Error::PluginNotFound {
            name: reference.to_string(),
            dirs: self.inner.config.plugin_dirs.clone(),
        })
    }

    /// Load a plugin by name or path (see [`find_plugin`](Self::find_plugin)): check it,
    /// compile it (or reuse the cached artifact), read its spec, and load the plugins whose ports
    /// it exposes. A plugin loaded before is reused while its file is unchanged.
    pub async fn load(&self, reference: &str) -> Result<Arc<Plugin>> {
        self.load_exposing(reference, Vec::new()).await
    }

    /// Load `reference`, which the plugins in `chain` expose (each the one before's).
    fn load_exposing<'a>(
        &'a self,
        reference: &'a str,
        chain: Vec<String>,
    ) -> Pin<Box<dyn Future<Output = Result<Arc<Plugin>>> + Send + 'a>> {
        Box::pin(async move {
            let path = self.find_plugin(reference)?;
            let meta = std::fs::metadata(&path).map_err(|source| Error::ReadPlugin {
                path: path.clone(),
                source,
            })?;
            let (modified, len) = (meta.modified().ok(), meta.len());
            if let Some((m, l, plugin)) =
                self.inner.plugins.lock().expect("plugin cache").get(&path)
                && *m == modified
                && *l == len
            {
                return Ok(plugin.clone());
            }
            let loaded = self.inner.runtime.load(&path).await?;
            let name = loaded.declared.name.clone();
            if chain.contains(&name) {
                let cycle = [chain.as_slice(), std::slice::from_ref(&name)]
                    .concat()
                    .join(" → ");
                return Err(Error::InvalidSpec {
                    plugin: name,
                    source: InvalidSpec::Other(format!("exposed plugins form a cycle: {cycle}")),
                });
            }
            let mut exposed = HashMap::new();
            for expose in &loaded.declared.exposes {
                if exposed.contains_key(&expose.plugin) {
                    continue;
                }
                let mut inner = chain.clone();
                inner.push(name.clone());
                let plugin = self
                    .load_exposing(&expose.plugin, inner)
                    .await
                    .map_err(|e| Error::Expose {
                        plugin: name.clone(),
                        exposed: expose.plugin.clone(),
                        source: Box::new(e),
                    })?;
                exposed.insert(expose.plugin.clone(), plugin);
            }
            let plugin = Arc::new(Plugin::new(loaded, exposed)?);
            self.inner
                .plugins
                .lock()
                .expect("plugin cache")
                .insert(path, (modified, len, plugin.clone()));
            Ok(plugin)
        })
    }

    /// Create a process of `plugin` with `inputs` (a JSON object): validated, in state CREATED,
    /// not started. Add listeners, then [`start`](ProcessHandle::start) it.
    ///
    /// # Errors
    /// [`Error::InvalidInputs`] when the inputs do not fit the plugin's spec: no process is
    /// created. Failures once the process runs are not errors: they end it EXCEPTED.
    pub async fn create(&self, plugin: &Arc<Plugin>, inputs: Value) -> Result<ProcessHandle> {
        self.create_process(plugin, inputs, None, None).await
    }

    /// Create a process, with a given pid (a child's, handed out when it was launched) and
    /// parent. Boxed: a process's task creates its children through this.
    pub(crate) fn create_process<'a>(
        &'a self,
        plugin: &'a Arc<Plugin>,
        inputs: Value,
        pid: Option<String>,
        parent: Option<&'a ProcessHandle>,
    ) -> Pin<Box<dyn Future<Output = Result<ProcessHandle>> + Send + 'a>> {
        Box::pin(self.create_process_inner(plugin, inputs, pid, parent))
    }

    async fn create_process_inner(
        &self,
        plugin: &Arc<Plugin>,
        inputs: Value,
        pid: Option<String>,
        parent: Option<&ProcessHandle>,
    ) -> Result<ProcessHandle> {
        let spec = plugin.spec().clone();
        let interrupt = Arc::new(AtomicBool::new(false));
        let own = self
            .inner
            .runtime
            .instantiate(plugin, interrupt.clone())
            .await
            .map_err(|f| Error::Guest {
                plugin: spec.name.clone(),
                doing: "starting".into(),
                message: f.to_string(),
            })?;
        let mut guests = Guests {
            host: self.clone(),
            plugin: plugin.clone(),
            own,
            others: HashMap::new(),
        };
        let inputs = prepare_inputs(&spec, &mut guests, inputs).await?;
        let pid = pid.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        {
            let data = guests.own.data();
            data.pid = pid.clone();
            data.spec = Some(spec.clone());
            data.inputs = inputs.clone();
        }
        let ctime = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let record = ProcessRecord {
            pid: pid.clone(),
            plugin: spec.name.clone(),
            plugin_digest: plugin.digest().to_string(),
            state: ProcessState::Created,
            paused: false,
            inputs,
            outputs: Value::Object(Map::new()),
            context: Map::new(),
            status: None,
            position: String::new(),
            exit_status: None,
            exit_message: None,
            missing_outputs: Vec::new(),
            error: None,
            parent: parent.map(|p| p.pid().to_string()),
            children: Vec::new(),
            awaiting: Vec::new(),
            ctime,
        };
        let cursor = spec.outline.start();
        if let Some(store) = self.store() {
            // Durable from the start: the component first, so the checkpoint can always find it.
            self.store_plugin(store, plugin).await?;
            self.claim(store, &pid).await?;
            let checkpoint = ProcessCheckpoint::new(DEFAULT_TENANT, &record, &cursor);
            let key = CheckpointKey::new(&pid);
            store
                .save(&key, &bundle::encode(&checkpoint, None))
                .await
                .map_err(|source| Error::Store {
                    doing: format!("saving the checkpoint of new {key}"),
                    source: Box::new(source),
                })?;
        }
        tracing::debug!(%pid, plugin = %spec.name, "process created");
        self.spawn(record, interrupt, guests, cursor, None).await
    }

    /// Register a process, make it reachable, and start its task.
    async fn spawn(
        &self,
        record: ProcessRecord,
        interrupt: Arc<AtomicBool>,
        guests: Guests,
        cursor: Cursor,
        after: Option<persist::AfterStep>,
    ) -> Result<ProcessHandle> {
        let spec = guests.plugin.spec().clone();
        let new = record.state == ProcessState::Created && after.is_none();
        let handle = ProcessHandle {
            shared: Arc::new(Shared::new(record, interrupt)),
        };
        self.register(&handle);
        self.reachable(&handle).await?;
        if new {
            self.state_changed(handle.pid(), None, ProcessState::Created);
        }
        let task = Task {
            handle: handle.clone(),
            spec,
            guests,
            cursor,
            children: HashMap::new(),
            after,
        };
        tokio::spawn(task.run());
        Ok(handle)
    }

    fn register(&self, handle: &ProcessHandle) {
        self.inner
            .processes
            .lock()
            .expect("process table")
            .insert(handle.pid().to_string(), handle.clone());
    }

    /// Put a plugin's component in the store, once per host.
    async fn store_plugin(&self, store: &Arc<dyn Persister>, plugin: &Plugin) -> Result<()> {
        let digest = plugin.digest();
        if self
            .inner
            .stored_plugins
            .lock()
            .expect("stored plugins")
            .contains(digest)
        {
            return Ok(());
        }
        store
            .save_plugin(digest, plugin.component())
            .await
            .map_err(|source| Error::Store {
                doing: format!("storing plugin '{}'", plugin.name()),
                source: Box::new(source),
            })?;
        self.inner
            .stored_plugins
            .lock()
            .expect("stored plugins")
            .insert(digest.to_string());
        Ok(())
    }

    /// Load a process from its checkpoint in the store (the current one, or the one with
    /// `tag`), on a fresh instance of its exact plugin with its memory image written back. The
    /// process is not started: add listeners, then [`start`](ProcessHandle::start) it (a paused
    /// one then waits for [`play`](ProcessHandle::play)). A terminated process comes back as
    /// its record. A process this host already runs is returned as it is.
    ///
    /// # Errors
    /// [`Error::NoStore`], [`Error::NoCheckpoint`], [`Error::Store`] (including a damaged
    /// bundle, named by pid and tag), [`Error::Restore`] when its plugin or memory image cannot
    /// be had.
    pub async fn load_process(&self, pid: &str, tag: Option<&str>) -> Result<ProcessHandle> {
        self.load_process_boxed(pid, tag).await
    }

    /// Boxed: a process's task continues its children through this, and the task is spawned
    /// from it.
    fn load_process_boxed<'a>(
        &'a self,
        pid: &'a str,
        tag: Option<&'a str>,
    ) -> Pin<Box<dyn Future<Output = Result<ProcessHandle>> + Send + 'a>> {
        Box::pin(self.load_process_inner(pid, tag))
    }

    async fn load_process_inner(&self, pid: &str, tag: Option<&str>) -> Result<ProcessHandle> {
        let store = self.store().ok_or(Error::NoStore)?.clone();
        let _one_at_a_time = self.inner.restoring.lock().await;
        if tag.is_none()
            && let Some(handle) = self.process(pid)
        {
            return Ok(handle);
        }
        let mut key = CheckpointKey::new(pid);
        key.tag = tag.map(str::to_string);
        let restored = match self.restore(&store, &key, true).await {
            Ok(restored) => restored,
            Err(e) => {
                // Not restored: any claim taken for it goes back.
                if !matches!(e, Error::Claimed { .. }) {
                    self.release(pid).await;
                }
                return Err(e);
            }
        };
        let Some(guests) = restored.guests else {
            let handle = ProcessHandle {
                shared: Arc::new(Shared::new(restored.record, restored.interrupt)),
            };
            handle.shared.done.send_replace(true);
            self.register(&handle);
            return Ok(handle);
        };
        tracing::debug!(%pid, state = %restored.record.state, "process restored");
        self.spawn(
            restored.record,
            restored.interrupt,
            guests,
            restored.cursor,
            restored.after,
        )
        .await
    }

    /// Read the checkpoint under `key` and rebuild the process: its record, and (unless it has
    /// terminated) its plugin instance with the memory image written back.
    pub(crate) async fn restore(
        &self,
        store: &Arc<dyn Persister>,
        key: &CheckpointKey,
        claim: bool,
    ) -> Result<Restored> {
        let body = persist::load_checked::<ProcessCheckpoint>(&**store, key)
            .await
            .map_err(|source| Error::Store {
                doing: format!("loading the checkpoint of {key}"),
                source: Box::new(source),
            })?
            .ok_or_else(|| Error::NoCheckpoint {
                key: key.clone(),
                store: store.summary(),
            })?;
        let restore_error = |message: String| Error::Restore {
            key: key.clone(),
            message,
        };
        let checkpoint = body.record;
        let record = checkpoint
            .record()
            .map_err(|e| restore_error(format!("its record does not parse: {e}")))?;
        let interrupt = Arc::new(AtomicBool::new(false));
        if record.state.is_terminal() {
            return Ok(Restored {
                record,
                interrupt,
                guests: None,
                cursor: checkpoint.cursor,
                after: None,
            });
        }
        if claim {
            // Before the costly part: a process another host runs is left alone at once.
            self.claim(store, &key.pid).await?;
        }
        let plugin = self
            .plugin_for(store, &checkpoint.plugin, &checkpoint.plugin_digest)
            .await
            .map_err(|e| restore_error(crate::error::chain(&e)))?;
        let runtime = &self.inner.runtime;
        let own = match &body.image {
            Some(image) if plugin.snapshot_safety().is_safe() => {
                let image =
                    DecodedImage::decode(image).map_err(|e| restore_error(e.to_string()))?;
                runtime.restore(&plugin, interrupt.clone(), &image).await
            }
            _ => runtime.instantiate(&plugin, interrupt.clone()).await,
        }
        .map_err(|f| restore_error(format!("plugin '{}' {f}", plugin.name())))?;
        let mut guests = Guests {
            host: self.clone(),
            plugin: plugin.clone(),
            own,
            others: HashMap::new(),
        };
        let data = guests.own.data();
        data.pid = record.pid.clone();
        data.spec = Some(plugin.spec().clone());
        data.inputs = record.inputs.clone();
        data.context = record.context.clone();
        data.outputs = record.outputs.as_object().cloned().unwrap_or_default();
        if !record.paused {
            data.status = record.status.clone();
        }
        Ok(Restored {
            record,
            interrupt,
            guests: Some(guests),
            cursor: checkpoint.cursor,
            after: checkpoint.after_step,
        })
    }

    /// [`load_process`](Self::load_process) and start it: it carries on from its checkpoint.
    pub async fn continue_process(&self, pid: &str, tag: Option<&str>) -> Result<ProcessHandle> {
        let handle = self.load_process(pid, tag).await?;
        if !handle.state().is_terminal() {
            handle.start()?;
        }
        Ok(handle)
    }

    /// Continue every process in the store that had not terminated: what a host does when it
    /// starts again after it stopped or died.
    pub async fn recover(&self) -> Result<Recovered> {
        let (_, pids) = self.stored_pids().await?;
        let mut recovered = Recovered::default();
        for pid in pids {
            match self.continue_process(&pid, None).await {
                Ok(handle) if handle.state().is_terminal() => {}
                Ok(handle) => recovered.resumed.push(handle),
                // Another host runs it.
                Err(Error::Claimed { .. }) => {}
                Err(error) => {
                    tracing::error!(%pid, "cannot continue: {}", crate::error::chain(&error));
                    recovered.failed.push((pid, error));
                }
            }
        }
        Ok(recovered)
    }

    /// The exact component a checkpoint names: loaded already, the one of that name in the
    /// plugin directories if it is the same, or else the copy kept in the store.
    async fn plugin_for(
        &self,
        store: &Arc<dyn Persister>,
        name: &str,
        digest: &str,
    ) -> Result<Arc<Plugin>> {
        let loaded = self
            .inner
            .plugins
            .lock()
            .expect("plugin cache")
            .values()
            .find(|(_, _, p)| p.digest() == digest)
            .map(|(_, _, p)| p.clone());
        if let Some(plugin) = loaded {
            return Ok(plugin);
        }
        if let Ok(plugin) = self.load(name).await
            && plugin.digest() == digest
        {
            return Ok(plugin);
        }
        let bytes = store
            .load_plugin(digest)
            .await
            .map_err(|source| Error::Store {
                doing: format!("loading plugin '{name}' ({digest})"),
                source: Box::new(source),
            })?
            .ok_or_else(|| Error::PluginNotFound {
                name: format!("{name} with digest {digest}"),
                dirs: self.inner.config.plugin_dirs.clone(),
            })?;
        let dir = self
            .inner
            .config
            .cache_dir
            .clone()
            .unwrap_or_else(std::env::temp_dir)
            .join("components");
        let path = dir.join(format!("{digest}.wasm"));
        let write = || -> std::io::Result<()> {
            std::fs::create_dir_all(&dir)?;
            let partial = dir.join(format!("{digest}.{}.partial", std::process::id()));
            std::fs::write(&partial, &bytes)?;
            std::fs::rename(&partial, &path)
        };
        write().map_err(|source| Error::ReadPlugin {
            path: path.clone(),
            source,
        })?;
        let plugin = self.load(&path.display().to_string()).await?;
        if plugin.digest() != digest {
            return Err(Error::InvalidComponent {
                path,
                message: format!(
                    "the store's copy has digest {}, not {digest}",
                    plugin.digest()
                ),
            });
        }
        Ok(plugin)
    }

    /// Create a process and start it.
    pub async fn launch(&self, plugin: &Arc<Plugin>, inputs: Value) -> Result<ProcessHandle> {
        let handle = self.create(plugin, inputs).await?;
        handle.start()?;
        Ok(handle)
    }

    /// Run a process to its end (or until it waits with no one to resume it: use
    /// [`launch`](Self::launch) to control it) and return its record.
    pub async fn run(&self, plugin: &Arc<Plugin>, inputs: Value) -> Result<ProcessRecord> {
        let handle = self.launch(plugin, inputs).await?;
        let stopped = |r: &ProcessRecord| {
            r.state.is_terminal() || (r.state == ProcessState::Waiting && r.awaiting.is_empty())
        };
        Ok(handle.wait_for(stopped).await)
    }

    /// The process with this pid, if this host has it.
    pub fn process(&self, pid: &str) -> Option<ProcessHandle> {
        self.inner
            .processes
            .lock()
            .expect("process table")
            .get(pid)
            .cloned()
    }
}

/// Applies the `pause`, `play` and `kill` broadcasts to every live process of a host.
struct ControlAll(Weak<Inner>);

impl BroadcastSubscriber for ControlAll {
    fn receive(&self, message: &Broadcast) {
        let Some(inner) = self.0.upgrade() else {
            return;
        };
        let text = |key: &str| message.body.get(key).and_then(Value::as_str);
        for process in inner.live() {
            match message.subject.as_deref() {
                Some(control::intent::PAUSE) => {
                    process.pause(text("message"));
                }
                Some(control::intent::PLAY) => {
                    process.play();
                }
                Some(control::intent::KILL) => {
                    let force = message
                        .body
                        .get("force_kill")
                        .and_then(Value::as_bool)
                        .unwrap_or(false);
                    process.kill(text("message"), force);
                }
                // State changes and anything else are not for processes.
                _ => return,
            }
        }
    }
}

/// Milliseconds since the Unix epoch.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
