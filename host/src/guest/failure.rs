//! [`Failure`]: why a call into a plugin did not return normally.

use std::time::Duration;

use crate::retry::FailureKind;

/// Why a call into a plugin did not return normally. The message says what happened in words a
/// plugin author can act on; the process it happened in ends EXCEPTED with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
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
    StackOverflow {
        /// Which stack, and where.
        detail: String,
    },
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

impl Failure {
    /// Its kind, as a retry policy names it; `None` for one that no policy retries: a kill,
    /// or a memory image that could not be written back.
    pub fn kind(&self) -> Option<FailureKind> {
        match self {
            Failure::Error(_) => Some(FailureKind::Error),
            Failure::Panic(_) | Failure::Trap(_) | Failure::StackOverflow { .. } => {
                Some(FailureKind::Trap)
            }
            Failure::Limit(LimitExceeded::Time { .. }) => Some(FailureKind::Timeout),
            Failure::Limit(LimitExceeded::Memory { .. }) => Some(FailureKind::Memory),
            Failure::Interrupted | Failure::Restore(_) | Failure::StaleHandle(_) => None,
        }
    }
}

/// A limit a plugin ran into.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LimitExceeded {
    /// Its memories together grew past the memory limit
    /// ([`HostConfig::max_memory`](crate::HostConfig::max_memory)).
    #[error("exceeded the memory limit of {}", mib(*limit))]
    Memory {
        /// The limit, in bytes.
        limit: usize,
    },
    /// A call ran past the time limit ([`HostConfig::step_timeout`](crate::HostConfig::step_timeout)).
    #[error("exceeded the time limit of {limit:?} per step")]
    Time {
        /// The limit.
        limit: Duration,
    },
}

fn mib(bytes: usize) -> String {
    if bytes.is_multiple_of(1 << 20) {
        format!("{} MiB", bytes >> 20)
    } else {
        format!("{bytes} bytes")
    }
}
