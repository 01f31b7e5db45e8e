//! The conformance suite every [`Persister`] must pass: plumpy's persister scenario (S38) —
//! keys, listing, filtering, deleting — and Damson's own rules: atomic replacement, damaged
//! bundles refused naming pid and tag, plugins by digest, invalid keys refused, claims and the
//! claims fence. Run against every backend Damson has (the PostgreSQL one in the integration
//! tests, which start a server); run it against a backend of your own in its tests.

use super::bundle::{self, BundleError};
use super::{
    CheckpointKey, Claim, DEFAULT_TENANT, Holder, PersistError, Persister, Presence, load_checked,
};

/// Run every check against a fresh, empty persister.
///
/// # Panics
/// At the first rule the persister breaks, saying which.
pub async fn check(persister: &dyn Persister) {
    s38_keys_list_filter_and_delete(persister).await;
    saving_again_replaces(persister).await;
    damaged_bundles_are_refused_naming_pid_and_tag(persister).await;
    plugins_are_stored_by_digest(persister).await;
    invalid_keys_are_refused(persister).await;
    one_owner_holds_a_claim_until_it_runs_out(persister).await;
    only_the_claims_holder_saves_claimed(persister).await;
    a_claim_of_an_owner_that_is_gone_is_free_at_once(persister).await;
}

/// Two owners of claims, present in the store while the test runs (named afresh each time:
/// a store may be shared by several runs).
async fn owners(p: &dyn Persister) -> ((String, Presence), (String, Presence)) {
    let name = |who: &str| format!("{who}-{}", uuid::Uuid::new_v4());
    let (a, b) = (name("a"), name("b"));
    let (pa, pb) = (p.join(&a).await.unwrap(), p.join(&b).await.unwrap());
    ((a, pa), (b, pb))
}

async fn only_the_claims_holder_saves_claimed(p: &dyn Persister) {
    let ((a, _pa), (b, _pb)) = owners(p).await;
    let (a, b) = (a.as_str(), b.as_str());
    let key = CheckpointKey::new("fenced");
    assert!(
        !p.save_claimed(&key, b"zero", a).await.unwrap(),
        "nobody claimed it"
    );
    assert!(p.load(&key).await.unwrap().is_none(), "nothing written");
    let claim = |owner, now, until| p.claim(DEFAULT_TENANT, "fenced", owner, now, until);
    assert!(claim(a, 0, 1_000).await.unwrap().is_granted());
    assert!(p.save_claimed(&key, b"one", a).await.unwrap());
    assert!(
        p.save_claimed(&key, b"two", a).await.unwrap(),
        "its claim ran out, but nobody took it"
    );
    assert!(claim(b, 2_000, 3_000).await.unwrap().is_granted());
    assert!(
        !p.save_claimed(&key, b"three", a).await.unwrap(),
        "b took it over"
    );
    assert_eq!(p.load(&key).await.unwrap().unwrap(), b"two");
    let tagged = key.clone().tagged("t");
    assert!(p.save_claimed(&tagged, b"four", b).await.unwrap());
    assert!(p.save_claimed(&key, b"five", b).await.unwrap());
    assert_eq!(p.load(&key).await.unwrap().unwrap(), b"five");
    p.release(DEFAULT_TENANT, "fenced", b).await.unwrap();
    p.delete_process(DEFAULT_TENANT, "fenced").await.unwrap();
}

async fn one_owner_holds_a_claim_until_it_runs_out(p: &dyn Persister) {
    let ((a, _pa), (b, _pb)) = owners(p).await;
    let (a, b) = (a.as_str(), b.as_str());
    let claim = |owner, now, until| p.claim(DEFAULT_TENANT, "claimed", owner, now, until);
    assert!(
        claim(a, 1_000, 2_000).await.unwrap().is_granted(),
        "nobody holds it"
    );
    assert_eq!(
        claim(b, 1_500, 2_500).await.unwrap(),
        Claim::Held(Holder {
            owner: a.to_string(),
            until_ms: 2_000
        }),
        "a holds it, and the answer says so"
    );
    assert!(
        claim(a, 1_500, 3_000).await.unwrap().is_granted(),
        "a extends its own"
    );
    let held = p.renew(a, 5_000).await.unwrap();
    assert_eq!(held, [(DEFAULT_TENANT.to_string(), "claimed".to_string())]);
    assert!(
        !claim(b, 4_000, 6_000).await.unwrap().is_granted(),
        "renewed to 5000"
    );
    assert!(
        claim(b, 5_001, 6_000).await.unwrap().is_granted(),
        "a's claim ran out"
    );
    assert!(
        p.renew(a, 9_000).await.unwrap().is_empty(),
        "b took it over: a holds nothing"
    );
    p.release(DEFAULT_TENANT, "claimed", a).await.unwrap();
    assert!(
        !claim(a, 5_002, 7_000).await.unwrap().is_granted(),
        "a cannot release b's"
    );
    p.release(DEFAULT_TENANT, "claimed", b).await.unwrap();
    assert!(
        claim(a, 5_003, 7_000).await.unwrap().is_granted(),
        "released"
    );
    assert!(
        !claim(b, 0, 1).await.unwrap().is_granted(),
        "another pid's claim is another matter"
    );
    assert!(
        p.claim(DEFAULT_TENANT, "other", b, 0, 1)
            .await
            .unwrap()
            .is_granted()
    );
    p.release(DEFAULT_TENANT, "claimed", a).await.unwrap();
    p.release(DEFAULT_TENANT, "other", b).await.unwrap();
}

async fn a_claim_of_an_owner_that_is_gone_is_free_at_once(p: &dyn Persister) {
    let ((a, pa), (b, _pb)) = owners(p).await;
    let (a, b) = (a.as_str(), b.as_str());
    let far = u64::MAX / 4;
    let claim = |owner| p.claim(DEFAULT_TENANT, "orphaned", owner, 1_000, far);
    assert!(claim(a).await.unwrap().is_granted());
    assert!(
        !claim(b).await.unwrap().is_granted(),
        "a is present, and its claim holds"
    );
    drop(pa);
    // A database notices a closed session a moment later.
    let mut granted = false;
    for _ in 0..100 {
        granted = claim(b).await.unwrap().is_granted();
        if granted {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(
        granted,
        "a is gone: its claim is free long before it runs out"
    );
    assert!(
        !claim(a).await.unwrap().is_granted(),
        "and b, present, keeps it"
    );
    let gone = format!("never-joined-{}", uuid::Uuid::new_v4());
    p.release(DEFAULT_TENANT, "orphaned", b).await.unwrap();
    assert!(
        p.claim(DEFAULT_TENANT, "orphaned", &gone, 1_000, far)
            .await
            .unwrap()
            .is_granted()
    );
    assert!(
        claim(b).await.unwrap().is_granted(),
        "an owner that never joined counts as gone"
    );
    p.release(DEFAULT_TENANT, "orphaned", b).await.unwrap();
}

async fn s38_keys_list_filter_and_delete(p: &dyn Persister) {
    let a = CheckpointKey::new("a");
    let a1 = CheckpointKey::new("a").tagged("one");
    let b = CheckpointKey::new("b");
    for key in [&a, &a1, &b] {
        p.save(key, &bundle::encode(&key.pid, None)).await.unwrap();
    }
    let mut all = p.list().await.unwrap();
    all.sort();
    assert_eq!(
        all,
        [a.clone(), a1.clone(), b.clone()],
        "untagged checkpoints are listed too"
    );
    let mut of_a = p.list_process(DEFAULT_TENANT, "a").await.unwrap();
    of_a.sort();
    assert_eq!(of_a, [a.clone(), a1.clone()]);

    p.delete(&a1).await.unwrap();
    assert_eq!(
        p.list_process(DEFAULT_TENANT, "a").await.unwrap(),
        vec![a.clone()],
        "only that one"
    );
    p.delete(&a1).await.unwrap(); // a missing checkpoint: nothing happens
    p.save(&a1, &bundle::encode(&"a", None)).await.unwrap();
    p.delete_process(DEFAULT_TENANT, "a").await.unwrap();
    assert!(
        p.list_process(DEFAULT_TENANT, "a")
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(p.list().await.unwrap(), vec![b]);
    p.delete_process(DEFAULT_TENANT, "b").await.unwrap();
}

async fn saving_again_replaces(p: &dyn Persister) {
    let key = CheckpointKey::new("replace");
    p.save(&key, &bundle::encode(&1u32, None)).await.unwrap();
    p.save(&key, &bundle::encode(&2u32, Some(&[7, 7])))
        .await
        .unwrap();
    let body = load_checked::<u32>(p, &key).await.unwrap().unwrap();
    assert_eq!((body.record, body.image), (2, Some(vec![7, 7])));
    assert!(
        load_checked::<u32>(p, &CheckpointKey::new("nobody"))
            .await
            .unwrap()
            .is_none()
    );
    p.delete_process(DEFAULT_TENANT, "replace").await.unwrap();
}

async fn damaged_bundles_are_refused_naming_pid_and_tag(p: &dyn Persister) {
    let good = bundle::encode(&"a record".to_string(), Some(&[1, 2, 3, 4]));
    let key = CheckpointKey::new("damaged").tagged("t1");
    for i in 0..good.len() {
        let mut flipped = good.clone();
        flipped[i] ^= 0x80;
        p.save(&key, &flipped).await.unwrap();
        let err = load_checked::<String>(p, &key).await.unwrap_err();
        let text = err.to_string();
        assert!(text.contains("damaged") && text.contains("t1"), "{text}");
    }
    for len in 0..good.len() {
        p.save(&key, &good[..len]).await.unwrap();
        match load_checked::<String>(p, &key).await {
            Err(PersistError::Corrupt { source, .. }) => {
                assert!(matches!(
                    source,
                    BundleError::TooShort { .. } | BundleError::Truncated { .. }
                ))
            }
            other => panic!("a truncated bundle loaded: {other:?}"),
        }
    }
    p.delete_process(DEFAULT_TENANT, "damaged").await.unwrap();
}

async fn plugins_are_stored_by_digest(p: &dyn Persister) {
    assert!(p.load_plugin("abc").await.unwrap().is_none());
    p.save_plugin("abc", b"component").await.unwrap();
    p.save_plugin("abc", b"component").await.unwrap();
    assert_eq!(
        p.load_plugin("abc").await.unwrap().as_deref(),
        Some(&b"component"[..])
    );
}

async fn invalid_keys_are_refused(p: &dyn Persister) {
    for key in [
        CheckpointKey::new(""),
        CheckpointKey::new("a\0b"),
        CheckpointKey::new("a").tagged(""),
    ] {
        assert!(
            matches!(
                p.save(&key, b"x").await,
                Err(PersistError::InvalidKey { .. })
            ),
            "{key:?}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::persist::{EmbeddedPersister, MemoryPersister};

    #[tokio::test]
    async fn the_in_memory_persister_conforms() {
        check(&MemoryPersister::new()).await;
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn the_embedded_persister_conforms_and_keeps_its_data_across_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested").join("store.redb");
        {
            let store = EmbeddedPersister::open(&path).unwrap();
            check(&store).await;
            store
                .save(&CheckpointKey::new("kept"), &bundle::encode(&5u8, None))
                .await
                .unwrap();
        }
        let store = EmbeddedPersister::open(&path).unwrap();
        let body = load_checked::<u8>(&store, &CheckpointKey::new("kept"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(body.record, 5);
        assert!(store.summary().contains("store.redb"));
    }
}
