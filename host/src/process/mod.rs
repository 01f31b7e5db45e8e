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
//! Any non-terminal process can be paused (a running step completes first), played, killed (a
//! running step is interrupted at the next epoch tick) and, when waiting, resumed. Each process
//! runs as its own tokio task, which owns its plugin instance; a [`ProcessHandle`] controls and
//! watches it from anywhere.

mod data;
mod handle;
mod run;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

pub use data::{Launch, ProcessData};
pub use handle::ProcessHandle;
pub(crate) use handle::Shared;
pub(crate) use run::{Guests, Task, prepare_inputs};

/// The state of a process, as in plumpy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ProcessState {
    Created,
    Running,
    Waiting,
    Finished,
    Excepted,
    Killed,
}

impl ProcessState {
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

/// What is known about a process: its identity, state, outputs and how it ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProcessRecord {
    /// The process id (a UUID).
    pub pid: String,
    /// The plugin's declared name.
    pub plugin: String,
    /// The SHA-256 digest of the plugin's component: the exact code the process runs.
    pub plugin_digest: String,
    pub state: ProcessState,
    /// Whether the process is paused (a terminated process can be, as in plumpy).
    pub paused: bool,
    /// The inputs, validated and with defaults applied.
    pub inputs: Value,
    /// The outputs emitted so far (a nested object).
    pub outputs: Value,
    /// The context, as the last step left it.
    pub context: Map<String, Value>,
    /// The status message, if any.
    pub status: Option<String>,
    /// Where the process is (or stopped) in its outline, e.g. `1:while_(above_one)(0:halve)`.
    pub position: String,
    /// FINISHED only: the exit status (0 is success).
    pub exit_status: Option<u32>,
    /// FINISHED: the exit code's message, or why the process is not successful; KILLED: the
    /// kill message.
    pub exit_message: Option<String>,
    /// FINISHED only: required outputs that were never emitted (which makes the process
    /// unsuccessful, as in plumpy).
    pub missing_outputs: Vec<String>,
    /// EXCEPTED only: what went wrong, and in which step.
    pub error: Option<String>,
    /// The process that launched this one, if any.
    pub parent: Option<String>,
    /// The processes this one launched, in order.
    pub children: Vec<String>,
    /// WAITING only: the children it waits for (none when it waits for a resume).
    pub awaiting: Vec<String>,
    /// Creation time, milliseconds since the Unix epoch.
    pub ctime: u64,
}

impl ProcessRecord {
    /// Whether the process finished with exit status 0 and all required outputs; `None` until it
    /// has terminated (plumpy's `is_successful`, which raises before termination).
    pub fn successful(&self) -> Option<bool> {
        match self.state {
            ProcessState::Finished => {
                Some(self.exit_status == Some(0) && self.missing_outputs.is_empty())
            }
            ProcessState::Excepted | ProcessState::Killed => Some(false),
            _ => None,
        }
    }

    /// The short form shown by `damson run --json` and stored in a parent's context for an
    /// awaited child: `pid`, `plugin`, `state`, `successful`, `exit_status`, `exit_message`,
    /// `outputs`, `error`.
    pub fn summary(&self) -> Value {
        json!({
            "pid": self.pid,
            "plugin": self.plugin,
            "state": self.state,
            "successful": self.successful(),
            "exit_status": self.exit_status,
            "exit_message": self.exit_message,
            "outputs": self.outputs,
            "error": self.error,
        })
    }
}

/// Something that happened to a process, as its listeners are told (plumpy's
/// `on_process_*` callbacks).
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Created,
    Running,
    Waiting { message: Option<String> },
    Paused { message: Option<String> },
    Played,
    OutputEmitted { path: String, value: Value },
    Finished { successful: bool, exit_status: u32 },
    Excepted { error: String },
    Killed { message: Option<String> },
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
    fn on_event(&self, process: &ProcessHandle, event: &Event);
}

impl<F: Fn(&ProcessHandle, &Event) + Send + Sync> ProcessListener for F {
    fn on_event(&self, process: &ProcessHandle, event: &Event) {
        self(process, event)
    }
}
