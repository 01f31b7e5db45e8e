//! Dehydrated waiting processes (issue 15): a durable process that waits leaves memory — no
//! task, no instance — and comes back from its checkpoint and memory image, on the same handle,
//! when it is resumed, paused, played or killed; a host that restarts continues it as any other.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use damson::persist::{CheckpointKey, EmbeddedPersister, Persister, load_checked};
use damson::{Host, ProcessHandle, ProcessRecord, ProcessState};
use damson_tests::config;
use serde_json::json;

fn embedded(dir: &Path) -> Arc<dyn Persister> {
    Arc::new(EmbeddedPersister::open(dir.join("store.redb")).unwrap())
}

/// Launch `lifecycle` in mode `remember` (it keeps a string in its own memory, then waits) and
/// return it once it has left memory.
async fn dehydrated(host: &Host) -> ProcessHandle {
    let plugin = host.load("lifecycle").await.unwrap();
    let process = host
        .launch(&plugin, json!({"mode": "remember"}))
        .await
        .unwrap();
    process.wait_for(|r| r.state == ProcessState::Waiting).await;
    tokio::time::timeout(Duration::from_secs(10), async {
        while !process.is_dehydrated() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the waiting process leaves memory");
    process
}

async fn stored(store: &Arc<dyn Persister>, pid: &str) -> ProcessRecord {
    load_checked::<ProcessRecord>(&**store, &CheckpointKey::new(pid))
        .await
        .unwrap()
        .unwrap()
        .record
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dehydrated_process_comes_back_with_its_own_memory_when_resumed() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::with_store(&config(), embedded(dir.path())).unwrap();
    let process = dehydrated(&host).await;
    assert_eq!(process.state(), ProcessState::Waiting);

    assert!(process.resume(Some(json!("hello"))));
    let record = process.wait().await;
    assert_eq!(record.state, ProcessState::Finished, "{record:?}");
    assert_eq!(
        record.outputs,
        json!({
            "finished": true,
            "resumed_with": "hello",
            "remembered": format!("kept in memory by {}", process.pid()),
        }),
        "the string the plugin kept in a struct field came back with its memory image"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dehydrated_process_nobody_holds_comes_back_by_its_pid() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::with_store(&config(), embedded(dir.path())).unwrap();
    let pid = dehydrated(&host).await.pid().to_string();
    // Nobody holds its handle now: the host keeps its record, and makes a handle when asked.
    let process = host.process(&pid).expect("the host has it");
    assert!(process.is_dehydrated());
    assert_eq!(
        process.record().status.as_deref(),
        Some("waiting to be resumed")
    );
    drop(process);
    let process = host.process(&pid).expect("made again from its record");
    assert!(process.resume(Some(json!(7))));
    let record = process.wait().await;
    assert_eq!(record.state, ProcessState::Finished, "{record:?}");
    assert_eq!(record.outputs["resumed_with"], 7);
    assert_eq!(
        record.outputs["remembered"],
        format!("kept in memory by {pid}")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dehydrated_process_is_paused_played_and_killed_through_its_handle() {
    let dir = tempfile::tempdir().unwrap();
    let store = embedded(dir.path());
    let host = Host::with_store(&config(), store.clone()).unwrap();
    let process = dehydrated(&host).await;
    let pid = process.pid().to_string();

    assert!(process.pause(Some("a look")));
    process.wait_for(|r| r.paused).await;
    assert!(
        stored(&store, &pid).await.paused,
        "the pause is checkpointed"
    );
    assert!(process.play());
    process.wait_for(|r| !r.paused).await;
    assert_eq!(process.state(), ProcessState::Waiting);

    assert!(host.process(&pid).unwrap().kill(Some("not needed"), false));
    let record = process.wait().await;
    assert_eq!(record.state, ProcessState::Killed);
    assert_eq!(record.exit_message.as_deref(), Some("not needed"));
    assert_eq!(stored(&store, &pid).await.state, ProcessState::Killed);
}

#[test]
fn a_dehydrated_process_is_continued_by_a_host_that_starts_again() {
    let dir = tempfile::tempdir().unwrap();
    let store = embedded(dir.path());
    let pid = damson_tests::on_a_host_that_stops(config(), store.clone(), async |host| {
        dehydrated(&host).await.pid().to_string()
    });
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let host = Host::with_store(&config(), store).unwrap();
        let recovered = host.recover().await.unwrap();
        let process = recovered
            .resumed
            .iter()
            .find(|p| p.pid() == pid)
            .expect("recovered")
            .clone();
        process.wait_for(|r| r.state == ProcessState::Waiting).await;
        assert!(process.resume(None));
        let record = process.wait().await;
        assert_eq!(
            record.outputs["remembered"],
            format!("kept in memory by {pid}")
        );
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn with_dehydration_off_a_waiting_process_keeps_its_instance() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config();
    config.dehydrate_waiting(false);
    let host = Host::with_store(&config, embedded(dir.path())).unwrap();
    let plugin = host.load("lifecycle").await.unwrap();
    let process = host
        .launch(&plugin, json!({"mode": "remember"}))
        .await
        .unwrap();
    process.wait_for(|r| r.state == ProcessState::Waiting).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!process.is_dehydrated());
    process.resume(None);
    assert_eq!(process.wait().await.state, ProcessState::Finished);
}
