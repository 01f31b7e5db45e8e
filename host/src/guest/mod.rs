//! The guest: a process's plugin code as the host's state machine sees it.
//!
//! [`Guest`] is the seam between [`process`](crate::process), which decides what to call and
//! when, and [`wasm`](crate::wasm), which runs the plugin in wasmtime. What a call did comes back
//! as a value the host owns — a [`StepOutcome`]: the call's [`Effects`] (outputs emitted or
//! refused, children launched, a pause asked for, the status) and what it returned (what comes
//! next, the children awaited) or why it failed — so the state machine applies it without reaching into a guest's store, and its tests
//! put a scripted guest behind the same trait.
//!
//! **Architecture invariant:** pure: no wasmtime, no tokio, no I/O.

mod failure;
mod logs;
mod outcome;

use async_trait::async_trait;
use serde_json::{Map, Value};

pub use failure::{Failure, LimitExceeded};
pub(crate) use logs::{LogBuffer, LogEntry, LogLevel, LogSource};
pub(crate) use outcome::{
    AwaitChild, Effects, Launch, Next, Outcome, StepOutcome, StepResult, Timer,
};

use crate::ports::{DefaultRequest, GuestCheck};

/// What a step or condition reads and changes of its process: lent to the guest for the call and
/// handed back after it, changed or not.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct ProcessView {
    /// The process id.
    pub(crate) pid: String,
    /// The inputs, validated and with defaults applied.
    pub(crate) inputs: Value,
    /// The context, which a call may change.
    pub(crate) context: Map<String, Value>,
    /// Which attempt of the running step this is: 1 for the first, 2 for the first retry.
    pub(crate) attempt: u32,
}

/// The plugin code behind one process: its own instance, and the instances of the plugins whose
/// exposed ports it validates or computes defaults for (made when first needed).
///
/// A call that fails ([`Failure`]) leaves the guest unusable: every later call fails too.
#[async_trait]
pub(crate) trait Guest: Send {
    /// Run the outline's step `name` on `process` (whose context it may change).
    async fn run_step(&mut self, name: &str, process: &mut ProcessView) -> StepOutcome;

    /// Evaluate the outline's condition `name` on `process`: its value, and what the call did
    /// besides (a condition may set the status or emit outputs, but launch no child).
    async fn check_condition(&mut self, name: &str, process: &mut ProcessView) -> Outcome<bool>;

    /// The plugin's verdict on a value its spec asks it to check: `Some(message)` when invalid.
    async fn validate(&mut self, check: &GuestCheck) -> Result<Option<String>, Failure>;

    /// The computed default of a port.
    async fn compute_default(&mut self, request: &DefaultRequest) -> Result<Value, Failure>;

    /// An image of the guest's memory as it is now (between calls), to checkpoint with the
    /// process; `None` when none can or should be taken (the plugin is not snapshot-safe, images
    /// are off, or a call failed).
    async fn image(&mut self) -> Option<Vec<u8>>;

    /// Start over on a fresh instance of the plugin, with `image` (taken from this guest
    /// before) written back if given: what a retried step runs on, from the state before its
    /// first attempt.
    async fn reset(&mut self, image: Option<Vec<u8>>) -> Result<(), Failure>;
}
