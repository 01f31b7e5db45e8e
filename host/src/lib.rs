//! # Damson: a durable workflow host for WebAssembly process plugins
//!
//! Plugins are WebAssembly components implementing the `damson:workflow/plugin` world (see
//! `wit/`). The host loads and checks them, validates what goes in and out through their port
//! specs, interprets their outlines one step at a time, and runs each process in a sandbox with
//! memory and time limits.
//!
//! ## Module map, bottom up
//! - [`ports`], [`workchain`], [`retry`], [`spec`]: ports and validation (plumpy's port model),
//!   outlines and the cursor that says where a process is, retry policies, a plugin's declared
//!   spec.
//! - `guest`: a process's plugin code as the state machine sees it — the `Guest` trait and the
//!   `StepOutcome` a call returns.
//! - [`persist`]: checkpoint bundles and stores (in memory, embedded file, PostgreSQL).
//! - [`tenancy`]: tenants, API tokens with scopes, the audit log.
//! - `wasm`: wasmtime — engine, loading, instances, limits, host imports, memory images.
//! - [`process`]: the state machine: records, handles, events, one task per process.
//! - [`comms`]: communicators (RPC, broadcast, task queue) and process control over them.
//! - [`Host`] and [`HostConfig`]: the embedding API, which composes all of the above.
//! - [`api`]: the HTTP API of `damson serve --listen`, one host per tenant.
//! - `cli`: the `damson` command line.
//!
//! ## Layering
//! Each module uses only the modules below it. The `tidy` test (`src/tidy.rs`) reads the sources
//! and enforces this table, naming file and line, and that every public item has docs:
//!
//! | module | may use |
//! |---|---|
//! | `ports`, `workchain`, `json_text`, `fair`, `retry` | nothing of the host |
//! | `spec` | `ports`, `workchain`, `retry` |
//! | `guest` | `ports`, `spec`, `retry` |
//! | `persist` | nothing of the host |
//! | `config` | `persist` (the default tenant's name) |
//! | `tenancy` | `persist` |
//! | `error` | `ports`, `spec`, `guest`, `persist`, `tenancy` |
//! | `wasm` | `ports`, `workchain`, `spec`, `guest`, `config`, `error`, `retry` |
//! | `process` | `ports`, `workchain`, `spec`, `guest`, `error`, `json_text`, `retry` |
//! | `comms` | `process`, `error` (and the pure modules) |
//! | `host` | everything but `api` and `cli` |
//! | `api` | everything but `cli` |
//! | `cli` | everything |
//!
//! **Architecture invariants:** `ports`, `workchain`, `retry`, `spec` and `guest` are pure: no wasmtime,
//! no tokio, no I/O. Only `wasm` touches wasmtime, and no WIT type leaves it. `process` never
//! names the host: what a running process needs from around it is one narrow trait
//! (`process::Outside`). Only `persist` talks to databases, only `comms` to RabbitMQ. Only
//! `cli` uses `anyhow`.

#![warn(missing_docs)]

pub mod api;
pub mod cli;
pub mod comms;
mod config;
mod error;
mod fair;
mod guest;
mod host;
mod json_text;
pub mod persist;
pub mod ports;
pub mod process;
pub mod retry;
pub mod spec;
pub mod tenancy;
#[cfg(test)]
mod tidy;
mod wasm;
pub mod workchain;

pub use config::{HostConfig, Sandbox};
pub use error::{BoxError, Error, Result};
pub use guest::{Failure, LimitExceeded};
pub use host::{Host, Recovered};
pub use process::{
    Event, ProcessHandle, ProcessListener, ProcessRecord, ProcessState, Sent, Signal,
};
pub use spec::InvalidSpec;
pub use wasm::{Plugin, SnapshotSafety, WORLD};
