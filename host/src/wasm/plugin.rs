//! [`Plugin`]: a loaded, checked and compiled component, ready to instantiate.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::SnapshotSafety;
use super::image::Fresh;
use super::world::WorldPre;
use crate::error::{Error, Result};
use crate::spec::{DeclaredSpec, ProcessSpec};

/// A component that was read, checked, compiled and asked for its spec: a [`Plugin`] once the
/// plugins it exposes are loaded too.
pub(crate) struct Loaded {
    pub(super) path: PathBuf,
    pub(super) digest: String,
    pub(super) from_cache: bool,
    pub(super) safety: SnapshotSafety,
    pub(super) pre: WorldPre,
    pub(super) fresh: Option<Arc<Fresh>>,
    pub(crate) declared: DeclaredSpec,
    pub(super) bytes: Arc<[u8]>,
}

/// A loaded, checked and compiled plugin, ready to instantiate.
pub struct Plugin {
    path: PathBuf,
    digest: String,
    spec: Arc<ProcessSpec>,
    from_cache: bool,
    pub(super) pre: WorldPre,
    /// What a fresh instance's memories hold, which its images are deltas against.
    pub(super) fresh: Option<Arc<Fresh>>,
    /// The plugins whose ports this one exposes, by name.
    exposed: HashMap<String, Arc<Plugin>>,
    /// Whether memory images of its instances can be taken.
    pub(super) safety: SnapshotSafety,
    /// The component, to store beside checkpoints.
    bytes: Arc<[u8]>,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("name", &self.spec.name)
            .field("path", &self.path)
            .field("digest", &self.digest)
            .finish_non_exhaustive()
    }
}

impl Plugin {
    /// The plugin of a loaded component, with the plugins it exposes (by name); builds its spec.
    pub(crate) fn new(loaded: Loaded, exposed: HashMap<String, Arc<Plugin>>) -> Result<Self> {
        let spec = loaded
            .declared
            .build(|name| exposed.get(name).map(|p| &**p.spec()))
            .map_err(|source| Error::InvalidSpec {
                plugin: loaded.declared.name.clone(),
                source,
            })?;
        Ok(Self {
            path: loaded.path,
            digest: loaded.digest,
            spec: Arc::new(spec),
            from_cache: loaded.from_cache,
            safety: loaded.safety,
            pre: loaded.pre,
            fresh: loaded.fresh,
            exposed,
            bytes: loaded.bytes,
        })
    }

    /// A plugin whose ports this one exposes, directly or through another exposed plugin.
    pub fn exposed(&self, name: &str) -> Option<&Arc<Plugin>> {
        self.exposed
            .get(name)
            .or_else(|| self.exposed.values().find_map(|p| p.exposed(name)))
    }

    /// Its spec, with exposed ports copied in.
    pub fn spec(&self) -> &Arc<ProcessSpec> {
        &self.spec
    }

    /// Its declared name.
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// The file it was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The WIT world the component was built against: [`WORLD`](crate::WORLD), or an earlier
    /// one this host still loads (`damson:workflow/plugin@0.1.0`).
    pub fn world(&self) -> &'static str {
        self.pre.world().name()
    }

    /// The SHA-256 digest of the component, in hex: what a process is pinned to.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// Whether the compiled artifact came from the on-disk cache.
    pub fn compiled_from_cache(&self) -> bool {
        self.from_cache
    }

    /// The component's bytes.
    pub fn component(&self) -> &[u8] {
        &self.bytes
    }

    /// Whether memory images of this plugin can be taken, and if not, why.
    pub fn snapshot_safety(&self) -> &SnapshotSafety {
        &self.safety
    }
}
