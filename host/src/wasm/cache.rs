//! Compile a component once: compiled artifacts kept on disk, keyed by the component's digest.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use wasmtime::Engine;
use wasmtime::component::Component;

/// The artifact cached in `cache_dir` under `key`, if there is a usable one.
pub(crate) fn cached(engine: &Engine, key: &str, cache_dir: Option<&Path>) -> Option<Component> {
    let file = artifact_path(engine, cache_dir?, key);
    if !file.is_file() {
        return None;
    }
    // SAFETY: the cache directory belongs to the user running Damson, who is trusted as much
    // as the binary itself; wasmtime still checks that the artifact fits this engine.
    match unsafe { Component::deserialize_file(engine, &file) } {
        Ok(component) => {
            tracing::debug!(artifact = %file.display(), "reusing compiled artifact from cache");
            Some(component)
        }
        Err(e) => {
            tracing::warn!(artifact = %file.display(), "compiled artifact unusable, compiling again: {e}");
            None
        }
    }
}

/// Compile `bytes`, or load the artifact compiled before from `cache_dir`. Returns the
/// component and whether it came from the cache.
///
/// A cache problem is never fatal: an artifact that does not load is compiled again and
/// replaced; one that cannot be written is logged.
pub(crate) fn compile(
    engine: &Engine,
    bytes: &[u8],
    digest: &str,
    cache_dir: Option<&Path>,
) -> wasmtime::Result<(Component, bool)> {
    let Some(dir) = cache_dir else {
        return Ok((Component::new(engine, bytes)?, false));
    };
    if let Some(component) = cached(engine, digest, Some(dir)) {
        return Ok((component, true));
    }
    let file = artifact_path(engine, dir, digest);
    let started = std::time::Instant::now();
    let component = Component::new(engine, bytes)?;
    tracing::debug!(digest, elapsed = ?started.elapsed(), "compiled component");
    match component.serialize() {
        Ok(artifact) => {
            if let Err(e) = write_atomically(dir, &file, &artifact) {
                tracing::warn!(artifact = %file.display(), "cannot cache compiled artifact: {e}");
            } else {
                tracing::debug!(artifact = %file.display(), "cached compiled artifact");
            }
        }
        Err(e) => tracing::warn!("cannot serialize compiled component: {e}"),
    }
    Ok((component, false))
}

/// `<dir>/<digest>-<engine>.cwasm`: the engine part keeps artifacts of other wasmtime versions or
/// settings apart.
fn artifact_path(engine: &Engine, dir: &Path, digest: &str) -> PathBuf {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    dir.join(format!("{digest}-{:016x}.cwasm", hasher.finish()))
}

/// Write to a temporary file beside `file`, then rename: readers never see half a file.
fn write_atomically(dir: &Path, file: &Path, bytes: &[u8]) -> std::io::Result<()> {
    static WRITES: AtomicU64 = AtomicU64::new(0);
    std::fs::create_dir_all(dir)?;
    // Unique per process and write, so concurrent loads of one plugin never share a file.
    let tmp = dir.join(format!(
        ".{}.{}.{}.tmp",
        file.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id(),
        WRITES.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, file).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}
