//! Processes: states, records, events, control, and running one through its outline.
//!
//! A process is one run of a plugin: validated inputs, a context, outputs, a position in the
//! outline and a state, with plumpy's transitions:
//!
//! ```text
//! CREATED ──► RUNNING ◄──► WAITING
//!    │           │            │
//!    └───────────┴────────────┴──► FINISHED | EXCEPTED | KILLED
//! ```
//!
//! A durable process that waits for a resume may leave memory — its task ends, its guest is
//! dropped, and the table keeps its record encoded — until a request brings it back on the same
//! handle (`Outside::dehydrate`, [`ProcessHandle::is_dehydrated`]).
//!
//! Any non-terminal process can be paused (a running step completes first), played, killed (a
//! running step is interrupted at the next epoch tick) and, when waiting, resumed. Each process
//! runs as its own tokio task (`Task`: the state machine), which owns its record and its `Guest`
//! (its plugin code); a [`ProcessHandle`] controls and watches it from anywhere.
//!
//! **Architecture invariant:** `process` does not know the host, wasmtime or the store. What a
//! running process needs from around it — saving a checkpoint under its claim, making and finding
//! children, announcing state changes, a turn to run a guest call — is the `Outside` trait, and
//! its plugin code is a `Guest`; both have fakes in the state machine's tests.

mod handle;
mod inputs;
mod outside;
mod record;
mod signal;
mod table;
mod task;
#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use handle::ProcessHandle;
pub(crate) use inputs::prepare_inputs;
pub(crate) use outside::{Checkpoints, HeldLogs, Outside, Rehydrate, StepPermit, Unsaved};
pub use record::{ProcessRecord, Retry};
pub(crate) use signal::{Inbox, refuse_terminated, send as send_signal};
pub use signal::{Sent, Signal};
pub(crate) use table::ProcessTable;
pub(crate) use task::Task;

/// The state of a process, as in plumpy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ProcessState {
    /// Made, with validated inputs, not yet started.
    Created,
    /// Running its outline (or between two calls).
    Running,
    /// Waiting for a resume or for children.
    Waiting,
    /// Finished, successfully or not (see the exit status).
    Finished,
    /// Ended by an error: a step failed, trapped or ran into a limit.
    Excepted,
    /// Killed.
    Killed,
}

impl ProcessState {
    /// Every state, in the order of the state machine.
    pub const ALL: [ProcessState; 6] = [
        Self::Created,
        Self::Running,
        Self::Waiting,
        Self::Finished,
        Self::Excepted,
        Self::Killed,
    ];

    /// The state of this name (as [`name`](Self::name) gives it, in any case), if any.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|state| state.name().eq_ignore_ascii_case(name))
    }

    /// Whether the process has ended (FINISHED, EXCEPTED or KILLED).
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Finished | Self::Excepted | Self::Killed)
    }

    /// The upper-case name, as shown to users.
    pub fn name(self) -> &'static str {
        match self {
            Self::Created => "CREATED",
            Self::Running => "RUNNING",
            Self::Waiting => "WAITING",
            Self::Finished => "FINISHED",
            Self::Excepted => "EXCEPTED",
            Self::Killed => "KILLED",
        }
    }
}

impl std::fmt::Display for ProcessState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Something that happened to a process, as its listeners are told (plumpy's
/// `on_process_*` callbacks).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// The process was created.
    Created,
    /// It runs (started, or back from waiting).
    Running,
    /// It waits.
    Waiting {
        /// The status message it shows while it waits.
        message: Option<String>,
    },
    /// It was paused.
    Paused {
        /// The pause's message.
        message: Option<String>,
    },
    /// It was played after a pause.
    Played,
    /// A step emitted an output.
    OutputEmitted {
        /// The output's dotted path.
        path: String,
        /// Its value.
        value: Value,
    },
    /// It finished.
    Finished {
        /// Exit status 0 and every required output emitted.
        successful: bool,
        /// The exit status.
        exit_status: u32,
    },
    /// It ended with an error.
    Excepted {
        /// What went wrong, and where.
        error: String,
    },
    /// It was killed.
    Killed {
        /// The kill's message.
        message: Option<String>,
    },
}

impl Event {
    /// The event's name: `created`, `running`, `waiting`, `paused`, `played`, `output_emitted`,
    /// `finished`, `excepted` or `killed`.
    pub fn name(&self) -> &'static str {
        match self {
            Event::Created => "created",
            Event::Running => "running",
            Event::Waiting { .. } => "waiting",
            Event::Paused { .. } => "paused",
            Event::Played => "played",
            Event::OutputEmitted { .. } => "output_emitted",
            Event::Finished { .. } => "finished",
            Event::Excepted { .. } => "excepted",
            Event::Killed { .. } => "killed",
        }
    }
}

/// Receives a process's events, in order, on the process's own task.
///
/// A listener may control the process through the handle it is given (resume it when it waits,
/// kill it…). A listener that panics is logged and skipped; the process carries on. Listeners
/// must not block: they run between the steps of the process.
pub trait ProcessListener: Send + Sync {
    /// Hear `event`, which happened to `process`.
    fn on_event(&self, process: &ProcessHandle, event: &Event);
}

impl<F: Fn(&ProcessHandle, &Event) + Send + Sync> ProcessListener for F {
    fn on_event(&self, process: &ProcessHandle, event: &Event) {
        self(process, event)
    }
}
