//! plumpy's process-state and work-chain scenarios (S01–S14, S31, S39–S45 of
//! `shared/conformance/plumpy-scenarios.md`), on real plugins. Where plumpy's test relies on
//! Python mechanics (a step calling `self.pause()`), the same observable behaviour is driven from
//! a listener or a handle, and the test says so.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use damson::{Error, Event, Host, ProcessHandle, ProcessState};
use damson_tests::{config, damson, host};
use serde_json::{Value, json};

/// A listener that records event names.
fn recorder() -> (
    Arc<Mutex<Vec<&'static str>>>,
    Arc<dyn damson::ProcessListener>,
) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let listener = move |_: &ProcessHandle, e: &Event| log.lock().unwrap().push(e.name());
    (seen, Arc::new(listener))
}

fn names(seen: &Arc<Mutex<Vec<&'static str>>>) -> Vec<&'static str> {
    seen.lock().unwrap().clone()
}

async fn create(plugin: &str, inputs: Value) -> ProcessHandle {
    let plugin = host().load(plugin).await.unwrap();
    host().create(&plugin, inputs).await.unwrap()
}

/// A created `lifecycle` process with a recorder listening to it.
async fn watched(inputs: Value) -> (ProcessHandle, Arc<Mutex<Vec<&'static str>>>) {
    let process = create("lifecycle", inputs).await;
    let (seen, listener) = recorder();
    process.add_listener(listener);
    (process, seen)
}

async fn launch(plugin: &str, inputs: Value) -> ProcessHandle {
    let process = create(plugin, inputs).await;
    process.start().unwrap();
    process
}

#[tokio::test(flavor = "multi_thread")]
async fn s01_a_trivial_run_emits_one_output() {
    let record = launch("lifecycle", json!({"mode": "ok"}))
        .await
        .wait()
        .await;
    assert_eq!(record.state, ProcessState::Finished);
    assert!(record.state.is_terminal());
    assert_eq!(record.outputs, json!({"default": 5}));
}

#[tokio::test(flavor = "multi_thread")]
async fn s02_an_error_in_a_step_excepts_the_process() {
    let record = launch("lifecycle", json!({"mode": "raise"}))
        .await
        .wait()
        .await;
    assert_eq!(record.state, ProcessState::Excepted);
    assert_eq!(
        record.error.as_deref(),
        Some("step 'run' failed: exception during run")
    );
    assert_eq!(record.successful(), Some(false));
}

#[tokio::test(flavor = "multi_thread")]
async fn s04_a_kill_returned_from_a_step_kills() {
    let record = launch("lifecycle", json!({"mode": "kill"}))
        .await
        .wait()
        .await;
    assert_eq!(record.state, ProcessState::Killed);
    assert_eq!(record.exit_message.as_deref(), Some("killed"));
}

#[tokio::test(flavor = "multi_thread")]
async fn s06_kill_outside_a_step_is_idempotent_and_refused_once_finished() {
    let (process, seen) = watched(json!({})).await;
    assert!(process.kill(Some("Farewell!"), false));
    let record = process.wait().await;
    assert_eq!(record.state, ProcessState::Killed);
    assert_eq!(record.exit_message.as_deref(), Some("Farewell!"));
    assert!(process.kill(Some("again"), false), "kill is idempotent");
    assert_eq!(names(&seen), ["killed"], "listeners only hear killed");

    let finished = launch("lifecycle", json!({})).await;
    finished.wait().await;
    assert!(!finished.kill(None, false));
    assert_eq!(finished.state(), ProcessState::Finished);
}

#[tokio::test(flavor = "multi_thread")]
async fn s07_a_waiting_process_is_resumed_by_a_listener() {
    let (process, seen) = watched(json!({"mode": "wait"})).await;
    process.add_listener(Arc::new(|p: &ProcessHandle, e: &Event| {
        if matches!(e, Event::Waiting { .. }) {
            assert!(p.resume(Some(json!("hello"))));
        }
    }));
    process.start().unwrap();
    let record = process.wait().await;
    assert_eq!(record.state, ProcessState::Finished);
    assert_eq!(
        record.outputs,
        json!({"finished": true, "resumed_with": "hello"})
    );
    assert_eq!(
        names(&seen),
        [
            "running",
            "waiting",
            "running",
            "output_emitted",
            "output_emitted",
            "finished"
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn s08_pause_while_waiting_then_play_then_resume() {
    let process = launch("lifecycle", json!({"mode": "wait"})).await;
    process.wait_for(|r| r.state == ProcessState::Waiting).await;
    assert!(process.pause(Some("hold on")));
    let paused = process.wait_for(|r| r.paused).await;
    assert_eq!(paused.state, ProcessState::Waiting);
    assert_eq!(
        paused.status.as_deref(),
        Some("hold on"),
        "the pause message replaces the status"
    );
    assert!(process.play());
    let played = process.wait_for(|r| !r.paused).await;
    assert_eq!(
        played.status.as_deref(),
        Some("waiting to be resumed"),
        "play restores it"
    );
    assert!(process.resume(None));
    assert_eq!(process.wait().await.state, ProcessState::Finished);

    // Variant: a resume while paused waits for play.
    let process = launch("lifecycle", json!({"mode": "wait"})).await;
    process.wait_for(|r| r.state == ProcessState::Waiting).await;
    process.pause(None);
    process.wait_for(|r| r.paused).await;
    assert!(process.resume(None));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        (process.state(), process.is_paused()),
        (ProcessState::Waiting, true)
    );
    process.play();
    assert_eq!(process.wait().await.state, ProcessState::Finished);
}

#[tokio::test(flavor = "multi_thread")]
async fn s10_a_pause_requested_during_the_final_step_applies_after_it_finishes() {
    // plumpy's step calls self.pause(); here a listener asks for the pause on the output the
    // final step emitted, before the step's result is applied.
    let (process, seen) = watched(json!({"mode": "ok"})).await;
    process.add_listener(Arc::new(|p: &ProcessHandle, e: &Event| {
        if matches!(e, Event::OutputEmitted { .. }) {
            p.pause(None);
        }
    }));
    process.start().unwrap();
    let record = process.wait().await;
    assert_eq!(
        (record.state, record.paused),
        (ProcessState::Finished, true)
    );
    assert_eq!(
        names(&seen),
        ["running", "output_emitted", "finished", "paused"]
    );

    // (b) pause then play within the step: the pause is cancelled.
    let process = create("lifecycle", json!({"mode": "ok"})).await;
    process.add_listener(Arc::new(|p: &ProcessHandle, e: &Event| {
        if matches!(e, Event::OutputEmitted { .. }) {
            p.pause(None);
            assert!(p.play());
        }
    }));
    process.start().unwrap();
    let record = process.wait().await;
    assert_eq!(
        (record.state, record.paused),
        (ProcessState::Finished, false)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn s10_a_step_that_pauses_its_process_as_it_finishes_leaves_it_finished_and_paused() {
    let (process, seen) = watched(json!({"mode": "pause"})).await;
    process.start().unwrap();
    let record = process.wait().await;
    assert_eq!(
        (record.state, record.paused),
        (ProcessState::Finished, true)
    );
    assert_eq!(
        names(&seen),
        ["running", "output_emitted", "finished", "paused"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn s44_a_pause_inside_an_if_block_stops_between_its_steps() {
    // The checkpoint half of plumpy's S44 comes with durable processes; this is the pause half.
    let process = launch("ifblock", json!({})).await;
    let paused = process.wait_for(|r| r.paused).await;
    assert_eq!(paused.state, ProcessState::Running);
    assert_eq!(paused.context.get("s1"), Some(&json!(true)));
    assert_eq!(paused.context.get("s2"), None);
    // At rest it names what runs next, as plumpy's stepper does.
    assert_eq!(paused.position, "0:if_(yes)(1:step2)");
    assert_eq!(paused.status.as_deref(), Some("paused in step1"));
    process.play();
    let record = process.wait().await;
    assert_eq!(record.successful(), Some(true));
    assert_eq!(record.outputs, json!({"s2_ran": true}));
    assert_eq!(record.context.get("s2"), Some(&json!(true)));
}

#[tokio::test(flavor = "multi_thread")]
async fn s11_a_paused_process_can_be_killed() {
    let process = launch("lifecycle", json!({"mode": "wait"})).await;
    process.wait_for(|r| r.state == ProcessState::Waiting).await;
    process.pause(None);
    process.wait_for(|r| r.paused).await;
    assert!(process.kill(Some("bye"), false));
    assert_eq!(process.wait().await.state, ProcessState::Killed);

    // (b) pause then kill as the step starts.
    let process = create("lifecycle", json!({"mode": "wait"})).await;
    process.add_listener(Arc::new(|p: &ProcessHandle, e: &Event| {
        if matches!(e, Event::Running) {
            p.pause(None);
            p.kill(None, false);
        }
    }));
    process.start().unwrap();
    assert_eq!(process.wait().await.state, ProcessState::Killed);
}

#[tokio::test(flavor = "multi_thread")]
async fn s12_a_listener_kills_a_waiting_process() {
    let process = create("lifecycle", json!({"mode": "wait"})).await;
    process.add_listener(Arc::new(|p: &ProcessHandle, e: &Event| {
        if matches!(e, Event::Waiting { .. }) {
            p.kill(Some("no more waiting"), false);
        }
    }));
    process.start().unwrap();
    let record = process.wait().await;
    assert_eq!(record.state, ProcessState::Killed);
    assert_eq!(record.exit_message.as_deref(), Some("no more waiting"));
}

#[tokio::test(flavor = "multi_thread")]
async fn s13_a_process_runs_once() {
    let process = launch("lifecycle", json!({})).await;
    process.wait().await;
    assert!(matches!(process.start(), Err(Error::Closed { .. })));
}

#[tokio::test(flavor = "multi_thread")]
async fn s14_an_unsuccessful_result_finishes_unsuccessfully() {
    let record = launch("lifecycle", json!({"mode": "unsuccessful"}))
        .await
        .wait()
        .await;
    assert_eq!(record.state, ProcessState::Finished);
    assert_eq!(record.exit_status, Some(256));
    assert_eq!(record.successful(), Some(false));
    assert_eq!(
        record.exit_message.as_deref(),
        Some("an unsuccessful result")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn s31_each_path_fires_plumpys_event_set() {
    use std::collections::BTreeSet;
    let set =
        |seen: &Arc<Mutex<Vec<&'static str>>>| names(seen).into_iter().collect::<BTreeSet<_>>();

    let (process, seen) = watched(json!({"mode": "ok"})).await;
    process.start().unwrap();
    process.wait().await;
    assert_eq!(
        set(&seen),
        BTreeSet::from(["running", "output_emitted", "finished"])
    );

    let (process, seen) = watched(json!({})).await;
    process.kill(None, false);
    process.wait().await;
    assert_eq!(set(&seen), BTreeSet::from(["killed"]));

    let (process, seen) = watched(json!({"mode": "raise"})).await;
    process.start().unwrap();
    process.wait().await;
    assert_eq!(
        set(&seen),
        BTreeSet::from(["running", "output_emitted", "excepted"])
    );

    let (process, seen) = watched(json!({})).await;
    assert!(process.pause(None));
    process.wait_for(|r| r.paused).await;
    // Listeners hear of a change just after it is visible in the record.
    for _ in 0..500 {
        if !names(&seen).is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(set(&seen), BTreeSet::from(["paused"]));
    assert_eq!(process.state(), ProcessState::Created);
    process.kill(None, false);
}

#[tokio::test(flavor = "multi_thread")]
async fn s31_a_failing_listener_does_not_break_the_process() {
    let process = create("lifecycle", json!({"mode": "ok"})).await;
    process.add_listener(Arc::new(|_: &ProcessHandle, _: &Event| {
        panic!("a broken listener")
    }));
    process.start().unwrap();
    let record = process.wait().await;
    assert_eq!(record.successful(), Some(true));
}

#[tokio::test(flavor = "multi_thread")]
async fn s39_if_elif_else_and_while_run_the_right_steps() {
    for (value, branch) in [("A", "s2"), ("B", "s3"), ("C", "s4")] {
        let record = launch("workchain", json!({"value": value, "n": 3}))
            .await
            .wait()
            .await;
        assert_eq!(record.successful(), Some(true), "{record:?}");
        assert_eq!(
            record.outputs["trace"],
            json!(["s1", branch, "s5", "s6", "s6", "s6"])
        );
        assert_eq!(record.outputs["counter"], 3);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn s41_return_in_the_outline_and_exit_codes_from_steps() {
    let run = |inputs: Value| async move { launch("returns", inputs).await.wait().await };
    let record = run(json!({"success": true})).await;
    assert_eq!(
        (record.state, record.exit_status),
        (ProcessState::Finished, Some(0))
    );
    // Unlike plumpy, a non-zero exit status is not successful (as in AiiDA).
    let record = run(json!({"success": false})).await;
    assert_eq!(
        (record.exit_status, record.successful()),
        (Some(1), Some(false))
    );
    let record = run(json!({})).await;
    assert_eq!(record.state, ProcessState::Excepted);
    assert!(
        record
            .error
            .unwrap()
            .contains("the default branch was reached")
    );
    // A step ending with an exit code ends the outline at once: `default` would raise.
    for status in [0, 1] {
        let record = run(json!({"step_exit": status})).await;
        assert_eq!(
            (record.state, record.exit_status),
            (ProcessState::Finished, Some(status))
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn s42_children_are_awaited_into_the_context() {
    let record = launch("parent", json!({"mode": "pair"})).await.wait().await;
    assert_eq!(record.successful(), Some(true), "{record:?}");
    // r1 first held the child 1 + 1; after `reassign` awaited another child into r1, both
    // keys hold 2 + 2.
    assert_eq!(record.outputs, json!({"r1": 2, "r2": 4, "total": 4}));
    assert_eq!(record.children.len(), 3);
    assert_eq!(record.context["r2"]["plugin"], "add");
    assert_eq!(record.context["r2"]["state"], "FINISHED");
}

#[tokio::test(flavor = "multi_thread")]
async fn s43_a_failed_child_excepts_its_parent_unless_inspected() {
    let record = launch("parent", json!({"mode": "fail"})).await.wait().await;
    assert_eq!(record.state, ProcessState::Excepted);
    let error = record.error.unwrap();
    assert!(
        error.starts_with(&format!("child process {} (fail)", record.children[0])),
        "{error}"
    );
    assert!(error.contains("the fail plugin always panics"), "{error}");

    let record = launch("parent", json!({"mode": "inspect"}))
        .await
        .wait()
        .await;
    assert_eq!(record.successful(), Some(true), "{record:?}");
    assert_eq!(record.outputs["inspected"], "EXCEPTED");
}

#[tokio::test(flavor = "multi_thread")]
async fn children_launched_by_the_last_step_are_awaited() {
    let record = launch("parent", json!({"mode": "last", "count": 3}))
        .await
        .wait()
        .await;
    assert_eq!(record.state, ProcessState::Finished);
    let late = record.context["late"].as_array().unwrap();
    assert_eq!(late.len(), 3);
    assert!(late.iter().all(|c| c["state"] == "FINISHED"));
}

#[tokio::test(flavor = "multi_thread")]
async fn s45_malformed_outlines_are_refused() {
    // An else_ after an else_ is refused while the plugin declares its outline. (A predicate
    // that is not a boolean cannot be written: the WIT world's conditions return `bool`.)
    let Err(Error::Declare { source, .. }) = host().load("baddecl").await else {
        panic!("baddecl loaded");
    };
    let message = source.to_string();
    assert!(
        message.contains("else_ must be the last branch"),
        "refused for its outline: {message}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn two_hundred_children_in_one_step_are_all_collected() {
    let record = launch("parent", json!({"count": 200})).await.wait().await;
    assert_eq!(record.successful(), Some(true), "{record:?}");
    assert_eq!(record.outputs, json!({"total": 39800, "children": 200}));
    assert_eq!(record.context["results"].as_array().unwrap().len(), 200);

    let out = damson()
        .args(["run", "parent", "-i", "count=200", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let tree: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(tree["children"].as_array().unwrap().len(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_kill_stops_a_step_that_loops_forever_within_a_second() {
    let process = launch("spin", json!({})).await;
    process.wait_for(|r| r.state == ProcessState::Running).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let asked = Instant::now();
    assert!(process.kill(Some("stop spinning"), false));
    let record = process.wait().await;
    let took = asked.elapsed();
    assert_eq!(record.state, ProcessState::Killed);
    assert_eq!(record.exit_message.as_deref(), Some("stop spinning"));
    assert!(took < Duration::from_secs(1), "took {took:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_thousand_processes_run_at_once_in_one_host() {
    let add = host().load("add").await.unwrap();
    let mut processes = Vec::new();
    for i in 0..1000 {
        processes.push(host().launch(&add, json!({"x": i, "y": 1})).await.unwrap());
    }
    for (i, process) in processes.iter().enumerate() {
        let record = process.wait().await;
        assert_eq!(record.outputs["sum"], i + 1);
    }
}

/// A full instance pool makes a new process wait for a slot, not fail: in a host without a
/// store a waiting process keeps its instance, and its slot is freed when it ends.
#[tokio::test(flavor = "multi_thread")]
async fn a_full_instance_pool_makes_a_new_process_wait_for_a_slot() {
    let mut config = config();
    config.instance_pool(1);
    let host = Host::new(&config).unwrap();
    let lifecycle = host.load("lifecycle").await.unwrap();
    let add = host.load("add").await.unwrap();
    let first = host
        .launch(&lifecycle, json!({"mode": "wait"}))
        .await
        .unwrap();
    tokio::time::timeout(
        Duration::from_secs(20),
        first.wait_for(|r| r.state == ProcessState::Waiting),
    )
    .await
    .expect("first waits");

    let second = tokio::spawn({
        let host = host.clone();
        async move {
            let process = host.launch(&add, json!({"x": 1, "y": 2})).await.unwrap();
            process.wait().await
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !second.is_finished(),
        "the second process runs only once the first gives its slot back"
    );
    assert!(first.resume(None));
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(20), first.wait())
            .await
            .expect("first ends")
            .state,
        ProcessState::Finished
    );
    let second = tokio::time::timeout(Duration::from_secs(30), second)
        .await
        .expect("the freed slot is taken")
        .unwrap();
    assert_eq!(second.outputs["sum"], 3);
}

/// A pool whose memories would reserve more address space than there is fails to start, with
/// an error that names the two settings to lower.
#[test]
fn an_instance_pool_too_large_to_reserve_is_an_error_naming_its_settings() {
    let mut config = config();
    // 100,000 instances × 2 memories × 1 TiB = 200 PiB: more than even a 57-bit address space.
    config.instance_pool(100_000).max_memory(1 << 40);
    let error = Host::new(&config)
        .err()
        .expect("the pool cannot be reserved");
    assert!(
        matches!(
            error,
            Error::InstancePool {
                instances: 100_000,
                ..
            }
        ),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.contains("--instance-pool"), "{message}");
    assert!(message.contains("--max-memory"), "{message}");
}

/// With the pool off, each instance maps its own memory, and processes run as before.
#[tokio::test(flavor = "multi_thread")]
async fn with_the_instance_pool_off_processes_still_run() {
    let mut config = config();
    config.instance_pool(0);
    let host = Host::new(&config).unwrap();
    let add = host.load("add").await.unwrap();
    let mut processes = Vec::new();
    for i in 0..20 {
        processes.push(host.launch(&add, json!({"x": i, "y": 1})).await.unwrap());
    }
    for (i, process) in processes.iter().enumerate() {
        assert_eq!(process.wait().await.outputs["sum"], i + 1);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_limit_of_one_step_at_a_time_still_runs_everything() {
    let mut config = config();
    config.max_concurrent_steps(1);
    let host = Host::new(&config).unwrap();
    let collatz = host.load("collatz").await.unwrap();
    let mut processes = Vec::new();
    for n in 1..=20 {
        processes.push(host.launch(&collatz, json!({"n": n})).await.unwrap());
    }
    for process in processes {
        assert_eq!(process.wait().await.successful(), Some(true));
    }
}

/// A host forgets the processes that have ended once nobody holds them, so a host that runs
/// processes for ever does not keep them all; a parent's handle keeps its tree, children
/// included, for as long as it is held.
#[tokio::test(flavor = "multi_thread")]
async fn ended_processes_leave_the_host_once_nobody_holds_them_and_a_parent_keeps_its_tree() {
    let host = Host::new(&config()).unwrap();
    let add = host.load("add").await.unwrap();
    let mut pids = Vec::new();
    for i in 0..3000 {
        let process = host.launch(&add, json!({"x": i, "y": 1})).await.unwrap();
        assert_eq!(process.wait().await.outputs["sum"], i + 1);
        pids.push(process.pid().to_string());
    }
    // (Each task lets go of its process a moment after the process has ended.)
    let started = Instant::now();
    while pids.iter().any(|pid| host.process(pid).is_some()) {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "no ended process is kept once its handle is dropped"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let held = host.launch(&add, json!({"x": 1, "y": 1})).await.unwrap();
    held.wait().await;
    assert!(host.process(held.pid()).is_some(), "held, so still found");

    let parent = host.load("parent").await.unwrap();
    let parent = host.launch(&parent, json!({"mode": "pair"})).await.unwrap();
    let record = parent.wait().await;
    assert_eq!(record.state, ProcessState::Finished, "{record:?}");
    assert_eq!(record.children.len(), 3, "{record:?}");
    for child in &record.children {
        let child = host
            .process(child)
            .expect("the parent's handle keeps its children");
        assert_eq!(child.state(), ProcessState::Finished);
    }
    let children = record.children.clone();
    drop(parent);
    let started = Instant::now();
    while children.iter().any(|pid| host.process(pid).is_some()) {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the tree goes with its top"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
