//! Plugins: finding them by name, loading and checking them once (with the plugins whose ports
//! they expose), and keeping them in the store beside the checkpoints that need them.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use super::Host;
use crate::error::{Error, Result};
use crate::persist::Persister;
use crate::spec::InvalidSpec;
use crate::tenancy::{Quota, QuotaExceeded};
use crate::wasm::Plugin;

/// A loaded plugin and what its file looked like then (modification time, length).
type Cached = (Option<SystemTime>, u64, Arc<Plugin>);

/// The plugins a host has loaded, and those it has put in its store.
#[derive(Default)]
pub(super) struct Plugins {
    /// Loaded plugins by file.
    loaded: Mutex<HashMap<PathBuf, Cached>>,
    /// Digests of the plugins this host has put in the store.
    stored: Mutex<HashSet<String>>,
}

impl Plugins {
    fn loaded(&self) -> MutexGuard<'_, HashMap<PathBuf, Cached>> {
        self.loaded.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn stored(&self) -> MutexGuard<'_, HashSet<String>> {
        self.stored.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The plugin loaded from `path`, if the file has not changed since.
    fn cached(&self, path: &Path, modified: Option<SystemTime>, len: u64) -> Option<Arc<Plugin>> {
        self.loaded()
            .get(path)
            .filter(|(m, l, _)| *m == modified && *l == len)
            .map(|(_, _, plugin)| plugin.clone())
    }
}

impl Host {
    /// The file a plugin reference means: a path to a `.wasm` file (anything with a `/` or
    /// ending in `.wasm`), or a name looked up as `<name>.wasm` in the plugin directories.
    ///
    /// # Errors
    /// [`Error::PluginNotFound`] naming the directories looked in.
    pub fn find_plugin(&self, reference: &str) -> Result<PathBuf> {
        let as_path = Path::new(reference);
        let is_path = reference.contains(std::path::MAIN_SEPARATOR) || reference.ends_with(".wasm");
        if is_path && self.inner.names_only {
            return Err(Error::PluginPath {
                tenant: self.tenant().to_string(),
                reference: reference.to_string(),
            });
        }
        if is_path || (!self.inner.names_only && as_path.is_file()) {
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

    /// The names of the plugins in this host's plugin directories (`<name>.wasm`), sorted,
    /// each once (the first directory's wins, as [`find_plugin`](Self::find_plugin) finds it).
    pub fn plugin_names(&self) -> Vec<String> {
        let mut names = std::collections::BTreeSet::new();
        for dir in &self.inner.config.plugin_dirs {
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                if path.extension().is_some_and(|e| e == "wasm")
                    && let Some(stem) = path.file_stem().and_then(|s| s.to_str())
                {
                    names.insert(stem.to_string());
                }
            }
        }
        names.into_iter().collect()
    }

    /// Load a plugin by name or path (see [`find_plugin`](Self::find_plugin)): check it,
    /// compile it (or reuse the cached artifact), read its spec, and load the plugins whose ports
    /// it exposes. A plugin loaded before is reused while its file is unchanged.
    ///
    /// # Errors
    /// [`Error::PluginNotFound`], [`Error::ReadPlugin`], and every way a file can fail to be a
    /// plugin: [`Error::NotWasm`], [`Error::CoreModule`], [`Error::InvalidComponent`],
    /// [`Error::WrongWorld`], [`Error::Declare`], [`Error::InvalidSpec`], [`Error::Expose`].
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
            if let Some(limit) = self.quotas().plugin_size
                && len > limit
            {
                return Err(Error::OverQuota(QuotaExceeded {
                    tenant: self.tenant().to_string(),
                    quota: Quota::PluginSize,
                    limit,
                    used: len,
                }));
            }
            if let Some(plugin) = self.inner.plugins.cached(&path, modified, len) {
                return Ok(plugin);
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
                .loaded()
                .insert(path, (modified, len, plugin.clone()));
            Ok(plugin)
        })
    }

    /// Put a plugin's component in the store, once per host.
    pub(super) async fn store_plugin(
        &self,
        store: &Arc<dyn Persister>,
        plugin: &Plugin,
    ) -> Result<()> {
        let digest = plugin.digest();
        if self.inner.plugins.stored().contains(digest) {
            return Ok(());
        }
        store
            .save_plugin(digest, plugin.component())
            .await
            .map_err(|source| Error::Store {
                doing: format!("storing plugin '{}'", plugin.name()),
                source: Box::new(source),
            })?;
        self.inner.plugins.stored().insert(digest.to_string());
        Ok(())
    }

    /// The exact component a checkpoint names: loaded already, the one of that name in the
    /// plugin directories if it is the same, or else the copy kept in the store.
    pub(super) async fn plugin_for(
        &self,
        store: &Arc<dyn Persister>,
        name: &str,
        digest: &str,
    ) -> Result<Arc<Plugin>> {
        let loaded = self
            .inner
            .plugins
            .loaded()
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
                source: format!(
                    "the store's copy has digest {}, not {digest}",
                    plugin.digest()
                )
                .into(),
            });
        }
        Ok(plugin)
    }
}
