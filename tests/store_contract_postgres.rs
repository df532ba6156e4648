//! The store contract (tests/contract) against the PostgreSQL backend, each check on a
//! database of its own on the test server (see tests/support/postgres.rs), what the
//! engine does when the store fails (tests/contract/faults.rs), and what opening a
//! database does: migrations once, a newer schema refused, an unreachable
//! server named.

mod contract;
mod support;

use flowd::store::{PostgresStore, Store};
use std::sync::Arc;
use support::postgres::{Database, Scratch};

const MAX_PAYLOAD: usize = 1 << 20;

async fn fresh_postgres() -> Arc<dyn Store> {
    Arc::new(Scratch::new(MAX_PAYLOAD).await)
}

store_contract!(fresh_postgres, MAX_PAYLOAD);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_execution_whose_transition_cannot_be_recorded_stops_there_and_recovers_without_repeating_a_stored_step() {
    contract::faults::a_transition_that_cannot_be_recorded_stops_there_and_recovers(fresh_postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_schema_is_migrated_once_and_a_newer_one_is_refused() {
    let db = Database::create();
    let store = PostgresStore::open(&db.url, MAX_PAYLOAD, 2).await.unwrap();
    let version = store.migrate().await.unwrap();
    assert!(version >= 1);
    // Opened again (another daemon, a restart): nothing applied twice.
    let again = PostgresStore::open(&db.url, MAX_PAYLOAD, 2).await.unwrap();
    assert_eq!(again.migrate().await.unwrap(), version);
    drop((store, again));

    let (client, conn) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls).await.unwrap();
    let task = tokio::spawn(conn);
    let versions: Vec<i32> = client
        .query("SELECT version FROM flowd_schema_version ORDER BY version", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(versions, (1..=version as i32).collect::<Vec<_>>());
    client
        .execute(
            "INSERT INTO flowd_schema_version (version) VALUES ($1)",
            &[&(version as i32 + 1)],
        )
        .await
        .unwrap();
    drop(client);
    let _ = task.await;
    let err = PostgresStore::open(&db.url, MAX_PAYLOAD, 2)
        .await
        .err()
        .expect("a newer schema was opened");
    let msg = err.to_string();
    assert!(msg.contains("newer than this flowd knows"), "{msg}");
    assert!(msg.contains(&db.name), "the message names the database: {msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_is_named_without_its_password() {
    // Port 1: nothing listens there.
    let url = "postgres://flowd:s3cret-pw@127.0.0.1:1/flowd";
    let err = PostgresStore::open(url, MAX_PAYLOAD, 2)
        .await
        .err()
        .expect("opened nothing");
    let msg = err.to_string();
    assert!(msg.contains("127.0.0.1:1/flowd"), "{msg}");
    assert!(!msg.contains("s3cret-pw"), "the password leaked: {msg}");
}
