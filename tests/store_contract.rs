//! The store contract (tests/contract) against the redb backend, and what the engine does
//! when a redb store fails (tests/contract/faults.rs).

mod contract;
mod support;

use flowd::store::{RedbStore, Store};
use std::sync::Arc;

const MAX_PAYLOAD: usize = 1 << 20;

async fn fresh_redb() -> Arc<dyn Store> {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open(dir.path(), MAX_PAYLOAD).unwrap();
    // The directory lives as long as the test process; the store holds its file open.
    std::mem::forget(dir);
    Arc::new(store)
}

store_contract!(fresh_redb, MAX_PAYLOAD);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_execution_whose_transition_cannot_be_recorded_stops_there_and_recovers_without_repeating_a_stored_step() {
    contract::faults::a_transition_that_cannot_be_recorded_stops_there_and_recovers(fresh_redb).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_given_up_while_the_heartbeat_renews_it_stays_given_up() {
    contract::faults::a_lease_given_up_while_the_heartbeat_renews_it_stays_given_up(fresh_redb().await).await;
}
