//! The summary index: a few fields of each process's current checkpoint, kept beside it in the
//! same write, so that listing processes (`ps`, recovery, a worker's take-over) reads small rows
//! and never decodes a bundle. Rows only: the host says what a summary holds.

use serde::{Deserialize, Serialize};

/// What the index keeps of a process: what `ps` shows — what it waits for and when its timer
/// fires included — and what recovery needs to choose.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessSummary {
    /// The process id.
    pub pid: String,
    /// The plugin's declared name.
    pub plugin: String,
    /// The state's name as shown (`CREATED`, `RUNNING`, `WAITING`, `FINISHED`, `EXCEPTED`,
    /// `KILLED`).
    pub state: String,
    /// Whether the process has not terminated (it is created, running or waiting).
    pub live: bool,
    /// Whether it is paused.
    pub paused: bool,
    /// Whether it terminated unsuccessfully (excepted, killed, or finished with a non-zero exit
    /// status or missing outputs).
    pub failed: bool,
    /// The status message, if any.
    pub status: Option<String>,
    /// Where it is in its outline.
    pub position: String,
    /// The process that launched it, if any.
    pub parent: Option<String>,
    /// Creation time, milliseconds since the Unix epoch.
    pub ctime: u64,
    /// WAITING for a signal: its event (`None` for a plain resume, children, or no wait).
    pub waiting_for: Option<String>,
    /// WAITING with a timer: when it fires, milliseconds since the Unix epoch.
    pub timer: Option<u64>,
    /// WAITING: whether it sleeps until its timer.
    pub sleeping: bool,
}

/// Which summaries [`Persister::summaries`](super::Persister::summaries) returns: those that
/// match every field given (`None` or `false` matches all).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SummaryFilter {
    /// Only processes that have not terminated.
    pub live: bool,
    /// Only processes launched by no other (no parent).
    pub top_level: bool,
    /// Only processes in this state (its name as shown, e.g. `WAITING`).
    pub state: Option<String>,
    /// Only processes of this plugin.
    pub plugin: Option<String>,
}

impl SummaryFilter {
    /// Whether `summary` matches.
    pub fn matches(&self, summary: &ProcessSummary) -> bool {
        (!self.live || summary.live)
            && (!self.top_level || summary.parent.is_none())
            && self.state.as_ref().is_none_or(|s| *s == summary.state)
            && self.plugin.as_ref().is_none_or(|p| *p == summary.plugin)
    }
}

/// The answer to [`Persister::summaries`](super::Persister::summaries).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summaries {
    /// The matching summaries, oldest first (by creation time, then pid).
    pub rows: Vec<ProcessSummary>,
    /// Processes whose current checkpoint has no summary (saved without one, or before the
    /// store kept them), which may match or not: the caller reads their checkpoints and
    /// [`index`](super::Persister::index)es them, once.
    pub unindexed: Vec<String>,
}

impl Summaries {
    /// `rows` sorted oldest first, as every store returns them.
    pub(crate) fn sorted(mut rows: Vec<ProcessSummary>, unindexed: Vec<String>) -> Self {
        rows.sort_by(|a, b| (a.ctime, &a.pid).cmp(&(b.ctime, &b.pid)));
        Self { rows, unindexed }
    }
}
