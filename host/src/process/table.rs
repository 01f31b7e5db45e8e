//! [`ProcessTable`]: the processes of one host, by pid.

use std::collections::HashMap;
use std::sync::Mutex;

use super::ProcessHandle;

/// The processes a host runs (and the terminated ones it keeps), by pid.
#[derive(Default)]
pub(crate) struct ProcessTable {
    processes: Mutex<HashMap<String, ProcessHandle>>,
}

impl ProcessTable {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, ProcessHandle>> {
        self.processes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Add (or replace) a process.
    pub(crate) fn insert(&self, process: &ProcessHandle) {
        self.map()
            .insert(process.pid().to_string(), process.clone());
    }

    /// The process with this pid.
    pub(crate) fn get(&self, pid: &str) -> Option<ProcessHandle> {
        self.map().get(pid).cloned()
    }

    /// Forget a process.
    pub(crate) fn remove(&self, pid: &str) {
        self.map().remove(pid);
    }

    /// The processes that have not terminated.
    pub(crate) fn live(&self) -> Vec<ProcessHandle> {
        self.map()
            .values()
            .filter(|p| !p.state().is_terminal())
            .cloned()
            .collect()
    }
}
