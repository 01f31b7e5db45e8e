//! [`ProcessTable`]: the processes of one host, by pid.
//!
//! A live process is held here until it terminates; then only as long as someone else holds
//! its handle (a caller, or its parent's handle, which keeps its children): a host that runs
//! processes for ever does not keep every one it ever ran. A dehydrated process is kept as its
//! record, encoded — a few hundred bytes — and its handle is made again from it when asked for
//! and nobody holds it any more: a host holds very many waiting processes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use super::handle::Shared;
use super::outside::Rehydrate;
use super::{ProcessHandle, ProcessRecord};

/// A process in the table: held while it lives, kept compact while it is dehydrated, watched
/// once it has terminated.
enum Entry {
    Live(ProcessHandle),
    Dormant(Box<Dormant>),
    Ended(Weak<Shared>),
}

/// A dehydrated process nobody may hold: its record (postcard) and what brings it back.
struct Dormant {
    /// Its handle, while someone holds it (or its task runs again).
    held: Weak<Shared>,
    record: Box<[u8]>,
    rehydrate: Arc<dyn Rehydrate>,
}

impl Dormant {
    /// Its handle: the one held, or one made again from its record, dormant.
    fn handle(&mut self) -> Option<ProcessHandle> {
        if let Some(shared) = self.held.upgrade() {
            return Some(ProcessHandle { shared });
        }
        let record: ProcessRecord = postcard::from_bytes(&self.record).ok()?;
        let handle = ProcessHandle::dormant(record, self.rehydrate.clone());
        self.held = Arc::downgrade(&handle.shared);
        Some(handle)
    }
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
            Entry::Live(_) | Entry::Dormant(_) => true,
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
        match self.inner().processes.get_mut(pid)? {
            Entry::Live(process) => Some(process.clone()),
            Entry::Dormant(dormant) => dormant.handle(),
            Entry::Ended(weak) => weak.upgrade().map(|shared| ProcessHandle { shared }),
        }
    }

    /// Process `process` dehydrates, its record as `record`: unless it has listeners (which
    /// live in its handle), it is kept as its encoded record, and its handle only while
    /// someone holds it.
    pub(crate) fn dehydrated(
        &self,
        process: &ProcessHandle,
        record: &ProcessRecord,
        rehydrate: Arc<dyn Rehydrate>,
    ) {
        if !process.shared.control().listeners.is_empty() {
            return;
        }
        let Ok(encoded) = postcard::to_allocvec(record) else {
            return;
        };
        let mut inner = self.inner();
        let Some(entry) = inner.processes.get_mut(process.pid()) else {
            return;
        };
        let this_one = match entry {
            Entry::Live(p) => Arc::ptr_eq(&p.shared, &process.shared),
            Entry::Dormant(d) => d.held.as_ptr() == Arc::as_ptr(&process.shared),
            Entry::Ended(_) => false,
        };
        if this_one {
            *entry = Entry::Dormant(Box::new(Dormant {
                held: Arc::downgrade(&process.shared),
                record: encoded.into_boxed_slice(),
                rehydrate,
            }));
        }
    }

    /// Process `pid` has terminated: it stays only while someone holds it.
    pub(crate) fn ended(&self, pid: &str) {
        let mut inner = self.inner();
        let Some(entry) = inner.processes.get_mut(pid) else {
            return;
        };
        let held = match entry {
            Entry::Live(process) => Arc::downgrade(&process.shared),
            Entry::Dormant(dormant) => dormant.held.clone(),
            Entry::Ended(_) => return,
        };
        *entry = Entry::Ended(held);
        inner.sweep_now_and_then();
    }

    /// Forget a process.
    pub(crate) fn remove(&self, pid: &str) {
        self.inner().processes.remove(pid);
    }

    /// The processes that have not terminated (dehydrated ones included: their handles are
    /// made again as needed).
    pub(crate) fn live(&self) -> Vec<ProcessHandle> {
        self.inner()
            .processes
            .values_mut()
            .filter_map(|entry| match entry {
                Entry::Live(process) if !process.state().is_terminal() => Some(process.clone()),
                Entry::Dormant(dormant) => dormant.handle(),
                _ => None,
            })
            .collect()
    }

    /// The pids of the processes that have not terminated, without making any handle.
    pub(crate) fn live_pids(&self) -> Vec<String> {
        self.inner()
            .processes
            .iter()
            .filter(|(_, entry)| match entry {
                Entry::Live(process) => !process.state().is_terminal(),
                Entry::Dormant(_) => true,
                Entry::Ended(_) => false,
            })
            .map(|(pid, _)| pid.clone())
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

    /// Records the processes it is asked to bring back.
    #[derive(Default)]
    struct Recording(Mutex<Vec<String>>);

    impl Rehydrate for Recording {
        fn rehydrate(&self, process: ProcessHandle) {
            self.0.lock().unwrap().push(process.pid().to_string());
        }
    }

    #[test]
    fn a_dehydrated_process_nobody_holds_is_kept_as_its_record_and_its_handle_made_again() {
        let table = ProcessTable::default();
        let mut record = ended("p").record();
        record.state = ProcessState::Waiting;
        record.status = Some("waiting for approval".into());
        let process = ProcessHandle::new(record.clone(), Arc::default());
        table.insert(&process);
        let rehydrate = Arc::new(Recording::default());
        table.dehydrated(&process, &record, rehydrate.clone());
        let weak = Arc::downgrade(&process.shared);
        drop(process);
        assert!(weak.upgrade().is_none(), "the table holds no handle of it");

        let again = table.get("p").expect("made again from its record");
        assert_eq!(again.record(), record);
        assert!(again.is_dehydrated());
        assert_eq!(table.live_pids(), ["p"]);
        assert!(
            Arc::ptr_eq(&table.get("p").unwrap().shared, &again.shared),
            "one handle while it is held"
        );
        assert!(again.resume(None));
        assert_eq!(
            *rehydrate.0.lock().unwrap(),
            ["p"],
            "the resume brings it back"
        );
        assert!(!again.is_dehydrated());
    }

    #[test]
    fn a_dehydrated_process_with_listeners_keeps_its_handle() {
        let table = ProcessTable::default();
        let mut record = ended("p").record();
        record.state = ProcessState::Waiting;
        let process = ProcessHandle::new(record.clone(), Arc::default());
        process.add_listener(Arc::new(|_: &ProcessHandle, _: &crate::process::Event| {}));
        table.insert(&process);
        table.dehydrated(&process, &record, Arc::new(Recording::default()));
        let weak = Arc::downgrade(&process.shared);
        drop(process);
        assert!(weak.upgrade().is_some(), "its listeners live in its handle");
    }
}
