//! Processes: states, records, and running one through its outline.
//!
//! A process is one run of a plugin: validated inputs, a context, outputs, a position in the
//! outline and a state (plumpy's CREATED → RUNNING → WAITING / FINISHED / EXCEPTED / KILLED).

mod data;
mod run;

use serde::Serialize;
use serde_json::{Map, Value};

pub use data::ProcessData;
pub(crate) use run::execute;

/// The state of a process, as in plumpy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
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
    /// The SHA-256 digest of the plugin's component: the exact code the process ran.
    pub plugin_digest: String,
    pub state: ProcessState,
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
}

impl ProcessRecord {
    /// Whether the process finished with exit status 0 and all required outputs; `None` until it
    /// has terminated (plumpy's `is_successful`).
    pub fn successful(&self) -> Option<bool> {
        match self.state {
            ProcessState::Finished => {
                Some(self.exit_status == Some(0) && self.missing_outputs.is_empty())
            }
            ProcessState::Excepted | ProcessState::Killed => Some(false),
            _ => None,
        }
    }
}
