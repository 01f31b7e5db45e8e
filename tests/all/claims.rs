//! Claims keep one process on one host. A host that cannot renew its claims (its store out of
//! reach, or the host stalled) stops saving once they may have run out; when another host has
//! taken a process over meanwhile, the first abandons it as soon as it can reach the store
//! again — it never writes over the new host's checkpoints.

use std::sync::Arc;
use std::time::{Duration, Instant};

use damson::persist::{CheckpointKey, DEFAULT_TENANT, MemoryPersister, Persister};
use damson::{Host, ProcessState};
use damson_tests::watched::Watched;
use damson_tests::{config, host};
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn a_host_that_cannot_renew_stops_saving_and_abandons_what_another_host_took_over() {
    let inputs = json!({"n": 7, "delay_ms": 100});
    let hailstone = host().load("hailstone").await.unwrap();
    let clean = host().run(&hailstone, inputs.clone()).await.unwrap();

    let store: Arc<dyn Persister> = Arc::new(MemoryPersister::new());
    let link = Arc::new(Watched::new(store.clone()));
    let mut claiming = config();
    claiming.claim_processes(Duration::from_millis(300));
    let first = Host::with_store(&claiming, link.clone()).unwrap();
    let second = Host::with_store(&claiming, store.clone()).unwrap();

    let hailstone = first.load("hailstone").await.unwrap();
    let process = first.create(&hailstone, inputs).await.unwrap();
    process.start().unwrap();
    let pid = process.pid().to_string();
    tokio::time::sleep(Duration::from_millis(250)).await;
    link.cut_renewals(true);

    // Once the first host's claim has run out, the second takes the process over.
    let started = Instant::now();
    let taken = loop {
        let recovered = second.take_over().await.unwrap();
        if let Some(taken) = recovered.resumed.into_iter().find(|p| p.pid() == pid) {
            break taken;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "never taken over"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let taken_at = Instant::now();
    assert!(!process.state().is_terminal());

    // The first host reaches the store again: it learns the process is not its own any more.
    link.cut_renewals(false);
    let record = taken.wait().await;
    assert_eq!(record.state, ProcessState::Finished);
    assert_eq!(record.outputs, clean.outputs);
    tokio::time::timeout(Duration::from_secs(5), process.wait())
        .await
        .expect("the first host let the process go");
    assert!(
        !process.state().is_terminal(),
        "the first host did not finish it too"
    );
    assert!(first.process(&pid).is_none(), "and forgot it");
    let late = link.saved_since(taken_at);
    assert!(
        late.is_empty(),
        "the first host saved after the second took over: {late:?}"
    );
    let stored =
        damson::persist::load_checked::<damson::ProcessRecord>(&*store, &CheckpointKey::new(&pid))
            .await
            .unwrap()
            .unwrap()
            .record;
    assert_eq!(
        stored.state,
        ProcessState::Finished,
        "the second host's end stands"
    );
}

/// The store itself refuses a checkpoint from a host whose claim another has taken, even while
/// that host still believes its claims hold (here the claim is taken from under it at once):
/// the process is abandoned at its next checkpoint, and the store keeps what it had.
#[tokio::test(flavor = "multi_thread")]
async fn the_store_refuses_checkpoints_from_a_host_whose_claim_was_taken() {
    let store: Arc<dyn Persister> = Arc::new(MemoryPersister::new());
    let mut claiming = config();
    claiming.claim_processes(Duration::from_secs(30));
    let first = Host::with_store(&claiming, store.clone()).unwrap();
    let hailstone = first.load("hailstone").await.unwrap();
    let process = first
        .create(&hailstone, json!({"n": 7, "delay_ms": 50}))
        .await
        .unwrap();
    process.start().unwrap();
    let pid = process.pid().to_string();
    tokio::time::sleep(Duration::from_millis(120)).await;

    // Another owner takes the claim (its clock says the first one's ran out).
    let far = u64::MAX / 2;
    assert!(
        store
            .claim(DEFAULT_TENANT, &pid, "another host", far, far + 1)
            .await
            .unwrap()
            .is_granted()
    );
    let key = CheckpointKey::new(&pid);
    let before = store.load(&key).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), process.wait())
        .await
        .expect("the first host let the process go");
    assert!(!process.state().is_terminal(), "it did not run to the end");
    assert!(first.process(&pid).is_none());
    assert_eq!(
        store.load(&key).await.unwrap(),
        before,
        "nothing written after the claim changed hands"
    );
}
