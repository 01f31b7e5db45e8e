//! Signals: named events with a payload, sent to a process from anywhere and kept durably
//! until a wait of the process for that event takes one.
//!
//! A signal is stored before its sender hears "sent" (the host's [`Inbox`]: its store, or
//! memory for a host without one). A process waiting for the event takes the oldest signal of
//! that event it has not taken yet: its payload goes into the context under the event's name
//! (`resumed` for a plain resume, a wait with no event), and its number into the record, so
//! that the checkpoint which holds the payload also says it is taken — after a crash the
//! process takes it again from that checkpoint, never twice. A signal sent before the wait is
//! taken by it; one for an event nobody waits for stays until a wait for it comes (or the
//! process ends). A signal with an idempotency key is stored once per process: a second with
//! the same key is answered as a duplicate of the first.

use async_trait::async_trait;
use serde_json::Value;

use super::{ProcessHandle, ProcessState};
use crate::error::{Error, Result};

/// A signal to a process.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Signal {
    /// The event (what a step's `Next::Wait { event: Some(..) }` waits for); `None` is a plain
    /// resume, for a wait with no event.
    pub event: Option<String>,
    /// The payload, put into the waiting process's context under the event's name (`resumed`
    /// for a plain resume); `None` puts nothing there.
    pub data: Option<Value>,
    /// An idempotency key: a signal with a key the process has had already is not stored again
    /// (it is [`Sent::Duplicate`]). `None`: every send is a new signal.
    pub key: Option<String>,
}

impl Signal {
    /// The context key its payload goes under.
    pub fn context_key(&self) -> &str {
        self.event.as_deref().unwrap_or("resumed")
    }
}

/// What came of sending a signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    /// Stored for the process, with this number.
    Queued {
        /// Its number among the process's signals, from 1.
        seq: u64,
    },
    /// Not stored again: the process has had a signal with the same key, of this number.
    Duplicate {
        /// The earlier signal's number.
        seq: u64,
    },
}

impl Sent {
    /// The number of the signal stored, now or before.
    pub fn seq(self) -> u64 {
        match self {
            Sent::Queued { seq } | Sent::Duplicate { seq } => seq,
        }
    }
}

/// Where the signals sent to a host's processes are kept until taken: the host implements it
/// over its store.
#[async_trait]
pub(crate) trait Inbox: Send + Sync {
    /// Store `signal` for process `pid` (see [`Sent`]).
    async fn post(&self, pid: &str, signal: &Signal) -> Result<Sent>;

    /// Every signal stored for process `pid`, with its number, oldest first.
    async fn received(&self, pid: &str) -> Result<Vec<(u64, Signal)>>;
}

/// Send `signal` to `process`: stored in `inbox` first, then the process is told (brought back
/// if it is dehydrated).
///
/// # Errors
/// [`Error::Terminated`] when the process has terminated; [`Error::Store`] when the signal
/// cannot be stored (then the process is not told, and nothing is kept).
pub(crate) async fn send(
    inbox: &dyn Inbox,
    process: &ProcessHandle,
    signal: &Signal,
) -> Result<Sent> {
    refuse_terminated(process.pid(), process.state())?;
    let sent = inbox.post(process.pid(), signal).await?;
    process.signalled();
    Ok(sent)
}

/// Refuse a signal to process `pid` in `state` if it has terminated.
///
/// # Errors
/// [`Error::Terminated`] when it has.
pub(crate) fn refuse_terminated(pid: &str, state: ProcessState) -> Result<()> {
    if state.is_terminal() {
        return Err(Error::Terminated {
            pid: pid.to_string(),
            state: state.to_string(),
        });
    }
    Ok(())
}

/// The oldest of `received` that a wait for `event` takes: of that event, and not in `taken`.
pub(crate) fn first_for<'a>(
    received: &'a [(u64, Signal)],
    event: Option<&str>,
    taken: &[u64],
) -> Option<&'a (u64, Signal)> {
    received
        .iter()
        .find(|(seq, signal)| signal.event.as_deref() == event && !taken.contains(seq))
}
