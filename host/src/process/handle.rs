//! [`ProcessHandle`]: control and watch a process from anywhere.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::Value;
use tokio::sync::{Notify, oneshot, watch};

use super::outside::Rehydrate;
use super::{Event, ProcessListener, ProcessRecord, ProcessState};
use crate::error::{Error, Result};

/// A cheap, cloneable handle on a running (or finished) process.
///
/// Control methods return at once: they record a request that the process's task carries out
/// at its next chance (a running step is never cut short, except by a kill). Watch the effect
/// with [`wait_for`](Self::wait_for), [`wait`](Self::wait) or [`record`](Self::record).
#[derive(Clone)]
pub struct ProcessHandle {
    pub(crate) shared: Arc<Shared>,
}

/// The part of a process shared by its task and its handles.
pub(crate) struct Shared {
    pub(crate) pid: String,
    pub(crate) control: Mutex<Control>,
    /// Wakes the task when a request arrives or a child it awaits terminates.
    pub(crate) wake: Notify,
    pub(crate) record: watch::Sender<ProcessRecord>,
    /// Set once the process has terminated and its listeners have heard of it.
    pub(crate) done: watch::Sender<bool>,
    /// Set on kill: the guest call in progress stops at the next epoch tick.
    pub(crate) interrupt: Arc<AtomicBool>,
    /// Its children, kept here once it has ended (its task held them until then): the host
    /// forgets terminated processes nobody holds, and a tree stays whole while its top is held.
    pub(crate) children: Mutex<Vec<ProcessHandle>>,
}

/// Requests not yet carried out, and the listeners.
#[derive(Default)]
pub(crate) struct Control {
    pub(crate) started: bool,
    /// A pause to apply, with its message.
    pub(crate) pause: Option<Option<String>>,
    pub(crate) play: bool,
    /// A kill to apply, with its message.
    pub(crate) kill: Option<Option<String>>,
    /// A resume to apply to a waiting process, with its value.
    pub(crate) resume: Option<Option<Value>>,
    /// A signal was stored for the process since its task last looked.
    pub(crate) signalled: bool,
    /// Its timer came due since its task last looked.
    pub(crate) timer_due: bool,
    /// Checkpoints asked for (with their tags), and who to tell when each is saved.
    pub(crate) checkpoints: Vec<(Option<String>, oneshot::Sender<Result<()>>)>,
    pub(crate) listeners: Vec<Arc<dyn ProcessListener>>,
    /// Another host has taken the process over: it stops here without saving anything more.
    pub(crate) abandoned: bool,
    /// Set while the process is dehydrated (waiting with no task): what brings it back.
    pub(crate) dormant: Option<Arc<dyn Rehydrate>>,
}

impl Shared {
    fn new(record: ProcessRecord, interrupt: Arc<AtomicBool>) -> Self {
        Self {
            pid: record.pid.clone(),
            control: Mutex::new(Control::default()),
            wake: Notify::new(),
            record: watch::Sender::new(record),
            done: watch::Sender::new(false),
            interrupt,
            children: Mutex::default(),
        }
    }

    pub(crate) fn control(&self) -> MutexGuard<'_, Control> {
        self.control
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl ProcessHandle {
    /// The handle of a process that `record` describes, whose guest calls `interrupt` stops.
    pub(crate) fn new(record: ProcessRecord, interrupt: Arc<AtomicBool>) -> Self {
        Self {
            shared: Arc::new(Shared::new(record, interrupt)),
        }
    }

    /// The handle of a started process, dehydrated as `record` says, that `rehydrate` brings
    /// back.
    pub(crate) fn dormant(record: ProcessRecord, rehydrate: Arc<dyn Rehydrate>) -> Self {
        let handle = Self::new(record, Arc::default());
        let mut control = handle.shared.control();
        control.started = true;
        control.dormant = Some(rehydrate);
        drop(control);
        handle
    }

    /// The handle of a process that terminated before this host saw it: it never runs again.
    pub(crate) fn terminated(record: ProcessRecord) -> Self {
        let handle = Self::new(record, Arc::default());
        handle.shared.done.send_replace(true);
        handle
    }

    /// The process id.
    pub fn pid(&self) -> &str {
        &self.shared.pid
    }

    /// A snapshot of the process's record, as of its last state change.
    pub fn record(&self) -> ProcessRecord {
        self.shared.record.borrow().clone()
    }

    /// The current state.
    pub fn state(&self) -> ProcessState {
        self.shared.record.borrow().state
    }

    /// Whether the process is paused.
    pub fn is_paused(&self) -> bool {
        self.shared.record.borrow().paused
    }

    /// Add a listener for the events from now on.
    pub fn add_listener(&self, listener: Arc<dyn ProcessListener>) {
        self.shared.control().listeners.push(listener);
    }

    /// Stop running the process here, saving nothing more: another host has taken it over.
    pub(crate) fn abandon(&self) {
        let mut control = self.shared.control();
        control.abandoned = true;
        self.wake(control);
    }

    /// Whether the process is dehydrated: it waits in the store, with no task, instance or
    /// memory of its own on this host, until a request (resume, pause, play, kill, checkpoint)
    /// brings it back from its checkpoint. Its handles, listeners and record stay as they were.
    pub fn is_dehydrated(&self) -> bool {
        self.shared.control().dormant.is_some()
    }

    /// Tell the task of a request just recorded in `control`; a dehydrated process is brought
    /// back first (outside the lock: bringing it back uses the handle).
    fn wake(&self, mut control: MutexGuard<'_, Control>) {
        let dormant = control.dormant.take();
        drop(control);
        self.shared.wake.notify_one();
        if let Some(rehydrate) = dormant {
            rehydrate.rehydrate(self.clone());
        }
    }

    pub(crate) fn is_abandoned(&self) -> bool {
        self.shared.control().abandoned
    }

    /// Start a created process.
    ///
    /// # Errors
    /// [`Error::Closed`] when the process has terminated: a process runs once (plumpy's
    /// `ClosedError`).
    pub fn start(&self) -> Result<()> {
        if self.state().is_terminal() {
            return Err(Error::Closed {
                pid: self.pid().to_string(),
            });
        }
        self.shared.control().started = true;
        self.shared.wake.notify_one();
        Ok(())
    }

    /// Pause the process: at once when it is created or waiting, after the running step
    /// otherwise. The message replaces the status until [`play`](Self::play). Returns false
    /// when the process has terminated.
    pub fn pause(&self, message: Option<&str>) -> bool {
        if self.state().is_terminal() {
            return false;
        }
        let mut control = self.shared.control();
        control.pause = Some(message.map(str::to_string));
        control.play = false;
        self.wake(control);
        true
    }

    /// Play a paused process (or cancel a pause not yet applied). Returns false when the
    /// process has terminated.
    pub fn play(&self) -> bool {
        if self.state().is_terminal() {
            return false;
        }
        let mut control = self.shared.control();
        if control.pause.take().is_none() {
            control.play = true;
        }
        self.wake(control);
        true
    }

    /// Kill the process, interrupting a running step at the next epoch tick. Returns true when
    /// it is killed or will be (also when it was killed before), false when it ended another
    /// way. `force` does not wait for its children to be killed.
    pub fn kill(&self, message: Option<&str>, force: bool) -> bool {
        match self.state() {
            ProcessState::Killed => return true,
            state if state.is_terminal() => return false,
            _ => {}
        }
        let _ = force; // Children are killed without waiting for them in either case.
        let mut control = self.shared.control();
        control
            .kill
            .get_or_insert_with(|| message.map(str::to_string));
        self.shared.interrupt.store(true, Ordering::Relaxed);
        self.wake(control);
        true
    }

    /// Resume a waiting process; `value` is stored in its context under the event it waits for
    /// (or `resumed`). A paused process resumes once played. Returns false unless the process
    /// is waiting. The resume is held in memory only, and lost if the process is not waiting:
    /// [`Host::signal`](crate::Host::signal) sends one that is stored first and kept until a
    /// wait for it comes.
    pub fn resume(&self, value: Option<Value>) -> bool {
        // Only its timer ends a sleep.
        let record = self.shared.record.borrow();
        if record.state != ProcessState::Waiting || record.sleeping {
            return false;
        }
        drop(record);
        let mut control = self.shared.control();
        control.resume = Some(value);
        self.wake(control);
        true
    }

    /// Tell the process a signal was stored for it: a waiting one looks for the signal it
    /// waits for (brought back first if dehydrated).
    pub(crate) fn signalled(&self) {
        let mut control = self.shared.control();
        control.signalled = true;
        self.wake(control);
    }

    /// Tell the process its timer came due: a waiting one looks at the clock (brought back
    /// first if dehydrated).
    pub(crate) fn timer_fired(&self) {
        let mut control = self.shared.control();
        control.timer_due = true;
        self.wake(control);
    }

    /// Save a checkpoint of the process now — at once when it is paused, created or waiting,
    /// after the running step otherwise — under `tag` (kept beside the current checkpoint,
    /// which the process keeps overwriting), or as its current checkpoint with `None`.
    /// Returns once it is in the store.
    ///
    /// # Errors
    /// [`Error::NoStore`] when the host has no store, [`Error::Closed`] when the process has
    /// terminated (or terminates before it gets to it), [`Error::Store`] when the save fails.
    pub async fn checkpoint(&self, tag: Option<&str>) -> Result<()> {
        let closed = || Error::Closed {
            pid: self.pid().to_string(),
        };
        if self.state().is_terminal() {
            return Err(closed());
        }
        let (done, saved) = oneshot::channel();
        {
            let mut control = self.shared.control();
            control.checkpoints.push((tag.map(str::to_string), done));
            self.wake(control);
        }
        saved.await.map_err(|_| closed())?
    }

    /// Wait until the record satisfies `condition` (checked on every state change), and return
    /// it.
    pub async fn wait_for(&self, condition: impl Fn(&ProcessRecord) -> bool) -> ProcessRecord {
        let mut rx = self.shared.record.subscribe();
        let record = rx
            .wait_for(|r| condition(r))
            .await
            .expect("the sender lives in self");
        record.clone()
    }

    /// Wait until the process terminates and its listeners have been told, and return its
    /// record.
    pub async fn wait(&self) -> ProcessRecord {
        let mut done = self.shared.done.subscribe();
        let _ = done.wait_for(|done| *done).await;
        self.record()
    }

    /// Tell the listeners about `event` (outside any lock; a listener may use the handle).
    pub(crate) fn emit(&self, event: &Event) {
        let listeners = self.shared.control().listeners.clone();
        for listener in listeners {
            let call = std::panic::AssertUnwindSafe(|| listener.on_event(self, event));
            if std::panic::catch_unwind(call).is_err() {
                tracing::error!(pid = %self.pid(), event = event.name(), "a process listener panicked");
            }
        }
    }
}

impl std::fmt::Debug for ProcessHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessHandle")
            .field("pid", &self.shared.pid)
            .finish_non_exhaustive()
    }
}
