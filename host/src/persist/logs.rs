//! What a store keeps of a process's log: its last lines, numbered, and how many were dropped.
//! Rows only: the host decides what is logged and how many lines a process keeps.

use serde::{Deserialize, Serialize};

/// How much a log line matters, as the plugin (or the host) said.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Finest detail.
    Trace,
    /// Detail for debugging.
    Debug,
    /// Something worth knowing.
    Info,
    /// Something that may be wrong.
    Warn,
    /// Something that went wrong.
    Error,
}

impl LogLevel {
    /// The lower-case name, as stored and shown: `trace`, `debug`, `info`, `warn`, `error`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Trace => "trace",
            Self::Debug => "debug",
            Self::Info => "info",
            Self::Warn => "warn",
            Self::Error => "error",
        }
    }

    /// The level named `name` (as [`name`](Self::name) gives it), if any.
    pub fn from_name(name: &str) -> Option<Self> {
        [
            Self::Trace,
            Self::Debug,
            Self::Info,
            Self::Warn,
            Self::Error,
        ]
        .into_iter()
        .find(|level| level.name() == name)
    }
}

impl std::fmt::Display for LogLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Who wrote a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogSource {
    /// The process's plugin, through its `log` import.
    Plugin,
    /// The host, about the process: its state changes, a kill, an error.
    Host,
}

impl LogSource {
    /// The lower-case name, as stored and shown: `plugin` or `host`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Plugin => "plugin",
            Self::Host => "host",
        }
    }

    /// The source named `name` (as [`name`](Self::name) gives it), if any.
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Plugin, Self::Host]
            .into_iter()
            .find(|source| source.name() == name)
    }
}

impl std::fmt::Display for LogSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One line of a process's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    /// Its place in the process's log: 1 for the first line appended, one more for each line
    /// after, whether it is still kept or not (ignored on input: the store numbers lines).
    pub seq: u64,
    /// When it was logged, in milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// How much it matters.
    pub level: LogLevel,
    /// Who wrote it.
    pub source: LogSource,
    /// What it says.
    pub message: String,
}

/// What a store has of one process's log ([`Persister::logs`](super::Persister::logs)).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessLog {
    /// The lines asked for, oldest first.
    pub lines: Vec<LogLine>,
    /// How many of the process's lines are no longer kept: the oldest, dropped when more were
    /// appended than the process keeps, and those its host dropped before appending them.
    pub dropped: u64,
}
