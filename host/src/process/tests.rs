//! The state machine without wasm: a scripted [`Guest`] and a fake [`Outside`] (a store that
//! records every checkpoint, a table of children) behind the same traits the real plugin
//! instance and host implement. plumpy's process scenarios S01–S14, pause / play / kill in each
//! state, a kill during a step, failures, children, and the checkpoint at each point.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value, json};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::outside::{Checkpoints, Outside, Unsaved};
use super::record::AfterStep;
use super::{Event, ProcessHandle, ProcessRecord, ProcessState, ProcessTable, Task};
use crate::error::Error;
use crate::guest::{
    AwaitChild, Effects, Failure, Guest, Launch, Next, Outcome, ProcessView, StepOutcome,
    StepResult,
};
use crate::ports::{DefaultRequest, GuestCheck, PortDecl, PortNamespace, ValidTypes};
use crate::spec::{ExitCodeSpec, ProcessSpec};
use crate::workchain::{Node, Outline};

// ---------------------------------------------------------------------------------------------
// A scripted plugin.

/// What a scripted step does.
enum Act {
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
    fn next(next: Next) -> Self {
        Act::Return {
            next,
            awaits: Vec::new(),
            effects: Effects::default(),
        }
    }

    fn go_on() -> Self {
        Self::next(Next::Continue)
    }

    fn emit(mut self, path: &str, value: Value) -> Self {
        self.effects().outputs.push((path.into(), value));
        self
    }

    fn status(mut self, status: &str) -> Self {
        self.effects().status = Some(Some(status.into()));
        self
    }

    fn pause(mut self, message: Option<&str>) -> Self {
        self.effects().pause = Some(message.map(str::to_string));
        self
    }

    fn launch(mut self, pid: &str, plugin: &str, key: &str, inspect: bool) -> Self {
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

    fn effects(&mut self) -> &mut Effects {
        match self {
            Act::Return { effects, .. } | Act::Fail(_, effects) => effects,
            Act::Spin | Act::Panic => unreachable!("no effects"),
        }
    }
}

type StepFn = Arc<dyn Fn(&mut ProcessView) -> Act + Send + Sync>;
type ConditionFn = Arc<dyn Fn(&ProcessView) -> bool + Send + Sync>;

/// A plugin: its spec and what its steps and conditions do.
#[derive(Clone)]
struct Plugin {
    spec: Arc<ProcessSpec>,
    steps: HashMap<&'static str, StepFn>,
    conditions: HashMap<&'static str, ConditionFn>,
    /// An output path the plugin's own validator rejects.
    rejects: Option<&'static str>,
}

impl Plugin {
    /// A plugin whose outline is these steps in order.
    fn steps(name: &str, steps: &[&'static str]) -> Self {
        let mut nodes: Vec<Node> = steps.iter().map(|s| Node::Step(s.to_string())).collect();
        nodes.push(Node::Sequence((0..steps.len() as u32).collect()));
        let root = steps.len() as u32;
        Self::with_outline(name, &nodes, root)
    }

    fn with_outline(name: &str, nodes: &[Node], root: u32) -> Self {
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
            }),
            steps: HashMap::new(),
            conditions: HashMap::new(),
            rejects: None,
        }
    }

    fn on(
        mut self,
        step: &'static str,
        act: impl Fn(&mut ProcessView) -> Act + Send + Sync + 'static,
    ) -> Self {
        self.steps.insert(step, Arc::new(act));
        self
    }

    fn when(
        mut self,
        condition: &'static str,
        f: impl Fn(&ProcessView) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.conditions.insert(condition, Arc::new(f));
        self
    }

    fn spec_mut(&mut self) -> &mut ProcessSpec {
        Arc::get_mut(&mut self.spec).expect("the spec is not shared yet")
    }

    fn requires_output(mut self, path: &str) -> Self {
        self.spec_mut().outputs.declare(&required(path)).unwrap();
        self
    }

    fn exit_code(mut self, status: u32, message: &str) -> Self {
        self.spec_mut().exit_codes.push(ExitCodeSpec {
            status,
            label: "CODE".into(),
            message: message.into(),
        });
        self
    }
}

fn required(path: &str) -> PortDecl {
    PortDecl {
        path: path.into(),
        namespace: false,
        valid_types: ValidTypes::default(),
        required: true,
        default: None,
        help: None,
        validator: false,
        dynamic: false,
        populate_defaults: true,
    }
}

/// The scripted guest of one process.
struct Scripted {
    plugin: Plugin,
    interrupt: Arc<AtomicBool>,
    calls: Arc<Mutex<Vec<String>>>,
    failed: bool,
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

    fn image(&self) -> Option<Vec<u8>> {
        (!self.failed).then(|| b"memory".to_vec())
    }
}

// ---------------------------------------------------------------------------------------------
// A host around it.

/// A checkpoint the fake host saved.
#[derive(Debug, Clone)]
struct Saved {
    record: ProcessRecord,
    image: bool,
    tag: Option<String>,
}

impl Saved {
    /// `state`, `paused` and whether it had an image, for compact assertions.
    fn shape(&self) -> (ProcessState, bool, bool) {
        (self.record.state, self.record.paused, self.image)
    }
}

/// What the next save does.
#[derive(Debug, Clone, Copy)]
enum SaveBehaviour {
    Fail,
    Abandon,
}

struct Fake {
    checkpoints: Checkpoints,
    saved: Mutex<Vec<Saved>>,
    /// What the saves after the first `n` do, once `n` have succeeded.
    trouble: Mutex<VecDeque<(usize, SaveBehaviour)>>,
    changes: Mutex<Vec<(String, Option<ProcessState>, ProcessState)>>,
    ended: Mutex<Vec<(String, bool)>>,
    released: Mutex<Vec<String>>,
    table: ProcessTable,
    plugins: HashMap<String, Plugin>,
    steps: Arc<Semaphore>,
    calls: Arc<Mutex<Vec<String>>>,
    me: Weak<Fake>,
}

impl Fake {
    fn new(checkpoints: Checkpoints, children: &[Plugin]) -> Arc<Self> {
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
            me: me.clone(),
        })
    }

    fn memory() -> Arc<Self> {
        Self::new(Checkpoints::Off, &[])
    }

    fn durable() -> Arc<Self> {
        Self::new(Checkpoints::EveryStep, &[])
    }

    /// After `after` more successful saves, the next one does `what`.
    fn then(&self, after: usize, what: SaveBehaviour) {
        let done = self.saved.lock().unwrap().len();
        self.trouble.lock().unwrap().push_back((done + after, what));
    }

    fn saved(&self) -> Vec<Saved> {
        self.saved.lock().unwrap().clone()
    }

    fn shapes(&self) -> Vec<(ProcessState, bool, bool)> {
        self.saved().iter().map(Saved::shape).collect()
    }

    fn changes_of(&self, pid: &str) -> Vec<(Option<ProcessState>, ProcessState)> {
        let changes = self.changes.lock().unwrap();
        changes
            .iter()
            .filter(|(p, _, _)| p == pid)
            .map(|(_, from, to)| (*from, *to))
            .collect()
    }

    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }

    /// A created process of `plugin` (not started) with its events recorded, run by a task on
    /// this host.
    fn create(&self, plugin: &Plugin, pid: &str, parent: Option<&str>) -> (ProcessHandle, Events) {
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
    fn spawn(&self, plugin: &Plugin, record: ProcessRecord) -> (ProcessHandle, Events) {
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
        saved.push(Saved {
            record: record.clone(),
            image: image.is_some(),
            tag: tag.map(str::to_string),
        });
        Ok(())
    }

    async fn step_permit(&self) -> OwnedSemaphorePermit {
        self.steps.clone().acquire_owned().await.unwrap()
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
}

/// The names of the events a process's listeners heard, in order.
#[derive(Clone, Default)]
struct Events(Arc<Mutex<Vec<Event>>>);

impl Events {
    fn listen(handle: &ProcessHandle) -> Self {
        let events = Self::default();
        let heard = events.0.clone();
        handle.add_listener(Arc::new(move |_: &ProcessHandle, e: &Event| {
            heard.lock().unwrap().push(e.clone());
        }));
        events
    }

    fn names(&self) -> Vec<&'static str> {
        self.0.lock().unwrap().iter().map(Event::name).collect()
    }
}

/// Wait for `condition` on the record, or fail the test after a while.
async fn until(
    handle: &ProcessHandle,
    condition: impl Fn(&ProcessRecord) -> bool,
) -> ProcessRecord {
    tokio::time::timeout(Duration::from_secs(5), handle.wait_for(condition))
        .await
        .expect("the process got there within 5 s")
}

/// Wait for the end, or fail the test after a while.
async fn ended(handle: &ProcessHandle) -> ProcessRecord {
    tokio::time::timeout(Duration::from_secs(5), handle.wait())
        .await
        .expect("the process ended within 5 s")
}

/// Let the process's task run until it has nothing to do.
async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
}

// ---------------------------------------------------------------------------------------------
// Process states and commands (plumpy's S01–S14).

#[tokio::test]
async fn s01_a_trivial_step_emits_one_output_and_finishes() {
    let host = Fake::memory();
    let plugin =
        Plugin::steps("trivial", &["run"]).on("run", |_| Act::go_on().emit("default", json!(5)));
    let (process, events) = host.create(&plugin, "p", None);
    process.start().unwrap();
    let record = ended(&process).await;
    assert_eq!(record.state, ProcessState::Finished);
    assert_eq!(record.successful(), Some(true));
    assert_eq!(record.outputs, json!({"default": 5}));
    assert_eq!(events.names(), ["running", "output_emitted", "finished"]);
    assert_eq!(
        host.changes_of("p"),
        [
            (Some(ProcessState::Created), ProcessState::Running),
            (Some(ProcessState::Running), ProcessState::Finished)
        ]
    );
    assert_eq!(host.released.lock().unwrap().as_slice(), ["p"]);
    assert_eq!(
        host.ended.lock().unwrap().as_slice(),
        [("p".to_string(), false)]
    );
}

#[tokio::test]
async fn s02_an_error_in_a_step_excepts_the_process() {
    let host = Fake::memory();
    let plugin = Plugin::steps("raises", &["run", "never"]).on("run", |_| {
        let mut act = Act::Fail(
            Failure::Error("exception during run".into()),
            Effects::default(),
        );
        act.effects().outputs.push(("early".into(), json!(1)));
        act
    });
    let (process, events) = host.create(&plugin, "p", None);
    process.start().unwrap();
    let record = ended(&process).await;
    assert_eq!(record.state, ProcessState::Excepted);
    assert_eq!(record.successful(), Some(false));
    assert_eq!(
        record.error.as_deref(),
        Some("step 'run' failed: exception during run")
    );
    // What the step did before it failed is announced, as plumpy announces it as it happens.
    assert_eq!(events.names(), ["running", "output_emitted", "excepted"]);
    assert_eq!(host.calls(), ["run"], "no step runs after the failure");
}

#[tokio::test]
async fn s04_a_kill_returned_from_a_step_kills() {
    let host = Fake::memory();
    let plugin = Plugin::steps("kills", &["run", "never"]).on("run", |_| {
        Act::next(Next::Kill {
            message: "killed".into(),
        })
    });
    let (process, events) = host.create(&plugin, "p", None);
    process.start().unwrap();
    let record = ended(&process).await;
    assert_eq!(record.state, ProcessState::Killed);
    assert_eq!(record.exit_message.as_deref(), Some("killed"));
    assert_eq!(events.names(), ["running", "killed"]);
    assert_eq!(host.calls(), ["run"]);
}

#[tokio::test]
async fn s06_a_kill_before_start_is_idempotent_and_refused_once_finished() {
    let host = Fake::memory();
    let plugin = Plugin::steps("p", &["run"]);
    let (process, events) = host.create(&plugin, "p", None);
    assert!(process.kill(Some("Farewell!"), false));
    let record = ended(&process).await;
    assert_eq!(record.state, ProcessState::Killed);
    assert_eq!(record.exit_message.as_deref(), Some("Farewell!"));
    assert!(process.kill(None, false), "killing again is still true");
    assert_eq!(events.names(), ["killed"], "listeners hear only the kill");
    assert!(host.calls().is_empty(), "no step ran");

    let (finished, _) = host.create(&plugin, "q", None);
    finished.start().unwrap();
    ended(&finished).await;
    assert!(
        !finished.kill(None, false),
        "a finished process is not killed"
    );
    assert_eq!(finished.state(), ProcessState::Finished);
}

#[tokio::test]
async fn s07_a_waiting_process_is_resumed_by_a_listener() {
    let host = Fake::memory();
    let plugin = Plugin::steps("waits", &["wait", "last"])
        .on("wait", |_| {
            Act::next(Next::Wait {
                event: Some("go".into()),
                message: Some("waiting for go".into()),
            })
        })
        .on("last", |p| {
            Act::go_on().emit("got", p.context["go"].clone())
        });
    let (process, events) = host.create(&plugin, "p", None);
    process.add_listener(Arc::new(|p: &ProcessHandle, e: &Event| {
        if matches!(e, Event::Waiting { .. }) {
            assert!(p.resume(Some(json!(42))));
        }
    }));
    process.start().unwrap();
    let record = ended(&process).await;
    assert_eq!(record.state, ProcessState::Finished, "{:?}", record.error);
    assert_eq!(
        record.outputs,
        json!({"got": 42}),
        "the resume's value went into the context"
    );
    assert_eq!(
        events.names(),
        [
            "running",
            "waiting",
            "running",
            "output_emitted",
            "finished"
        ]
    );
    assert_eq!(
        host.changes_of("p"),
        [
            (Some(ProcessState::Created), ProcessState::Running),
            (Some(ProcessState::Running), ProcessState::Waiting),
            (Some(ProcessState::Waiting), ProcessState::Running),
            (Some(ProcessState::Running), ProcessState::Finished)
        ]
    );
}

fn waiter() -> Plugin {
    Plugin::steps("waits", &["wait", "last"]).on("wait", |_| {
        Act::next(Next::Wait {
            event: None,
            message: None,
        })
    })
}

#[tokio::test]
async fn s08_pause_while_waiting_then_play_then_resume() {
    let host = Fake::memory();
    let (process, _) = host.create(&waiter(), "p", None);
    process.start().unwrap();
    until(&process, |r| r.state == ProcessState::Waiting).await;

    assert!(process.pause(Some("a look")));
    let paused = until(&process, |r| r.paused).await;
    assert_eq!(
        paused.state,
        ProcessState::Waiting,
        "a waiting process pauses at once"
    );
    assert_eq!(paused.status.as_deref(), Some("a look"));

    // Resumed while paused: it stays waiting until played.
    assert!(process.resume(None));
    settle().await;
    assert_eq!(process.state(), ProcessState::Waiting);
    assert!(process.is_paused());
    assert_eq!(host.calls(), ["wait"], "the next step has not run");

    assert!(process.play());
    let record = ended(&process).await;
    assert_eq!(record.state, ProcessState::Finished);
    assert!(!record.paused);
    assert_eq!(host.calls(), ["wait", "last"]);
}

#[tokio::test]
async fn s10_a_pause_asked_for_in_the_final_step_applies_after_it_finishes() {
    let host = Fake::memory();
    // The last step of the outline, and a step that finishes the process.
    for next in [
        Next::Continue,
        Next::Finish {
            status: 0,
            message: None,
        },
    ] {
        let plugin = Plugin::steps("pauses", &["run"]).on("run", move |_| {
            Act::next(next.clone()).pause(None).emit("x", json!(1))
        });
        let (process, events) = host.create(&plugin, "p", None);
        process.start().unwrap();
        let record = ended(&process).await;
        assert_eq!(record.state, ProcessState::Finished);
        assert!(record.paused, "finished and paused, as in plumpy");
        assert_eq!(
            events.names(),
            ["running", "output_emitted", "finished", "paused"]
        );
    }
}

#[tokio::test]
async fn a_pause_asked_for_in_a_step_stops_before_the_next_one() {
    let host = Fake::durable();
    let plugin = Plugin::steps("pauses", &["first", "second"])
        .on("first", |_| Act::go_on().pause(Some("stop here")));
    let (process, events) = host.create(&plugin, "p", None);
    process.start().unwrap();
    let paused = until(&process, |r| r.paused).await;
    assert_eq!(paused.state, ProcessState::Running);
    assert_eq!(paused.status.as_deref(), Some("stop here"));
    settle().await;
    assert_eq!(host.calls(), ["first"]);
    // The step's checkpoint carries the pause it asked for, not yet applied; the pause's own
    // checkpoint has it applied.
    let saved = host.saved();
    let after = saved[0]
        .record
        .after_step
        .as_ref()
        .expect("the step's checkpoint");
    assert_eq!(after.pause, Some(Some("stop here".into())));
    assert!(saved[1].record.paused);
    assert_eq!(saved[1].record.after_step, None);

    assert!(process.play());
    assert_eq!(ended(&process).await.state, ProcessState::Finished);
    assert_eq!(host.calls(), ["first", "second"]);
    assert_eq!(events.names(), ["running", "paused", "played", "finished"]);
}

#[tokio::test]
async fn s11_a_paused_waiting_process_can_be_killed() {
    let host = Fake::memory();
    let (process, _) = host.create(&waiter(), "p", None);
    process.start().unwrap();
    until(&process, |r| r.state == ProcessState::Waiting).await;
    process.pause(None);
    until(&process, |r| r.paused).await;
    assert!(process.kill(Some("enough"), false));
    let record = ended(&process).await;
    assert_eq!(record.state, ProcessState::Killed);
    assert_eq!(record.exit_message.as_deref(), Some("enough"));
}

#[tokio::test]
async fn s12_a_listener_kills_a_waiting_process() {
    let host = Fake::memory();
    let (process, events) = host.create(&waiter(), "p", None);
    process.add_listener(Arc::new(|p: &ProcessHandle, e: &Event| {
        if matches!(e, Event::Waiting { .. }) {
            p.kill(None, false);
        }
    }));
    process.start().unwrap();
    assert_eq!(ended(&process).await.state, ProcessState::Killed);
    assert_eq!(events.names(), ["running", "waiting", "killed"]);
}

#[tokio::test]
async fn s13_a_process_runs_once() {
    let host = Fake::memory();
    let (process, _) = host.create(&Plugin::steps("p", &["run"]), "p", None);
    process.start().unwrap();
    ended(&process).await;
    assert!(matches!(process.start(), Err(Error::Closed { pid }) if pid == "p"));
    assert!(!process.pause(None) && !process.play() && !process.resume(None));
}

#[tokio::test]
async fn s14_an_unsuccessful_exit_finishes_unsuccessfully_with_its_message() {
    let host = Fake::memory();
    let plugin = Plugin::steps("fails", &["run", "never"])
        .exit_code(256, "an unsuccessful result")
        .on("run", |_| {
            Act::next(Next::Finish {
                status: 256,
                message: None,
            })
        });
    let (process, _) = host.create(&plugin, "p", None);
    process.start().unwrap();
    let record = ended(&process).await;
    assert_eq!(record.state, ProcessState::Finished);
    assert_eq!(record.exit_status, Some(256));
    assert_eq!(record.successful(), Some(false));
    assert_eq!(
        record.exit_message.as_deref(),
        Some("an unsuccessful result")
    );
    assert_eq!(host.calls(), ["run"]);
}

#[tokio::test]
async fn a_required_output_never_emitted_finishes_unsuccessfully_naming_it() {
    let host = Fake::memory();
    let plugin = Plugin::steps("forgets", &["run"]).requires_output("result");
    let (process, _) = host.create(&plugin, "p", None);
    process.start().unwrap();
    let record = ended(&process).await;
    assert_eq!(record.state, ProcessState::Finished);
    assert_eq!(record.successful(), Some(false));
    assert_eq!(record.missing_outputs, ["outputs.result"]);
    assert_eq!(
        record.exit_message.as_deref(),
        Some("required output was not emitted: 'outputs.result'")
    );
}

// ---------------------------------------------------------------------------------------------
// Pause, play and kill in each state.

#[tokio::test]
async fn a_process_paused_before_start_does_not_run_until_played() {
    let host = Fake::memory();
    let (process, events) = host.create(&Plugin::steps("p", &["run"]), "p", None);
    assert!(process.pause(None));
    until(&process, |r| r.paused).await;
    process.start().unwrap();
    settle().await;
    assert_eq!(process.state(), ProcessState::Created);
    assert!(host.calls().is_empty());
    assert!(process.play());
    assert_eq!(ended(&process).await.state, ProcessState::Finished);
    assert_eq!(events.names(), ["paused", "played", "running", "finished"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_during_a_step_applies_once_it_returns() {
    let host = Fake::memory();
    let started = Arc::new(tokio::sync::Notify::new());
    let go = started.clone();
    let plugin = Plugin::steps("p", &["slow", "next"]).on("slow", move |_| {
        go.notify_one();
        // Long enough for the pause to arrive while the step runs.
        std::thread::sleep(Duration::from_millis(100));
        Act::go_on()
    });
    let (process, _) = host.create(&plugin, "p", None);
    process.start().unwrap();
    started.notified().await;
    assert!(process.pause(None));
    let paused = until(&process, |r| r.paused).await;
    assert_eq!(paused.state, ProcessState::Running);
    assert_eq!(
        host.calls(),
        ["slow"],
        "the running step completed; the next waits"
    );
    process.play();
    assert_eq!(ended(&process).await.state, ProcessState::Finished);
    assert_eq!(host.calls(), ["slow", "next"]);
}

#[tokio::test]
async fn a_kill_interrupts_a_step_that_computes_forever() {
    let host = Fake::memory();
    let plugin = Plugin::steps("spins", &["spin", "never"]).on("spin", |_| Act::Spin);
    let (process, events) = host.create(&plugin, "p", None);
    process.start().unwrap();
    until(&process, |r| r.state == ProcessState::Running).await;
    settle().await;
    assert!(process.kill(Some("stop spinning"), false));
    let record = ended(&process).await;
    assert_eq!(record.state, ProcessState::Killed);
    assert_eq!(record.exit_message.as_deref(), Some("stop spinning"));
    assert_eq!(events.names(), ["running", "killed"]);
    assert_eq!(host.calls(), ["spin"]);
}

#[tokio::test]
async fn play_and_resume_are_refused_where_they_mean_nothing() {
    let host = Fake::memory();
    let (process, _) = host.create(&waiter(), "p", None);
    assert!(!process.resume(None), "only a waiting process resumes");
    assert!(
        process.play(),
        "playing a process that is not paused does nothing, but it lives"
    );
    process.start().unwrap();
    until(&process, |r| r.state == ProcessState::Waiting).await;
    assert!(process.resume(None));
    assert_eq!(ended(&process).await.state, ProcessState::Finished);
    assert!(!process.play(), "a terminated process is not played");
}

#[tokio::test]
async fn the_status_follows_the_plugin_unless_paused() {
    let host = Fake::memory();
    let plugin = Plugin::steps("p", &["one", "two"])
        .on("one", |_| Act::go_on().status("step one done").pause(None))
        .on("two", |_| Act::go_on().status("step two done"));
    let (process, _) = host.create(&plugin, "p", None);
    process.start().unwrap();
    let paused = until(&process, |r| r.paused).await;
    assert_eq!(paused.status.as_deref(), Some("step one done"));
    process.pause(Some("held by the operator"));
    settle().await;
    process.play();
    let record = ended(&process).await;
    assert_eq!(record.status.as_deref(), Some("step two done"));

    let (waits, _) = host.create(&waiter(), "w", None);
    waits.start().unwrap();
    until(&waits, |r| r.state == ProcessState::Waiting).await;
    waits.pause(Some("held"));
    assert_eq!(
        until(&waits, |r| r.paused).await.status.as_deref(),
        Some("held")
    );
    waits.play();
    let played = until(&waits, |r| !r.paused).await;
    assert_eq!(played.status, None, "the plugin's own status is back");
    waits.kill(None, false);
}

// ---------------------------------------------------------------------------------------------
// Failures.

#[tokio::test]
async fn a_condition_that_fails_excepts_the_process_naming_it() {
    let host = Fake::memory();
    // while_(more)(bump)
    let nodes = [
        Node::Step("bump".into()),
        Node::Sequence(vec![0]),
        Node::While("more".into(), 1),
        Node::Sequence(vec![2]),
    ];
    let plugin = Plugin::with_outline("loops", &nodes, 3);
    let (process, _) = host.create(&plugin, "p", None);
    process.start().unwrap();
    let record = ended(&process).await;
    assert_eq!(record.state, ProcessState::Excepted);
    assert_eq!(
        record.error.as_deref(),
        Some("condition 'more' failed: no condition more")
    );
}

#[tokio::test]
async fn a_loop_runs_while_its_condition_holds() {
    let host = Fake::memory();
    let nodes = [
        Node::Step("bump".into()),
        Node::Sequence(vec![0]),
        Node::While("more".into(), 1),
        Node::Sequence(vec![2]),
    ];
    let plugin = Plugin::with_outline("loops", &nodes, 3)
        .when("more", |p| {
            p.context.get("i").and_then(Value::as_u64).unwrap_or(0) < 3
        })
        .on("bump", |p| {
            let i = p.context.get("i").and_then(Value::as_u64).unwrap_or(0);
            p.context.insert("i".into(), json!(i + 1));
            Act::go_on()
        });
    let (process, _) = host.create(&plugin, "p", None);
    process.start().unwrap();
    let record = ended(&process).await;
    assert_eq!(record.state, ProcessState::Finished);
    assert_eq!(
        record.context["i"], 3,
        "the context a step changed is the process's"
    );
    assert_eq!(
        host.calls(),
        ["more?", "bump", "more?", "bump", "more?", "bump", "more?"]
    );
}

#[tokio::test]
async fn an_output_the_spec_refused_excepts_the_process_after_the_step() {
    let host = Fake::memory();
    let plugin = Plugin::steps("bad", &["run", "never"]).on("run", |_| {
        let mut act = Act::go_on();
        act.effects().refused = Some(crate::ports::ValidationError {
            path: "outputs.x".into(),
            message: "not an int".into(),
        });
        act
    });
    let (process, _) = host.create(&plugin, "p", None);
    process.start().unwrap();
    let record = ended(&process).await;
    assert_eq!(record.state, ProcessState::Excepted);
    let error = record.error.unwrap();
    assert!(
        error.starts_with("step 'run' emitted an invalid output: "),
        "{error}"
    );
    assert!(error.contains("outputs.x"), "{error}");
    assert_eq!(host.calls(), ["run"]);
}

#[tokio::test]
async fn an_output_the_plugins_validator_rejects_excepts_the_process() {
    let host = Fake::memory();
    let mut plugin = Plugin::steps("picky", &["run"]).on("run", |_| {
        let mut act = Act::go_on().emit("x", json!(1));
        act.effects().checks.push(GuestCheck {
            path: "outputs.x".into(),
            value: json!(1),
            origin: None,
        });
        act
    });
    plugin.rejects = Some("outputs.x");
    let (process, _) = host.create(&plugin, "p", None);
    process.start().unwrap();
    let record = ended(&process).await;
    assert_eq!(record.state, ProcessState::Excepted);
    assert!(record.error.unwrap().contains("not acceptable"));
}

#[tokio::test]
async fn a_panicking_task_ends_its_process_excepted_instead_of_hanging() {
    let host = Fake::memory();
    let plugin = Plugin::steps("bug", &["run"]).on("run", |_| Act::Panic);
    let (process, _) = host.create(&plugin, "p", None);
    process.start().unwrap();
    let record = ended(&process).await;
    assert_eq!(record.state, ProcessState::Excepted);
    assert!(record.error.unwrap().contains("the scripted step panics"));
    assert_eq!(host.released.lock().unwrap().as_slice(), ["p"]);
}

// ---------------------------------------------------------------------------------------------
// Children.

fn child(name: &str, act: impl Fn(&mut ProcessView) -> Act + Send + Sync + 'static) -> Plugin {
    Plugin::steps(name, &["run"]).on("run", act)
}

#[tokio::test]
async fn children_are_awaited_into_the_context() {
    let adder = child("adder", |_| Act::go_on().emit("sum", json!(3)));
    let host = Fake::new(Checkpoints::AtChanges, &[adder]);
    let plugin = Plugin::steps("parent", &["launch", "use"])
        .on("launch", |_| {
            Act::go_on()
                .launch("c1", "adder", "first", false)
                .launch("c2", "adder", "second", false)
        })
        .on("use", |p| {
            let a = p.context["first"]["outputs"]["sum"].as_i64().unwrap();
            let b = p.context["second"]["outputs"]["sum"].as_i64().unwrap();
            Act::go_on().emit("total", json!(a + b))
        });
    let (process, _) = host.create(&plugin, "p", None);
    process.start().unwrap();
    let record = ended(&process).await;
    assert_eq!(record.state, ProcessState::Finished, "{:?}", record.error);
    assert_eq!(record.outputs, json!({"total": 6}));
    assert_eq!(record.children, ["c1", "c2"]);
    assert_eq!(
        host.table.get("c1").unwrap().record().parent.as_deref(),
        Some("p")
    );
    // The step that launched them was committed before they were created, with them in it.
    let first = &host.saved()[0].record;
    let after = first
        .after_step
        .as_ref()
        .expect("the launching step's checkpoint");
    assert_eq!(after.launches.len(), 2);
    assert_eq!(first.children, ["c1", "c2"]);
}

#[tokio::test]
async fn a_failed_child_excepts_its_parent_unless_inspected() {
    let failing = child("failing", |_| {
        Act::Fail(Failure::Error("bad child".into()), Effects::default())
    });
    let host = Fake::new(Checkpoints::Off, &[failing]);
    let strict = Plugin::steps("strict", &["launch", "never"]).on("launch", |_| {
        Act::go_on().launch("c", "failing", "c", false)
    });
    let (process, _) = host.create(&strict, "p", None);
    process.start().unwrap();
    let record = ended(&process).await;
    assert_eq!(record.state, ProcessState::Excepted);
    let error = record.error.unwrap();
    assert!(
        error.starts_with("child process c (failing) awaited as 'c' ended EXCEPTED"),
        "{error}"
    );

    let lenient = Plugin::steps("lenient", &["launch", "look"])
        .on("launch", |_| Act::go_on().launch("d", "failing", "c", true))
        .on("look", |p| {
            Act::go_on().emit("child_ok", p.context["c"]["successful"].clone())
        });
    let (process, _) = host.create(&lenient, "q", None);
    process.start().unwrap();
    let record = ended(&process).await;
    assert_eq!(record.state, ProcessState::Finished);
    assert_eq!(record.outputs, json!({"child_ok": false}));
}

#[tokio::test]
async fn a_step_may_await_only_children_it_launched() {
    let host = Fake::memory();
    let plugin = Plugin::steps("p", &["run"]).on("run", |_| Act::Return {
        next: Next::Continue,
        awaits: vec![AwaitChild {
            pid: "stranger".into(),
            key: "k".into(),
            append: false,
            inspect: false,
        }],
        effects: Effects::default(),
    });
    let (process, _) = host.create(&plugin, "p", None);
    process.start().unwrap();
    let record = ended(&process).await;
    assert_eq!(
        record.error.as_deref(),
        Some("step 'run' awaits process 'stranger', which is not a child it launched")
    );
}

#[tokio::test]
async fn killing_a_parent_kills_its_children() {
    let sleeper = child("sleeper", |_| Act::Spin);
    let host = Fake::new(Checkpoints::Off, &[sleeper]);
    let plugin = Plugin::steps("parent", &["launch"]).on("launch", |_| {
        Act::go_on().launch("c", "sleeper", "c", false)
    });
    let (process, _) = host.create(&plugin, "p", None);
    process.start().unwrap();
    until(&process, |r| r.state == ProcessState::Waiting).await;
    process.kill(None, false);
    assert_eq!(ended(&process).await.state, ProcessState::Killed);
    let child = host.table.get("c").unwrap();
    assert_eq!(ended(&child).await.state, ProcessState::Killed);
}

#[tokio::test]
async fn a_restored_parent_attaches_to_its_children_and_launches_none_twice() {
    let adder = child("adder", |_| Act::go_on().emit("sum", json!(3)));
    let host = Fake::new(Checkpoints::AtChanges, std::slice::from_ref(&adder));
    // c1 exists already (its parent died after creating it); c2 does not.
    let (c1, _) = host.create(&adder, "c1", Some("p"));
    c1.start().unwrap();
    ended(&c1).await;
    let plugin = Plugin::steps("parent", &["launch", "use"])
        .on("use", |p| Act::go_on().emit("n", json!(p.context.len())));
    let mut record = ProcessRecord::new(
        "p".into(),
        "parent".into(),
        "digest".into(),
        json!({}),
        None,
        plugin.spec.outline.start(),
        0,
    );
    record.state = ProcessState::Running;
    // As a checkpoint left it: step `launch` done, its children not yet all created.
    assert_eq!(
        plugin.spec.outline.next(&mut record.cursor),
        crate::workchain::Call::Step("launch")
    );
    plugin.spec.outline.step_done(&mut record.cursor);
    record.children = vec!["c1".into(), "c2".into()];
    let launch = |pid: &str| Launch {
        pid: pid.into(),
        plugin: "adder".into(),
        inputs: json!({}),
    };
    let awaits = |pid: &str| AwaitChild {
        pid: pid.into(),
        key: pid.into(),
        append: false,
        inspect: false,
    };
    record.after_step = Some(AfterStep {
        step: "launch".into(),
        launches: vec![launch("c1"), launch("c2")],
        awaiting: vec![awaits("c1"), awaits("c2")],
        then: Next::Continue,
        pause: None,
    });
    let (process, events) = host.spawn(&plugin, record);
    process.start().unwrap();
    let record = ended(&process).await;
    assert_eq!(record.state, ProcessState::Finished, "{:?}", record.error);
    assert_eq!(record.outputs, json!({"n": 2}));
    assert_eq!(
        host.calls(),
        ["run", "run", "use"],
        "c1 ran once, c2 once, then the parent"
    );
    assert_eq!(
        events.names()[0],
        "waiting",
        "a restored process does not start RUNNING again"
    );
}

// ---------------------------------------------------------------------------------------------
// Checkpoints.

#[tokio::test]
async fn a_durable_process_checkpoints_at_each_point() {
    let host = Fake::durable();
    let plugin = Plugin::steps("p", &["first", "wait", "last"]).on("wait", |_| {
        Act::next(Next::Wait {
            event: None,
            message: None,
        })
    });
    let (process, _) = host.create(&plugin, "p", None);
    process.pause(None);
    until(&process, |r| r.paused).await;
    process.start().unwrap();
    process.play();
    until(&process, |r| r.state == ProcessState::Waiting).await;
    process.resume(None);
    ended(&process).await;
    use ProcessState::*;
    assert_eq!(
        host.shapes(),
        [
            (Created, true, true),    // paused before start
            (Created, false, true),   // played
            (Running, false, true),   // after `first`
            (Running, false, true),   // after `wait`, which asks to wait
            (Waiting, false, true),   // waiting
            (Running, false, true),   // resumed
            (Running, false, true),   // after `last`
            (Finished, false, false)  // the end, with no memory image
        ]
    );
    let positions: Vec<String> = host
        .saved()
        .iter()
        .map(|s| s.record.position.clone())
        .collect();
    assert!(positions[2].contains("first"), "{positions:?}");
    assert!(positions[6].contains("last"), "{positions:?}");
}

#[tokio::test]
async fn without_every_step_a_process_checkpoints_only_at_changes() {
    let host = Fake::new(Checkpoints::AtChanges, &[]);
    let (process, _) = host.create(&waiter(), "p", None);
    process.start().unwrap();
    until(&process, |r| r.state == ProcessState::Waiting).await;
    process.resume(None);
    ended(&process).await;
    use ProcessState::*;
    assert_eq!(
        host.shapes(),
        [
            (Waiting, false, true),
            (Running, false, true),
            (Finished, false, false)
        ]
    );
}

#[tokio::test]
async fn a_memory_only_process_saves_nothing_and_refuses_checkpoints() {
    let host = Fake::memory();
    let (process, _) = host.create(&waiter(), "p", None);
    process.start().unwrap();
    until(&process, |r| r.state == ProcessState::Waiting).await;
    assert!(matches!(
        process.checkpoint(Some("t")).await,
        Err(Error::NoStore)
    ));
    process.resume(None);
    ended(&process).await;
    assert!(host.saved().is_empty());
}

#[tokio::test]
async fn a_checkpoint_on_request_is_saved_under_its_tag() {
    let host = Fake::durable();
    let (process, _) = host.create(&waiter(), "p", None);
    process.start().unwrap();
    until(&process, |r| r.state == ProcessState::Waiting).await;
    process.checkpoint(Some("before-resume")).await.unwrap();
    let last = host.saved().pop().unwrap();
    assert_eq!(last.tag.as_deref(), Some("before-resume"));
    assert_eq!(last.shape(), (ProcessState::Waiting, false, true));
    process.kill(None, false);
    ended(&process).await;
    assert!(matches!(
        process.checkpoint(None).await,
        Err(Error::Closed { .. })
    ));
}

#[tokio::test]
async fn a_checkpoint_that_cannot_be_saved_excepts_the_process() {
    let host = Fake::durable();
    host.then(1, SaveBehaviour::Fail);
    let (process, _) = host.create(&Plugin::steps("p", &["one", "two", "three"]), "p", None);
    process.start().unwrap();
    let record = ended(&process).await;
    assert_eq!(record.state, ProcessState::Excepted);
    let error = record.error.unwrap();
    assert!(error.starts_with("cannot save its checkpoint"), "{error}");
    assert_eq!(
        host.calls(),
        ["one", "two"],
        "it stops at the checkpoint that failed"
    );
}

#[tokio::test]
async fn a_process_taken_over_by_another_host_stops_saving_and_announcing() {
    let host = Fake::durable();
    host.then(1, SaveBehaviour::Abandon);
    let (process, events) = host.create(&Plugin::steps("p", &["one", "two", "three"]), "p", None);
    process.start().unwrap();
    let record = ended(&process).await;
    assert_eq!(
        record.state,
        ProcessState::Running,
        "left as it was; the other host goes on"
    );
    assert_eq!(host.saved().len(), 1);
    assert_eq!(events.names(), ["running"], "no end is announced");
    assert_eq!(
        host.ended.lock().unwrap().as_slice(),
        [("p".to_string(), true)]
    );
    assert!(
        host.released.lock().unwrap().is_empty(),
        "its claim is the other host's"
    );
    assert!(host.table.get("p").is_none(), "forgotten here");
}

#[tokio::test]
async fn a_restored_paused_process_stays_where_it_was_until_played() {
    let host = Fake::durable();
    let plugin = Plugin::steps("p", &["one", "two"]).on("one", |_| Act::go_on().status("one done"));
    let (first, _) = host.create(&plugin, "p", None);
    first.start().unwrap();
    ended(&first).await;
    // The checkpoint after `one`, paused there by the operator, as a new host reads it.
    let mut record = host.saved()[0].record.clone();
    record.paused = true;
    record.status = Some("held".into());
    record.after_step = None;
    host.calls.lock().unwrap().clear();
    let (restored, events) = host.spawn(&plugin, record);
    restored.start().unwrap();
    settle().await;
    assert!(host.calls().is_empty(), "nothing runs until played");
    assert_eq!(restored.record().status.as_deref(), Some("held"));
    restored.play();
    let record = ended(&restored).await;
    assert_eq!(record.state, ProcessState::Finished);
    assert_eq!(
        host.calls(),
        ["two"],
        "it went on after the step it had done"
    );
    assert_eq!(events.names(), ["played", "finished"]);
}
