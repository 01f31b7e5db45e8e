//! [`Host`]: the entry point a program embeds to load plugins and run processes.

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde_json::Value;

use crate::config::HostConfig;
use crate::error::{Error, InvalidSpec, Result};
use crate::process::{self, ProcessRecord};
use crate::wasm::{Plugin, Runtime};

/// Loads plugins and runs processes.
///
/// ```no_run
/// # async fn demo() -> damson::Result<()> {
/// let mut config = damson::HostConfig::new();
/// config.plugin_dir("target/wasm32-wasip2/release");
/// let host = damson::Host::new(&config)?;
/// let add = host.load("add").await?;
/// let record = host.run(&add, serde_json::json!({"x": 1, "y": 2})).await?;
/// assert_eq!(record.outputs["sum"], 3);
/// # Ok(()) }
/// ```
pub struct Host {
    runtime: Runtime,
    config: HostConfig,
    /// Loaded plugins by file.
    plugins: Mutex<HashMap<PathBuf, Cached>>,
}

/// A loaded plugin and what its file looked like then (modification time, length).
type Cached = (Option<SystemTime>, u64, Arc<Plugin>);

impl Host {
    /// A host with this configuration. Starts wasmtime's engine and the epoch thread.
    pub fn new(config: &HostConfig) -> Result<Self> {
        Ok(Self {
            runtime: Runtime::new(config)?,
            config: config.clone(),
            plugins: Mutex::new(HashMap::new()),
        })
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
        for dir in &self.config.plugin_dirs {
            for name in &candidates {
                let file = dir.join(format!("{name}.wasm"));
                if file.is_file() {
                    return Ok(file);
                }
            }
        }
        Err(Error::PluginNotFound {
            name: reference.to_string(),
            dirs: self.config.plugin_dirs.clone(),
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
            if let Some((m, l, plugin)) = self.plugins.lock().expect("plugin cache").get(&path)
                && *m == modified
                && *l == len
            {
                return Ok(plugin.clone());
            }
            let loaded = self.runtime.load(&path).await?;
            let name = loaded.declared.name.clone();
            if chain.contains(&name) {
                let cycle = [chain.as_slice(), std::slice::from_ref(&name)].concat().join(" → ");
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
            self.plugins
                .lock()
                .expect("plugin cache")
                .insert(path, (modified, len, plugin.clone()));
            Ok(plugin)
        })
    }

    /// Run a new process of `plugin` with `inputs` (a JSON object) until it terminates, or
    /// until it waits (resuming a waiting process is not supported yet).
    ///
    /// # Errors
    /// [`Error::InvalidInputs`] when the inputs do not fit the plugin's spec: no process is
    /// created. Failures while the process runs are not errors: they end it EXCEPTED.
    pub async fn run(&self, plugin: &Plugin, inputs: Value) -> Result<ProcessRecord> {
        process::execute(&self.runtime, plugin, inputs).await
    }
}
