//! [`Host`]: the entry point a program embeds to load plugins and run processes.

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde_json::{Map, Value};
use tokio::sync::{Semaphore, SemaphorePermit};

use crate::config::HostConfig;
use crate::error::{Error, InvalidSpec, Result};
use crate::process::{
    Guests, ProcessHandle, ProcessRecord, ProcessState, Shared, Task, prepare_inputs,
};
use crate::wasm::{Plugin, Runtime};

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
}

/// A loaded plugin and what its file looked like then (modification time, length).
type Cached = (Option<SystemTime>, u64, Arc<Plugin>);

impl Host {
    /// A host with this configuration. Starts wasmtime's engine and the epoch thread.
    pub fn new(config: &HostConfig) -> Result<Self> {
        Ok(Self {
            inner: Arc::new(Inner {
                runtime: Runtime::new(config)?,
                config: config.clone(),
                plugins: Mutex::new(HashMap::new()),
                processes: Mutex::new(HashMap::new()),
                steps: Semaphore::new(config.max_concurrent_steps),
            }),
        })
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
        };
        let shared = Arc::new(Shared::new(
            record,
            interrupt,
            parent.map(|p| Arc::downgrade(&p.shared)),
        ));
        let handle = ProcessHandle { shared };
        self.inner
            .processes
            .lock()
            .expect("process table")
            .insert(pid.clone(), handle.clone());
        tracing::debug!(%pid, plugin = %spec.name, "process created");
        let cursor = spec.outline.start();
        let task = Task {
            handle: handle.clone(),
            spec,
            guests,
            cursor,
            children: HashMap::new(),
        };
        tokio::spawn(task.run());
        Ok(handle)
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
