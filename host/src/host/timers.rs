//! [`Timers`]: the one index of a host's durable timers — the ends of sleeps and the timeouts
//! of waits — and the one task that fires them, so that many sleeping processes cost an entry
//! each, not a sleeping task or an instance (a dehydrated process is brought back when its
//! timer fires). The timers themselves are in the processes' checkpoints
//! ([`ProcessRecord::timer`](crate::ProcessRecord::timer)): a host that starts again sets them
//! here as it continues the processes, and those that came due meanwhile fire at once.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::Notify;

use crate::process::ProcessTable;

/// The time now, in milliseconds since the Unix epoch.
pub(super) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A host's timers, by when they fire.
#[derive(Default)]
pub(super) struct Timers {
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    index: Mutex<Index>,
    /// Tells the firing task that the earliest timer may have changed.
    changed: Notify,
}

#[derive(Default)]
struct Index {
    /// Every timer, earliest first.
    due: BTreeSet<(u64, String)>,
    /// When each process's timer fires.
    of: HashMap<String, u64>,
    /// Whether the firing task runs.
    firing: bool,
}

impl Shared {
    fn index(&self) -> MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Timers {
    /// Wake process `pid` of `processes` at `due` (ms since the Unix epoch), instead of when its
    /// timer fired before, if it had one. The firing task starts with the first timer.
    pub(super) fn set(&self, processes: &Arc<ProcessTable>, pid: &str, due: u64) {
        let mut index = self.shared.index();
        if let Some(before) = index.of.insert(pid.to_string(), due) {
            index.due.remove(&(before, pid.to_string()));
        }
        index.due.insert((due, pid.to_string()));
        if !index.firing
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            index.firing = true;
            runtime.spawn(fire(self.shared.clone(), Arc::downgrade(processes)));
        }
        drop(index);
        self.shared.changed.notify_one();
    }

    /// Forget the timer of process `pid`, if it has one.
    pub(super) fn clear(&self, pid: &str) {
        let mut index = self.shared.index();
        if let Some(due) = index.of.remove(pid) {
            index.due.remove(&(due, pid.to_string()));
        }
    }
}

impl Drop for Timers {
    /// The firing task ends with the host.
    fn drop(&mut self) {
        self.shared.changed.notify_one();
    }
}

/// Wake each process whose timer came due, then sleep until the next one (or a change), while
/// the host's process table lives.
async fn fire(shared: Arc<Shared>, processes: Weak<ProcessTable>) {
    loop {
        let changed = shared.changed.notified();
        let (due, next) = {
            let mut index = shared.index();
            let now = now_ms();
            let mut due = Vec::new();
            while let Some((at, _)) = index.due.first()
                && *at <= now
            {
                let (_, pid) = index.due.pop_first().expect("looked at it");
                index.of.remove(&pid);
                due.push(pid);
            }
            (due, index.due.first().map(|(at, _)| at.saturating_sub(now)))
        };
        let Some(processes) = processes.upgrade() else {
            return;
        };
        for pid in due {
            // A process that ended, or went to another host, has nothing to wake.
            if let Some(process) = processes.get(&pid) {
                process.timer_fired();
            }
        }
        drop(processes);
        match next {
            Some(ms) => {
                let _ = tokio::time::timeout(Duration::from_millis(ms), changed).await;
            }
            None => changed.await,
        }
    }
}
