//! The stores against real servers: the PostgreSQL persister through the conformance suite
//! every persister passes (the in-memory and embedded ones pass it in the library's own tests).

use damson::persist::{Persister, PostgresPersister, conformance};

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
