//! # damson-guest: write Damson process plugins in Rust
//!
//! A plugin is a type that implements [`Process`]: its [`Process::define`] declares ports, exit
//! codes and the outline — the way plumpy's `define` does — and its methods are the outline's steps
//! and conditions. [`export!`] turns it into a WebAssembly component for the Damson host.
//!
//! ```no_run
//! use damson_guest::prelude::*;
//!
//! #[derive(Default)]
//! struct Add;
//!
//! impl Process for Add {
//!     fn define(spec: &mut Spec<Self>) {
//!         spec.input("x").valid_type(Type::Int).help("The first addend");
//!         spec.input("y").valid_type(Type::Int).help("The second addend");
//!         spec.output("sum").valid_type(Type::Int).help("x + y");
//!         spec.outline([step("add", Self::add)]);
//!     }
//! }
//!
//! impl Add {
//!     fn add(&mut self, p: &mut Ctx) -> Step {
//!         let (x, y): (i64, i64) = (p.input("x")?, p.input("y")?);
//!         p.out("sum", x + y)?;
//!         Ok(Next::Continue)
//!     }
//! }
//!
//! damson_guest::export!(Add);
//! ```
//!
//! Build it with `cargo build --release --target wasm32-wasip2`: the output is already a component.
//!
//! ## Signals, timers and retries
//!
//! A step can wait for a signal (a named event with a JSON payload, sent with `damson signal PID
//! EVENT --data JSON`, the RPC intent `signal` or the HTTP API) at most some time, sleep on a
//! durable timer, and be retried under a [`RetryPolicy`]; all of it survives a restart of the
//! host. The `approval` plugin of this repository is this, whole:
//!
//! ```no_run
//! use std::time::Duration;
//! use damson_guest::prelude::*;
//!
//! #[derive(Default)]
//! struct Approval;
//!
//! impl Process for Approval {
//!     fn define(spec: &mut Spec<Self>) {
//!         spec.output("approved_by").valid_type(Type::Str).required(false);
//!         spec.exit_code(408, "NO_DECISION", "nobody decided in time");
//!         // Three attempts, 200 ms then 400 ms apart, each from the state before the first;
//!         // a panic is a bug, not bad luck: never retried.
//!         spec.retry(
//!             "send",
//!             RetryPolicy::attempts(3)
//!                 .initial_interval(Duration::from_millis(200))
//!                 .backoff(2.0)
//!                 .not_on(FailureKind::Trap),
//!         );
//!         spec.outline([
//!             step("send", Self::send),
//!             step("ask", Self::ask),
//!             step("decide", Self::decide),
//!         ]);
//!     }
//! }
//!
//! impl Approval {
//!     fn send(&mut self, p: &mut Ctx) -> Step {
//!         if p.attempt() < 2 {
//!             bail!("the approvers did not answer");
//!         }
//!         Ok(Next::Continue)
//!     }
//!
//!     fn ask(&mut self, _: &mut Ctx) -> Step {
//!         Ok(Next::wait_for("approved").at_most(Duration::from_secs(600)))
//!     }
//!
//!     fn decide(&mut self, p: &mut Ctx) -> Step {
//!         if p.timed_out() {
//!             return Ok(Next::Finish(ExitCode::new(408)));
//!         }
//!         // The signal's payload is in the context under the event's name.
//!         let decision: Value = p.get("approved")?;
//!         p.out("approved_by", decision["by"].as_str().unwrap_or("?"))?;
//!         Ok(Next::Continue)
//!     }
//! }
//!
//! damson_guest::export!(Approval);
//! ```
//!
//! [`Next::Sleep`] (or [`Next::sleep`]) sleeps; only its timer ends it. A plain
//! `Next::Wait { event: None, .. }` takes a signal with no event, its payload under `resumed`.
//! A step that returns an error is a [`FailureKind::Error`] (named with [`Error::kind`], which
//! [`RetryPolicy::not_on_error`] can leave out); a panic is a [`FailureKind::Trap`]. An exhausted policy ends the process EXCEPTED with every attempt's
//! error.
//!
//! ## Rules the SDK keeps for you
//! - Plugins never touch WASI stdout or stderr: logging goes through the host ([`info!`] and
//!   friends) and a panic is reported through the host before the plugin traps. A WASI stream handle
//!   kept in memory would make the plugin's memory image unrestorable.
//! - The plugin value (your struct) is created with `Default` before the first step and lives for
//!   the whole process: fields carry state from step to step.

// Lets the generated bindings name this crate the way plugins do.
extern crate self as damson_guest;

mod ctx;
mod error;
mod log;
mod outline;
mod spec;

#[doc(hidden)]
pub mod __private;

pub use ctx::{ChildId, Ctx};
pub use error::{Error, Result};
pub use log::Level;
pub use outline::{Outline, if_, return_, return_with, step, while_};
pub use serde_json::{self, Value, json};
pub use spec::{ExitCode, ExposeBuilder, FailureKind, PortBuilder, RetryPolicy, Spec, Type};

/// A Damson process: its spec and the steps of its outline.
///
/// The value is created with [`Default`] before the first step runs and kept until the process
/// ends, so fields hold state between steps (and are part of the process's memory image).
pub trait Process: Default + 'static {
    /// Declare the plugin's inputs, outputs, exit codes and outline. Called once, with no process
    /// value yet; it must not have side effects.
    fn define(spec: &mut Spec<Self>);
}

/// What a step returns: where the outline goes next, or the error that ends the process EXCEPTED.
pub type Step = Result<Next>;

/// What happens after a step.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Next {
    /// Go on with the outline.
    #[default]
    Continue,
    /// Wait until the host resumes the process (or the named event arrives). The signal's
    /// payload is then in the context under the event's name (`resumed` for a plain resume).
    Wait {
        /// The event that resumes the process; `None` for a plain resume.
        event: Option<String>,
        /// Status message shown while waiting.
        message: Option<String>,
        /// Wait at most until this timer fires; the context key `timed_out` then says how the
        /// wait ended (`true`: the timer fired first; see [`Ctx::timed_out`]).
        timeout: Option<Timer>,
    },
    /// Sleep until the timer fires, then go on with the outline. The timer is durable: it
    /// survives a restart of the host, and fires at once if it came due meanwhile.
    Sleep(Timer),
    /// End the outline now with this exit code (status 0 is success).
    Finish(ExitCode),
    /// Kill the process with this message.
    Kill(String),
}

impl Next {
    /// Wait for the signal `event`, with no timeout and no status message.
    pub fn wait_for(event: &str) -> Self {
        Next::Wait {
            event: Some(event.to_string()),
            message: None,
            timeout: None,
        }
    }

    /// Sleep for `duration`.
    pub fn sleep(duration: std::time::Duration) -> Self {
        Next::Sleep(Timer::After(duration))
    }

    /// The same wait, at most for `duration` (no change to other kinds of `Next`).
    pub fn at_most(mut self, duration: std::time::Duration) -> Self {
        if let Next::Wait { timeout, .. } = &mut self {
            *timeout = Some(Timer::After(duration));
        }
        self
    }

    /// The same wait, showing `message` while it waits (no change to other kinds of `Next`).
    pub fn with_message(mut self, text: &str) -> Self {
        if let Next::Wait { message, .. } = &mut self {
            *message = Some(text.to_string());
        }
        self
    }
}

/// When a durable timer fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timer {
    /// This long after the step returns (to the millisecond).
    After(std::time::Duration),
    /// At this time, in milliseconds since the Unix epoch (at once if it has passed). Plugins
    /// have no clock of their own: such a time comes in the inputs.
    AtUnixMs(u64),
}

/// Everything a plugin usually needs.
pub mod prelude {
    pub use crate::{
        Ctx, Error, ExitCode, FailureKind, Next, Outline, Process, Result, RetryPolicy, Spec, Step,
        Timer, Type, Value, if_, json, return_, return_with, step, while_,
    };
    pub use crate::{bail, debug, error, info, trace, warn};
}
