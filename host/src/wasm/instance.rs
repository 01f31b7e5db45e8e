//! [`Instance`]: one instance of a plugin, with its store, its limits and the calls into it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::Value;
use wasmtime::{Store, Trap};

use super::Runtime;
use super::bindings::current::damson::workflow::types as wit;
use super::image::{Accessor, Blocks, DecodedImage, Fresh, RestoreError};
use super::limits::{Deadline, Interrupted};
use super::state::{Call, StoreState};
use super::world::{Exports, WorldPre};
use crate::guest::{
    AwaitChild, Failure, LimitExceeded, Next, Outcome, ProcessView, StepOutcome, StepResult, Timer,
};
use crate::spec::ProcessSpec;

/// One instance of a plugin with its store. Not shared: one process owns it.
pub(crate) struct Instance {
    store: Store<StoreState>,
    exports: Exports,
    timeout: Duration,
    max_wasm_stack: usize,
    /// Set once a call trapped: the instance must not run again.
    poisoned: Option<Failure>,
    /// The component instance, to find the accessor in.
    handle: wasmtime::component::Instance,
    /// What reads and writes its globals and memories, for memory images, once looked up
    /// (`Some(None)` when its component could not be instrumented): most instances never
    /// take or restore an image.
    accessor: Option<Option<Accessor>>,
    /// What a fresh instance of its component holds, which images are deltas against (`None`
    /// while loading, when it is not known yet).
    fresh: Option<Arc<Fresh>>,
    /// The blocks of the last image taken or restored: the next image copies those it holds
    /// unchanged.
    blocks: Arc<Blocks>,
    /// Whether the log has been told that the instance holds resource handles between calls.
    warned_of_handles: bool,
    /// Whether the memories came from an image (a trap on a resource handle then has a cause).
    restored: bool,
    /// Tells instantiations waiting for a pool slot, once `store` (dropped before it, as it
    /// is declared first) has given its slots back.
    _release: super::pool::Release,
}

impl Instance {
    /// An instance of `plugin` (checking emitted outputs against `spec`, if given), with the
    /// globals and memories of `image` written back if given (`fresh` says which pages a fresh
    /// instance has non-zero, if known).
    pub(super) async fn new(
        runtime: &Runtime,
        pre: &WorldPre,
        plugin: Arc<str>,
        spec: Option<Arc<ProcessSpec>>,
        interrupt: Arc<AtomicBool>,
        image: Option<&DecodedImage>,
        fresh: Option<Arc<Fresh>>,
    ) -> Result<Self, Failure> {
        let config = runtime.config();
        let limits = runtime.limits();
        let make = || {
            let mut state = StoreState::new(
                &config.sandbox,
                limits.max_memory,
                plugin.clone(),
                spec.clone(),
                interrupt.clone(),
            );
            state.deadline = Deadline::new(runtime.seat());
            state.log_lines = config.log_lines;
            let mut store = Store::new(runtime.engine(), state);
            store.limiter(|state| &mut state.limiter);
            store.epoch_deadline_callback(|mut ctx| {
                if ctx.data().interrupt.load(Ordering::Relaxed) {
                    return Err(wasmtime::Error::new(Interrupted));
                }
                ctx.data().deadline.check().map_err(wasmtime::Error::new)?;
                // Yield to the async runtime at every tick so one guest never holds a thread;
                // a long call takes its turn in the lane too.
                Ok(ctx.data_mut().deadline.tick())
            });
            store.set_epoch_deadline(1);
            store.data_mut().deadline.start(limits.step_timeout);
            store
        };
        // A store that failed for want of a pool slot is dropped (giving back what it took)
        // and a new one made once a slot is freed.
        let instantiated = runtime
            .slots()
            .wait_for(config.instance_pool, || {
                let mut store = make();
                async move {
                    let instance = pre.instance_pre().instantiate_async(&mut store).await?;
                    let exports = pre.exports(&mut store, &instance)?;
                    Ok((store, exports, instance))
                }
            })
            .await;
        let (store, exports, handle) = match instantiated {
            Ok(instantiated) => instantiated,
            Err(e) => return Err(classify(e, None, config.max_wasm_stack)),
        };
        let mut instance = Self {
            store,
            exports,
            timeout: limits.step_timeout,
            max_wasm_stack: config.max_wasm_stack,
            poisoned: None,
            handle,
            accessor: None,
            fresh,
            blocks: image.map(DecodedImage::blocks).unwrap_or_default(),
            warned_of_handles: false,
            restored: image.is_some(),
            _release: runtime.slots().release(),
        };
        if let Some(image) = image {
            let accessor = instance.accessor()?.ok_or_else(|| {
                Failure::Restore("the plugin's instances cannot be imaged".into())
            })?;
            accessor
                .restore(&mut instance.store, image)
                .await
                .map_err(|e| match e {
                    RestoreError::Image(e) => Failure::Restore(e.to_string()),
                    RestoreError::Instance(e) => match classify(e, None, config.max_wasm_stack) {
                        limit @ Failure::Limit(_) => limit,
                        other => Failure::Restore(other.to_string()),
                    },
                })?;
        }
        instance.store.data_mut().deadline.clear();
        Ok(instance)
    }

    /// An image of the instance's globals and memories, taken now (between calls); `None` when
    /// the instance failed (an image is never taken after a trap), has nothing to image, or the
    /// image cannot be read (the log says why).
    pub(crate) async fn image(&mut self) -> Option<Vec<u8>> {
        if self.poisoned.is_some() {
            return None;
        }
        let accessor = self.accessor().ok().flatten().filter(|a| !a.is_empty())?;
        let fresh = self.fresh.clone()?;
        let holds_handles = self.store.data().holds_handles();
        if holds_handles && !self.warned_of_handles {
            self.warned_of_handles = true;
            tracing::warn!(
                plugin = %self.store.data().plugin,
                "the plugin holds handles to host resources (a WASI stream, say) between \
                 steps: this checkpoint's memory image can never be restored"
            );
        }
        self.store.data_mut().deadline.start(self.timeout);
        let image = accessor
            .capture(&mut self.store, &fresh, holds_handles, &self.blocks)
            .await;
        self.store.data_mut().deadline.clear();
        let (image, blocks) = image
            .inspect_err(|e| tracing::warn!("cannot take a memory image: {e:#}"))
            .ok()?;
        self.blocks = Arc::new(blocks);
        Some(image)
    }

    /// What this instance's memories hold, taken before its first call (see
    /// [`Accessor::fresh`]); `None` when it has nothing to image.
    pub(super) async fn fresh(&mut self) -> Result<Option<Fresh>, Failure> {
        let Some(accessor) = self.accessor()?.filter(|a| !a.is_empty()) else {
            return Ok(None);
        };
        let fresh = accessor.fresh(&mut self.store).await;
        fresh
            .map(Some)
            .map_err(|e| classify(e, None, self.max_wasm_stack))
    }

    /// The accessor of this instance, looked up the first time.
    fn accessor(&mut self) -> Result<Option<Accessor>, Failure> {
        if self.accessor.is_none() {
            let found = Accessor::find(&mut self.store, &self.handle)
                .map_err(|e| Failure::Restore(format!("the accessor is not usable: {e:#}")))?;
            self.accessor = Some(found);
        }
        Ok(self.accessor.clone().flatten())
    }

    /// The flag that interrupts this instance's calls.
    pub(crate) fn interrupt(&self) -> Arc<AtomicBool> {
        self.store.data().interrupt.clone()
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

    /// The plugin's declaration.
    pub(super) async fn describe(&mut self) -> Result<wit::Spec, Failure> {
        self.begin()?;
        let r = self.exports.describe(&mut self.store).await;
        self.end(r)
    }

    /// Run step `name` with `process` lent to it; what it returned and did.
    pub(crate) async fn run_step(&mut self, name: &str, process: &mut ProcessView) -> StepOutcome {
        if let Err(failure) = self.begin() {
            return Outcome::failed(failure);
        }
        self.store.data_mut().lend(Call::Step, process);
        let r = self.exports.run_step(&mut self.store, name).await;
        let effects = self.store.data_mut().give_back(process);
        let result = self.end(r).and_then(|r| r.map_err(Failure::Error));
        Outcome {
            effects,
            result: result.map(|returned| StepResult {
                next: next(returned.next),
                awaits: returned.awaits.into_iter().map(await_child).collect(),
            }),
        }
    }

    /// Evaluate condition `name` with `process` lent to it; its value and what it did.
    pub(crate) async fn check_condition(
        &mut self,
        name: &str,
        process: &mut ProcessView,
    ) -> Outcome<bool> {
        if let Err(failure) = self.begin() {
            return Outcome::failed(failure);
        }
        self.store.data_mut().lend(Call::Condition, process);
        let r = self.exports.check_condition(&mut self.store, name).await;
        let effects = self.store.data_mut().give_back(process);
        Outcome {
            effects,
            result: self.end(r).and_then(|r| r.map_err(Failure::Error)),
        }
    }

    /// The plugin's verdict on `value` for the port at `path`: `Some(message)` when invalid.
    pub(crate) async fn validate(
        &mut self,
        path: &str,
        value: &Value,
    ) -> Result<Option<String>, Failure> {
        self.begin()?;
        let r = self
            .exports
            .validate(&mut self.store, path, value.to_string())
            .await;
        self.end(r)
    }

    /// The computed default of the port at `path`.
    pub(crate) async fn compute_default(&mut self, path: &str) -> Result<Value, Failure> {
        self.begin()?;
        let r = self.exports.compute_default(&mut self.store, path).await;
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

/// The WIT world's `next`, as the host's own value.
fn next(next: wit::Next) -> Next {
    match next {
        wit::Next::Continue => Next::Continue,
        wit::Next::Wait(wait) => Next::Wait {
            event: wait.event,
            message: wait.message,
            timeout: wait.timeout.map(timer),
        },
        wit::Next::Finish(exit) => Next::Finish {
            status: exit.status,
            message: exit.message,
        },
        wit::Next::Kill(message) => Next::Kill { message },
        wit::Next::Sleep(until) => Next::Sleep {
            until: timer(until),
        },
    }
}

fn timer(timer: wit::Timer) -> Timer {
    match timer {
        wit::Timer::AfterMs(ms) => Timer::After { ms },
        wit::Timer::AtUnixMs(ms) => Timer::At { unix_ms: ms },
    }
}

fn await_child(child: wit::AwaitChild) -> AwaitChild {
    AwaitChild {
        pid: child.pid,
        key: child.key,
        append: child.append,
        inspect: child.inspect,
    }
}
