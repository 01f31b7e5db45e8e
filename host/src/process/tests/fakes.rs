//! The fakes behind the state machine in its tests: a scripted plugin (`Plugin`, run by a
//! `Scripted` guest) and a host (`Fake`) that records every checkpoint, state change and end,
//! and runs the children it launches.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value, json};
use tokio::sync::Semaphore;

use crate::error::Error;
use crate::guest::{
    AwaitChild, Effects, Failure, Guest, Launch, LogEntry, LogLevel, LogSource, Next, Outcome,
    ProcessView, StepOutcome, StepResult,
};
use crate::ports::{DefaultRequest, GuestCheck, PortNamespace};
use crate::process::outside::{Checkpoints, HeldLogs, Outside, Rehydrate, StepPermit, Unsaved};
use crate::process::{
    Event, Inbox, ProcessHandle, ProcessRecord, ProcessState, ProcessTable, Sent, Signal, Task,
};
use crate::spec::{ExitCodeSpec, ProcessSpec};
use crate::workchain::{Node, Outline};

// ---------------------------------------------------------------------------------------------
// A scripted plugin.

/// What a scripted step does.
pub(super) enum Act {
    /// Return `next`, having done `effects` (and awaiting `awaits`).
    Return {
        next: Next,
        awaits: Vec<AwaitChild>,
        effects: Effects,
    },
    /// Fail, having done `effects`.
    Fail(Failure, Effects),
    /// Compute until the process is killed.
    Spin,
    /// A bug in the host (or the plugin machinery).
    Panic,
}

impl Act {
    pub(super) fn next(next: Next) -> Self {
        Act::Return {
            next,
            awaits: Vec::new(),
            effects: Effects::default(),
        }
    }

    pub(super) fn go_on() -> Self {
        Self::next(Next::Continue)
    }

    pub(super) fn emit(mut self, path: &str, value: Value) -> Self {
        self.effects().outputs.push((path.into(), value));
        self
    }

    /// Log `message` (at info), as the plugin's `log` import does.
    pub(super) fn log(mut self, message: &str) -> Self {
        let line = LogEntry {
            at_ms: 1,
            level: LogLevel::Info,
            source: LogSource::Plugin,
            message: message.into(),
        };
        self.effects().logs.push(line, usize::MAX);
        self
    }

    pub(super) fn status(mut self, status: &str) -> Self {
        self.effects().status = Some(Some(status.into()));
        self
    }

    pub(super) fn pause(mut self, message: Option<&str>) -> Self {
        self.effects().pause = Some(message.map(str::to_string));
        self
    }

    pub(super) fn launch(mut self, pid: &str, plugin: &str, key: &str, inspect: bool) -> Self {
        self.effects().launches.push(Launch {
            pid: pid.into(),
            plugin: plugin.into(),
            inputs: json!({}),
        });
        if let Act::Return { awaits, .. } = &mut self {
            awaits.push(AwaitChild {
                pid: pid.into(),
                key: key.into(),
                append: false,
                inspect,
            });
        }
        self
    }

    pub(super) fn effects(&mut self) -> &mut Effects {
        match self {
            Act::Return { effects, .. } | Act::Fail(_, effects) => effects,
            Act::Spin | Act::Panic => unreachable!("no effects"),
        }
    }
}

pub(super) type StepFn = Arc<dyn Fn(&mut ProcessView) -> Act + Send + Sync>;
pub(super) type ConditionFn = Arc<dyn Fn(&ProcessView) -> bool + Send + Sync>;

/// A plugin: its spec and what its steps and conditions do.
#[derive(Clone)]
pub(super) struct Plugin {
    pub(super) spec: Arc<ProcessSpec>,
    pub(super) steps: HashMap<&'static str, StepFn>,
    pub(super) conditions: HashMap<&'static str, ConditionFn>,
    /// An output path the plugin's own validator rejects.
    pub(super) rejects: Option<&'static str>,
}

impl Plugin {
    /// A plugin whose outline is these steps in order.
    pub(super) fn steps(name: &str, steps: &[&'static str]) -> Self {
        let mut nodes: Vec<Node> = steps.iter().map(|s| Node::Step(s.to_string())).collect();
        nodes.push(Node::Sequence((0..steps.len() as u32).collect()));
        let root = steps.len() as u32;
        Self::with_outline(name, &nodes, root)
    }

    pub(super) fn with_outline(name: &str, nodes: &[Node], root: u32) -> Self {
        let mut outputs = PortNamespace::new("outputs");
        outputs.dynamic = true;
        Self {
            spec: Arc::new(ProcessSpec {
                name: name.into(),
                version: "1".into(),
                description: None,
                inputs: PortNamespace::new("inputs"),
                outputs,
                exit_codes: Vec::new(),
                outline: Outline::from_nodes(nodes, root).expect("a valid outline"),
                retries: Vec::new(),
            }),
            steps: HashMap::new(),
            conditions: HashMap::new(),
            rejects: None,
        }
    }

    pub(super) fn on(
        mut self,
        step: &'static str,
        act: impl Fn(&mut ProcessView) -> Act + Send + Sync + 'static,
    ) -> Self {
        self.steps.insert(step, Arc::new(act));
        self
    }

    pub(super) fn when(
        mut self,
        condition: &'static str,
        f: impl Fn(&ProcessView) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.conditions.insert(condition, Arc::new(f));
        self
    }

    pub(super) fn spec_mut(&mut self) -> &mut ProcessSpec {
        Arc::get_mut(&mut self.spec).expect("the spec is not shared yet")
    }

    pub(super) fn requires_output(mut self, path: &str) -> Self {
        // The ports tests' declaration with plumpy's defaults: required, any type.
        let port = crate::ports::tests::port(path);
        self.spec_mut().outputs.declare(&port).unwrap();
        self
    }

    pub(super) fn retry(mut self, policy: crate::retry::RetryPolicy) -> Self {
        self.spec_mut().retries.push(policy);
        self
    }

    pub(super) fn exit_code(mut self, status: u32, message: &str) -> Self {
        self.spec_mut().exit_codes.push(ExitCodeSpec {
            status,
            label: "CODE".into(),
            message: message.into(),
        });
        self
    }
}

/// The scripted guest of one process.
pub(super) struct Scripted {
    pub(super) plugin: Plugin,
    pub(super) interrupt: Arc<AtomicBool>,
    pub(super) calls: Arc<Mutex<Vec<String>>>,
    pub(super) failed: bool,
}

#[async_trait]
impl Guest for Scripted {
    async fn run_step(&mut self, name: &str, process: &mut ProcessView) -> StepOutcome {
        self.calls.lock().unwrap().push(name.to_string());
        if self.failed {
            return Outcome::failed(Failure::Trap("failed before".into()));
        }
        let act = self
            .plugin
            .steps
            .get(name)
            .map_or_else(Act::go_on, |step| step(process));
        match act {
            Act::Return {
                next,
                awaits,
                effects,
            } => Outcome {
                effects,
                result: Ok(StepResult { next, awaits }),
            },
            Act::Fail(failure, effects) => {
                self.failed = true;
                Outcome {
                    effects,
                    result: Err(failure),
                }
            }
            Act::Spin => loop {
                if self.interrupt.load(Ordering::Relaxed) {
                    self.failed = true;
                    return Outcome::failed(Failure::Interrupted);
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            },
            Act::Panic => panic!("the scripted step panics"),
        }
    }

    async fn check_condition(&mut self, name: &str, process: &mut ProcessView) -> Outcome<bool> {
        self.calls.lock().unwrap().push(format!("{name}?"));
        match self.plugin.conditions.get(name) {
            Some(condition) => Outcome {
                effects: Effects::default(),
                result: Ok(condition(process)),
            },
            None => Outcome::failed(Failure::Error(format!("no condition {name}"))),
        }
    }

    async fn validate(&mut self, check: &GuestCheck) -> Result<Option<String>, Failure> {
        Ok((self.plugin.rejects == Some(check.path.as_str())).then(|| "not acceptable".into()))
    }

    async fn compute_default(&mut self, _: &DefaultRequest) -> Result<Value, Failure> {
        Ok(Value::Null)
    }

    async fn image(&mut self) -> Option<Vec<u8>> {
        (!self.failed).then(|| b"memory".to_vec())
    }

    async fn reset(&mut self, image: Option<Vec<u8>>) -> Result<(), Failure> {
        let from = if image.is_some() { "image" } else { "nothing" };
        self.calls
            .lock()
            .unwrap()
            .push(format!("reset from {from}"));
        self.failed = false;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// A host around it.

/// A checkpoint the fake host saved.
#[derive(Debug, Clone)]
pub(super) struct Saved {
    pub(super) record: ProcessRecord,
    pub(super) image: bool,
    pub(super) tag: Option<String>,
}

impl Saved {
    /// `state`, `paused` and whether it had an image, for compact assertions.
    pub(super) fn shape(&self) -> (ProcessState, bool, bool) {
        (self.record.state, self.record.paused, self.image)
    }
}

/// What the next save does.
#[derive(Debug, Clone, Copy)]
pub(super) enum SaveBehaviour {
    Fail,
    Abandon,
}

pub(super) struct Fake {
    pub(super) checkpoints: Checkpoints,
    pub(super) saved: Mutex<Vec<Saved>>,
    /// What the saves after the first `n` do, once `n` have succeeded.
    pub(super) trouble: Mutex<VecDeque<(usize, SaveBehaviour)>>,
    pub(super) changes: Mutex<Vec<(String, Option<ProcessState>, ProcessState)>>,
    pub(super) ended: Mutex<Vec<(String, bool)>>,
    pub(super) released: Mutex<Vec<String>>,
    pub(super) table: ProcessTable,
    pub(super) plugins: HashMap<String, Plugin>,
    pub(super) steps: Arc<Semaphore>,
    pub(super) calls: Arc<Mutex<Vec<String>>>,
    /// Each append to a process's log: how many checkpoints had been saved before it, the
    /// pid, the lines and the count of lines dropped before them.
    pub(super) logs: Mutex<Vec<Appended>>,
    /// The lines a process keeps (`log_lines`).
    pub(super) log_lines: usize,
    /// Set: waiting processes dehydrate, and come back on this plugin from their last saved
    /// checkpoint.
    pub(super) dehydrate: Mutex<Option<Plugin>>,
    /// The pids brought back from dehydration, once each time.
    pub(super) rehydrated: Mutex<Vec<String>>,
    /// The signals posted, by pid, numbered per process from 1 (the fake's inbox).
    pub(super) signals: Mutex<Vec<(String, u64, Signal)>>,
    /// The fake's clock, in ms since the Unix epoch: it moves only when told to.
    pub(super) clock: Mutex<u64>,
    /// The timers set, by pid.
    pub(super) timers: Mutex<HashMap<String, u64>>,
    pub(super) me: Weak<Fake>,
}

/// One append to a process's log.
#[derive(Debug, Clone)]
pub(super) struct Appended {
    pub(super) saves_before: usize,
    pub(super) pid: String,
    pub(super) lines: Vec<LogEntry>,
    pub(super) dropped: u64,
}

/// Where the fake's clock starts: ms since the Unix epoch.
pub(super) const START_MS: u64 = 1_800_000_000_000;

impl Fake {
    pub(super) fn new(checkpoints: Checkpoints, children: &[Plugin]) -> Arc<Self> {
        Self::with_log_lines(checkpoints, children, 1000)
    }

    fn with_log_lines(checkpoints: Checkpoints, children: &[Plugin], lines: usize) -> Arc<Self> {
        Arc::new_cyclic(|me| Fake {
            checkpoints,
            saved: Mutex::default(),
            trouble: Mutex::default(),
            changes: Mutex::default(),
            ended: Mutex::default(),
            released: Mutex::default(),
            table: ProcessTable::default(),
            plugins: children
                .iter()
                .map(|p| (p.spec.name.clone(), p.clone()))
                .collect(),
            steps: Arc::new(Semaphore::new(8)),
            calls: Arc::default(),
            logs: Mutex::default(),
            log_lines: lines,
            dehydrate: Mutex::default(),
            rehydrated: Mutex::default(),
            signals: Mutex::default(),
            clock: Mutex::new(START_MS),
            timers: Mutex::default(),
            me: me.clone(),
        })
    }

    /// Move the clock on by `ms`, and wake the processes whose timers came due, as the host's
    /// timer index does.
    pub(super) fn advance(&self, ms: u64) {
        let now = {
            let mut clock = self.clock.lock().unwrap();
            *clock += ms;
            *clock
        };
        let due: Vec<String> = {
            let mut timers = self.timers.lock().unwrap();
            let due: Vec<String> = timers
                .iter()
                .filter(|(_, at)| **at <= now)
                .map(|(pid, _)| pid.clone())
                .collect();
            for pid in &due {
                timers.remove(pid);
            }
            due
        };
        for pid in due {
            if let Some(process) = self.table.get(&pid) {
                process.timer_fired();
            }
        }
    }

    /// The last checkpoint `first` saved, as a host that starts again reads it, once `first`
    /// is killed (and the calls so far forgotten): what a test continues on another task.
    pub(super) async fn last_checkpoint_of_killed(&self, first: &ProcessHandle) -> ProcessRecord {
        let record = self.saved().last().expect("a checkpoint").record.clone();
        first.kill(None, true);
        ended(first).await;
        self.calls.lock().unwrap().clear();
        record
    }

    /// The timer set for process `pid`, if any.
    pub(super) fn timer_of(&self, pid: &str) -> Option<u64> {
        self.timers.lock().unwrap().get(pid).copied()
    }

    /// A durable host whose processes keep `lines` log lines.
    pub(super) fn keeping_log_lines(lines: usize) -> Arc<Self> {
        Self::with_log_lines(Checkpoints::EveryStep, &[], lines)
    }

    /// A durable host whose waiting processes of `plugin` dehydrate.
    pub(super) fn dehydrating(plugin: &Plugin) -> Arc<Self> {
        let host = Self::durable();
        *host.dehydrate.lock().unwrap() = Some(plugin.clone());
        host
    }

    /// Bring `process` back from its last current checkpoint, on a new scripted guest.
    fn rehydrate(&self, process: ProcessHandle) {
        let plugin = self.dehydrate.lock().unwrap().clone().expect("dehydrating");
        let record = self
            .saved()
            .into_iter()
            .rev()
            .find(|s| s.tag.is_none() && s.record.pid == process.pid())
            .expect("a dormant process was saved")
            .record;
        self.rehydrated.lock().unwrap().push(process.pid().into());
        let guest = Scripted {
            plugin: plugin.clone(),
            interrupt: process.shared.interrupt.clone(),
            calls: self.calls.clone(),
            failed: false,
        };
        let me: Arc<dyn Outside> = self.me.upgrade().expect("the fake host lives");
        Task::new(process, plugin.spec.clone(), Box::new(guest), me, record)
            .rehydrated(true)
            .spawn();
    }

    pub(super) fn rehydrations(&self) -> usize {
        self.rehydrated.lock().unwrap().len()
    }

    /// The appends to the log of `pid`, in order.
    pub(super) fn logs_of(&self, pid: &str) -> Vec<Appended> {
        let logs = self.logs.lock().unwrap();
        logs.iter().filter(|a| a.pid == pid).cloned().collect()
    }

    pub(super) fn memory() -> Arc<Self> {
        Self::new(Checkpoints::Off, &[])
    }

    pub(super) fn durable() -> Arc<Self> {
        Self::new(Checkpoints::EveryStep, &[])
    }

    /// After `after` more successful saves, the next one does `what`.
    pub(super) fn then(&self, after: usize, what: SaveBehaviour) {
        let done = self.saved.lock().unwrap().len();
        self.trouble.lock().unwrap().push_back((done + after, what));
    }

    pub(super) fn saved(&self) -> Vec<Saved> {
        self.saved.lock().unwrap().clone()
    }

    pub(super) fn shapes(&self) -> Vec<(ProcessState, bool, bool)> {
        self.saved().iter().map(Saved::shape).collect()
    }

    pub(super) fn changes_of(&self, pid: &str) -> Vec<(Option<ProcessState>, ProcessState)> {
        let changes = self.changes.lock().unwrap();
        changes
            .iter()
            .filter(|(p, _, _)| p == pid)
            .map(|(_, from, to)| (*from, *to))
            .collect()
    }

    pub(super) fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }

    /// A created process of `plugin` (not started) with its events recorded, run by a task on
    /// this host.
    pub(super) fn create(
        &self,
        plugin: &Plugin,
        pid: &str,
        parent: Option<&str>,
    ) -> (ProcessHandle, Events) {
        let record = ProcessRecord::new(
            pid.into(),
            plugin.spec.name.clone(),
            "digest".into(),
            json!({}),
            parent.map(str::to_string),
            plugin.spec.outline.start(),
            0,
        );
        self.spawn(plugin, record)
    }

    /// A process continued from `record` (as restored from a checkpoint).
    pub(super) fn spawn(&self, plugin: &Plugin, record: ProcessRecord) -> (ProcessHandle, Events) {
        let interrupt = Arc::new(AtomicBool::new(false));
        let handle = ProcessHandle::new(record.clone(), interrupt.clone());
        let events = Events::listen(&handle);
        self.table.insert(&handle);
        let guest = Scripted {
            plugin: plugin.clone(),
            interrupt,
            calls: self.calls.clone(),
            failed: false,
        };
        let me: Arc<dyn Outside> = self.me.upgrade().expect("the fake host lives");
        Task::new(
            handle.clone(),
            plugin.spec.clone(),
            Box::new(guest),
            me,
            record,
        )
        .spawn();
        (handle, events)
    }
}

#[async_trait]
impl Outside for Fake {
    fn checkpoints(&self) -> Checkpoints {
        self.checkpoints
    }

    async fn save(
        &self,
        _process: &ProcessHandle,
        record: &ProcessRecord,
        image: Option<Vec<u8>>,
        tag: Option<&str>,
        logs: HeldLogs,
    ) -> Result<(), Unsaved> {
        let mut saved = self.saved.lock().unwrap();
        let mut trouble = self.trouble.lock().unwrap();
        if let Some((at, what)) = trouble.front().copied()
            && saved.len() >= at
        {
            trouble.pop_front();
            return Err(match what {
                SaveBehaviour::Abandon => Unsaved::Abandoned,
                SaveBehaviour::Fail => Unsaved::Failed(Error::NoStore),
            });
        }
        if !logs.lines.is_empty() || logs.dropped > 0 {
            self.logs.lock().unwrap().push(Appended {
                saves_before: saved.len(),
                pid: record.pid.clone(),
                lines: logs.lines,
                dropped: logs.dropped,
            });
        }
        if tag.is_none() && record.state.is_terminal() {
            self.released.lock().unwrap().push(record.pid.clone());
        }
        saved.push(Saved {
            record: record.clone(),
            image: image.is_some(),
            tag: tag.map(str::to_string),
        });
        Ok(())
    }

    async fn step_permit(&self) -> StepPermit {
        StepPermit::new(self.steps.clone().acquire_owned().await.unwrap())
    }

    async fn launch_child(
        &self,
        parent: &ProcessHandle,
        launch: &Launch,
    ) -> Result<ProcessHandle, Error> {
        let plugin = self
            .plugins
            .get(&launch.plugin)
            .ok_or_else(|| Error::PluginNotFound {
                name: launch.plugin.clone(),
                dirs: Vec::new(),
            })?;
        let (child, _) = self.create(plugin, &launch.pid, Some(parent.pid()));
        child.start()?;
        Ok(child)
    }

    async fn find_child(&self, pid: &str) -> Result<Option<ProcessHandle>, Error> {
        Ok(self.table.get(pid))
    }

    fn log_lines(&self) -> usize {
        self.log_lines
    }

    async fn append_logs(
        &self,
        pid: &str,
        lines: Vec<LogEntry>,
        dropped: u64,
    ) -> Result<(), Error> {
        let saves_before = self.saved.lock().unwrap().len();
        self.logs.lock().unwrap().push(Appended {
            saves_before,
            pid: pid.into(),
            lines,
            dropped,
        });
        Ok(())
    }

    async fn signals(&self, pid: &str) -> Result<Vec<(u64, Signal)>, Error> {
        self.received(pid).await
    }

    fn now_ms(&self) -> u64 {
        *self.clock.lock().unwrap()
    }

    fn set_timer(&self, process: &ProcessHandle, due: u64) {
        self.timers
            .lock()
            .unwrap()
            .insert(process.pid().to_string(), due);
    }

    fn clear_timer(&self, pid: &str) {
        self.timers.lock().unwrap().remove(pid);
    }

    fn state_changed(&self, pid: &str, from: Option<ProcessState>, to: ProcessState) {
        self.changes.lock().unwrap().push((pid.into(), from, to));
    }

    async fn release(&self, pid: &str) {
        self.released.lock().unwrap().push(pid.into());
    }

    fn ended(&self, pid: &str, abandoned: bool) {
        self.ended.lock().unwrap().push((pid.into(), abandoned));
        if abandoned {
            self.table.remove(pid);
        }
    }

    fn dehydrate(
        &self,
        process: &ProcessHandle,
        record: &ProcessRecord,
    ) -> Option<Arc<dyn Rehydrate>> {
        self.dehydrate.lock().unwrap().as_ref()?;
        let rehydrator: Arc<dyn Rehydrate> = Arc::new(FakeRehydrator(self.me.clone()));
        self.table.dehydrated(process, record, rehydrator.clone());
        Some(rehydrator)
    }
}

/// Brings a dormant process back on the fake host, on a tokio task as the host does.
#[async_trait]
impl Inbox for Fake {
    async fn post(&self, pid: &str, signal: &Signal) -> Result<Sent, Error> {
        let mut signals = self.signals.lock().unwrap();
        let theirs = || signals.iter().filter(|(p, _, _)| p == pid);
        if let Some((_, seq, _)) = theirs().find(|(_, _, s)| s.key.is_some() && s.key == signal.key)
        {
            return Ok(Sent::Duplicate { seq: *seq });
        }
        let seq = theirs().count() as u64 + 1;
        signals.push((pid.to_string(), seq, signal.clone()));
        Ok(Sent::Queued { seq })
    }

    async fn received(&self, pid: &str) -> Result<Vec<(u64, Signal)>, Error> {
        let signals = self.signals.lock().unwrap();
        Ok(signals
            .iter()
            .filter(|(p, _, _)| p == pid)
            .map(|(_, seq, signal)| (*seq, signal.clone()))
            .collect())
    }
}

struct FakeRehydrator(Weak<Fake>);

impl Rehydrate for FakeRehydrator {
    fn rehydrate(&self, process: ProcessHandle) {
        let host = self.0.upgrade().expect("the fake host lives");
        tokio::spawn(async move { host.rehydrate(process) });
    }
}

/// The names of the events a process's listeners heard, in order.
#[derive(Clone, Default)]
pub(super) struct Events(Arc<Mutex<Vec<Event>>>);

impl Events {
    pub(super) fn listen(handle: &ProcessHandle) -> Self {
        let events = Self::default();
        let heard = events.0.clone();
        handle.add_listener(Arc::new(move |_: &ProcessHandle, e: &Event| {
            heard.lock().unwrap().push(e.clone());
        }));
        events
    }

    pub(super) fn names(&self) -> Vec<&'static str> {
        self.0.lock().unwrap().iter().map(Event::name).collect()
    }
}

/// Wait for `condition` on the record, or fail the test after a while.
pub(super) async fn until(
    handle: &ProcessHandle,
    condition: impl Fn(&ProcessRecord) -> bool,
) -> ProcessRecord {
    tokio::time::timeout(Duration::from_secs(5), handle.wait_for(condition))
        .await
        .expect("the process got there within 5 s")
}

/// Wait for the end, or fail the test after a while.
pub(super) async fn ended(handle: &ProcessHandle) -> ProcessRecord {
    tokio::time::timeout(Duration::from_secs(5), handle.wait())
        .await
        .expect("the process ended within 5 s")
}

/// Let the process's task run until it has nothing to do.
pub(super) async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
}

/// A plugin whose first step waits for a resume, and whose second does nothing.
pub(super) fn waiter() -> Plugin {
    Plugin::steps("waits", &["wait", "last"]).on("wait", |_| {
        Act::next(Next::Wait {
            event: None,
            message: None,
            timeout: None,
        })
    })
}

/// A plugin of one step, `run`, that does `act`.
pub(super) fn child(
    name: &str,
    act: impl Fn(&mut ProcessView) -> Act + Send + Sync + 'static,
) -> Plugin {
    Plugin::steps(name, &["run"]).on("run", act)
}
