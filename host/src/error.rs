//! [`Error`]: what can go wrong before a process runs, and around it.

use std::path::PathBuf;

use crate::guest::Failure;
use crate::persist::{CheckpointKey, Holder, PersistError};
use crate::ports::ValidationError;
use crate::spec::InvalidSpec;
use crate::tenancy::QuotaExceeded;

/// `Result<T, damson::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error from another layer (wasmtime, a communicator) kept as the cause of ours.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong before a process runs — finding, loading and checking a plugin,
/// validating its inputs — and around it: the store, checkpoints, claims, the communicator. What
/// goes wrong *while* a process runs is not an `Error`: it ends the process EXCEPTED, with the
/// reason in its [`ProcessRecord`](crate::ProcessRecord).
///
/// Each variant says what failed and where (a path, a plugin, a process); the cause, when there
/// is one, is its [`source`](std::error::Error::source).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A plugin file cannot be read.
    #[error("cannot read plugin file '{}'", path.display())]
    ReadPlugin {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },

    /// No plugin of this name is in the plugin directories.
    #[error("no plugin named '{name}': {}", looked_in(dirs))]
    PluginNotFound {
        /// The name looked for.
        name: String,
        /// The directories looked in ([`HostConfig::plugin_dir`](crate::HostConfig::plugin_dir)).
        dirs: Vec<PathBuf>,
    },

    /// A host acting for a tenant finds plugins by name only, in its tenant's directories.
    #[error("plugins are found by name for tenant '{tenant}': '{reference}' is a path")]
    PluginPath {
        /// The tenant.
        tenant: String,
        /// The reference given.
        reference: String,
    },

    /// The request would take its tenant over a quota: refused, nothing changed.
    #[error(transparent)]
    OverQuota(#[from] QuotaExceeded),

    /// The file is not WebAssembly at all.
    #[error(
        "'{}' is not a WebAssembly file: it does not start with the magic bytes `\\0asm`",
        path.display()
    )]
    NotWasm {
        /// The file.
        path: PathBuf,
    },

    /// The file is a core module, not a component.
    #[error(
        "'{}' is a core WebAssembly module, not a component: build the plugin for the \
         wasm32-wasip2 target (which makes a component), or wrap it with `wasm-tools component new`",
        path.display()
    )]
    CoreModule {
        /// The file.
        path: PathBuf,
    },

    /// The component does not validate or compile.
    #[error("'{}' is not a valid WebAssembly component", path.display())]
    InvalidComponent {
        /// The file.
        path: PathBuf,
        /// What wasmtime said.
        #[source]
        source: BoxError,
    },

    /// The component is not a plugin of the world this host implements.
    #[error("'{}' is not a Damson plugin for world {expected}: {detail}", path.display())]
    WrongWorld {
        /// The file.
        path: PathBuf,
        /// The world this host implements ([`WORLD`](crate::WORLD)).
        expected: &'static str,
        /// What does not fit.
        detail: String,
        /// What wasmtime said, when it was wasmtime that refused it.
        #[source]
        source: Option<BoxError>,
    },

    /// The plugin failed while declaring its spec.
    #[error("plugin '{}' failed while declaring its spec", path.display())]
    Declare {
        /// The file.
        path: PathBuf,
        /// How it failed.
        #[source]
        source: Failure,
    },

    /// The plugin declared a spec that is refused.
    #[error("plugin '{plugin}' declares an invalid spec")]
    InvalidSpec {
        /// The plugin.
        plugin: String,
        /// What is wrong with it.
        #[source]
        source: InvalidSpec,
    },

    /// A plugin whose ports this one exposes cannot be loaded.
    #[error("plugin '{plugin}' exposes the ports of '{exposed}', which cannot be loaded")]
    Expose {
        /// The exposing plugin.
        plugin: String,
        /// The exposed one.
        exposed: String,
        /// Why it cannot be loaded.
        #[source]
        source: Box<Error>,
    },

    /// The inputs do not fit the plugin's spec: no process was created.
    #[error("invalid inputs for plugin '{plugin}'")]
    InvalidInputs {
        /// The plugin.
        plugin: String,
        /// Which port, and why.
        #[source]
        source: ValidationError,
    },

    /// The plugin failed outside a step: starting, validating, computing a default.
    #[error("plugin '{plugin}' failed while {doing}")]
    Guest {
        /// The plugin.
        plugin: String,
        /// What it was doing, e.g. "validating 'inputs.a'".
        doing: String,
        /// How it failed.
        #[source]
        source: Failure,
    },

    /// The process has terminated: a process runs once (plumpy's `ClosedError`).
    #[error("process {pid} has terminated: a process runs once")]
    Closed {
        /// The process.
        pid: String,
    },

    /// The process has terminated, so it takes no signal.
    #[error("process {pid} has terminated ({state}): it takes no more signals")]
    Terminated {
        /// The process.
        pid: String,
        /// How it ended: `FINISHED`, `EXCEPTED` or `KILLED`.
        state: String,
    },

    /// wasmtime's engine cannot be set up with this configuration.
    #[error("cannot set up the WebAssembly engine")]
    Engine {
        /// What wasmtime said.
        #[source]
        source: BoxError,
    },

    /// The instance pool ([`HostConfig::instance_pool`](crate::HostConfig::instance_pool))
    /// cannot be reserved: mostly, its address space is more than the system gives.
    #[error(
        "cannot reserve the instance pool: {instances} instances, each with up to two memories \
         of max_memory = {} MiB, reserve about {} GiB of address space; lower instance_pool \
         (--instance-pool) or max_memory (--max-memory) in the HostConfig",
        .max_memory >> 20,
        .reservation >> 30
    )]
    InstancePool {
        /// The instances the pool was to hold.
        instances: u32,
        /// The most memory each linear memory may have, in bytes.
        max_memory: usize,
        /// The address space its memories would reserve, in bytes.
        reservation: u64,
        /// What wasmtime said.
        #[source]
        source: BoxError,
    },

    /// The store failed.
    #[error("the store failed while {doing}")]
    Store {
        /// What the host was doing, e.g. "saving the checkpoint of process …".
        doing: String,
        /// How the store failed.
        #[source]
        source: Box<PersistError>,
    },

    /// The store has no such checkpoint.
    #[error("no checkpoint of {key} in {store}")]
    NoCheckpoint {
        /// The checkpoint looked for.
        key: CheckpointKey,
        /// The store, described.
        store: String,
    },

    /// A checkpoint was read but the process cannot be rebuilt from it.
    #[error("{key} cannot be restored")]
    Restore {
        /// The checkpoint.
        key: CheckpointKey,
        /// Why: its plugin cannot be had, or its memory image cannot be written back.
        #[source]
        source: Box<Error>,
    },

    /// The host has no store, so this cannot be done.
    #[error("this host has no store: processes cannot be continued from checkpoints")]
    NoStore,

    /// The communicator failed.
    #[error("the communicator failed while {doing}")]
    Comms {
        /// What the host was doing.
        doing: String,
        /// The communicator's error ([`CommsError`](crate::comms::CommsError)).
        #[source]
        source: BoxError,
    },

    /// Another host runs the process: it holds the process's claim in the store.
    #[error("process {pid} is run by another host{}", held_by(holder.as_ref()))]
    Claimed {
        /// The process.
        pid: String,
        /// Who holds its claim, when known.
        holder: Option<Holder>,
    },
}

fn held_by(holder: Option<&Holder>) -> String {
    holder.map_or_else(String::new, |holder| format!(" ({holder})"))
}

fn looked_in(dirs: &[PathBuf]) -> String {
    if dirs.is_empty() {
        return "no plugin directory is configured".into();
    }
    let dirs: Vec<String> = dirs.iter().map(|d| format!("'{}'", d.display())).collect();
    format!("looked for <name>.wasm in {}", dirs.join(", "))
}

/// An error and its causes on one line, `outer: cause: root cause`.
pub(crate) fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // Some errors repeat their cause in their own text; say it once.
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
