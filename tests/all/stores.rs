//! The stores against real servers: the PostgreSQL persister through the conformance suite
//! every persister passes (the in-memory and embedded ones pass it in the library's own tests).

use damson::persist::{Persister, PostgresPersister, conformance};

use std::sync::Arc;

use damson_tests::own_database;

#[tokio::test(flavor = "multi_thread")]
async fn the_postgres_persister_conforms() {
    let url = own_database("conformance").await;
    let store = PostgresPersister::connect(&url).await.unwrap();
    conformance::check(&store).await;
    assert!(
        store
            .summary()
            .starts_with("PostgreSQL store at postgres://")
    );
}

/// Hosts starting together on a fresh database all get a store: the schema is set up once,
/// under a lock, whoever comes first (plain `CREATE TABLE IF NOT EXISTS` races and fails).
#[tokio::test(flavor = "multi_thread")]
async fn hosts_starting_together_on_a_fresh_database_all_get_the_schema_once() {
    // The race is narrow: many hosts, several fresh databases.
    for round in 0..4 {
        let url = own_database(&format!("fresh_schema_{round}")).await;
        let start = Arc::new(tokio::sync::Barrier::new(24));
        let connecting: Vec<_> = (0..24)
            .map(|_| {
                let (url, start) = (url.clone(), start.clone());
                tokio::spawn(async move {
                    start.wait().await;
                    PostgresPersister::connect(&url).await
                })
            })
            .collect();
        for connected in connecting {
            let store = connected.await.unwrap();
            let store =
                store.unwrap_or_else(|e| panic!("round {round}: {}", damson_tests::chain(&e)));
            assert!(store.list().await.unwrap().is_empty());
        }
        if round > 0 {
            continue;
        }
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        let versions: Vec<i32> = client
            .query("SELECT version FROM damson_schema ORDER BY version", &[])
            .await
            .unwrap()
            .iter()
            .map(|row| row.get(0))
            .collect();
        assert_eq!(
            versions,
            [1, 2, 3, 4, 5, 6, 7, 8],
            "each step of the schema applied once"
        );
    }
}

/// A store error says what the database said.
#[tokio::test(flavor = "multi_thread")]
async fn a_store_error_carries_the_databases_message() {
    let url = damson_tests::postgres_url();
    let base = url.rsplit_once('/').unwrap().0;
    let Err(error) = PostgresPersister::connect(&format!("{base}/no_such_database")).await else {
        panic!("connected to a database that does not exist");
    };
    let text = damson_tests::chain(&error);
    assert!(text.contains("no_such_database"), "{text}");
    assert!(text.contains("does not exist"), "{text}");
}
