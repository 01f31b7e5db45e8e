//! Tenants, API tokens and the audit log, managed with the CLI on a store.

use serde_json::Value;

use crate::cli::{json_of, stderr, stdout};

/// `damson <args> --store <store>`.
fn on(store: &str, args: &[&str]) -> std::process::Output {
    damson_tests::damson()
        .args(args)
        .args(["--store", store])
        .output()
        .expect("damson runs")
}

#[test]
fn tenants_and_tokens_are_managed_from_the_cli_and_every_change_is_audited() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store.redb").display().to_string();
    let store = store.as_str();

    assert_eq!(
        on(store, &["tenant", "create", "acme"]).status.code(),
        Some(0)
    );
    let again = on(store, &["tenant", "create", "acme"]);
    assert_eq!(again.status.code(), Some(2));
    assert!(
        stderr(&again).contains("tenant 'acme' exists already"),
        "{}",
        stderr(&again)
    );
    let bad = on(store, &["tenant", "create", "Bad_Name"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        stderr(&bad).contains("'Bad_Name' is not a tenant name"),
        "{}",
        stderr(&bad)
    );
    let tenants = json_of(&on(store, &["tenant", "list", "--json"]));
    let names: Vec<&str> = tenants
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["default", "acme"]);

    let made = on(
        store,
        &[
            "token", "create", "--tenant", "acme", "--scope", "read", "--scope", "control",
            "--label", "ci",
        ],
    );
    assert_eq!(made.status.code(), Some(0), "{}", stderr(&made));
    let token = stdout(&made).trim().to_string();
    assert!(token.starts_with("damson_"), "{token}");

    let listed = on(store, &["token", "list", "--json"]);
    let rows = json_of(&listed);
    let row = &rows[0];
    assert_eq!(row["tenant"], "acme");
    assert_eq!(row["scopes"], serde_json::json!(["read", "control"]));
    assert_eq!(row["revoked_ms"], Value::Null);
    assert!(token.contains(row["id"].as_str().unwrap()));
    let id = row["id"].as_str().unwrap().to_string();
    // `damson_<id>_<secret>`; the secret's alphabet has `_` in it too.
    let secret = token[format!("damson_{id}_").len()..].to_string();
    assert_eq!(secret.len(), 43);

    for (args, says) in [
        (
            vec!["token", "create", "--tenant", "nobody", "--scope", "read"],
            "there is no tenant 'nobody'",
        ),
        (
            vec!["token", "create", "--scope", "root"],
            "'root' is not a scope",
        ),
        (
            vec!["token", "revoke", "0123456789abcdef"],
            "there is no token '0123456789abcdef'",
        ),
        (
            vec!["tenant", "delete", "default"],
            "the default tenant 'default' cannot be deleted",
        ),
    ] {
        let out = on(store, &args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(stderr(&out).contains(says), "{args:?}: {}", stderr(&out));
    }

    assert_eq!(on(store, &["token", "revoke", &id]).status.code(), Some(0));
    let rows = json_of(&on(store, &["token", "list", "--tenant", "acme", "--json"]));
    assert!(rows[0]["revoked_ms"].as_u64().is_some(), "{rows}");
    let human = stdout(&on(store, &["token", "list"]));
    assert!(human.contains(&id) && human.contains("revoked"), "{human}");

    let audit = on(store, &["audit", "--json"]);
    let entries = json_of(&audit);
    let done: Vec<(String, String)> = entries
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            assert_eq!(e["actor"], "local");
            (
                e["action"].as_str().unwrap().to_string(),
                e["outcome"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(done[0], ("tenant.create".to_string(), "ok".to_string()));
    assert!(done[1].1.contains("exists already"), "{done:?}");
    assert!(
        done.iter().any(|(a, o)| a == "token.create" && o == "ok"),
        "{done:?}"
    );
    assert!(
        done.iter().any(|(a, o)| a == "token.revoke" && o == "ok"),
        "{done:?}"
    );
    let revoke = entries
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "token.revoke" && e["outcome"] == "ok")
        .unwrap();
    assert_eq!(revoke["target"], id.as_str());
    assert_eq!(revoke["tenant"], "acme");

    // The secret is shown once, on creation, and nowhere else.
    for args in [
        vec!["token", "list"],
        vec!["token", "list", "--json"],
        vec!["audit"],
        vec!["audit", "--json"],
        vec!["tenant", "list"],
    ] {
        let out = on(store, &args);
        assert!(
            !stdout(&out).contains(&secret) && !stderr(&out).contains(&secret),
            "{args:?}"
        );
    }
    assert!(!stderr(&made).contains(&secret));

    assert_eq!(
        on(store, &["tenant", "delete", "acme"]).status.code(),
        Some(0)
    );
    assert_eq!(
        json_of(&on(store, &["token", "list", "--json"])),
        serde_json::json!([])
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_shows_only_its_own_tenants_processes_in_ps_show_and_checkpoints() {
    use damson::persist::{CheckpointKey, EmbeddedPersister, Persister};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    let store = path.display().to_string();
    let store = store.as_str();

    // A process of the default tenant, run as today; and one of tenant acme's, its checkpoint
    // put in the store directly (processes cannot be launched as a tenant yet).
    let ran = json_of(&on(
        store,
        &["run", "add", "-i", "x=1", "-i", "y=2", "--json"],
    ));
    let ours = ran["pid"].as_str().unwrap().to_string();
    let theirs = "0a1b2c3d-acme-process".to_string();
    {
        let persister = EmbeddedPersister::open(&path).unwrap();
        let bundle = persister
            .load(&CheckpointKey::new(&ours))
            .await
            .unwrap()
            .unwrap();
        let mut body = damson::persist::bundle::decode::<damson::ProcessRecord>(&bundle).unwrap();
        body.record.pid = theirs.clone();
        let bundle = damson::persist::bundle::encode(&body.record, body.image.as_deref());
        let key = CheckpointKey {
            tenant: "acme".into(),
            ..CheckpointKey::new(&theirs)
        };
        persister.save(&key, &bundle, None).await.unwrap();
    }
    assert_eq!(
        on(store, &["tenant", "create", "acme"]).status.code(),
        Some(0)
    );
    let token = |scope: &str| {
        let out = on(
            store,
            &["token", "create", "--tenant", "acme", "--scope", scope],
        );
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        stdout(&out).trim().to_string()
    };
    let (reader, controller) = (token("read"), token("control"));
    let as_ = |token: &str, args: &[&str]| on(store, &[args, &["--token", token]].concat());
    let pids = |out: &std::process::Output| -> Vec<String> {
        json_of(out)
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["pid"].as_str().unwrap().to_string())
            .collect()
    };

    assert_eq!(
        pids(&on(store, &["ps", "--json"])),
        [ours.as_str()],
        "no token: the default tenant"
    );
    assert_eq!(
        pids(&as_(&reader, &["ps", "--json"])),
        [theirs.as_str()],
        "acme's token: acme's"
    );
    assert_eq!(as_(&reader, &["show", &theirs]).status.code(), Some(0));
    for args in [
        vec!["show", ours.as_str()],
        vec!["checkpoints", ours.as_str()],
    ] {
        let out = as_(&reader, &args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            stderr(&out).contains("no "),
            "{args:?}: as if it did not exist: {}",
            stderr(&out)
        );
    }

    let out = as_(&controller, &["ps"]);
    assert_eq!(out.status.code(), Some(4), "denied");
    assert!(
        stderr(&out).contains("lacks the 'read' scope"),
        "{}",
        stderr(&out)
    );
    let id = reader["damson_".len()..]
        .split('_')
        .next()
        .unwrap()
        .to_string();
    assert_eq!(on(store, &["token", "revoke", &id]).status.code(), Some(0));
    let out = as_(&reader, &["ps"]);
    assert_eq!(out.status.code(), Some(4), "denied");
    assert!(stderr(&out).contains("was revoked"), "{}", stderr(&out));
    let out = as_("damson_not-a-token", &["ps"]);
    assert_eq!(out.status.code(), Some(4), "denied");
    assert!(stderr(&out).contains("malformed"), "{}", stderr(&out));
    let out = damson_tests::damson()
        .args(["ps", "--store", store])
        .env("DAMSON_TOKEN", &controller)
        .output()
        .unwrap();
    assert!(
        stderr(&out).contains("lacks the 'read' scope"),
        "DAMSON_TOKEN is read too"
    );
    for token in [&reader, &controller] {
        assert!(!stderr(&out).contains(token.as_str()) && !stdout(&out).contains(token.as_str()));
    }
    let home = tempfile::tempdir().unwrap();
    std::fs::write(
        home.path().join("damson.toml"),
        format!("token = \"{controller}\"\n"),
    )
    .unwrap();
    let out = damson_tests::damson()
        .args(["ps", "--store", store])
        .env("DAMSON_HOME", home.path())
        .output()
        .unwrap();
    assert!(
        stderr(&out).contains("lacks the 'read' scope"),
        "damson.toml's token is read too: {}",
        stderr(&out)
    );
    let help = stdout(&on(store, &["ps", "--help"]));
    assert!(
        !help.contains(&controller),
        "--help shows no token from the environment"
    );
}

#[test]
fn a_token_runs_and_continues_its_tenants_processes_and_a_quota_refusal_exits_5() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store.redb").display().to_string();
    let store = store.as_str();
    assert_eq!(
        on(store, &["tenant", "create", "acme"]).status.code(),
        Some(0)
    );
    let out = on(
        store,
        &[
            "token", "create", "--tenant", "acme", "--scope", "submit", "--scope", "read",
        ],
    );
    let token = stdout(&out).trim().to_string();
    let as_acme = |args: &[&str]| on(store, &[args, &["--token", token.as_str()]].concat());

    let run = as_acme(&["run", "collatz", "-i", "n=27", "--json"]);
    assert_eq!(run.status.code(), Some(0), "{}", stderr(&run));
    let pid = json_of(&run)["pid"].as_str().unwrap().to_string();
    let listed = |out: &std::process::Output| out_pids(&json_of(out));
    assert_eq!(
        listed(&as_acme(&["ps", "--json"])),
        std::slice::from_ref(&pid)
    );
    assert!(
        listed(&on(store, &["ps", "--json"])).is_empty(),
        "not the default tenant's"
    );
    let again = as_acme(&["continue", &pid, "--json"]);
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    assert_eq!(json_of(&again)["outputs"]["steps"], 111);
    let elsewhere = on(store, &["continue", &pid]);
    assert_eq!(elsewhere.status.code(), Some(2));
    assert!(
        stderr(&elsewhere).contains("no checkpoint"),
        "as if it did not exist: {}",
        stderr(&elsewhere)
    );

    let set = on(
        store,
        &["tenant", "set", "acme", "--quota", "live-processes=0"],
    );
    assert_eq!(set.status.code(), Some(0), "{}", stderr(&set));
    assert!(
        stdout(&set).contains("live-processes=0"),
        "{}",
        stdout(&set)
    );
    let refused = as_acme(&["run", "collatz", "-i", "n=27"]);
    assert_eq!(refused.status.code(), Some(5), "over quota");
    assert!(
        stderr(&refused).contains("tenant 'acme' is over its live-processes quota: 0 of 0"),
        "{}",
        stderr(&refused)
    );
    assert_eq!(
        on(store, &["run", "collatz", "-i", "n=27"]).status.code(),
        Some(0),
        "the default tenant has no such quota"
    );
    let bad = on(store, &["tenant", "set", "acme", "--quota", "cpu=1"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        stderr(&bad).contains("'cpu' is not a quota"),
        "{}",
        stderr(&bad)
    );
    let listed = stdout(&on(store, &["tenant", "list"]));
    assert!(listed.contains("acme\tlive-processes=0"), "{listed}");
}

fn out_pids(rows: &Value) -> Vec<String> {
    rows.as_array()
        .unwrap()
        .iter()
        .map(|p| p["pid"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_token_reads_its_tenants_process_logs_and_another_tenants_as_if_they_did_not_exist() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store.redb").display().to_string();
    let store = store.as_str();
    let token = |tenant: &str, scopes: &[&str]| {
        let mut args = vec!["token", "create", "--tenant", tenant];
        for scope in scopes {
            args.extend(["--scope", scope]);
        }
        let out = on(store, &args);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        stdout(&out).trim().to_string()
    };
    for tenant in ["acme", "globex"] {
        let out = on(store, &["tenant", "create", tenant]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    }
    let (acme, globex) = (
        token("acme", &["read"]),
        token("globex", &["read", "submit"]),
    );
    let as_ = |token: &str, args: &[&str]| on(store, &[args, &["--token", token]].concat());

    let ran = as_(&globex, &["run", "greet", "-i", "name=Ada", "--json"]);
    assert_eq!(ran.status.code(), Some(0), "{}", stderr(&ran));
    let pid = json_of(&ran)["pid"].as_str().unwrap().to_string();
    let own = as_(&globex, &["logs", &pid]);
    assert_eq!(own.status.code(), Some(0), "{}", stderr(&own));
    assert!(stdout(&own).contains("greeting Ada"), "{}", stdout(&own));

    let missing = as_(&acme, &["logs", "no-such-pid"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        stderr(&missing).contains("no process no-such-pid"),
        "{}",
        stderr(&missing)
    );
    for out in [
        as_(&acme, &["logs", &pid]),
        as_(&acme, &["logs", &pid, "--follow"]),
        on(store, &["logs", &pid]),
    ] {
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert_eq!(
            stderr(&out).replace(&pid, "P"),
            stderr(&missing).replace("no-such-pid", "P"),
            "the same answer as for a pid that does not exist"
        );
        assert!(!stdout(&out).contains("Ada"));
    }
    let json = as_(&acme, &["logs", &pid, "--json"]);
    assert_eq!(json.status.code(), Some(2));
    assert!(
        json_of(&json)["error"]
            .as_str()
            .unwrap()
            .contains("no process")
    );
}
