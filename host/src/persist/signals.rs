//! What a store keeps of the signals sent to a process: each one as it was posted, numbered,
//! until the process is deleted. Whether a process has taken one is the process's business (its
//! checkpoint says), so a signal is never lost between its post and its use, and never used
//! twice.

use serde::{Deserialize, Serialize};

/// A signal sent to a process: a named event (or none: a plain resume) with an optional payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignalRow {
    /// Its number among the process's signals, from 1, in the order the store took them
    /// (ignored by [`Persister::post_signal`](super::Persister::post_signal), which gives it).
    pub seq: u64,
    /// The event it is, or `None` for a plain resume.
    pub event: Option<String>,
    /// The payload, as JSON text, if any.
    pub data: Option<String>,
    /// The sender's idempotency key: a second signal with the same key to the same process is
    /// not stored again.
    pub key: Option<String>,
    /// When it was posted, in milliseconds since the Unix epoch.
    pub sent_ms: u64,
}

/// The answer to a [`Persister::post_signal`](super::Persister::post_signal).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Posted {
    /// Stored, with this number.
    Queued {
        /// The signal's [`seq`](SignalRow::seq).
        seq: u64,
    },
    /// Not stored: the process has a signal with the same key already, of this number.
    Duplicate {
        /// The earlier signal's [`seq`](SignalRow::seq).
        seq: u64,
    },
}

impl Posted {
    /// The number of the signal stored, now or before.
    pub fn seq(self) -> u64 {
        match self {
            Posted::Queued { seq } | Posted::Duplicate { seq } => seq,
        }
    }
}
