//! The signals part of the conformance suite.

use super::fresh;
use crate::persist::{CheckpointKey, Persister, Posted, SignalRow};

fn signal(event: &str, data: &str, key: Option<&str>) -> SignalRow {
    SignalRow {
        seq: 0,
        event: Some(event.into()),
        data: Some(data.into()),
        key: key.map(str::to_string),
        sent_ms: 1_700_000_000_000,
    }
}

/// Signals are numbered per process in the order posted, a key is taken once, and they go with
/// their process and their tenant.
pub(super) async fn signals_are_numbered_taken_once_by_key_and_go_with_their_process(
    p: &dyn Persister,
) {
    let t = fresh("t");
    let t2 = format!("{t}2");
    let approved = signal("approved", r#"{"by":"ada"}"#, Some("k1"));
    assert_eq!(
        p.post_signal(&t, "p", &approved).await.unwrap(),
        Posted::Queued { seq: 1 }
    );
    assert_eq!(
        p.post_signal(&t, "p", &signal("approved", "2", Some("k1")))
            .await
            .unwrap(),
        Posted::Duplicate { seq: 1 },
        "a second signal with the same key is not stored"
    );
    let plain = SignalRow {
        event: None,
        data: None,
        key: None,
        ..approved.clone()
    };
    for expected in [2, 3] {
        assert_eq!(
            p.post_signal(&t, "p", &plain).await.unwrap(),
            Posted::Queued { seq: expected },
            "signals without a key never clash"
        );
    }
    assert_eq!(
        p.post_signal(&t, "q", &signal("approved", "1", Some("k1")))
            .await
            .unwrap(),
        Posted::Queued { seq: 1 },
        "keys and numbers are per process"
    );
    assert_eq!(
        p.post_signal(&t2, "p", &approved).await.unwrap(),
        Posted::Queued { seq: 1 },
        "and per tenant"
    );

    let all = p.signals(&t, "p", 0).await.unwrap();
    assert_eq!(all.len(), 3);
    assert_eq!(all[0], SignalRow { seq: 1, ..approved });
    assert_eq!(all[1], SignalRow { seq: 2, ..plain });
    let later: Vec<u64> = p
        .signals(&t, "p", 2)
        .await
        .unwrap()
        .iter()
        .map(|s| s.seq)
        .collect();
    assert_eq!(later, [3], "only those after the seq asked");
    assert!(p.signals(&t, "nobody", 0).await.unwrap().is_empty());

    p.save(&CheckpointKey::of(&t, "p"), b"bundle", None)
        .await
        .unwrap();
    p.delete_process(&t, "p").await.unwrap();
    assert!(
        p.signals(&t, "p", 0).await.unwrap().is_empty(),
        "deleted with the process"
    );
    assert_eq!(
        p.post_signal(&t, "p", &signal("approved", "1", Some("k1")))
            .await
            .unwrap(),
        Posted::Queued { seq: 1 },
        "its keys too"
    );
    assert_eq!(p.signals(&t, "q", 0).await.unwrap().len(), 1, "others kept");
    assert_eq!(p.signals(&t2, "p", 0).await.unwrap().len(), 1);
}
