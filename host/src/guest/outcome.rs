//! [`StepOutcome`] and [`Effects`]: what a call into a plugin did, as host-owned values.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Failure, LogBuffer};
use crate::ports::{GuestCheck, ValidationError};

/// What a call into a plugin did while it ran, and what it returned (or why it did not).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Outcome<T> {
    /// What the call did to its process, also when it then failed.
    pub(crate) effects: Effects,
    /// What it returned.
    pub(crate) result: Result<T, Failure>,
}

impl<T> Outcome<T> {
    /// A call that did not start, or failed before it did anything.
    pub(crate) fn failed(failure: Failure) -> Self {
        Self {
            effects: Effects::default(),
            result: Err(failure),
        }
    }
}

/// What a step did and returned.
pub(crate) type StepOutcome = Outcome<StepResult>;

/// What a step returned (the WIT world's `step-result`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StepResult {
    /// What comes once the awaited children have terminated.
    pub(crate) next: Next,
    /// Children to await, and where their records go in the context (plumpy's `ToContext`).
    pub(crate) awaits: Vec<AwaitChild>,
}

/// What a call did to its process besides returning: collected while it runs, applied by the
/// state machine once it returns.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Effects {
    /// Outputs emitted and accepted by the output spec, in order: dotted path and value.
    pub(crate) outputs: Vec<(String, Value)>,
    /// The first output the spec refused (the call was told): it ends the process EXCEPTED.
    pub(crate) refused: Option<ValidationError>,
    /// Emitted outputs that the plugin's own validators must still check.
    pub(crate) checks: Vec<GuestCheck>,
    /// Children launched, to create once the step is committed.
    pub(crate) launches: Vec<Launch>,
    /// A pause the call asked for, with its message.
    pub(crate) pause: Option<Option<String>>,
    /// The status message, when the call set or cleared it.
    pub(crate) status: Option<Option<String>>,
    /// The lines the call logged, for the process's log (within the host's bound).
    pub(crate) logs: LogBuffer,
    /// The kind the plugin named for the error it returned, if any (for retry policies).
    pub(crate) error_kind: Option<String>,
}

/// What happens after a step (the WIT world's `next`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Next {
    /// Go on with the outline.
    Continue,
    /// Wait until resumed (by the named event, if any), showing this status message; at most
    /// until the timer fires, if any.
    Wait {
        event: Option<String>,
        message: Option<String>,
        timeout: Option<Timer>,
    },
    /// End the outline now, with this exit status (0 is success) and message.
    Finish {
        status: u32,
        message: Option<String>,
    },
    /// Kill the process with this message.
    Kill { message: String },
    /// Sleep until the timer fires, then go on with the outline.
    Sleep { until: Timer },
}

impl Next {
    /// The same, with its timer (if any) fixed to a time: what a step asked for, as its
    /// checkpoint keeps it, so that a restart does not start the timer again.
    pub(crate) fn fixed(self, now_unix_ms: u64) -> Self {
        match self {
            Next::Wait {
                event,
                message,
                timeout,
            } => Next::Wait {
                event,
                message,
                timeout: timeout.map(|t| t.fixed(now_unix_ms)),
            },
            Next::Sleep { until } => Next::Sleep {
                until: until.fixed(now_unix_ms),
            },
            other => other,
        }
    }
}

/// When a durable timer fires (the WIT world's `timer`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Timer {
    /// This many milliseconds after the step returned.
    After { ms: u64 },
    /// At this time, in milliseconds since the Unix epoch.
    At { unix_ms: u64 },
}

impl Timer {
    /// When it fires, in milliseconds since the Unix epoch, for a step that returned at
    /// `now_unix_ms`.
    pub(crate) fn due(self, now_unix_ms: u64) -> u64 {
        match self {
            Timer::After { ms } => now_unix_ms.saturating_add(ms),
            Timer::At { unix_ms } => unix_ms,
        }
    }

    fn fixed(self, now_unix_ms: u64) -> Self {
        Timer::At {
            unix_ms: self.due(now_unix_ms),
        }
    }
}

/// A child a step awaits (the WIT world's `await-child`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct AwaitChild {
    /// The child's pid, as `launch` returned it.
    pub(crate) pid: String,
    /// The context key its record goes under.
    pub(crate) key: String,
    /// Append to a list at `key` rather than set it.
    pub(crate) append: bool,
    /// The parent inspects the child's record itself: a failed child does not fail it.
    pub(crate) inspect: bool,
}

/// A child process a step launched: created with this pid (returned to the step at once) when
/// the step is committed, and never twice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Launch {
    /// The pid the child has.
    pub(crate) pid: String,
    /// The plugin, by name.
    pub(crate) plugin: String,
    /// Its inputs (a JSON object), not yet validated.
    #[serde(with = "crate::json_text")]
    pub(crate) inputs: Value,
}
