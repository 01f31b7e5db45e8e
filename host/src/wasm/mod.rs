//! Running plugins: the wasmtime engine, loading and checking components, instances and limits.
//!
//! **Architecture invariant:** the only module that touches wasmtime. It turns traps, limits and
//! guest errors into [`Failure`]s, and WIT values into the host's own types ([`spec`]).

mod bindings;
mod cache;
mod image;
mod limits;
pub mod safety;

pub use safety::SnapshotSafety;
mod spec;
mod state;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::Value;
use sha2::{Digest, Sha256};
use wasmtime::component::{Component, Linker, types::ComponentItem};
use wasmtime::{Engine, Store, Trap, UpdateDeadline};

pub(crate) use bindings::damson::workflow::types::{AwaitChild as WitAwait, Next as wit_next};
pub(crate) use image::DecodedImage;
pub use limits::{Interrupted, LimitExceeded};
pub(crate) use state::StoreState;

use crate::config::HostConfig;
use crate::error::{Error, Result};
use crate::process::ProcessData;
use crate::spec::{DeclaredSpec, ProcessSpec};
use bindings::damson::workflow::types as wit;

/// The plugin world this host implements.
pub const WORLD: &str = "damson:workflow/plugin@0.1.0";

/// The wasmtime engine and linker shared by all plugins of a host.
pub(crate) struct Runtime {
    engine: Engine,
    linker: Arc<Linker<StoreState>>,
    config: HostConfig,
    _ticker: EpochTicker,
}

/// A component that was read, checked, compiled and asked for its spec: a [`Plugin`] once the
/// plugins it exposes are loaded too.
pub(crate) struct Loaded {
    path: PathBuf,
    digest: String,
    from_cache: bool,
    safety: SnapshotSafety,
    pre: bindings::PluginPre<StoreState>,
    pub(crate) declared: DeclaredSpec,
    bytes: Arc<[u8]>,
}

/// A loaded, checked and compiled plugin, ready to instantiate.
pub struct Plugin {
    path: PathBuf,
    digest: String,
    spec: Arc<ProcessSpec>,
    from_cache: bool,
    pre: bindings::PluginPre<StoreState>,
    /// The plugins whose ports this one exposes, by name.
    exposed: HashMap<String, Arc<Plugin>>,
    /// Whether memory images of its instances can be taken.
    safety: SnapshotSafety,
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

/// Why a call into a plugin did not return normally.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// The guest returned an error.
    #[error("failed: {0}")]
    Error(String),
    /// The guest panicked (message and location as the guest reported them).
    #[error("{0}")]
    Panic(String),
    /// The guest ran into a limit.
    #[error(transparent)]
    Limit(#[from] LimitExceeded),
    /// The guest recursed past its stack: wasmtime's wasm stack, or the stack a compiled language
    /// keeps in linear memory (a Rust plugin's 1 MiB shadow stack).
    #[error("overflowed its stack: {detail}")]
    StackOverflow { detail: String },
    /// Any other trap.
    #[error("trapped: {0}")]
    Trap(String),
    /// The process was killed while the call ran.
    #[error("was interrupted: the process was killed")]
    Interrupted,
    /// A memory image could not be written back.
    #[error("cannot be restored from its memory image: {0}")]
    Restore(String),
    /// After a restore from a memory image, the guest used a resource handle from before the
    /// checkpoint; handles live in the instance, not in its memory, so they do not survive.
    #[error(
        "trapped on a stale resource handle after a restore from a memory image ({0}): the plugin \
         kept a WASI handle (stdout, a file, a stream) across a checkpoint; plugins must talk to \
         the world through Damson's host imports (log, status, outputs) to be checkpointed with \
         their memory"
    )]
    StaleHandle(String),
}

impl Runtime {
    pub(crate) fn new(config: &HostConfig) -> Result<Self> {
        let mut wasm = wasmtime::Config::new();
        wasm.wasm_component_model(true)
            .epoch_interruption(true)
            .max_wasm_stack(config.max_wasm_stack)
            // The fiber a guest call runs on needs room for the wasm stack and the host frames.
            .async_stack_size(config.max_wasm_stack + (1 << 20))
            // The host allocates linear memories, so that it can take images of them (see
            // `image`); wasmtime's copy-on-write initialisation needs its own allocation.
            .with_host_memory(Arc::new(image::HostMemory))
            .memory_init_cow(false);
        let engine = Engine::new(&wasm).map_err(|e| Error::Engine {
            message: format!("{e:#}"),
        })?;
        let mut linker = Linker::new(&engine);
        // Plugins built by Rust's wasm32-wasip2 import WASI even when they use none of it; the
        // sandbox (empty by default) decides what those imports can reach.
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(|e| Error::Engine {
            message: format!("{e:#}"),
        })?;
        bindings::Plugin::add_to_linker::<_, wasmtime::component::HasSelf<StoreState>>(
            &mut linker,
            |state| state,
        )
        .map_err(|e| Error::Engine {
            message: format!("{e:#}"),
        })?;
        let ticker = EpochTicker::start(&engine, config.epoch_tick);
        Ok(Self {
            engine,
            linker: Arc::new(linker),
            config: config.clone(),
            _ticker: ticker,
        })
    }

    /// Load the component at `path`: check that it is a component of this world, compile it (or
    /// reuse its cached artifact) and read its declared spec.
    pub(crate) async fn load(&self, path: &Path) -> Result<Loaded> {
        let bytes: Arc<[u8]> = std::fs::read(path)
            .map_err(|source| Error::ReadPlugin {
                path: path.to_path_buf(),
                source,
            })?
            .into();
        check_header(path, &bytes)?;
        let digest = hex::encode(Sha256::digest(&bytes));
        let safety = safety::check(&bytes);

        let engine = self.engine.clone();
        let cache_dir = self.config.cache_dir.clone();
        let digest_for_compile = digest.clone();
        let bytes_for_compile = bytes.clone();
        // Compiling takes a while: keep it off the async worker threads.
        let compiled = tokio::task::spawn_blocking(move || {
            cache::compile(
                &engine,
                &bytes_for_compile,
                &digest_for_compile,
                cache_dir.as_deref(),
            )
        })
        .await
        .expect("the compile task panicked");
        let (component, from_cache) = compiled.map_err(|e| Error::InvalidComponent {
            path: path.to_path_buf(),
            message: format!("{e:#}"),
        })?;

        self.check_world(path, &component)?;
        let instance_pre =
            self.linker
                .instantiate_pre(&component)
                .map_err(|e| Error::WrongWorld {
                    path: path.to_path_buf(),
                    expected: WORLD,
                    detail: format!("{e:#}"),
                })?;
        let pre = bindings::PluginPre::new(instance_pre).map_err(|e| Error::WrongWorld {
            path: path.to_path_buf(),
            expected: WORLD,
            detail: format!("{e:#}"),
        })?;

        // Declaring the spec runs guest code: under the same limits as a step.
        let interrupt = Arc::new(AtomicBool::new(false));
        let mut instance = Instance::new(self, &pre, "(loading)".into(), interrupt, None)
            .await
            .map_err(|f| Error::Declare {
                path: path.to_path_buf(),
                message: f.to_string(),
            })?;
        let declared = instance.describe().await.map_err(|f| Error::Declare {
            path: path.to_path_buf(),
            message: f.to_string(),
        })?;
        let name = declared.name.clone();
        let declared = spec::from_wit(declared).map_err(|source| Error::InvalidSpec {
            plugin: name,
            source,
        })?;
        tracing::debug!(plugin = %declared.name, digest, from_cache, "loaded component");
        Ok(Loaded {
            path: path.to_path_buf(),
            digest,
            from_cache,
            safety,
            pre,
            declared,
            bytes,
        })
    }

    /// A fresh instance of `plugin`, to run one process.
    pub(crate) async fn instantiate(
        &self,
        plugin: &Plugin,
        interrupt: Arc<AtomicBool>,
    ) -> Result<Instance, Failure> {
        Instance::new(
            self,
            &plugin.pre,
            plugin.spec.name.as_str().into(),
            interrupt,
            None,
        )
        .await
    }

    /// A fresh instance of `plugin` with the memories of `image` (taken from an instance of the
    /// same component) written back, ready for its next call.
    pub(crate) async fn restore(
        &self,
        plugin: &Plugin,
        interrupt: Arc<AtomicBool>,
        image: &DecodedImage,
    ) -> Result<Instance, Failure> {
        if let Some(reason) = plugin.safety.reasons.first() {
            return Err(Failure::Restore(format!(
                "the plugin is not snapshot-safe ({reason}), so it has no memory image"
            )));
        }
        Instance::new(
            self,
            &plugin.pre,
            plugin.spec.name.as_str().into(),
            interrupt,
            Some(image),
        )
        .await
    }

    /// Name what is wrong when a component does not export this world's `process` interface or
    /// imports something this host does not provide.
    fn check_world(&self, path: &Path, component: &Component) -> Result<()> {
        let ty = component.component_type();
        let exports: Vec<String> = ty
            .exports(&self.engine)
            .map(|(n, _)| n.to_string())
            .collect();
        if !exports.iter().any(|e| e == bindings::PROCESS_INTERFACE) {
            let detail = match exports
                .iter()
                .find(|e| e.starts_with("damson:workflow/process@"))
            {
                Some(other) => format!(
                    "it exports {other}, but this host implements {}",
                    bindings::PROCESS_INTERFACE
                ),
                None if exports.is_empty() => "it exports nothing".to_string(),
                None => format!(
                    "it does not export {} (it exports: {})",
                    bindings::PROCESS_INTERFACE,
                    exports.join(", ")
                ),
            };
            return Err(Error::WrongWorld {
                path: path.to_path_buf(),
                expected: WORLD,
                detail,
            });
        }
        for (name, item) in ty.imports(&self.engine) {
            let known = name.starts_with("wasi:")
                || name == bindings::HOST_INTERFACE
                || name.starts_with("damson:workflow/types@0.1.0");
            if !known {
                let kind = match item.ty {
                    ComponentItem::ComponentInstance(_) => "interface",
                    _ => "item",
                };
                return Err(Error::WrongWorld {
                    path: path.to_path_buf(),
                    expected: WORLD,
                    detail: format!(
                        "it imports the {kind} {name}, which this host does not provide"
                    ),
                });
            }
        }
        Ok(())
    }
}

/// Tell a text file or a core module from a component before wasmtime gives a vaguer error.
fn check_header(path: &Path, bytes: &[u8]) -> Result<()> {
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Err(Error::NotWasm {
            path: path.to_path_buf(),
        });
    }
    // Bytes 4..8: version 1 layer 0 is a core module; a component has layer 1.
    if bytes[4..8] == [1, 0, 0, 0] {
        return Err(Error::CoreModule {
            path: path.to_path_buf(),
        });
    }
    Ok(())
}

/// One instance of a plugin with its store. Not shared: one process owns it.
pub(crate) struct Instance {
    store: Store<StoreState>,
    bindings: bindings::Plugin,
    timeout: Duration,
    max_wasm_stack: usize,
    /// Set once a call trapped: the instance must not run again.
    poisoned: Option<Failure>,
    /// The linear memories, for memory images.
    memories: Arc<image::Memories>,
    /// Whether the memories came from an image (a trap on a resource handle then has a cause).
    restored: bool,
}

impl Instance {
    async fn new(
        runtime: &Runtime,
        pre: &bindings::PluginPre<StoreState>,
        plugin: Arc<str>,
        interrupt: Arc<AtomicBool>,
        image: Option<&DecodedImage>,
    ) -> Result<Self, Failure> {
        let config = &runtime.config;
        let state = StoreState::new(&config.sandbox, config.max_memory, plugin, interrupt);
        let mut store = Store::new(&runtime.engine, state);
        store.limiter(|state| &mut state.limiter);
        store.epoch_deadline_callback(|ctx| {
            if ctx.data().interrupt.load(Ordering::Relaxed) {
                return Err(wasmtime::Error::new(Interrupted));
            }
            ctx.data().deadline.check().map_err(wasmtime::Error::new)?;
            // Yield to the async runtime at every tick so one guest never holds a thread.
            Ok(UpdateDeadline::Yield(1))
        });
        store.set_epoch_deadline(1);
        store.data_mut().deadline.start(config.step_timeout);
        let memories = Arc::new(image::Memories::default());
        if let Some(image) = image {
            memories.presize(image.sizes());
        }
        let bindings = memories.scope(pre.instantiate_async(&mut store)).await;
        let mut instance = Self {
            store,
            bindings: match bindings {
                Ok(b) => b,
                Err(e) => return Err(classify(e, None, config.max_wasm_stack)),
            },
            timeout: config.step_timeout,
            max_wasm_stack: config.max_wasm_stack,
            poisoned: None,
            memories,
            restored: image.is_some(),
        };
        instance.store.data_mut().deadline.clear();
        if let Some(image) = image {
            let total = instance
                .memories
                .restore(image)
                .map_err(|e| Failure::Restore(e.to_string()))?;
            instance
                .store
                .data_mut()
                .limiter
                .set_used(total)
                .map_err(Failure::Limit)?;
        }
        Ok(instance)
    }

    /// An image of the instance's memories, taken now (between calls); `None` when the instance
    /// failed (an image is never taken after a trap) or has no memory the host allocated.
    pub(crate) fn image(&self) -> Option<Vec<u8>> {
        if self.poisoned.is_some() || self.memories.is_empty() {
            return None;
        }
        Some(self.memories.capture())
    }

    /// The flag that interrupts this instance's calls.
    pub(crate) fn interrupt(&self) -> Arc<AtomicBool> {
        self.store.data().interrupt.clone()
    }

    /// The data of the process this instance serves, which host imports read and write.
    pub(crate) fn data(&mut self) -> &mut ProcessData {
        &mut self.store.data_mut().process
    }

    fn begin(&mut self) -> Result<(), Failure> {
        if let Some(failure) = &self.poisoned {
            return Err(Failure::Trap(format!(
                "the plugin instance failed before: {failure}"
            )));
        }
        let state = self.store.data_mut();
        state.panic = None;
        state.deadline.start(self.timeout);
        self.store.set_epoch_deadline(1);
        Ok(())
    }

    fn end<R>(&mut self, result: wasmtime::Result<R>) -> Result<R, Failure> {
        let state = self.store.data_mut();
        state.deadline.clear();
        let restored = self.restored;
        result.map_err(|e| {
            let mut failure = classify(e, state.panic.take(), self.max_wasm_stack);
            if restored
                && let Failure::Trap(message) = &failure
                && message.contains("unknown handle index")
            {
                failure = Failure::StaleHandle(message.clone());
            }
            self.poisoned = Some(failure.clone());
            failure
        })
    }

    pub(crate) async fn describe(&mut self) -> Result<wit::Spec, Failure> {
        self.begin()?;
        let r = self
            .bindings
            .damson_workflow_process()
            .call_describe(&mut self.store)
            .await;
        self.end(r)
    }

    pub(crate) async fn run_step(&mut self, name: &str) -> Result<wit::StepResult, Failure> {
        self.begin()?;
        let r = self
            .bindings
            .damson_workflow_process()
            .call_run_step(&mut self.store, name)
            .await;
        self.end(r)?.map_err(Failure::Error)
    }

    pub(crate) async fn check_condition(&mut self, name: &str) -> Result<bool, Failure> {
        self.begin()?;
        let r = self
            .bindings
            .damson_workflow_process()
            .call_check_condition(&mut self.store, name)
            .await;
        self.end(r)?.map_err(Failure::Error)
    }

    /// The plugin's verdict on `value` for the port at `path`: `Some(message)` when invalid.
    pub(crate) async fn validate(
        &mut self,
        path: &str,
        value: &Value,
    ) -> Result<Option<String>, Failure> {
        self.begin()?;
        let r = self
            .bindings
            .damson_workflow_process()
            .call_validate(&mut self.store, path, &value.to_string())
            .await;
        self.end(r)
    }

    pub(crate) async fn compute_default(&mut self, path: &str) -> Result<Value, Failure> {
        self.begin()?;
        let r = self
            .bindings
            .damson_workflow_process()
            .call_compute_default(&mut self.store, path)
            .await;
        let json = self.end(r)?.map_err(Failure::Error)?;
        serde_json::from_str(&json).map_err(|e| {
            Failure::Error(format!(
                "the computed default of '{path}' is not valid JSON: {e}"
            ))
        })
    }
}

/// Turn a wasmtime error from a guest call into what happened, in words a user can act on.
fn classify(error: wasmtime::Error, panic: Option<String>, max_wasm_stack: usize) -> Failure {
    if error.downcast_ref::<Interrupted>().is_some() {
        return Failure::Interrupted;
    }
    if let Some(limit) = error.downcast_ref::<LimitExceeded>() {
        return Failure::Limit(limit.clone());
    }
    if let Some(panic) = panic {
        return Failure::Panic(panic);
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::StackOverflow) => Failure::StackOverflow {
            detail: format!(
                "the wasm call stack limit of {} KiB was reached",
                max_wasm_stack >> 10
            ),
        },
        Some(Trap::MemoryOutOfBounds) => match runaway_recursion(&error) {
            Some(function) => Failure::StackOverflow {
                detail: format!(
                    "deep recursion in `{function}` ran past the plugin's stack in linear memory"
                ),
            },
            None => Failure::Trap(Trap::MemoryOutOfBounds.to_string()),
        },
        Some(trap) => Failure::Trap(trap.to_string()),
        None => Failure::Trap(format!("{error:#}")),
    }
}

/// The function that recursed, when an out-of-bounds access happened with a backtrace full of
/// one function: compiled languages keep their stack in linear memory, below the data, and
/// running off its end faults on an address below zero.
fn runaway_recursion(error: &wasmtime::Error) -> Option<String> {
    let frames = error.downcast_ref::<wasmtime::WasmBacktrace>()?.frames();
    // wasmtime keeps the innermost 20 frames by default: all of them must be taken.
    if frames.len() < 16 {
        return None;
    }
    let first = frames.first()?;
    let same = frames
        .iter()
        .filter(|f| f.func_index() == first.func_index())
        .count();
    (same * 4 >= frames.len() * 3).then(|| {
        first.func_name().map_or_else(
            || format!("function {}", first.func_index()),
            |name| format!("{:#}", rustc_demangle::demangle(name)),
        )
    })
}

/// Advances the engine's epoch at a fixed interval, which interrupts running guests so they
/// check their deadline and yield. Stops when dropped.
struct EpochTicker {
    stop: Arc<AtomicBool>,
}

impl EpochTicker {
    fn start(engine: &Engine, tick: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let engine = engine.weak();
        let stopped = stop.clone();
        std::thread::Builder::new()
            .name("damson-epoch".into())
            .spawn(move || {
                while !stopped.load(Ordering::Relaxed) {
                    std::thread::sleep(tick);
                    match engine.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => break,
                    }
                }
            })
            .expect("cannot start the epoch thread");
        Self { stop }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
