//! The library's error type.

use std::path::PathBuf;

use crate::ports::{SpecError, ValidationError};
use crate::workchain::OutlineError;

/// `Result<T, damson::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong before a process runs: finding, loading and checking a plugin,
/// and validating its inputs. What goes wrong *while* a process runs is not an `Error`: it ends
/// the process EXCEPTED, with the reason in its [`ProcessRecord`](crate::ProcessRecord).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read plugin file '{}'", path.display())]
    ReadPlugin {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("no plugin named '{name}': {}", looked_in(dirs))]
    PluginNotFound { name: String, dirs: Vec<PathBuf> },

    #[error(
        "'{}' is not a WebAssembly file: it does not start with the magic bytes `\\0asm`",
        path.display()
    )]
    NotWasm { path: PathBuf },

    #[error(
        "'{}' is a core WebAssembly module, not a component: build the plugin for the \
         wasm32-wasip2 target (which makes a component), or wrap it with `wasm-tools component new`",
        path.display()
    )]
    CoreModule { path: PathBuf },

    #[error("'{}' is not a valid WebAssembly component: {message}", path.display())]
    InvalidComponent { path: PathBuf, message: String },

    #[error(
        "'{}' is not a Damson plugin for world {expected}: {detail}",
        path.display()
    )]
    WrongWorld {
        path: PathBuf,
        expected: &'static str,
        detail: String,
    },

    #[error("plugin '{}' failed while declaring its spec: {message}", path.display())]
    Declare { path: PathBuf, message: String },

    #[error("plugin '{plugin}' declares an invalid spec")]
    InvalidSpec {
        plugin: String,
        #[source]
        source: InvalidSpec,
    },

    #[error("plugin '{plugin}' exposes the ports of '{exposed}', which cannot be loaded")]
    Expose {
        plugin: String,
        exposed: String,
        #[source]
        source: Box<Error>,
    },

    #[error("invalid inputs for plugin '{plugin}'")]
    InvalidInputs {
        plugin: String,
        #[source]
        source: ValidationError,
    },

    #[error("plugin '{plugin}' failed while {doing}: {message}")]
    Guest {
        plugin: String,
        doing: String,
        message: String,
    },

    #[error("process {pid} has terminated: a process runs once")]
    Closed { pid: String },

    #[error("cannot set up the WebAssembly engine: {message}")]
    Engine { message: String },

    #[error("the store failed while {doing}")]
    Store {
        doing: String,
        #[source]
        source: Box<crate::persist::PersistError>,
    },

    #[error("no checkpoint of {key} in {store}")]
    NoCheckpoint {
        key: crate::persist::CheckpointKey,
        store: String,
    },

    #[error("{key} cannot be restored: {message}")]
    Restore {
        key: crate::persist::CheckpointKey,
        message: String,
    },

    #[error("this host has no store: processes cannot be continued from checkpoints")]
    NoStore,

    #[error("the communicator failed")]
    Comms(#[from] crate::comms::CommsError),

    #[error("process {pid} is run by another host (its claim in the store has not run out)")]
    Claimed { pid: String },
}

/// Why a declared spec was refused.
#[derive(Debug, thiserror::Error)]
pub enum InvalidSpec {
    #[error(transparent)]
    Port(#[from] SpecError),
    #[error(transparent)]
    Outline(#[from] OutlineError),
    #[error("input '{path}' has a computed default, which must come from the plugin: {message}")]
    Default { path: String, message: String },
    #[error("{0}")]
    Other(String),
}

fn looked_in(dirs: &[PathBuf]) -> String {
    if dirs.is_empty() {
        return "no plugin directory is configured (use --plugins DIR or DAMSON_PLUGINS)".into();
    }
    let dirs: Vec<String> = dirs.iter().map(|d| format!("'{}'", d.display())).collect();
    format!("looked for <name>.wasm in {}", dirs.join(", "))
}

/// An error and its causes on one line, `outer: cause: root cause`.
pub(crate) fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
