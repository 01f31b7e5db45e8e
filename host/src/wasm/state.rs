//! The data of one store, and the host imports plugins call.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use serde_json::Value;

use super::bindings::current::damson::workflow::{host, types};
use super::limits::{Deadline, MemoryLimiter};
use crate::config::Sandbox;
use crate::guest::{Effects, Launch, LogEntry, LogLevel, LogSource, ProcessView};
use crate::ports::{SEPARATOR, ValidationError};
use crate::spec::ProcessSpec;

/// Which kind of call runs, which decides what the host imports may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Call {
    /// A step: everything.
    Step,
    /// A condition: everything but launching children.
    Condition,
    /// Declaring, validating, computing a default: reading only.
    Other,
}

/// Everything a store holds besides the guest: WASI (empty by default), limits, and — during a
/// step or condition — the process the call is lent, and the effects it has had so far.
pub(crate) struct StoreState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limiter: MemoryLimiter,
    pub(crate) deadline: Deadline,
    /// The spec outputs are checked against; `None` while the plugin is being loaded.
    pub(crate) spec: Option<Arc<ProcessSpec>>,
    /// What the running call sees of its process.
    pub(crate) process: ProcessView,
    /// The pid log lines carry (kept after a call, for validators' log lines).
    pub(crate) pid: String,
    pub(crate) call: Call,
    /// What the running call did so far.
    pub(crate) effects: Effects,
    /// The panic the guest reported just before it trapped.
    pub(crate) panic: Option<String>,
    /// Plugin name, for log lines.
    pub(crate) plugin: Arc<str>,
    /// Set when the process is killed: a running call stops at the next epoch tick.
    pub(crate) interrupt: Arc<AtomicBool>,
    /// The most log lines one call holds for the process's log (the host's `log_lines`).
    pub(crate) log_lines: usize,
}

impl StoreState {
    pub(crate) fn new(
        sandbox: &Sandbox,
        max_memory: usize,
        plugin: Arc<str>,
        spec: Option<Arc<ProcessSpec>>,
        interrupt: Arc<AtomicBool>,
    ) -> Self {
        Self {
            wasi: wasi_ctx(sandbox),
            table: ResourceTable::new(),
            limiter: MemoryLimiter::new(max_memory),
            deadline: Deadline::default(),
            spec,
            process: ProcessView::default(),
            pid: String::new(),
            call: Call::Other,
            effects: Effects::default(),
            panic: None,
            plugin,
            interrupt,
            log_lines: 0,
        }
    }

    /// Lend `process` to the call about to run.
    pub(crate) fn lend(&mut self, call: Call, process: &mut ProcessView) {
        self.process = std::mem::take(process);
        if self.pid != self.process.pid {
            self.pid.clone_from(&self.process.pid);
        }
        self.call = call;
    }

    /// The call has returned: give the process back, with what the call did.
    pub(crate) fn give_back(&mut self, process: &mut ProcessView) -> Effects {
        *process = std::mem::take(&mut self.process);
        self.call = Call::Other;
        std::mem::take(&mut self.effects)
    }

    /// Validate an output emitted at a dotted path and record it.
    fn emit(&mut self, path: &str, value: Value) -> Result<(), ValidationError> {
        let spec = match (&self.spec, self.call) {
            (Some(spec), Call::Step | Call::Condition) => spec,
            _ => {
                return Err(ValidationError {
                    path: format!("outputs.{path}"),
                    message: "outputs can only be emitted by a running step".into(),
                });
            }
        };
        match spec.outputs.validate_emitted(path, &value) {
            Ok(checks) => self.effects.checks.extend(checks),
            Err(e) => {
                self.effects.refused.get_or_insert_with(|| e.clone());
                return Err(e);
            }
        }
        self.effects.outputs.push((path.to_string(), value));
        Ok(())
    }

    /// Record a child to launch after the step; its pid.
    fn launch(&mut self, plugin: String, inputs: Value) -> Result<String, String> {
        if self.call != Call::Step {
            return Err("children can only be launched by a running step".into());
        }
        if plugin.is_empty() {
            return Err("launch needs a plugin name".into());
        }
        if !inputs.is_object() {
            return Err(format!(
                "the inputs of a '{plugin}' child must be a JSON object"
            ));
        }
        let pid = uuid::Uuid::new_v4().to_string();
        self.effects.launches.push(Launch {
            pid: pid.clone(),
            plugin,
            inputs,
        });
        Ok(pid)
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

impl StoreState {
    /// Whether the guest holds a handle to a host resource (a WASI stream, a pollable …): an
    /// image taken now would hold a handle number that means nothing in another store.
    pub(crate) fn holds_handles(&self) -> bool {
        !self.table.is_empty()
    }
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
        Ok(self.pid.clone())
    }

    fn inputs(&mut self) -> wasmtime::Result<String> {
        Ok(self.process.inputs.to_string())
    }

    fn input(&mut self, path: String) -> wasmtime::Result<Option<String>> {
        let value = path
            .split(SEPARATOR)
            .try_fold(&self.process.inputs, |value, key| value.get(key));
        Ok(value.map(|v| v.to_string()))
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
        Ok(self.emit(&path, value).map_err(|e| e.to_string()))
    }

    fn pause(&mut self, message: Option<String>) -> wasmtime::Result<()> {
        if self.call != Call::Other {
            self.effects.pause = Some(message);
        }
        Ok(())
    }

    fn set_status(&mut self, message: Option<String>) -> wasmtime::Result<()> {
        if self.call != Call::Other {
            self.effects.status = Some(message);
        }
        Ok(())
    }

    fn log(&mut self, level: types::LogLevel, message: String) -> wasmtime::Result<()> {
        let pid = self.pid.as_str();
        let plugin = &*self.plugin;
        let level = match level {
            types::LogLevel::Trace => {
                tracing::trace!(target: "damson::plugin", %pid, %plugin, "{message}");
                LogLevel::Trace
            }
            types::LogLevel::Debug => {
                tracing::debug!(target: "damson::plugin", %pid, %plugin, "{message}");
                LogLevel::Debug
            }
            types::LogLevel::Info => {
                tracing::info!(target: "damson::plugin", %pid, %plugin, "{message}");
                LogLevel::Info
            }
            types::LogLevel::Warn => {
                tracing::warn!(target: "damson::plugin", %pid, %plugin, "{message}");
                LogLevel::Warn
            }
            types::LogLevel::Error => {
                tracing::error!(target: "damson::plugin", %pid, %plugin, "{message}");
                LogLevel::Error
            }
        };
        // Lines of a step or condition go to the process's log too; those of loading and of
        // validators, which belong to no step, only to the host's.
        if self.call != Call::Other {
            let at_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            let line = LogEntry {
                at_ms,
                level,
                source: LogSource::Plugin,
                message,
            };
            self.effects.logs.push(line, self.log_lines);
        }
        Ok(())
    }

    fn launch(
        &mut self,
        plugin: String,
        inputs: String,
    ) -> wasmtime::Result<Result<String, String>> {
        let inputs = parse_json(&inputs, || format!("launch of '{plugin}'"))?;
        Ok(StoreState::launch(self, plugin, inputs))
    }

    fn error_kind(&mut self, kind: String) -> wasmtime::Result<()> {
        self.effects.error_kind = Some(kind);
        Ok(())
    }

    fn attempt(&mut self) -> wasmtime::Result<u32> {
        Ok(self.process.attempt)
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
