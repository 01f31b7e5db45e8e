//! The data of one store, and the host imports plugins call.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::bindings::damson::workflow::{host, types};
use super::limits::{Deadline, MemoryLimiter};
use crate::config::Sandbox;
use crate::process::ProcessData;

/// Everything a store holds besides the guest: WASI (empty by default), limits, and the data of
/// the process the instance serves.
pub(crate) struct StoreState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limiter: MemoryLimiter,
    pub(crate) deadline: Deadline,
    pub(crate) process: ProcessData,
    /// The panic the guest reported just before it trapped.
    pub(crate) panic: Option<String>,
    /// Plugin name, for log lines.
    pub(crate) plugin: Arc<str>,
    /// Set when the process is killed: a running call stops at the next epoch tick.
    pub(crate) interrupt: Arc<AtomicBool>,
}

impl StoreState {
    pub(crate) fn new(
        sandbox: &Sandbox,
        max_memory: usize,
        plugin: Arc<str>,
        interrupt: Arc<AtomicBool>,
    ) -> Self {
        Self {
            wasi: wasi_ctx(sandbox),
            table: ResourceTable::new(),
            limiter: MemoryLimiter::new(max_memory),
            deadline: Deadline::default(),
            process: ProcessData::default(),
            panic: None,
            plugin,
            interrupt,
        }
    }
}

/// WASI as the sandbox allows it: by default, nothing.
fn wasi_ctx(sandbox: &Sandbox) -> WasiCtx {
    let mut builder = WasiCtxBuilder::new();
    for (key, value) in &sandbox.env {
        builder.env(key, value);
    }
    builder.args(&sandbox.args);
    for (host_dir, guest_dir) in &sandbox.read_only_dirs {
        // A directory that cannot be opened is left out; the plugin then cannot see it.
        if let Err(e) = builder.preopened_dir(host_dir, guest_dir, wasmtime_wasi::FsPerms::ReadOnly)
        {
            tracing::warn!(dir = %host_dir.display(), "cannot share directory with plugins: {e:#}");
        }
    }
    if sandbox.inherit_stdio {
        builder.inherit_stdout().inherit_stderr();
    }
    builder
        .allow_tcp(sandbox.network)
        .allow_udp(sandbox.network);
    builder.allow_ip_name_lookup(sandbox.network);
    if sandbox.network {
        builder.inherit_network();
    }
    builder.build()
}

impl WasiView for StoreState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl types::Host for StoreState {}

impl host::Host for StoreState {
    fn pid(&mut self) -> wasmtime::Result<String> {
        Ok(self.process.pid.clone())
    }

    fn inputs(&mut self) -> wasmtime::Result<String> {
        Ok(self.process.inputs.to_string())
    }

    fn input(&mut self, path: String) -> wasmtime::Result<Option<String>> {
        Ok(self.process.input(&path).map(|v| v.to_string()))
    }

    fn context_get(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        Ok(self.process.context.get(&key).map(|v| v.to_string()))
    }

    fn context_set(&mut self, key: String, value: String) -> wasmtime::Result<()> {
        let value = parse_json(&value, || format!("context-set of key '{key}'"))?;
        self.process.context.insert(key, value);
        Ok(())
    }

    fn context_remove(&mut self, key: String) -> wasmtime::Result<bool> {
        Ok(self.process.context.shift_remove(&key).is_some())
    }

    fn context_keys(&mut self) -> wasmtime::Result<Vec<String>> {
        let mut keys: Vec<String> = self.process.context.keys().cloned().collect();
        keys.sort();
        Ok(keys)
    }

    fn emit_output(&mut self, path: String, value: String) -> wasmtime::Result<Result<(), String>> {
        let value = parse_json(&value, || format!("emit-output of port '{path}'"))?;
        Ok(self
            .process
            .emit_output(&path, value)
            .map_err(|e| e.to_string()))
    }

    fn pause(&mut self, message: Option<String>) -> wasmtime::Result<()> {
        self.process.pause = Some(message);
        Ok(())
    }

    fn set_status(&mut self, message: Option<String>) -> wasmtime::Result<()> {
        self.process.status = message;
        Ok(())
    }

    fn log(&mut self, level: types::LogLevel, message: String) -> wasmtime::Result<()> {
        let pid = self.process.pid.as_str();
        let plugin = &*self.plugin;
        match level {
            types::LogLevel::Trace => {
                tracing::trace!(target: "damson::plugin", %pid, %plugin, "{message}")
            }
            types::LogLevel::Debug => {
                tracing::debug!(target: "damson::plugin", %pid, %plugin, "{message}")
            }
            types::LogLevel::Info => {
                tracing::info!(target: "damson::plugin", %pid, %plugin, "{message}")
            }
            types::LogLevel::Warn => {
                tracing::warn!(target: "damson::plugin", %pid, %plugin, "{message}")
            }
            types::LogLevel::Error => {
                tracing::error!(target: "damson::plugin", %pid, %plugin, "{message}")
            }
        }
        Ok(())
    }

    fn launch(
        &mut self,
        plugin: String,
        inputs: String,
    ) -> wasmtime::Result<Result<String, String>> {
        let inputs = parse_json(&inputs, || format!("launch of '{plugin}'"))?;
        Ok(self.process.launch(plugin, inputs))
    }

    fn report_panic(&mut self, message: String, location: Option<String>) -> wasmtime::Result<()> {
        self.panic = Some(match location {
            Some(location) => format!("panicked at {location}: {message}"),
            None => format!("panicked: {message}"),
        });
        Ok(())
    }
}

/// JSON from the guest; malformed JSON is a bug in the plugin and traps with the call named.
fn parse_json(text: &str, call: impl FnOnce() -> String) -> wasmtime::Result<serde_json::Value> {
    serde_json::from_str(text).map_err(|e| {
        wasmtime::Error::msg(format!("the plugin sent invalid JSON in {}: {e}", call()))
    })
}
