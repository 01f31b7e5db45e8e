//! Hosts acting for tenants on one shared store (`Host::for_tenant`): each sees only its own
//! processes, and each tenant's quotas refuse what would take it over them while the other
//! tenants' processes go on.

use std::sync::Arc;

use damson::persist::{DEFAULT_TENANT, MemoryPersister, Persister};
use damson::tenancy::{Quota, QuotaExceeded, Quotas};
use damson::{Error, Host, ProcessState};
use damson_tests::config;
use serde_json::json;

/// A host on a fresh store, and hosts for tenants `acme` (with `quotas`) and `globex` beside it.
fn hosts(quotas: Quotas) -> (Host, Host, Host) {
    let store: Arc<dyn Persister> = Arc::new(MemoryPersister::new());
    let base = Host::with_store(&config(), store).unwrap();
    let acme = base.for_tenant("acme", quotas, Vec::new());
    let globex = base.for_tenant("globex", Quotas::default(), Vec::new());
    (base, acme, globex)
}

fn over(error: Error) -> QuotaExceeded {
    match error {
        Error::OverQuota(over) => over,
        other => panic!("expected a quota refusal, got: {other}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenants_processes_and_their_children_are_its_own_and_no_other_host_finds_them() {
    let (base, acme, globex) = hosts(Quotas::default());
    let lifecycle = acme.load("lifecycle").await.unwrap();
    let waiting = acme
        .launch(&lifecycle, json!({"mode": "wait"}))
        .await
        .unwrap();
    waiting.wait_for(|r| r.state == ProcessState::Waiting).await;
    let parent = acme.load("parent").await.unwrap();
    let family = acme
        .run(&parent, json!({"count": 2, "mode": "many"}))
        .await
        .unwrap();
    assert_eq!(family.state, ProcessState::Finished, "{:?}", family.error);

    let keys = base.store().unwrap().list().await.unwrap();
    assert_eq!(keys.len(), 4, "two processes and two children: {keys:?}");
    assert!(
        keys.iter().all(|k| k.tenant == "acme"),
        "children inherit their parent's tenant: {keys:?}"
    );
    for other in [&globex, &base] {
        assert!(matches!(
            other.load_process(waiting.pid(), None).await,
            Err(Error::NoCheckpoint { .. })
        ));
        let recovered = other.recover().await.unwrap();
        assert!(recovered.resumed.is_empty() && recovered.failed.is_empty());
        assert!(other.process(waiting.pid()).is_none());
    }
    assert_eq!(base.tenant(), DEFAULT_TENANT);
    assert_eq!(
        acme.load_process(waiting.pid(), None).await.unwrap().pid(),
        waiting.pid(),
        "its own host has it"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_host_finds_plugins_by_name_only() {
    let (_, acme, _) = hosts(Quotas::default());
    let path = damson_tests::plugin("add").display().to_string();
    let error = acme.load(&path).await.unwrap_err();
    assert!(matches!(error, Error::PluginPath { .. }), "{error}");
    assert_eq!(
        error.to_string(),
        format!("plugins are found by name for tenant 'acme': '{path}' is a path")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn over_its_live_processes_quota_a_tenant_is_refused_and_the_others_go_on() {
    let quotas = Quotas {
        live_processes: Some(1),
        ..Quotas::default()
    };
    let (_, acme, globex) = hosts(quotas);
    let lifecycle = acme.load("lifecycle").await.unwrap();
    let first = acme
        .launch(&lifecycle, json!({"mode": "wait"}))
        .await
        .unwrap();
    first.wait_for(|r| r.state == ProcessState::Waiting).await;
    let refused = over(
        acme.launch(&lifecycle, json!({"mode": "ok"}))
            .await
            .unwrap_err(),
    );
    assert_eq!(
        refused.to_string(),
        "tenant 'acme' is over its live-processes quota: 1 of 1 processes"
    );
    assert_eq!(
        acme.store().unwrap().list().await.unwrap().len(),
        1,
        "nothing stored for the refused one"
    );
    let theirs = globex.load("lifecycle").await.unwrap();
    for _ in 0..2 {
        let record = globex.run(&theirs, json!({"mode": "ok"})).await.unwrap();
        assert_eq!(record.state, ProcessState::Finished);
    }
    assert_eq!(first.state(), ProcessState::Waiting, "untouched");
}

#[tokio::test(flavor = "multi_thread")]
async fn over_its_submission_rate_a_tenant_is_refused_within_the_second() {
    let quotas = Quotas {
        submissions_per_second: Some(2),
        ..Quotas::default()
    };
    let (_, acme, globex) = hosts(quotas);
    let add = acme.load("add").await.unwrap();
    for _ in 0..2 {
        acme.run(&add, json!({"x": 1, "y": 2})).await.unwrap();
    }
    let refused = over(acme.run(&add, json!({"x": 1, "y": 2})).await.unwrap_err());
    assert_eq!(
        (refused.quota, refused.limit, refused.used),
        (Quota::SubmissionsPerSecond, 2, 2)
    );
    let theirs = globex.load("add").await.unwrap();
    globex.run(&theirs, json!({"x": 1, "y": 2})).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn over_its_stored_bytes_quota_a_tenant_gets_no_new_process_and_keeps_its_checkpoints() {
    let quotas = Quotas {
        stored_bytes: Some(1),
        ..Quotas::default()
    };
    let (_, acme, _) = hosts(quotas);
    let add = acme.load("add").await.unwrap();
    let first = acme.run(&add, json!({"x": 1, "y": 2})).await.unwrap();
    let store = acme.store().unwrap();
    let stored = store.stored_bytes("acme").await.unwrap();
    assert!(stored > 1, "the first process's checkpoint: {stored} bytes");
    let refused = over(acme.run(&add, json!({"x": 1, "y": 2})).await.unwrap_err());
    assert_eq!(
        (refused.quota, refused.limit, refused.used),
        (Quota::StoredBytes, 1, stored)
    );
    assert_eq!(
        acme.load_process(&first.pid, None).await.unwrap().state(),
        ProcessState::Finished,
        "the stored one is kept"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plugin_over_its_tenants_size_quota_is_refused() {
    let quotas = Quotas {
        plugin_size: Some(1024),
        ..Quotas::default()
    };
    let (_, acme, globex) = hosts(quotas);
    let refused = over(acme.load("add").await.unwrap_err());
    assert_eq!((refused.quota, refused.limit), (Quota::PluginSize, 1024));
    let size = std::fs::metadata(damson_tests::plugin("add"))
        .unwrap()
        .len();
    assert_eq!(refused.used, size);
    globex.load("add").await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenants_memory_and_step_time_quotas_bound_its_instances_only() {
    let quotas = Quotas {
        memory_per_instance: Some(32 << 20),
        step_time_ms: Some(300),
        ..Quotas::default()
    };
    let (_, acme, globex) = hosts(quotas);
    let hog = acme.load("hog").await.unwrap();
    let record = acme.run(&hog, json!({})).await.unwrap();
    assert_eq!(
        record.error.as_deref(),
        Some("step 'hoard' exceeded the memory limit of 32 MiB")
    );
    let spin = acme.load("spin").await.unwrap();
    let record = acme.run(&spin, json!({})).await.unwrap();
    assert_eq!(
        record.error.as_deref(),
        Some("step 'spin' exceeded the time limit of 300ms per step")
    );
    // The other tenant keeps the host's limits (256 MiB): the same step that allocates 64 MiB
    // at a time goes further there before the limit stops it.
    let theirs = globex.load("hog").await.unwrap();
    let record = globex.run(&theirs, json!({})).await.unwrap();
    assert_eq!(
        record.error.as_deref(),
        Some("step 'hoard' exceeded the memory limit of 256 MiB")
    );
}
