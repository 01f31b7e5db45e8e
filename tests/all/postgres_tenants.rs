//! PostgreSQL keeps tenants apart itself: a connection acting for a tenant (its database role,
//! bound by row-level security) reads and changes only that tenant's rows, whatever its query
//! says, and a host on such a connection runs the tenant's processes as any other.

use std::sync::Arc;

use damson::persist::{CheckpointKey, Persister, PostgresPersister};
use damson::tenancy::{Accounts, Quotas};
use damson::{Host, ProcessState};
use damson_tests::{config, own_database};
use serde_json::json;

/// A fresh database with tenants `acme` and `globex`, each with two checkpoints saved by the
/// owner's connection; the owner's store.
async fn two_tenants(test: &str) -> (String, PostgresPersister) {
    let url = own_database(test).await;
    let owner = PostgresPersister::connect(&url).await.unwrap();
    let accounts = Accounts::new(Arc::new(PostgresPersister::connect(&url).await.unwrap()));
    for tenant in ["acme", "globex"] {
        accounts
            .create_tenant(tenant, Quotas::default(), 1)
            .await
            .unwrap();
        for pid in ["one", "two"] {
            let bundle = format!("{tenant}'s {pid}").into_bytes();
            owner
                .save(&CheckpointKey::of(tenant, pid), &bundle, None)
                .await
                .unwrap();
        }
    }
    (url, owner)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenants_connection_reads_and_changes_only_its_rows_even_through_a_wrong_query() {
    let (url, owner) = two_tenants("rls_rows").await;
    let acme = PostgresPersister::connect_as_tenant(&url, "acme")
        .await
        .unwrap();

    // `list` asks for every row of the table: the database answers with acme's only.
    let keys = acme.list().await.unwrap();
    assert_eq!(
        keys,
        [
            CheckpointKey::of("acme", "one"),
            CheckpointKey::of("acme", "two")
        ]
    );
    let theirs = CheckpointKey::of("globex", "one");
    assert_eq!(acme.load(&theirs).await.unwrap(), None, "as absent");
    assert_eq!(acme.stored_bytes("globex").await.unwrap(), 0);
    let refused = acme.save(&theirs, b"overwritten", None).await.unwrap_err();
    assert!(
        damson_tests::chain(&refused).contains("row-level security"),
        "{}",
        damson_tests::chain(&refused)
    );
    acme.delete_process("globex", "one").await.unwrap();
    assert_eq!(
        owner.load(&theirs).await.unwrap().as_deref(),
        Some(&b"globex's one"[..]),
        "neither overwritten nor deleted"
    );
    assert!(
        acme.tokens(None).await.is_err(),
        "tokens are out of a tenant connection's reach"
    );
    let tenants: Vec<String> = acme
        .tenants()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(tenants, ["acme"]);

    // The same with SQL written by hand, as a tenant's role: no WHERE at all.
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let role: String = client
        .query_one(
            "SELECT role FROM damson_tenant_roles WHERE tenant = 'acme'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    client
        .batch_execute(&format!("SET ROLE \"{role}\""))
        .await
        .unwrap();
    let seen: i64 = client
        .query_one("SELECT count(*) FROM damson_checkpoints", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(seen, 2);
    let changed = client
        .execute("UPDATE damson_checkpoints SET bundle = 'x'", &[])
        .await
        .unwrap();
    assert_eq!(changed, 2, "acme's rows only");
    assert_eq!(
        owner.load(&theirs).await.unwrap().as_deref(),
        Some(&b"globex's one"[..])
    );
    assert!(
        client
            .query("SELECT * FROM damson_tokens", &[])
            .await
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_host_on_a_tenants_connection_runs_claims_and_recovers_its_processes() {
    let (url, owner) = two_tenants("rls_host").await;
    let store: Arc<dyn Persister> = Arc::new(
        PostgresPersister::connect_as_tenant(&url, "acme")
            .await
            .unwrap(),
    );
    let mut config = config();
    config.tenant("acme");
    let host = Host::with_store(&config, store).unwrap();
    let collatz = host.load("collatz").await.unwrap();
    let record = host.run(&collatz, json!({"n": 27})).await.unwrap();
    assert_eq!(record.state, ProcessState::Finished);
    assert_eq!(record.outputs["steps"], 111);
    let key = CheckpointKey::of("acme", &record.pid);
    assert!(
        owner.load(&key).await.unwrap().is_some(),
        "stored as acme's"
    );
    // Recovery lists the store (acme's rows only): the finished process is left as it is,
    // and the two hand-made checkpoints, which are no bundles, are reported; globex's unseen.
    let recovered = host.recover().await.unwrap();
    assert!(recovered.resumed.is_empty());
    let mut failed: Vec<&str> = recovered
        .failed
        .iter()
        .map(|(pid, _)| pid.as_str())
        .collect();
    failed.sort();
    assert_eq!(failed, ["one", "two"]);

    // A tenant that was never made has no role: refused, naming it.
    let Err(error) = PostgresPersister::connect_as_tenant(&url, "nobody").await else {
        panic!("connected as a tenant that does not exist");
    };
    assert!(
        damson_tests::chain(&error).contains("tenant 'nobody' has no role in this database"),
        "{}",
        damson_tests::chain(&error)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_a_tenant_drops_its_role() {
    let url = own_database("rls_delete").await;
    let accounts = Accounts::new(Arc::new(PostgresPersister::connect(&url).await.unwrap()));
    accounts
        .create_tenant("acme", Quotas::default(), 1)
        .await
        .unwrap();
    PostgresPersister::connect_as_tenant(&url, "acme")
        .await
        .unwrap();
    accounts.delete_tenant("acme").await.unwrap();
    assert!(
        PostgresPersister::connect_as_tenant(&url, "acme")
            .await
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenants_connection_reads_and_appends_only_its_own_process_logs() {
    use damson::persist::{LogLevel, LogLine, LogSource, ProcessLog};
    let (url, owner) = two_tenants("rls_logs").await;
    let line = |message: &str| LogLine {
        seq: 0,
        at_ms: 1,
        level: LogLevel::Info,
        source: LogSource::Plugin,
        message: message.to_string(),
    };
    for tenant in ["acme", "globex"] {
        owner
            .append_logs(tenant, "one", &[line(&format!("{tenant}'s"))], 0, 10)
            .await
            .unwrap();
    }
    let acme = PostgresPersister::connect_as_tenant(&url, "acme")
        .await
        .unwrap();
    let own = acme.logs("acme", "one", 0, 10).await.unwrap();
    assert_eq!(own.lines[0].message, "acme's", "its own: {own:?}");
    assert_eq!(
        acme.logs("globex", "one", 0, 10).await.unwrap(),
        ProcessLog::default(),
        "another tenant's log is as absent"
    );
    for pid in ["one", "new"] {
        let refused = acme
            .append_logs("globex", pid, &[line("planted")], 3, 10)
            .await
            .unwrap_err();
        assert!(
            damson_tests::chain(&refused).contains("row-level security"),
            "{}",
            damson_tests::chain(&refused)
        );
    }
    acme.delete_process("globex", "one").await.unwrap();
    let theirs = owner.logs("globex", "one", 0, 10).await.unwrap();
    assert_eq!(
        (
            theirs.lines.len(),
            theirs.lines[0].message.as_str(),
            theirs.dropped
        ),
        (1, "globex's", 0),
        "neither added to, counted in nor deleted"
    );
    assert_eq!(
        owner.logs("globex", "new", 0, 10).await.unwrap(),
        ProcessLog::default()
    );
    let scoped = owner
        .scoped("acme")
        .await
        .unwrap()
        .expect("PostgreSQL scopes");
    assert!(
        scoped
            .logs("globex", "one", 0, 10)
            .await
            .unwrap()
            .lines
            .is_empty()
    );

    // By hand, as acme's role, with no WHERE at all: acme's rows only.
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let role: String = client
        .query_one(
            "SELECT role FROM damson_tenant_roles WHERE tenant = 'acme'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    client
        .batch_execute(&format!("SET ROLE \"{role}\""))
        .await
        .unwrap();
    for table in ["damson_logs", "damson_log_heads"] {
        let seen: i64 = client
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(seen, 1, "{table}");
    }

    // A host acting as acme keeps its processes' lines through that connection.
    let mut config = config();
    config.tenant("acme");
    let host = Host::with_store(&config, Arc::new(acme)).unwrap();
    let collatz = host.load("collatz").await.unwrap();
    let record = host.run(&collatz, json!({"n": 6})).await.unwrap();
    assert_eq!(record.state, ProcessState::Finished);
    let log = owner.logs("acme", &record.pid, 0, 100).await.unwrap();
    let said: Vec<&str> = log.lines.iter().map(|l| l.message.as_str()).collect();
    assert_eq!(said.last(), Some(&"state: running -> finished"), "{said:?}");
}
