//! Durable processes through the library: a host checkpoints into a store, stops (its tokio
//! runtime shut down, every task dropped), and a new host continues from the store. plumpy's
//! persistence scenarios S35, S37, S44, and work chains that wait on children (which plumpy
//! cannot checkpoint). The `kill -9` test with separate OS processes is in `cli.rs`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use damson::persist::{CheckpointKey, EmbeddedPersister, MemoryPersister, Persister, load_checked};
use damson::{Host, ProcessHandle, ProcessRecord, ProcessState};
use damson_tests::watched::Watched;
use damson_tests::{config, host};
use serde_json::{Value, json};

fn embedded(dir: &Path) -> Arc<dyn Persister> {
    Arc::new(EmbeddedPersister::open(dir.join("store.redb")).unwrap())
}

fn on_a_host_that_stops<T: Send + 'static>(
    store: Arc<dyn Persister>,
    work: impl AsyncFnOnce(Host) -> T + Send + 'static,
) -> T {
    damson_tests::on_a_host_that_stops(config(), store, work)
}

async fn uninterrupted(plugin: &str, inputs: Value) -> ProcessRecord {
    let plugin = host().load(plugin).await.unwrap();
    host().run(&plugin, inputs).await.unwrap()
}

async fn stored(store: &Arc<dyn Persister>, pid: &str) -> ProcessRecord {
    load_checked::<ProcessRecord>(&**store, &CheckpointKey::new(pid))
        .await
        .unwrap()
        .unwrap()
        .record
}

/// Wait until a process's status (`step N at …`) says it is `n` steps in, or it has ended.
async fn until_step(process: &ProcessHandle, n: u64) {
    process
        .wait_for(|r| status_step(r) >= n || r.state.is_terminal())
        .await;
}

fn status_step(record: &ProcessRecord) -> u64 {
    record
        .status
        .as_deref()
        .and_then(|s| s.strip_prefix("step "))
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_process_paused_mid_loop_survives_its_host_stopping_and_finishes_when_played() {
    // `hailstone` keeps its whole running state in a struct field and a HashMap: only the
    // memory image can carry it over.
    let inputs = json!({"n": 27, "delay_ms": 2});
    let expected = uninterrupted("hailstone", inputs.clone()).await;
    assert_eq!(expected.state, ProcessState::Finished);

    let dir = tempfile::tempdir().unwrap();
    let store = embedded(dir.path());
    let (pid, paused_at) = on_a_host_that_stops(store.clone(), async move |host| {
        let plugin = host.load("hailstone").await.unwrap();
        let process = host.launch(&plugin, inputs).await.unwrap();
        until_step(&process, 20).await;
        process.pause(None);
        let record = process.wait_for(|r| r.paused).await;
        (process.pid().to_string(), record.position)
    });
    let checkpoint = stored(&store, &pid).await;
    assert!(checkpoint.paused);
    assert_eq!(checkpoint.position, paused_at);
    assert_eq!(
        paused_at, "1:while_(above_one)",
        "paused in the loop, its condition next"
    );

    let host = Host::with_store(&config(), store.clone()).unwrap();
    let process = host.continue_process(&pid, None).await.unwrap();
    assert!(process.is_paused(), "a paused process comes back paused");
    let step = status_step(&process.record());
    assert!(
        (20..111).contains(&step),
        "it stopped mid-loop, at step {step}"
    );
    // A step of `hailstone` takes 2 ms: in 100 ms, a process that ran would be well on.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let still = process.record();
    assert_eq!(
        (status_step(&still), still.position.as_str()),
        (step, paused_at.as_str()),
        "nothing runs until played"
    );
    assert_eq!(
        stored(&store, &pid).await.status,
        still.status,
        "nor is anything saved"
    );
    assert!(process.play());
    let record = process.wait().await;
    assert_eq!(record.state, ProcessState::Finished, "{:?}", record.error);
    assert_eq!(record.outputs, expected.outputs);
    assert_eq!(stored(&store, &pid).await.state, ProcessState::Finished);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_work_chain_waiting_on_children_resumes_collects_them_and_finishes() {
    let inputs = json!({"mode": "hailstones", "count": 3});
    let expected = uninterrupted("parent", inputs.clone()).await;
    assert_eq!(
        expected.state,
        ProcessState::Finished,
        "{:?}",
        expected.error
    );

    let dir = tempfile::tempdir().unwrap();
    let store = embedded(dir.path());
    let pid = on_a_host_that_stops(store.clone(), async move |host| {
        let plugin = host.load("parent").await.unwrap();
        let process = host.launch(&plugin, inputs).await.unwrap();
        let waiting = process
            .wait_for(|r| r.state == ProcessState::Waiting && r.awaiting.len() == 3)
            .await;
        // Let the children get well into their loops, not to the end.
        until_step(&host.process(&waiting.awaiting[0]).unwrap(), 10).await;
        process.pid().to_string()
    });
    let checkpoint = stored(&store, &pid).await;
    assert_eq!(checkpoint.state, ProcessState::Waiting);
    assert_eq!(checkpoint.children.len(), 3);

    let host = Host::with_store(&config(), store.clone()).unwrap();
    let recovered = host.recover().await.unwrap();
    assert!(recovered.failed.is_empty(), "{:?}", recovered.failed);
    assert_eq!(
        recovered.resumed.len(),
        4,
        "the parent and its three children"
    );
    let parent = host.process(&pid).unwrap();
    let record = parent.wait().await;
    assert_eq!(record.state, ProcessState::Finished, "{:?}", record.error);
    assert_eq!(record.outputs, expected.outputs);
    assert_eq!(
        record.children, checkpoint.children,
        "no child launched twice"
    );
    assert_eq!(
        store.list().await.unwrap().len(),
        4,
        "the store holds the parent and three children, nothing more"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn s35_a_process_restored_while_waiting_is_waiting_and_finishes_when_resumed() {
    let store: Arc<dyn Persister> = Arc::new(MemoryPersister::new());
    let first = Host::with_store(&config(), store.clone()).unwrap();
    let plugin = first.load("lifecycle").await.unwrap();
    let original = first
        .launch(&plugin, json!({"mode": "wait"}))
        .await
        .unwrap();
    original
        .wait_for(|r| r.state == ProcessState::Waiting)
        .await;
    let key = CheckpointKey::new(original.pid());
    let bundle = store.load(&key).await.unwrap().unwrap();

    // Double restart: two hosts restore the same bundle, each resumes it (twice) and runs it.
    let mut outputs = Vec::new();
    for _ in 0..2 {
        let copy: Arc<dyn Persister> = Arc::new(MemoryPersister::new());
        copy.save(&key, &bundle, None).await.unwrap();
        let host = Host::with_store(&config(), copy).unwrap();
        let restored = host.load_process(original.pid(), None).await.unwrap();
        assert_eq!(restored.state(), ProcessState::Waiting);
        assert!(restored.resume(None));
        assert!(restored.resume(None), "still waiting until it runs");
        restored.start().unwrap();
        let record = restored.wait().await;
        assert_eq!(record.state, ProcessState::Finished);
        outputs.push(record.outputs);
    }
    assert_eq!(outputs[0], json!({"finished": true}));
    assert_eq!(outputs[0], outputs[1]);
    // The original carries on too, with the same result.
    original.resume(None);
    assert_eq!(original.wait().await.outputs, outputs[0]);
}

#[tokio::test(flavor = "multi_thread")]
async fn s44_a_checkpoint_mid_if_block_restores_with_the_same_context_and_runs_only_step2() {
    let store: Arc<dyn Persister> = Arc::new(MemoryPersister::new());
    let first = Host::with_store(&config(), store.clone()).unwrap();
    let plugin = first.load("ifblock").await.unwrap();
    let original = first.launch(&plugin, json!({})).await.unwrap();
    let paused = original.wait_for(|r| r.paused).await;
    assert_eq!(paused.context.get("s1"), Some(&json!(true)));
    assert_eq!(paused.context.get("s2"), None);
    let key = CheckpointKey::new(original.pid());
    let bundle = store.load(&key).await.unwrap().unwrap();

    let other: Arc<dyn Persister> = Arc::new(MemoryPersister::new());
    other.save(&key, &bundle, None).await.unwrap();
    let second = Host::with_store(&config(), other.clone()).unwrap();
    let restored = second.load_process(original.pid(), None).await.unwrap();
    assert_eq!(restored.record().context, paused.context);
    // Saved again, the restored checkpoint is the same bundle, memory image included.
    let decoded = damson::persist::bundle::decode::<ProcessRecord>(&bundle).unwrap();
    assert!(
        decoded.image.is_some(),
        "a snapshot-safe plugin's checkpoint has a memory image"
    );
    assert_eq!(
        damson::persist::bundle::encode(&decoded.record, decoded.image.as_deref()),
        bundle
    );
    // Playing the restored copy runs step2 only.
    restored.start().unwrap();
    restored.play();
    let replayed = restored.wait().await;
    assert_eq!(replayed.outputs, json!({"s2_ran": true}));

    original.play();
    let record = original.wait().await;
    assert_eq!(record.context.get("s2"), Some(&json!(true)));
    assert_eq!(record.outputs, json!({"s2_ran": true}));
}

#[tokio::test(flavor = "multi_thread")]
async fn s37_restoring_any_checkpoint_and_running_on_reproduces_the_outcome() {
    // Every checkpoint of a run (created, after each step, paused, played, terminal), restored
    // and run on, saves the checkpoints the original saved after it and ends as the original
    // did. From a checkpoint with a memory image, byte for byte, images included; from the
    // created one (no image yet: a fresh instance, whose HashMap gets a fresh random seed),
    // the same records.
    for plugin in ["hailstone", "ifblock"] {
        let inputs = if plugin == "hailstone" {
            json!({"n": 6})
        } else {
            json!({})
        };
        let store = Arc::new(Watched::default());
        let first = Host::with_store(&config(), store.clone()).unwrap();
        let loaded = first.load(plugin).await.unwrap();
        let process = first.launch(&loaded, inputs).await.unwrap();
        if plugin == "ifblock" {
            process.wait_for(|r| r.paused).await;
            process.play();
        }
        let original = process.wait().await;
        let bundles = store.bundles();
        assert!(
            bundles.len() >= 4,
            "{plugin}: {} checkpoints",
            bundles.len()
        );
        for (i, bundle) in bundles.iter().enumerate() {
            // Starts from this checkpoint; records only what comes after.
            let start = Arc::new(MemoryPersister::new());
            let key = CheckpointKey::new(process.pid());
            start.save(&key, bundle, None).await.unwrap();
            let replay = Arc::new(Watched::new(start));
            let host = Host::with_store(&config(), replay.clone()).unwrap();
            let restored = host.load_process(process.pid(), None).await.unwrap();
            // Whoever paused the original played it: so here.
            restored.add_listener(Arc::new(|p: &ProcessHandle, e: &damson::Event| {
                if let damson::Event::Paused { .. } = e {
                    p.play();
                }
            }));
            if !restored.state().is_terminal() {
                restored.start().unwrap();
            }
            if restored.is_paused() {
                restored.play();
            }
            let record = restored.wait().await;
            assert_eq!(record.state, original.state, "{plugin} from checkpoint {i}");
            assert_eq!(
                record.outputs, original.outputs,
                "{plugin} from checkpoint {i}"
            );
            assert_eq!(record.pid, original.pid, "same pid");
            let replayed = replay.bundles();
            let records = |bundles: &[Vec<u8>]| -> Vec<ProcessRecord> {
                bundles
                    .iter()
                    .map(|b| damson::persist::bundle::decode(b).unwrap().record)
                    .collect()
            };
            assert_eq!(
                records(&replayed),
                records(&bundles[i + 1..]),
                "{plugin}: the checkpoints after checkpoint {i}"
            );
            let had_image = damson::persist::bundle::decode::<ProcessRecord>(bundle)
                .unwrap()
                .image
                .is_some();
            if had_image {
                assert!(
                    replayed == bundles[i + 1..],
                    "{plugin}: the bundles after checkpoint {i} differ"
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_damaged_checkpoint_is_refused_naming_the_process() {
    let store: Arc<dyn Persister> = Arc::new(MemoryPersister::new());
    let host = Host::with_store(&config(), store.clone()).unwrap();
    let plugin = host.load("lifecycle").await.unwrap();
    let process = host.launch(&plugin, json!({"mode": "wait"})).await.unwrap();
    process.wait_for(|r| r.state == ProcessState::Waiting).await;
    let key = CheckpointKey::new(process.pid());
    let mut bundle = store.load(&key).await.unwrap().unwrap();
    let middle = bundle.len() / 2;
    bundle[middle] ^= 0x01;
    store.save(&key, &bundle, None).await.unwrap();

    let other = Host::with_store(&config(), store.clone()).unwrap();
    let error = other.load_process(process.pid(), None).await.unwrap_err();
    let text = damson_tests::chain(&error);
    assert!(text.contains(process.pid()), "{text}");
    assert!(text.contains("checksum"), "{text}");
}

/// Launch `plugin` on a host of its own over `store`, wait until its status says it is `steps`
/// steps in, pause it, and stop that host. Returns the pid.
fn paused_mid_loop(
    store: Arc<dyn Persister>,
    config: damson::HostConfig,
    plugin: &'static str,
    inputs: Value,
    steps: u64,
) -> String {
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let pid = runtime.block_on(async move {
            let host = Host::with_store(&config, store).unwrap();
            let plugin = host.load(plugin).await.unwrap();
            let process = host.launch(&plugin, inputs).await.unwrap();
            until_step(&process, steps).await;
            process.pause(None);
            process.wait_for(|r| r.paused).await;
            process.pid().to_string()
        });
        runtime.shutdown_timeout(Duration::from_secs(5));
        pid
    })
    .join()
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_memory_image_only_the_context_carries_over() {
    // The control for the tests above: the same restore with memory images off. `hailstone`
    // keeps everything in memory, so a fresh instance has forgotten where it was.
    let inputs = json!({"n": 27, "delay_ms": 2});
    let expected = uninterrupted("hailstone", inputs.clone()).await;
    let mut config = config();
    config.memory_images(false);
    let store: Arc<dyn Persister> = Arc::new(MemoryPersister::new());
    let pid = paused_mid_loop(store.clone(), config.clone(), "hailstone", inputs, 20);
    let decoded = damson::persist::bundle::decode::<ProcessRecord>(
        &store
            .load(&CheckpointKey::new(&pid))
            .await
            .unwrap()
            .unwrap(),
    )
    .unwrap();
    assert!(decoded.image.is_none(), "no memory image was taken");

    let host = Host::with_store(&config, store).unwrap();
    let process = host.continue_process(&pid, None).await.unwrap();
    process.play();
    let record = process.wait().await;
    assert_eq!(record.state, ProcessState::Finished);
    assert_ne!(
        record.outputs, expected.outputs,
        "a fresh instance cannot know the state the plugin kept in memory"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plugin_that_holds_a_wasi_handle_between_steps_is_refused_a_restore_naming_why() {
    let store: Arc<dyn Persister> = Arc::new(MemoryPersister::new());
    let mut config = config();
    // Its stdout must be a real stream for the handle to matter.
    config.sandbox(damson::Sandbox {
        inherit_stdio: true,
        ..Default::default()
    });
    let pid = damson_tests::on_a_host_that_stops(config.clone(), store.clone(), async |first| {
        let plugin = first.load("chatty").await.unwrap();
        let original = first.launch(&plugin, json!({})).await.unwrap();
        original.wait_for(|r| r.paused).await;
        original.pid().to_string()
    });

    // Its image holds the handle's number, which would mean nothing (or something else) in
    // another instance: refused, not restored to trap or diverge later.
    let second = Host::with_store(&config, store.clone()).unwrap();
    let refused = second.continue_process(&pid, None).await.unwrap_err();
    let error = damson_tests::chain(&refused);
    assert!(
        error.contains("held handles to host resources") && error.contains("chatty"),
        "{error}"
    );
    assert!(
        store
            .load(&CheckpointKey::new(&pid))
            .await
            .unwrap()
            .is_some(),
        "the checkpoint is kept"
    );
    // Never restored, the plugin runs fine: it is the handle kept across the restore.
    let plugin = second.load("chatty").await.unwrap();
    let original = second.launch(&plugin, json!({})).await.unwrap();
    original.wait_for(|r| r.paused).await;
    original.play();
    assert_eq!(original.wait().await.state, ProcessState::Finished);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_checkpoint_finds_its_exact_plugin_in_the_store_when_the_file_is_gone() {
    let plugins = tempfile::tempdir().unwrap();
    std::fs::copy(
        damson_tests::plugin("lifecycle"),
        plugins.path().join("lifecycle.wasm"),
    )
    .unwrap();
    let mut config = damson::HostConfig::new();
    config.plugin_dir(plugins.path());
    let store: Arc<dyn Persister> = Arc::new(MemoryPersister::new());
    let (pid, digest) =
        damson_tests::on_a_host_that_stops(config.clone(), store.clone(), async |first| {
            let plugin = first.load("lifecycle").await.unwrap();
            let process = first
                .launch(&plugin, json!({"mode": "wait"}))
                .await
                .unwrap();
            process.wait_for(|r| r.state == ProcessState::Waiting).await;
            (process.pid().to_string(), plugin.digest().to_string())
        });
    std::fs::remove_file(plugins.path().join("lifecycle.wasm")).unwrap();

    let second = Host::with_store(&config, store).unwrap();
    assert!(second.load("lifecycle").await.is_err(), "the file is gone");
    let restored = second.continue_process(&pid, None).await.unwrap();
    restored.resume(None);
    let record = restored.wait().await;
    assert_eq!(record.state, ProcessState::Finished, "{:?}", record.error);
    assert_eq!(record.plugin_digest, digest);
}
