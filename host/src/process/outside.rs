//! [`Outside`]: what a running process needs from the host around it, as one narrow interface.

use std::sync::Arc;

use async_trait::async_trait;

use super::{ProcessHandle, ProcessRecord, ProcessState, Signal};
use crate::error::Error;
use crate::guest::{Launch, LogEntry};

/// Whether, and how often, a process checkpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Checkpoints {
    /// No store: nothing is saved.
    Off,
    /// When the process is created, pauses, waits, launches children and terminates.
    AtChanges,
    /// Also after every step.
    EveryStep,
}

/// Log lines a process holds for the store, and how many gave way before them.
#[derive(Debug, Default)]
pub(crate) struct HeldLogs {
    /// The lines, oldest first.
    pub lines: Vec<LogEntry>,
    /// Lines logged before them that were dropped on the way (the host's bound, a failed
    /// store).
    pub dropped: u64,
}

/// Why a checkpoint was not saved.
#[derive(Debug)]
pub(crate) enum Unsaved {
    /// Another host has taken the process over (this host's claim ran out, or was taken): the
    /// process stops here, saving and announcing nothing more.
    Abandoned,
    /// The store failed.
    Failed(Error),
}

/// The host as a running process sees it: where its checkpoints go (under its claim), how its
/// children are made and found, who hears of its state changes, and whose turn it is to run a
/// guest call. The host implements it; the state machine's tests put a fake behind it.
#[async_trait]
pub(crate) trait Outside: Send + Sync {
    /// Whether, and how often, processes here checkpoint.
    fn checkpoints(&self) -> Checkpoints;

    /// Save `record` (with a memory image of its guest, if any) as the process's current
    /// checkpoint, or as the one tagged `tag` — only while this host holds the process's claim
    /// — with `logs`, the lines logged before it, appended to its log first (in the same
    /// atomic step where the store has one). A terminated process's current checkpoint, its
    /// last, gives up the claim with it, as [`release`](Self::release) would.
    async fn save(
        &self,
        process: &ProcessHandle,
        record: &ProcessRecord,
        image: Option<Vec<u8>>,
        tag: Option<&str>,
        logs: HeldLogs,
    ) -> Result<(), Unsaved>;

    /// A turn to run one guest call, held until dropped; waits while the limit of concurrent
    /// calls is reached.
    async fn step_permit(&self) -> StepPermit;

    /// Create and start the child `launch` describes, of process `parent`.
    async fn launch_child(
        &self,
        parent: &ProcessHandle,
        launch: &Launch,
    ) -> Result<ProcessHandle, Error>;

    /// The child `pid` if it exists: running on this host, or continued from its checkpoint.
    async fn find_child(&self, pid: &str) -> Result<Option<ProcessHandle>, Error>;

    /// How many lines of its log a process keeps, and holds at most before they are stored.
    fn log_lines(&self) -> usize;

    /// Append `lines` to the log of process `pid` in the store, after `dropped` lines that
    /// never reached it (nothing to do without a store).
    async fn append_logs(&self, pid: &str, lines: Vec<LogEntry>, dropped: u64)
    -> Result<(), Error>;

    /// Every signal stored for process `pid`, with its number, oldest first (see
    /// `process::signal`).
    async fn signals(&self, pid: &str) -> Result<Vec<(u64, Signal)>, Error>;

    /// The time now, in milliseconds since the Unix epoch: the clock timers are set and
    /// checked by.
    fn now_ms(&self) -> u64;

    /// Wake `process` when its timer comes due, `due` (milliseconds since the Unix epoch): one
    /// index of timers for the whole host, not a sleeping task per process, that brings a
    /// dehydrated process back. Replaces the process's timer, if it had one.
    fn set_timer(&self, process: &ProcessHandle, due: u64);

    /// Forget the timer of process `pid`, if it has one.
    fn clear_timer(&self, pid: &str);

    /// The process changed state (`from` is `None` when it was just created).
    fn state_changed(&self, pid: &str, from: Option<ProcessState>, to: ProcessState);

    /// The process has terminated: give up its claim (before anyone is told it ended).
    async fn release(&self, pid: &str);

    /// The process has stopped here, terminated or `abandoned` to another host: it answers no
    /// more requests, and an abandoned one is forgotten.
    fn ended(&self, pid: &str, abandoned: bool);

    /// Process `process`, which waits for a resume with `record` (saved, with a memory image,
    /// as its current checkpoint), is about to leave memory — its task ends and its guest is
    /// dropped — if the host lets it: what brings it back when a request comes. `None` keeps
    /// it in memory. The host may keep only `record` (encoded) once nobody holds the handle.
    fn dehydrate(
        &self,
        process: &ProcessHandle,
        record: &ProcessRecord,
    ) -> Option<Arc<dyn Rehydrate>>;
}

/// What brings a dehydrated process back: called once, by the first request that needs its
/// task (a resume, pause, play, kill, checkpoint, or its abandonment to another host), with
/// the process's handle, which the new task shares — whoever holds the handle follows the
/// process across.
pub(crate) trait Rehydrate: Send + Sync {
    /// Start a task for `process` again, from its checkpoint.
    fn rehydrate(&self, process: ProcessHandle);
}

/// A turn to run a guest call ([`Outside::step_permit`]): whatever the outside counts turns
/// with, given back when this is dropped.
pub(crate) struct StepPermit {
    _held: Box<dyn Send + Sync>,
}

impl StepPermit {
    /// A permit that gives `held` back when dropped.
    pub(crate) fn new(held: impl Send + Sync + 'static) -> Self {
        Self {
            _held: Box::new(held),
        }
    }
}
