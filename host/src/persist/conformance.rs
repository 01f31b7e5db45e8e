//! The conformance suite every [`Persister`] must pass: plumpy's persister scenario (S38) —
//! keys, listing, filtering, deleting — and Damson's own rules: atomic replacement, damaged
//! bundles refused naming pid and tag, plugins by digest, invalid keys refused, claims and the
//! claims fence, tenants, tokens, the audit log, process logs and signals. Run against every backend Damson has (the
//! PostgreSQL one in the integration tests, which start a server); run it against a backend of
//! your own in its tests.

mod signals;

use super::bundle::{self, BundleError};
use super::{
    AuditRow, CheckpointKey, Claim, Claiming, Commit, Committed, DEFAULT_TENANT, Holder, LogLevel,
    LogLine, LogSource, Logged, PersistError, Persister, Presence, ProcessLog, ProcessSummary,
    Quotas, SummaryFilter, TenantRow, TokenRow, load_checked,
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
    a_commit_takes_the_claim_appends_the_lines_saves_and_releases(persister).await;
    a_claim_of_an_owner_that_is_gone_is_free_at_once(persister).await;
    tenants_are_created_once_listed_by_name_and_deleted_with_their_tokens(persister).await;
    tokens_are_saved_replaced_and_listed_by_tenant_and_all(persister).await;
    the_audit_log_numbers_entries_in_order_and_lists_them_after_a_seq(persister).await;
    stored_bytes_count_one_tenants_checkpoints(persister).await;
    a_processs_log_keeps_its_last_lines_numbered_and_counts_those_dropped(persister).await;
    a_log_goes_with_its_process_and_with_its_tenant(persister).await;
    summaries_are_kept_with_current_checkpoints_and_filtered(persister).await;
    an_unindexed_process_is_indexed_once(persister).await;
    signals::signals_are_numbered_taken_once_by_key_and_go_with_their_process(persister).await;
}

/// A summary of process `pid` in `state`, made at `ctime`, launched by `parent`.
fn summary(pid: &str, state: &str, ctime: u64, parent: Option<&str>) -> ProcessSummary {
    let live = !matches!(state, "FINISHED" | "EXCEPTED" | "KILLED");
    ProcessSummary {
        pid: pid.into(),
        plugin: if parent.is_some() { "add" } else { "parent" }.into(),
        state: state.into(),
        live,
        paused: false,
        failed: state == "EXCEPTED",
        status: Some(format!("{pid} is {state}")),
        position: "0:step".into(),
        parent: parent.map(str::to_string),
        ctime,
        // A waiting one waits for a signal, at most a minute: the store keeps both.
        waiting_for: (state == "WAITING").then(|| "go".into()),
        timer: (state == "WAITING").then_some(ctime + 60_000),
        sleeping: false,
    }
}

/// The pids of `tenant`'s summaries that `filter` matches, oldest first, and its unindexed pids.
async fn listed(
    p: &dyn Persister,
    tenant: &str,
    filter: SummaryFilter,
) -> (Vec<String>, Vec<String>) {
    let found = p.summaries(tenant, &filter).await.unwrap();
    let pids = found.rows.into_iter().map(|s| s.pid).collect();
    (pids, found.unindexed)
}

async fn summaries_are_kept_with_current_checkpoints_and_filtered(p: &dyn Persister) {
    let (t, other) = (fresh("t"), fresh("t"));
    let top = summary("top", "WAITING", 20, None);
    let child = summary("child", "FINISHED", 10, Some("top"));
    p.save(&CheckpointKey::of(&t, "top"), b"1", Some(&top))
        .await
        .unwrap();
    p.save(&CheckpointKey::of(&t, "child"), b"2", Some(&child))
        .await
        .unwrap();
    // A tagged checkpoint has no summary of its own: the current one's stays.
    let tagged = summary("top", "KILLED", 20, None);
    p.save(
        &CheckpointKey::of(&t, "top").tagged("kept"),
        b"3",
        Some(&tagged),
    )
    .await
    .unwrap();
    let theirs = summary("theirs", "WAITING", 1, None);
    p.save(&CheckpointKey::of(&other, "theirs"), b"4", Some(&theirs))
        .await
        .unwrap();

    let all = p.summaries(&t, &SummaryFilter::default()).await.unwrap();
    assert_eq!(
        all.rows,
        [child.clone(), top.clone()],
        "oldest first, whole"
    );
    assert!(all.unindexed.is_empty());
    let only = |f: fn(&mut SummaryFilter)| {
        let mut filter = SummaryFilter::default();
        f(&mut filter);
        filter
    };
    let live = only(|f| f.live = true);
    assert_eq!(listed(p, &t, live.clone()).await.0, ["top"]);
    assert_eq!(listed(p, &t, only(|f| f.top_level = true)).await.0, ["top"]);
    let finished = only(|f| f.state = Some("FINISHED".into()));
    assert_eq!(listed(p, &t, finished).await.0, ["child"]);
    let adds = only(|f| f.plugin = Some("add".into()));
    assert_eq!(listed(p, &t, adds).await.0, ["child"]);
    let none = only(|f| {
        f.state = Some("WAITING".into());
        f.plugin = Some("add".into());
    });
    assert!(
        listed(p, &t, none).await.0.is_empty(),
        "every field must match"
    );

    // A save replaces the summary with the checkpoint; a claimed save that is refused
    // changes neither.
    let ended = summary("top", "FINISHED", 20, None);
    p.save(&CheckpointKey::of(&t, "top"), b"5", Some(&ended))
        .await
        .unwrap();
    assert!(listed(p, &t, live.clone()).await.0.is_empty());
    let back = summary("top", "RUNNING", 20, None);
    let refused = p
        .save_claimed(&CheckpointKey::of(&t, "top"), b"6", Some(&back), "nobody")
        .await
        .unwrap();
    assert!(!refused, "nobody holds the claim");
    assert!(
        listed(p, &t, live).await.0.is_empty(),
        "the summary is unchanged"
    );

    // Deleting a current checkpoint, or a process, takes its summary with it.
    p.delete(&CheckpointKey::of(&t, "child")).await.unwrap();
    assert_eq!(listed(p, &t, SummaryFilter::default()).await.0, ["top"]);
    p.delete(&CheckpointKey::of(&t, "top").tagged("kept"))
        .await
        .unwrap();
    assert_eq!(listed(p, &t, SummaryFilter::default()).await.0, ["top"]);
    p.delete_process(&t, "top").await.unwrap();
    assert_eq!(
        listed(p, &t, SummaryFilter::default()).await,
        (vec![], vec![])
    );
    assert_eq!(
        listed(p, &other, SummaryFilter::default()).await.0,
        ["theirs"]
    );
    p.delete_process(&other, "theirs").await.unwrap();
}

async fn an_unindexed_process_is_indexed_once(p: &dyn Persister) {
    let t = fresh("t");
    p.save(&CheckpointKey::of(&t, "old"), b"1", None)
        .await
        .unwrap();
    let (rows, unindexed) = listed(p, &t, SummaryFilter::default()).await;
    assert!(rows.is_empty());
    assert_eq!(
        unindexed,
        ["old"],
        "unindexed processes are named, whatever the filter"
    );

    let old = summary("old", "WAITING", 5, None);
    assert!(
        !p.index(&t, &summary("missing", "WAITING", 5, None))
            .await
            .unwrap(),
        "a process with no checkpoint is not indexed"
    );
    assert!(p.index(&t, &old).await.unwrap());
    assert!(
        !p.index(&t, &summary("old", "KILLED", 5, None))
            .await
            .unwrap(),
        "once indexed, only a save changes it"
    );
    assert_eq!(
        p.summaries(&t, &SummaryFilter::default())
            .await
            .unwrap()
            .rows,
        [old]
    );
    // A save without a summary makes it unindexed again, and a save with one indexes it.
    p.save(&CheckpointKey::of(&t, "old"), b"2", None)
        .await
        .unwrap();
    assert_eq!(
        listed(p, &t, SummaryFilter::default()).await,
        (vec![], vec!["old".into()])
    );
    let newer = summary("old", "RUNNING", 5, None);
    p.save(&CheckpointKey::of(&t, "old"), b"3", Some(&newer))
        .await
        .unwrap();
    assert_eq!(
        listed(p, &t, SummaryFilter::default()).await,
        (vec!["old".into()], vec![])
    );
    p.delete_process(&t, "old").await.unwrap();
}

/// Line `n` of a log as the host appends it (its `seq` is the store's to give).
fn log_line(n: u64) -> LogLine {
    LogLine {
        seq: 999,
        at_ms: 1_000 + n,
        level: if n.is_multiple_of(3) {
            LogLevel::Warn
        } else {
            LogLevel::Info
        },
        source: if n.is_multiple_of(2) {
            LogSource::Host
        } else {
            LogSource::Plugin
        },
        message: format!("line {n}: ünïcode\nand a second line"),
    }
}

/// The lines numbered `seqs`, where line `seq` is [`log_line`] `n + seq - first`.
fn numbered(seqs: std::ops::RangeInclusive<u64>, first_n: u64) -> Vec<LogLine> {
    let start = *seqs.start();
    seqs.map(|seq| LogLine {
        seq,
        ..log_line(first_n + seq - start)
    })
    .collect()
}

async fn a_processs_log_keeps_its_last_lines_numbered_and_counts_those_dropped(p: &dyn Persister) {
    let t = fresh("t");
    let lines = |from: u64, to: u64| (from..=to).map(log_line).collect::<Vec<_>>();
    assert_eq!(
        p.logs(&t, "p", 0, 100).await.unwrap(),
        ProcessLog::default(),
        "no log yet"
    );
    p.append_logs(&t, "p", &lines(1, 3), 0, 5).await.unwrap();
    assert_eq!(
        p.logs(&t, "p", 0, 100).await.unwrap(),
        ProcessLog {
            lines: numbered(1..=3, 1),
            dropped: 0
        },
        "numbered from 1, each kept as appended"
    );
    // Two lines the host dropped before these: counted, unnumbered. Then the oldest give way.
    p.append_logs(&t, "p", &lines(4, 7), 2, 5).await.unwrap();
    let log = p.logs(&t, "p", 0, 100).await.unwrap();
    assert_eq!(log.lines, numbered(3..=7, 3), "the last 5");
    assert_eq!(log.dropped, 4, "2 never stored, 2 dropped for the bound");
    assert_eq!(
        p.logs(&t, "p", 5, 100).await.unwrap().lines,
        numbered(6..=7, 6),
        "after a seq: not that one"
    );
    assert_eq!(
        p.logs(&t, "p", 0, 2).await.unwrap().lines,
        numbered(3..=4, 3),
        "the limit: the oldest first"
    );
    let past = p.logs(&t, "p", 7, 100).await.unwrap();
    assert!(past.lines.is_empty());
    assert_eq!(past.dropped, 4, "the count comes without lines too");

    // More lines at once than the process keeps: only the last of them are stored.
    p.append_logs(&t, "p", &lines(8, 17), 0, 3).await.unwrap();
    let log = p.logs(&t, "p", 0, 100).await.unwrap();
    assert_eq!(log.lines, numbered(15..=17, 15));
    assert_eq!(log.dropped, 4 + 5 + 7);
    p.append_logs(&t, "p", &[], 1, 3).await.unwrap();
    let log = p.logs(&t, "p", 0, 100).await.unwrap();
    assert_eq!(
        (log.lines.len(), log.dropped),
        (3, 17),
        "only a count of dropped lines"
    );
    p.append_logs(&t, "p", &lines(18, 18), 0, 0).await.unwrap();
    let log = p.logs(&t, "p", 0, 100).await.unwrap();
    assert_eq!(
        (log.lines.len(), log.dropped),
        (0, 21),
        "a bound of 0 keeps nothing and counts all"
    );
    p.append_logs(&t, "p", &lines(19, 19), 0, 3).await.unwrap();
    assert_eq!(
        p.logs(&t, "p", 0, 100).await.unwrap().lines,
        numbered(19..=19, 19),
        "numbers go on where they were"
    );
    p.delete_process(&t, "p").await.unwrap();
}

async fn a_log_goes_with_its_process_and_with_its_tenant(p: &dyn Persister) {
    // One tenant's name is the start of the other's: neither sees the other's lines.
    let t = fresh("t");
    let t2 = format!("{t}2");
    let one = [log_line(1)];
    for (tenant, pid) in [(&t, "p"), (&t, "q"), (&t2, "p")] {
        p.save(&CheckpointKey::of(tenant, pid), b"bundle", None)
            .await
            .unwrap();
        p.append_logs(tenant, pid, &one, 0, 10).await.unwrap();
    }
    p.append_logs(&t, "p", &one, 0, 10).await.unwrap();
    assert_eq!(p.logs(&t, "p", 0, 10).await.unwrap().lines.len(), 2);
    assert_eq!(
        p.logs(&t2, "p", 0, 10).await.unwrap().lines,
        numbered(1..=1, 1),
        "another tenant's process of the same pid has a log of its own"
    );
    p.delete_process(&t, "p").await.unwrap();
    assert_eq!(
        p.logs(&t, "p", 0, 10).await.unwrap(),
        ProcessLog::default(),
        "deleted with the process"
    );
    assert_eq!(p.logs(&t, "q", 0, 10).await.unwrap().lines.len(), 1);
    p.append_logs(&t, "p", &one, 0, 10).await.unwrap();
    assert_eq!(
        p.logs(&t, "p", 0, 10).await.unwrap().lines,
        numbered(1..=1, 1),
        "a process of that pid again starts afresh"
    );

    let row = TenantRow {
        name: t.clone(),
        created_ms: 0,
        quotas: Quotas::default(),
    };
    assert!(p.create_tenant(&row).await.unwrap());
    assert!(p.delete_tenant(&t).await.unwrap());
    for pid in ["p", "q"] {
        assert_eq!(
            p.logs(&t, pid, 0, 10).await.unwrap(),
            ProcessLog::default(),
            "deleted with the tenant"
        );
    }
    assert_eq!(
        p.logs(&t2, "p", 0, 10).await.unwrap().lines.len(),
        1,
        "not the other tenant's"
    );
    for (tenant, pid) in [(&t, "p"), (&t, "q"), (&t2, "p")] {
        p.delete_process(tenant, pid).await.unwrap();
    }
    assert_eq!(
        p.logs(&t2, "p", 0, 10).await.unwrap(),
        ProcessLog::default()
    );
}

/// A name of `what` no other run uses (a store may be shared by several runs: checks about
/// tenants, tokens and the audit log look only at the rows they made).
fn fresh(what: &str) -> String {
    format!("{what}-{}", uuid::Uuid::new_v4())
}

fn token_row(id: &str, tenant: &str, created_ms: u64) -> TokenRow {
    TokenRow {
        id: id.to_string(),
        tenant: tenant.to_string(),
        secret_sha256: format!("{:064x}", created_ms),
        scopes: vec!["read".into(), "submit".into()],
        label: Some(format!("for {id}")),
        created_ms,
        expires_ms: Some(created_ms + 1_000),
        revoked_ms: None,
    }
}

/// The tenants among `all` named in `mine`.
fn only<'a>(all: &'a [TenantRow], mine: &[&str]) -> Vec<&'a TenantRow> {
    all.iter()
        .filter(|t| mine.contains(&t.name.as_str()))
        .collect()
}

async fn tenants_are_created_once_listed_by_name_and_deleted_with_their_tokens(p: &dyn Persister) {
    let (a, b) = (fresh("a"), fresh("b"));
    let row = |name: &str, created_ms| TenantRow {
        name: name.to_string(),
        created_ms,
        quotas: Quotas::default(),
    };
    // The later name first: listing sorts by name, not by creation.
    assert!(p.create_tenant(&row(&b, 1_000)).await.unwrap());
    assert!(p.create_tenant(&row(&a, 2_000)).await.unwrap());
    assert!(
        !p.create_tenant(&row(&a, 3_000)).await.unwrap(),
        "a exists already"
    );
    let all = p.tenants().await.unwrap();
    assert_eq!(
        only(&all, &[&a, &b]),
        [&row(&a, 2_000), &row(&b, 1_000)],
        "by name, and the second create changed nothing"
    );
    let names: Vec<&str> = all.iter().map(|t| t.name.as_str()).collect();
    assert!(names.is_sorted(), "every tenant by name: {names:?}");

    let quotas = Quotas {
        live_processes: Some(3),
        memory_per_instance: Some(64 << 20),
        ..Quotas::default()
    };
    assert!(p.set_quotas(&a, &quotas).await.unwrap());
    assert!(!p.set_quotas(&fresh("nobody"), &quotas).await.unwrap());
    let all = p.tenants().await.unwrap();
    assert_eq!(only(&all, &[&a])[0].quotas, quotas, "kept as set");
    assert_eq!(
        only(&all, &[&b])[0].quotas,
        Quotas::default(),
        "b untouched"
    );

    let (a1, a2, b1) = (fresh("a1"), fresh("a2"), fresh("b1"));
    for token in [
        token_row(&a1, &a, 10),
        token_row(&a2, &a, 20),
        token_row(&b1, &b, 30),
    ] {
        p.save_token(&token).await.unwrap();
    }
    assert!(p.delete_tenant(&a).await.unwrap());
    assert_eq!(
        only(&p.tenants().await.unwrap(), &[&a, &b]),
        [&row(&b, 1_000)]
    );
    assert!(p.token(&a1).await.unwrap().is_none(), "a's tokens went too");
    assert!(p.token(&a2).await.unwrap().is_none());
    assert!(p.tokens(Some(&a)).await.unwrap().is_empty());
    assert_eq!(
        p.token(&b1).await.unwrap(),
        Some(token_row(&b1, &b, 30)),
        "b's stay"
    );
    assert!(
        !p.delete_tenant(&a).await.unwrap(),
        "a is gone: nothing to delete"
    );
    assert!(p.delete_tenant(&b).await.unwrap());
    assert!(p.token(&b1).await.unwrap().is_none());
    assert!(only(&p.tenants().await.unwrap(), &[&a, &b]).is_empty());
}

async fn tokens_are_saved_replaced_and_listed_by_tenant_and_all(p: &dyn Persister) {
    let (t1, t2) = (fresh("t1"), fresh("t2"));
    let run = fresh("tok");
    let id = |which: &str| format!("{run}-{which}");
    assert!(
        p.token(&id("missing")).await.unwrap().is_none(),
        "never saved"
    );
    // x is created last; y and z together, when their ids decide.
    let x = token_row(&id("x"), &t1, 20);
    let y = token_row(&id("y"), &t1, 10);
    let z = TokenRow {
        label: None,
        expires_ms: None,
        scopes: Vec::new(),
        ..token_row(&id("z"), &t2, 10)
    };
    for token in [&x, &y, &z] {
        p.save_token(token).await.unwrap();
    }
    assert_eq!(p.token(&x.id).await.unwrap().as_ref(), Some(&x));
    assert_eq!(
        p.token(&z.id).await.unwrap().as_ref(),
        Some(&z),
        "no label, no expiry, no scopes"
    );
    assert_eq!(
        p.tokens(Some(&t1)).await.unwrap(),
        [y.clone(), x.clone()],
        "a tenant's, by creation time"
    );
    assert_eq!(p.tokens(Some(&t2)).await.unwrap(), vec![z.clone()]);
    let mine = |all: Vec<TokenRow>| -> Vec<TokenRow> {
        all.into_iter().filter(|t| t.id.starts_with(&run)).collect()
    };
    assert_eq!(
        mine(p.tokens(None).await.unwrap()),
        [y.clone(), z.clone(), x.clone()],
        "all, by creation time, then id"
    );
    let all = p.tokens(None).await.unwrap();
    let order: Vec<(u64, &str)> = all.iter().map(|t| (t.created_ms, t.id.as_str())).collect();
    assert!(order.is_sorted(), "every token by creation time, then id");

    let revoked = TokenRow {
        revoked_ms: Some(25),
        ..x.clone()
    };
    p.save_token(&revoked).await.unwrap();
    assert_eq!(
        p.token(&x.id).await.unwrap().as_ref(),
        Some(&revoked),
        "saving again replaces it"
    );
    assert_eq!(
        p.tokens(Some(&t1)).await.unwrap(),
        [y.clone(), revoked.clone()],
        "replaced, not added"
    );
    // Tokens of tenants that do not exist are kept all the same; remove them by hand.
    for tenant in [&t1, &t2] {
        assert!(!p.delete_tenant(tenant).await.unwrap());
    }
    for tenant in [&t1, &t2] {
        let row = TenantRow {
            name: tenant.clone(),
            created_ms: 0,
            quotas: Quotas::default(),
        };
        assert!(p.create_tenant(&row).await.unwrap());
        assert!(p.delete_tenant(tenant).await.unwrap());
    }
    assert!(mine(p.tokens(None).await.unwrap()).is_empty());
}

async fn the_audit_log_numbers_entries_in_order_and_lists_them_after_a_seq(p: &dyn Persister) {
    let (ta, tb) = (fresh("ta"), fresh("tb"));
    let entry = |i: u64, tenant: &str| AuditRow {
        // Ignored: the store numbers entries.
        seq: 7,
        at_ms: 1_000 + i,
        tenant: tenant.to_string(),
        actor: if i.is_multiple_of(2) {
            "local".into()
        } else {
            format!("tok-{i}")
        },
        action: "process.kill".into(),
        target: (i != 3).then(|| format!("pid-{i}")),
        outcome: if i == 4 {
            "refused".into()
        } else {
            "ok".into()
        },
    };
    let tenants = [&ta, &tb, &ta, &ta, &tb];
    let mut appended = Vec::new();
    for (i, tenant) in tenants.into_iter().enumerate() {
        let mut row = entry(i as u64, tenant);
        row.seq = p.append_audit(&row).await.unwrap();
        appended.push(row);
    }
    let seqs: Vec<u64> = appended.iter().map(|e| e.seq).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "each seq greater than every earlier one: {seqs:?}"
    );
    let before = seqs[0] - 1;
    let [e0, e1, e2, e3, e4] = appended.clone().try_into().unwrap();

    assert_eq!(
        p.audit(Some(&ta), before, 100).await.unwrap(),
        [e0.clone(), e2.clone(), e3.clone()],
        "a tenant's, oldest first, with their seqs"
    );
    assert_eq!(
        p.audit(Some(&ta), before, 2).await.unwrap(),
        [e0.clone(), e2.clone()],
        "the limit counts the tenant's entries only"
    );
    assert_eq!(
        p.audit(Some(&ta), e2.seq, 10).await.unwrap(),
        [e3],
        "after a seq: not that one"
    );
    assert_eq!(
        p.audit(Some(&tb), before, 10).await.unwrap(),
        [e1, e4.clone()]
    );
    assert!(p.audit(Some(&ta), e4.seq, 10).await.unwrap().is_empty());
    assert!(p.audit(Some(&ta), before, 0).await.unwrap().is_empty());
    assert!(
        p.audit(Some(&fresh("nobody")), 0, 10)
            .await
            .unwrap()
            .is_empty()
    );

    let mine = |all: Vec<AuditRow>| -> Vec<AuditRow> {
        all.into_iter()
            .filter(|e| e.tenant == ta || e.tenant == tb)
            .collect()
    };
    assert_eq!(
        mine(p.audit(None, before, usize::MAX).await.unwrap()),
        appended,
        "every tenant's"
    );
    // Others may append meanwhile: of the first two after e1, those of this run come first.
    let next = p.audit(None, seqs[1], 2).await.unwrap();
    assert_eq!(next.len(), 2, "{next:?}");
    assert!(next.iter().all(|e| e.seq > seqs[1]));
    assert!(next.windows(2).all(|w| w[0].seq < w[1].seq), "{next:?}");
    let ours = mine(next);
    assert_eq!(ours, appended[2..2 + ours.len()]);

    let later = p.append_audit(&entry(5, &ta)).await.unwrap();
    assert!(later > e4.seq, "greater than every earlier one");
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
        !p.save_claimed(&key, b"zero", None, a).await.unwrap(),
        "nobody claimed it"
    );
    assert!(p.load(&key).await.unwrap().is_none(), "nothing written");
    let claim = |owner, now, until| p.claim(DEFAULT_TENANT, "fenced", owner, now, until);
    assert!(claim(a, 0, 1_000).await.unwrap().is_granted());
    assert!(p.save_claimed(&key, b"one", None, a).await.unwrap());
    assert!(
        p.save_claimed(&key, b"two", None, a).await.unwrap(),
        "its claim ran out, but nobody took it"
    );
    assert!(claim(b, 2_000, 3_000).await.unwrap().is_granted());
    assert!(
        !p.save_claimed(&key, b"three", None, a).await.unwrap(),
        "b took it over"
    );
    assert_eq!(p.load(&key).await.unwrap().unwrap(), b"two");
    let tagged = key.clone().tagged("t");
    assert!(p.save_claimed(&tagged, b"four", None, b).await.unwrap());
    assert!(p.save_claimed(&key, b"five", None, b).await.unwrap());
    assert_eq!(p.load(&key).await.unwrap().unwrap(), b"five");
    p.release(DEFAULT_TENANT, "fenced", b).await.unwrap();
    p.delete_process(DEFAULT_TENANT, "fenced").await.unwrap();
}

async fn a_commit_takes_the_claim_appends_the_lines_saves_and_releases(p: &dyn Persister) {
    let ((a, _pa), (b, _pb)) = owners(p).await;
    let (a, b) = (a.as_str(), b.as_str());
    let t = fresh("t");
    let key = CheckpointKey::of(&t, "committed");
    let lines = [log_line(1), log_line(2)];
    let commit = |bundle: &'static [u8], claim| Commit {
        key: &key,
        bundle,
        summary: None,
        logs: Logged {
            lines: &lines,
            dropped: 1,
            keep: 10,
        },
        claim,
    };
    let take = |owner| Claiming::Take {
        owner,
        now_ms: 1_000,
        until_ms: u64::MAX / 4,
    };
    assert_eq!(
        p.commit(&commit(b"first", take(a))).await.unwrap(),
        Committed::Written,
        "nobody held it"
    );
    assert_eq!(p.load(&key).await.unwrap().unwrap(), b"first");
    let log = p.logs(&t, "committed", 0, 100).await.unwrap();
    assert_eq!(
        (log.lines, log.dropped),
        (numbered(1..=2, 1), 1),
        "the lines came first"
    );
    assert_eq!(
        p.commit(&commit(b"b's", take(b))).await.unwrap(),
        Committed::NotHeld(Some(Holder {
            owner: a.to_string(),
            until_ms: u64::MAX / 4
        })),
        "a holds it, and the answer says so"
    );
    assert_eq!(
        p.commit(&commit(b"b's", Claiming::Held { owner: b }))
            .await
            .unwrap(),
        Committed::NotHeld(None)
    );
    assert_eq!(
        p.load(&key).await.unwrap().unwrap(),
        b"first",
        "b wrote nothing"
    );
    assert_eq!(
        p.commit(&commit(b"last", Claiming::Release { owner: a }))
            .await
            .unwrap(),
        Committed::Written
    );
    assert_eq!(p.load(&key).await.unwrap().unwrap(), b"last");
    assert!(
        p.claim(&t, "committed", b, 2_000, 3_000)
            .await
            .unwrap()
            .is_granted(),
        "the last checkpoint gave up a's claim"
    );
    assert_eq!(
        p.commit(&commit(b"free", Claiming::Unclaimed))
            .await
            .unwrap(),
        Committed::Written,
        "unclaimed: written whoever holds it"
    );
    p.release(&t, "committed", b).await.unwrap();
    p.delete_process(&t, "committed").await.unwrap();
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
        p.save(key, &bundle::encode(&key.pid, None), None)
            .await
            .unwrap();
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
    p.save(&a1, &bundle::encode(&"a", None), None)
        .await
        .unwrap();
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

async fn stored_bytes_count_one_tenants_checkpoints(p: &dyn Persister) {
    // One tenant's name is the start of the other's: neither counts the other's rows.
    let t = fresh("t");
    let t2 = format!("{t}2");
    let (one, two) = (vec![1u8; 100], vec![2u8; 30]);
    p.save(&CheckpointKey::of(&t, "p"), &one, None)
        .await
        .unwrap();
    p.save(&CheckpointKey::of(&t, "p").tagged("kept"), &two, None)
        .await
        .unwrap();
    p.save(&CheckpointKey::of(&t2, "p"), &two, None)
        .await
        .unwrap();
    assert_eq!(p.stored_bytes(&t).await.unwrap(), 130, "current and tagged");
    assert_eq!(p.stored_bytes(&t2).await.unwrap(), 30);
    assert_eq!(p.stored_bytes(&fresh("none")).await.unwrap(), 0);
    p.delete_process(&t, "p").await.unwrap();
    p.delete_process(&t2, "p").await.unwrap();
    assert_eq!(p.stored_bytes(&t).await.unwrap(), 0);
}

async fn saving_again_replaces(p: &dyn Persister) {
    let key = CheckpointKey::new("replace");
    p.save(&key, &bundle::encode(&1u32, None), None)
        .await
        .unwrap();
    p.save(&key, &bundle::encode(&2u32, Some(&[7, 7])), None)
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
        p.save(&key, &flipped, None).await.unwrap();
        let err = load_checked::<String>(p, &key).await.unwrap_err();
        let text = err.to_string();
        assert!(text.contains("damaged") && text.contains("t1"), "{text}");
    }
    for len in 0..good.len() {
        p.save(&key, &good[..len], None).await.unwrap();
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
                p.save(&key, b"x", None).await,
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
                .save(
                    &CheckpointKey::new("kept"),
                    &bundle::encode(&5u8, None),
                    None,
                )
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
