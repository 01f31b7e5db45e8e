//! Processes over a communicator (plumpy's S32, S46, S48, S49), each scenario on the
//! in-process communicator and on a real RabbitMQ (the one `cargo xtask test` starts, at
//! `DAMSON_TEST_AMQP`), where the host and the controller have connections of their own.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use damson::comms::{
    Accepted, Broadcast, BroadcastFilter, CommsError, Communicator, InProcessCommunicator,
    ProcessLauncher, RabbitMqCommunicator, RabbitMqOptions, RemoteProcessController, RpcSubscriber,
    TaskError, TaskSubscriber,
};
use damson::persist::{MemoryPersister, Persister};
use damson::{Host, ProcessState};
use damson_tests::config;
use serde_json::{Value, json};

#[derive(Clone, Copy)]
enum Kind {
    InProcess,
    RabbitMq,
}

/// Run a scenario `async fn name(kind: Kind)` on both communicators.
macro_rules! on_both {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread")]
            async fn in_process() {
                super::$name(super::Kind::InProcess).await
            }

            #[tokio::test(flavor = "multi_thread")]
            async fn on_rabbitmq() {
                super::$name(super::Kind::RabbitMq).await
            }
        }
    };
}

fn amqp_url() -> String {
    std::env::var("DAMSON_TEST_AMQP").expect(
        "DAMSON_TEST_AMQP is not set: run the suite with `cargo xtask test`, which starts \
         RabbitMQ, or point it at a broker the tests may use",
    )
}

/// Two ends of one communicator: the host's and a client's (the same object in process; two
/// connections with topology of their own on RabbitMQ).
async fn ends(kind: Kind) -> (Arc<dyn Communicator>, Arc<dyn Communicator>) {
    match kind {
        Kind::InProcess => {
            let one: Arc<dyn Communicator> = Arc::new(InProcessCommunicator::new());
            (one.clone(), one)
        }
        Kind::RabbitMq => {
            let suffix = uuid_suffix();
            let url = amqp_url();
            let server = RabbitMqCommunicator::connect(&url, RabbitMqOptions::isolated(&suffix))
                .await
                .unwrap();
            let client = RabbitMqCommunicator::connect(&url, RabbitMqOptions::isolated(&suffix))
                .await
                .unwrap();
            (server, client)
        }
    }
}

fn uuid_suffix() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("test-{nanos:x}-{:x}", std::process::id())
}

/// A host with a store, attached to its end of a communicator and serving tasks, and a
/// controller at the other end.
async fn attached(kind: Kind) -> (Host, Arc<dyn Communicator>, RemoteProcessController) {
    let store: Arc<dyn Persister> = Arc::new(MemoryPersister::new());
    let host = Host::with_store(&config(), store).unwrap();
    let (server, client) = ends(kind).await;
    host.attach(server.clone()).await.unwrap();
    server
        .add_task_subscriber(Arc::new(ProcessLauncher::new(host.clone())), None)
        .await
        .unwrap();
    (host, client.clone(), RemoteProcessController::new(client))
}

/// Wait until `seen` holds at least `n` messages (broadcasts arrive on their own time).
async fn until_heard(seen: &Arc<Mutex<Vec<Broadcast>>>, n: usize) {
    for _ in 0..400 {
        if seen.lock().unwrap().len() >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn heard() -> (
    Arc<Mutex<Vec<Broadcast>>>,
    impl Fn(&Broadcast) + Send + Sync,
) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    (seen, move |b: &Broadcast| {
        log.lock().unwrap().push(b.clone())
    })
}

struct Echo;

#[async_trait]
impl RpcSubscriber for Echo {
    async fn call(&self, body: Value) -> Result<Value, String> {
        Ok(json!({"echo": body}))
    }
}

struct Doubler;

#[async_trait]
impl TaskSubscriber for Doubler {
    async fn take(&self, task: Value, _: Accepted) -> Result<Value, TaskError> {
        task.as_i64()
            .map(|n| json!(n * 2))
            .ok_or(TaskError::Rejected)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_to_an_rpc_subscriber_being_removed_are_answered_or_returned() {
    // As when a process ends while requests to it are on their way: each is answered or
    // comes back unroutable, and none is deleted with the queue, unanswered.
    let (server, client) = ends(Kind::RabbitMq).await;
    let id = server
        .add_rpc_subscriber(Arc::new(Echo), Some(format!("leaving-{}", uuid_suffix())))
        .await
        .unwrap();
    let sends: Vec<_> = (0..200)
        .map(|n| {
            let (client, id) = (client.clone(), id.clone());
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_micros(100 * n)).await;
                tokio::time::timeout(Duration::from_secs(10), client.rpc_send(&id, json!(n))).await
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(10)).await;
    server.remove_rpc_subscriber(&id).await.unwrap();
    let (mut answered, mut returned) = (0, 0);
    for send in sends {
        match send.await.unwrap() {
            Ok(Ok(_)) => answered += 1,
            Ok(Err(CommsError::UnroutableRpc(_))) => returned += 1,
            Ok(Err(e)) => panic!("{e}"),
            Err(_) => panic!("a request was neither answered nor returned"),
        }
    }
    assert_eq!(answered + returned, 200);
    assert!(returned > 0, "the later requests found no subscriber");
}

on_both!(s48_rpc_tasks_and_broadcasts_reach_their_subscribers_and_filters_apply);
async fn s48_rpc_tasks_and_broadcasts_reach_their_subscribers_and_filters_apply(kind: Kind) {
    let (comm, client) = ends(kind).await;
    let id = comm
        .add_rpc_subscriber(Arc::new(Echo), Some("echo".into()))
        .await
        .unwrap();
    assert_eq!(id, "echo", "the given identifier is returned");
    assert_eq!(
        client.rpc_send("echo", json!("hi")).await.unwrap(),
        json!({"echo": "hi"})
    );
    assert!(matches!(
        comm.add_rpc_subscriber(Arc::new(Echo), Some("echo".into()))
            .await,
        Err(CommsError::DuplicateSubscriber { .. })
    ));
    comm.remove_rpc_subscriber(&id).await.unwrap();
    assert!(matches!(
        client.rpc_send("echo", json!("hi")).await,
        Err(CommsError::UnroutableRpc(_))
    ));

    let task_id = comm
        .add_task_subscriber(Arc::new(Doubler), None)
        .await
        .unwrap();
    assert!(!task_id.is_empty(), "an identifier is made up");
    assert_eq!(client.task_send(json!(21)).await.unwrap(), json!(42));
    comm.remove_task_subscriber(&task_id).await.unwrap();

    let (all, everything) = heard();
    let (other, only_other) = heard();
    comm.add_broadcast_subscriber(Arc::new(everything), None)
        .await
        .unwrap();
    let filtered = comm
        .add_broadcast_subscriber(
            Arc::new(BroadcastFilter::new(only_other).subject("other")),
            None,
        )
        .await
        .unwrap();
    let message = Broadcast {
        body: json!("present"),
        sender: Some("Martin".into()),
        subject: Some("sup".into()),
        correlation_id: Some(json!(420)),
    };
    client.broadcast_send(message.clone()).await.unwrap();
    until_heard(&all, 1).await;
    assert_eq!(*all.lock().unwrap(), vec![message]);
    assert!(other.lock().unwrap().is_empty(), "filtered out");
    comm.remove_broadcast_subscriber(&filtered).await.unwrap();
}

#[tokio::test]
async fn s48_in_process_a_task_nobody_takes_and_a_closed_communicator_are_errors() {
    let comm = InProcessCommunicator::new();
    comm.add_task_subscriber(Arc::new(Doubler), None)
        .await
        .unwrap();
    assert!(matches!(
        comm.task_send(json!("not a number")).await,
        Err(CommsError::NoTaskSubscriber)
    ));
    comm.close().await;
    assert!(matches!(
        comm.rpc_send("echo", json!(1)).await,
        Err(CommsError::Closed)
    ));
}

on_both!(s32_a_process_broadcasts_its_state_changes_in_order);
async fn s32_a_process_broadcasts_its_state_changes_in_order(kind: Kind) {
    let (host, comm, _) = attached(kind).await;
    let (seen, listener) = heard();
    comm.add_broadcast_subscriber(Arc::new(listener), None)
        .await
        .unwrap();
    let plugin = host.load("lifecycle").await.unwrap();
    let process = host.launch(&plugin, json!({"mode": "ok"})).await.unwrap();
    process.wait().await;
    let expected = [
        "state_changed.None.created",
        "state_changed.created.running",
        "state_changed.running.finished",
    ];
    until_heard(&seen, expected.len()).await;
    let seen = seen.lock().unwrap().clone();
    let subjects: Vec<&str> = seen.iter().filter_map(|b| b.subject.as_deref()).collect();
    assert_eq!(subjects, expected);
    assert!(
        seen.iter()
            .all(|b| b.sender.as_deref() == Some(process.pid()))
    );
    assert!(seen.iter().all(|b| b.body.is_null()));
}

on_both!(s46_a_waiting_process_is_paused_played_asked_and_killed_by_rpc);
async fn s46_a_waiting_process_is_paused_played_asked_and_killed_by_rpc(kind: Kind) {
    let (host, _, controller) = attached(kind).await;
    let plugin = host.load("lifecycle").await.unwrap();
    let process = host.launch(&plugin, json!({"mode": "wait"})).await.unwrap();
    process.wait_for(|r| r.state == ProcessState::Waiting).await;
    let pid = process.pid();

    assert_eq!(
        controller.pause_process(pid, Some("hold")).await.unwrap(),
        json!(true)
    );
    assert!(process.is_paused());
    assert_eq!(controller.play_process(pid).await.unwrap(), json!(true));
    // Answered once it plays, as plumpy answers: a status asked next says so.
    assert!(!process.is_paused());
    assert_eq!(process.state(), ProcessState::Waiting);

    let status = controller.get_status(pid).await.unwrap();
    let keys: Vec<&str> = status
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    for key in ["ctime", "paused", "process_string", "state"] {
        assert!(keys.contains(&key), "plumpy's key '{key}' in {keys:?}");
    }
    assert_eq!(status["state"], "ProcessState.WAITING");
    assert_eq!(status["paused"], false);
    assert!(status["ctime"].as_f64().unwrap() > 1.7e9, "{status}");

    assert_eq!(
        controller
            .kill_process(pid, Some("die"), false)
            .await
            .unwrap(),
        json!(true)
    );
    assert_eq!(process.state(), ProcessState::Killed);
    // A terminated process answers no more.
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(controller.get_status(pid).await.is_err());
}

on_both!(s46_playing_a_process_that_never_ran_leaves_it_created);
async fn s46_playing_a_process_that_never_ran_leaves_it_created(kind: Kind) {
    let (host, _, controller) = attached(kind).await;
    let plugin = host.load("lifecycle").await.unwrap();
    let process = host.create(&plugin, json!({"mode": "wait"})).await.unwrap();
    assert_eq!(
        controller.play_process(process.pid()).await.unwrap(),
        json!(true)
    );
    assert_eq!(process.state(), ProcessState::Created);
}

on_both!(the_all_variants_pause_play_and_kill_every_process_of_the_host);
async fn the_all_variants_pause_play_and_kill_every_process_of_the_host(kind: Kind) {
    let (host, _, controller) = attached(kind).await;
    let plugin = host.load("lifecycle").await.unwrap();
    let mut processes = Vec::new();
    for _ in 0..3 {
        let p = host.launch(&plugin, json!({"mode": "wait"})).await.unwrap();
        p.wait_for(|r| r.state == ProcessState::Waiting).await;
        processes.push(p);
    }
    controller.pause_all(Some("everyone")).await.unwrap();
    for p in &processes {
        let r = p.wait_for(|r| r.paused).await;
        assert_eq!(r.status.as_deref(), Some("everyone"));
    }
    controller.play_all().await.unwrap();
    for p in &processes {
        p.wait_for(|r| !r.paused).await;
    }
    controller.kill_all(Some("closing"), false).await.unwrap();
    for p in &processes {
        assert_eq!(p.wait().await.state, ProcessState::Killed);
    }
}

on_both!(s49_the_launcher_launches_creates_and_continues_processes);
async fn s49_the_launcher_launches_creates_and_continues_processes(kind: Kind) {
    let (host, _, controller) = attached(kind).await;
    // launch: the outputs once it has finished, or its pid with nowait.
    assert_eq!(
        controller
            .launch_process("lifecycle", json!({"mode": "ok"}), false, false)
            .await
            .unwrap(),
        json!({"default": 5})
    );
    let pid = controller
        .launch_process("lifecycle", json!({"mode": "ok"}), false, true)
        .await
        .unwrap();
    assert!(uuid_like(&pid), "{pid}");

    // execute: create (persisted) then continue.
    assert_eq!(
        controller
            .execute_process("lifecycle", json!({"mode": "ok"}), false)
            .await
            .unwrap(),
        json!({"default": 5})
    );
    assert!(uuid_like(
        &controller
            .execute_process("lifecycle", json!({"mode": "ok"}), true)
            .await
            .unwrap()
    ));

    // Ten concurrent launches, ten pids.
    let launches = (0..10).map(|_| {
        let controller = controller.clone();
        tokio::spawn(async move {
            controller
                .launch_process("add", json!({"x": 1, "y": 2}), false, true)
                .await
                .unwrap()
        })
    });
    let mut pids = Vec::new();
    for launch in launches {
        pids.push(launch.await.unwrap());
    }
    pids.sort_by_key(|p| p.to_string());
    pids.dedup();
    assert_eq!(pids.len(), 10);
    assert!(pids.iter().all(uuid_like));

    // Continue a checkpointed process that never ran: its outputs.
    let plugin = host.load("add").await.unwrap();
    let created = host.create(&plugin, json!({"x": 2, "y": 3})).await.unwrap();
    assert_eq!(
        controller
            .continue_process(created.pid(), None, false)
            .await
            .unwrap(),
        json!({"sum": 5})
    );

    // A failing process is reported with its error.
    let failed = controller
        .launch_process("lifecycle", json!({"mode": "raise"}), false, false)
        .await
        .unwrap_err();
    assert!(
        failed.to_string().contains("exception during run"),
        "{failed}"
    );
}

fn uuid_like(value: &Value) -> bool {
    value
        .as_str()
        .is_some_and(|s| s.len() == 36 && s.matches('-').count() == 4)
}

/// A launch task delivered again (its acknowledgement lost with a connection or a worker) —
/// to the same host, or to another one sharing the store after the first died — continues the
/// process the first delivery created: one process, finished once.
#[tokio::test(flavor = "multi_thread")]
async fn a_launch_task_delivered_again_continues_the_process_of_its_first_delivery() {
    let store: Arc<dyn Persister> = Arc::new(MemoryPersister::new());
    let task = json!({"task": "launch", "args": {
        "process_class": "hailstone",
        "init_kwargs": {"inputs": {"n": 7, "delay_ms": 20}},
        "persist": true,
        "nowait": true,
    }});
    let delivery = || Accepted::new(Some("task-1".into())).0;

    let first_task = task.clone();
    let pid = damson_tests::on_a_host_that_stops(config(), store.clone(), async move |first| {
        let launcher = ProcessLauncher::new(first.clone());
        let pid = launcher.take(first_task.clone(), delivery()).await.unwrap();
        let again = launcher.take(first_task, delivery()).await.unwrap();
        assert_eq!(again, pid, "the same host: the same process");
        let pid = pid.as_str().unwrap().to_string();
        first.process(&pid).unwrap().pause(None);
        first.process(&pid).unwrap().wait_for(|r| r.paused).await;
        pid
    });

    let second = Host::with_store(&config(), store.clone()).unwrap();
    let launcher = ProcessLauncher::new(second.clone());
    let again = launcher.take(task.clone(), delivery()).await.unwrap();
    assert_eq!(
        again,
        json!(pid),
        "another host: the same process, from its checkpoint"
    );
    let process = second.process(&pid).unwrap();
    process.play();
    let record = process.wait().await;
    assert_eq!(record.state, ProcessState::Finished);
    assert_eq!(record.outputs["steps"], 16);
    assert_eq!(store.list().await.unwrap().len(), 1, "one process, not two");

    // A task of another name is another process.
    let other = launcher
        .take(task, Accepted::new(Some("task-2".into())).0)
        .await
        .unwrap();
    assert_ne!(other, json!(pid));
}

/// A launch task delivered again to another host while the host of its first delivery still
/// runs (and claims) the process: the second host does not run it too; it answers with the pid,
/// or says where the process runs when the sender waits for the outputs.
#[tokio::test(flavor = "multi_thread")]
async fn a_launch_task_delivered_again_elsewhere_leaves_the_process_to_its_host() {
    let store: Arc<dyn Persister> = Arc::new(MemoryPersister::new());
    let mut claiming = config();
    claiming.claim_processes(Duration::from_secs(30));
    let first = Host::with_store(&claiming, store.clone()).unwrap();
    let second = Host::with_store(&claiming, store.clone()).unwrap();
    let launch = |nowait: bool| {
        json!({"task": "launch", "args": {
            "process_class": "lifecycle",
            "init_kwargs": {"inputs": {"mode": "wait"}},
            "persist": true,
            "nowait": nowait,
        }})
    };
    let delivery = || Accepted::new(Some("task-elsewhere".into())).0;

    let pid = ProcessLauncher::new(first.clone())
        .take(launch(true), delivery())
        .await
        .unwrap();
    let other = ProcessLauncher::new(second.clone());
    assert_eq!(other.take(launch(true), delivery()).await.unwrap(), pid);
    let waited = other.take(launch(false), delivery()).await.unwrap_err();
    assert!(
        waited.to_string().contains("runs on another host"),
        "{waited}"
    );
    let pid = pid.as_str().unwrap();
    assert!(
        second.process(pid).is_none(),
        "the second host runs nothing"
    );
    assert_eq!(store.list().await.unwrap().len(), 1);
    let process = first.process(pid).unwrap();
    process.kill(None, false);
    assert_eq!(process.wait().await.state, ProcessState::Killed);
}
