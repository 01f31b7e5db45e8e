//! [`ProcessTable`]: the processes of one host, by pid.
//!
//! A live process is held here until it terminates; then only as long as someone else holds
//! its handle (a caller, or its parent's handle, which keeps its children): a host that runs
//! processes for ever does not keep every one it ever ran.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use super::ProcessHandle;
use super::handle::Shared;

/// A process in the table: held while it lives, watched once it has terminated.
enum Entry {
    Live(ProcessHandle),
    Ended(Weak<Shared>),
}

/// The processes a host runs, and the terminated ones still held elsewhere, by pid.
#[derive(Default)]
pub(crate) struct ProcessTable {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    processes: HashMap<String, Entry>,
    /// Processes that ended since the last sweep of entries nobody holds any more.
    ended_since_sweep: usize,
    /// How many entries the last sweep left (the next one waits for as many endings).
    left_by_sweep: usize,
}

impl Inner {
    /// Forget the ended processes nobody holds, once as many have ended as the last sweep
    /// left entries (at least 1024): the sweep's cost is spread over the processes that
    /// ended, and the table holds at most twice what is live or held, plus 1024.
    fn sweep_now_and_then(&mut self) {
        self.ended_since_sweep += 1;
        if self.ended_since_sweep < self.left_by_sweep.max(1024) {
            return;
        }
        self.ended_since_sweep = 0;
        self.processes.retain(|_, entry| match entry {
            Entry::Live(_) => true,
            Entry::Ended(weak) => weak.strong_count() > 0,
        });
        self.left_by_sweep = self.processes.len();
    }
}

impl ProcessTable {
    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Add (or replace) a process: held if it lives, watched if it has terminated.
    pub(crate) fn insert(&self, process: &ProcessHandle) {
        let mut inner = self.inner();
        let entry = if process.state().is_terminal() {
            inner.sweep_now_and_then();
            Entry::Ended(Arc::downgrade(&process.shared))
        } else {
            Entry::Live(process.clone())
        };
        inner.processes.insert(process.pid().to_string(), entry);
    }

    /// The process with this pid, if it lives or is still held somewhere.
    pub(crate) fn get(&self, pid: &str) -> Option<ProcessHandle> {
        match self.inner().processes.get(pid)? {
            Entry::Live(process) => Some(process.clone()),
            Entry::Ended(weak) => weak.upgrade().map(|shared| ProcessHandle { shared }),
        }
    }

    /// Process `pid` has terminated: it stays only while someone holds it.
    pub(crate) fn ended(&self, pid: &str) {
        let mut inner = self.inner();
        let Some(entry) = inner.processes.get_mut(pid) else {
            return;
        };
        if let Entry::Live(process) = entry {
            *entry = Entry::Ended(Arc::downgrade(&process.shared));
            inner.sweep_now_and_then();
        }
    }

    /// Forget a process.
    pub(crate) fn remove(&self, pid: &str) {
        self.inner().processes.remove(pid);
    }

    /// The processes that have not terminated.
    pub(crate) fn live(&self) -> Vec<ProcessHandle> {
        self.inner()
            .processes
            .values()
            .filter_map(|entry| match entry {
                Entry::Live(process) if !process.state().is_terminal() => Some(process.clone()),
                _ => None,
            })
            .collect()
    }

    /// How many processes the table holds or watches (for tests of the sweep).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.inner().processes.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::{ProcessRecord, ProcessState};
    use crate::workchain::{Node, Outline};

    fn ended(pid: &str) -> ProcessHandle {
        let mut record = ProcessRecord::new(
            pid.into(),
            "p".into(),
            String::new(),
            serde_json::json!({}),
            None,
            Outline::from_nodes(&[Node::Step("one".into()), Node::Sequence(vec![0])], 1)
                .unwrap()
                .start(),
            0,
        );
        record.state = ProcessState::Finished;
        ProcessHandle::terminated(record)
    }

    #[test]
    fn ended_processes_nobody_holds_are_swept_and_held_ones_stay() {
        let table = ProcessTable::default();
        let held = ended("held");
        table.insert(&held);
        for i in 0..10_000 {
            table.insert(&ended(&format!("p{i}")));
        }
        assert!(table.len() <= 2 * 1024 + 1, "swept: {}", table.len());
        assert!(table.get("p9999").is_none(), "nobody holds it");
        assert_eq!(table.get("held").unwrap().pid(), "held");
        assert!(table.live().is_empty());
    }
}
