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
