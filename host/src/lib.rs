//! # Damson: a durable workflow host for WebAssembly process plugins
//!
//! Plugins are WebAssembly components implementing the `damson:workflow/plugin` world (see
//! `wit/`). The host loads and checks them, validates what goes in and out through their port
//! specs, interprets their outlines one step at a time, and runs each process in a sandbox with
//! memory and time limits.
//!
//! ## Module map
//! - [`ports`]: ports, namespaces, validation and defaults (plumpy's port model).
//! - [`workchain`]: outlines and the cursor that says where a process is.
//! - [`spec`]: a plugin's declared spec.
//! - [`process`]: process states, records, and running one through its outline.
//! - [`comms`]: the communicator (RPC, broadcast, task queue) and process control over it.
//! - [`persist`]: checkpoint bundles and persisters (in memory, embedded file, PostgreSQL).
//! - `wasm`: wasmtime — engine, loading, instances, limits, host imports, memory images.
//! - [`Host`] and [`HostConfig`]: the embedding API.
//! - `cli`: the `damson` command line.
//!
//! **Architecture invariants:** `ports`, `workchain` and `spec` are pure: no wasmtime, no tokio,
//! no I/O. Only `wasm` touches wasmtime. Only `cli` uses `anyhow`.

pub mod cli;
pub mod comms;
mod config;
mod error;
mod host;
pub mod persist;
pub mod ports;
pub mod process;
pub mod spec;
mod wasm;
pub mod workchain;

pub use config::{HostConfig, Sandbox};
pub use error::{Error, InvalidSpec, Result};
pub use host::{Host, Recovered};
pub use process::{Event, ProcessHandle, ProcessListener, ProcessRecord, ProcessState};
pub use wasm::{Failure, LimitExceeded, Plugin, SnapshotSafety, WORLD};
