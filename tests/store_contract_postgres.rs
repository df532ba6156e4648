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

/// A queued execution of flow `a` stored under a claim of `owner`'s for `ttl`; its lease.
async fn claimed(store: &Arc<dyn Store>, owner: &str, ttl: std::time::Duration) -> flowd::store::Lease {
    use flowd::store::{JobId, Lease, Write};
    let t = std::time::SystemTime::now();
    let e = contract::execution(JobId::new(), "a", flowd::engine::ExecutionStatus::Queued, t);
    let lease = Lease {
        job: e.job_id,
        owner: owner.into(),
        fence: 1,
        expires: t,
    };
    let claim = Write::Claim {
        job: e.job_id,
        owner: owner.into(),
        ttl,
    };
    store.write(vec![claim, Write::Execution(e)]).await.unwrap();
    lease
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_execution_whose_transition_cannot_be_recorded_stops_there_and_recovers_without_repeating_a_stored_step() {
    contract::faults::a_transition_that_cannot_be_recorded_stops_there_and_recovers(fresh_postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_given_up_while_the_heartbeat_renews_it_stays_given_up() {
    contract::faults::a_lease_given_up_while_the_heartbeat_renews_it_stays_given_up(fresh_postgres().await).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_histogram_counts_what_the_list_shows_per_bucket_and_status() {
    use flowd::engine::ExecutionStatus;
    use flowd::store::{JobId, ListQuery, Write};
    use std::time::{Duration, SystemTime};
    // The statuses in the order of their codes (main's `ExecutionStatus::ALL`).
    const ORDER: [ExecutionStatus; 8] = [
        ExecutionStatus::Pending,
        ExecutionStatus::Queued,
        ExecutionStatus::Running,
        ExecutionStatus::Paused,
        ExecutionStatus::Success,
        ExecutionStatus::PartiallyExecuted,
        ExecutionStatus::Failed,
        ExecutionStatus::Rejected,
    ];
    let db = Database::create();
    let store = PostgresStore::open(&db.url, MAX_PAYLOAD, 2).await.unwrap();
    assert_eq!(store.oldest().await.unwrap(), None);
    let t0 = contract::ms(SystemTime::now() - Duration::from_secs(3600));
    let statuses = [
        ExecutionStatus::Success,
        ExecutionStatus::Failed,
        ExecutionStatus::Running,
        ExecutionStatus::Queued,
    ];
    let rows: Vec<_> = (0..40u64)
        .map(|i| {
            let t = t0 + Duration::from_secs(7 * i);
            let flow = ["a", "b", "c"][i as usize % 3];
            contract::execution(JobId::at(t), flow, statuses[i as usize % 4], t)
        })
        .collect();
    store
        .write(rows.iter().cloned().map(Write::Execution).collect())
        .await
        .unwrap();
    assert_eq!(store.oldest().await.unwrap(), Some(rows[0].clone()));
    let edges: Vec<SystemTime> = (0..6u64).map(|i| t0 + Duration::from_secs(50 * i + 3)).collect();
    for q in [
        ListQuery::default(),
        ListQuery {
            flow: Some("a".into()),
            ..ListQuery::default()
        },
        ListQuery {
            statuses: vec![ExecutionStatus::Failed, ExecutionStatus::Queued],
            project: Some("shop".into()),
            ..ListQuery::default()
        },
        ListQuery {
            from: Some(t0 + Duration::from_secs(100)),
            trigger_kind: Some("schedule".into()),
            ..ListQuery::default()
        },
    ] {
        let got = store.histogram(&q, &edges).await.unwrap();
        assert_eq!(got.len(), edges.len() - 1);
        // What the list shows, counted by hand.
        let listed = store.list(&ListQuery { limit: 0, ..q.clone() }).await.unwrap();
        let mut want = vec![[0u64; 8]; edges.len() - 1];
        for e in &listed {
            if let Some(b) = edges
                .windows(2)
                .position(|w| e.created_at >= w[0] && e.created_at < w[1])
            {
                let code = ORDER.iter().position(|s| *s == e.status).unwrap();
                want[b][code] += 1;
            }
        }
        assert_eq!(got, want, "{q:?}");
        assert!(got.iter().flatten().sum::<u64>() > 0, "{q:?} counted nothing");
    }
}

/// Throttle places across daemons: never more than `max_concurrency` held, the oldest
/// waiter first, a place of a taken-over execution free again, a lost lease refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttle_places_hold_the_limit_across_owners_and_go_to_the_oldest_waiter() {
    use flowd::store::{ClaimError, Lease, Slot};
    use std::time::Duration;
    let store = fresh_postgres().await;
    let long = Duration::from_secs(60);
    let mut leases = Vec::new();
    for (owner, ttl) in [("x", Duration::from_millis(300)), ("y", long), ("x", long), ("y", long)] {
        leases.push(claimed(&store, owner, ttl).await);
    }
    async fn take(store: &Arc<dyn Store>, l: &Lease) -> Result<Slot, ClaimError> {
        store.take_slot(l, "a", 2, None).await
    }
    // Two places: the two oldest get them.
    assert_eq!(take(&store, &leases[0]).await.unwrap(), Slot::Granted);
    assert_eq!(take(&store, &leases[1]).await.unwrap(), Slot::Granted);
    // Full: the third waits, and then the fourth waits behind it even once one frees.
    assert!(matches!(take(&store, &leases[2]).await.unwrap(), Slot::Wait(_)));
    store.free_slot(&leases[1]).await.unwrap();
    assert!(matches!(take(&store, &leases[3]).await.unwrap(), Slot::Wait(_)));
    assert_eq!(take(&store, &leases[2]).await.unwrap(), Slot::Granted);
    assert!(matches!(take(&store, &leases[3]).await.unwrap(), Slot::Wait(_)));
    // The first place's lease ends (its daemon died): the place stays held (its step may
    // still run) until another daemon takes the execution over.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(matches!(take(&store, &leases[3]).await.unwrap(), Slot::Wait(_)));
    let taken = store.take_over("w", long, &["a".to_string()], 1).await.unwrap();
    assert_eq!(taken[0].0.job_id, leases[0].job);
    assert_eq!(take(&store, &leases[3]).await.unwrap(), Slot::Granted);
    // ... and its old owner may not take one under the lease it lost.
    match take(&store, &leases[0]).await {
        Err(ClaimError::Lost(job)) => assert_eq!(job, leases[0].job),
        other => panic!("a place under an ended lease: {other:?}"),
    }
    // A rate: one start per interval, the next told how long to wait.
    let rated = claimed(&store, "z", long).await;
    let next = claimed(&store, "z", long).await;
    let hour = Some(Duration::from_secs(3600));
    assert_eq!(store.take_slot(&rated, "r", 5, hour).await.unwrap(), Slot::Granted);
    match store.take_slot(&next, "r", 5, hour).await.unwrap() {
        Slot::Wait(d) => assert!(d > Duration::from_secs(3000), "{d:?}"),
        Slot::Granted => panic!("a second start within the rate's interval"),
    }
}

/// A lease that ran out while nobody claimed its execution since is still its holder's
/// (its fence is current: the heartbeat renews it, its writes are taken), so its ask for
/// a throttle place is answered, not refused as lost; refused once another owner claims
/// it, and then what it gives up is only its own, not the new holder's place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_lease_nobody_claimed_since_still_gets_its_throttle_place() {
    use flowd::store::{ClaimError, Slot};
    use std::time::Duration;
    let store = fresh_postgres().await;
    let late = &claimed(&store, "x", Duration::from_millis(200)).await;
    let other = &claimed(&store, "y", Duration::from_secs(60)).await;
    // Its daemon stalled past the lease (a heartbeat not sent in time), then asks.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(store.take_slot(late, "a", 1, None).await.unwrap(), Slot::Granted);
    assert!(matches!(
        store.take_slot(other, "a", 1, None).await.unwrap(),
        Slot::Wait(_)
    ));
    // Another daemon takes it over: the old holder's asks are refused, and the place is
    // the new holder's, which the old one giving up its own does not free.
    let taken = store
        .take_over("w", Duration::from_secs(60), &["a".to_string()], 10)
        .await
        .unwrap();
    assert_eq!(taken.len(), 1);
    let again = &taken[0].1;
    assert_eq!(again.job, late.job);
    match store.take_slot(late, "a", 1, None).await {
        Err(ClaimError::Lost(job)) => assert_eq!(job, late.job),
        other => panic!("a place under a lease another owner claimed: {other:?}"),
    }
    assert_eq!(store.take_slot(again, "a", 1, None).await.unwrap(), Slot::Granted);
    store.free_slot(late).await.unwrap();
    assert!(matches!(
        store.take_slot(other, "a", 1, None).await.unwrap(),
        Slot::Wait(_)
    ));
    store.free_slot(again).await.unwrap();
    assert_eq!(store.take_slot(other, "a", 1, None).await.unwrap(), Slot::Granted);
}

/// A waiter whose execution another daemon takes over leaves the line until its new
/// holder asks (it may wait in that daemon's own queue first, behind younger ones that
/// wait for it here), and is in it again, at its old place, once it does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_taken_over_leaves_the_line_until_its_new_holder_asks() {
    use flowd::store::Slot;
    use std::time::Duration;
    let store = fresh_postgres().await;
    let long = Duration::from_secs(60);
    let mut leases = Vec::new();
    for (owner, ttl) in [("x", long), ("x", Duration::from_millis(300)), ("y", long)] {
        leases.push(claimed(&store, owner, ttl).await);
    }
    let (running, older, younger) = (&leases[0], &leases[1], &leases[2]);
    assert_eq!(store.take_slot(running, "a", 1, None).await.unwrap(), Slot::Granted);
    assert!(matches!(
        store.take_slot(older, "a", 1, None).await.unwrap(),
        Slot::Wait(_)
    ));
    store.free_slot(running).await.unwrap();
    assert!(
        matches!(store.take_slot(younger, "a", 1, None).await.unwrap(), Slot::Wait(_)),
        "the older waiter goes first"
    );
    // The older one's daemon dies; another takes its execution over and has not asked.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let taken = store.take_over("w", long, &["a".to_string()], 10).await.unwrap();
    assert_eq!(taken.len(), 1);
    let (_, again) = &taken[0];
    assert_eq!(again.job, older.job);
    assert_eq!(store.take_slot(younger, "a", 1, None).await.unwrap(), Slot::Granted);
    // Once its new holder asks it is in line again, ahead of a younger waiter.
    let youngest = claimed(&store, "y", long).await;
    assert!(matches!(
        store.take_slot(again, "a", 1, None).await.unwrap(),
        Slot::Wait(_)
    ));
    store.free_slot(younger).await.unwrap();
    assert!(matches!(
        store.take_slot(&youngest, "a", 1, None).await.unwrap(),
        Slot::Wait(_)
    ));
    assert_eq!(store.take_slot(again, "a", 1, None).await.unwrap(), Slot::Granted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_that_finds_no_connection_in_time_says_how_full_the_pool_is() {
    use flowd::store::JobId;
    let db = Database::create();
    let store = Arc::new(PostgresStore::open(&db.url, MAX_PAYLOAD, 1).await.unwrap());
    // Another session locks the executions table, so a read through the pool's one
    // connection waits for it, holding that connection.
    let (holder, conn) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls).await.unwrap();
    let task = tokio::spawn(conn);
    holder
        .batch_execute("BEGIN; LOCK TABLE executions IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let reading = {
        let store = store.clone();
        tokio::spawn(async move { store.execution(JobId(1)).await })
    };
    wait_until_the_pool_is_taken(&store).await;
    let err = store
        .execution(JobId(2))
        .await
        .expect_err("a read without a connection");
    assert!(
        err.to_string()
            .contains("no connection to the database in time (1 of 1 connections in use, 0 waiting)"),
        "{err}"
    );
    // Typed so that callers tell it from a failed read: asking again later may work.
    assert!(matches!(err, flowd::store::ReadError::Unavailable(_)), "{err:?}");
    // A write outside a lease (an operator's) is told the same, and nothing is written.
    let err = store
        .write(vec![flowd::store::Write::FlowActive {
            flow: "f".into(),
            active: false,
        }])
        .await
        .expect_err("a write without a connection");
    assert!(matches!(err, flowd::store::WriteError::Unavailable(_)), "{err:?}");
    assert!(
        err.to_string()
            .contains("no connection to the database in time (1 of 1 connections in use"),
        "{err}"
    );
    holder.batch_execute("ROLLBACK").await.unwrap();
    // The first read goes on once the lock is free.
    assert!(reading.await.unwrap().unwrap().is_none());
    assert!(
        store.inactive_flows().await.unwrap().is_empty(),
        "the refused write left nothing"
    );
    drop(holder);
    let _ = task.await;
}

/// Until the pool's one connection is in use (the pool's own gauges say so).
async fn wait_until_the_pool_is_taken(store: &PostgresStore) {
    loop {
        let mut metrics = String::new();
        store.render_metrics(&mut metrics);
        if metrics.contains("flowd_store_pool_size 1\n") && metrics.contains("flowd_store_pool_available 0\n") {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttle_ask_that_finds_the_flows_lock_taken_waits_without_holding_a_connection() {
    use flowd::store::{JobId, Lease, Slot};
    let db = Database::create();
    let store = PostgresStore::open(&db.url, MAX_PAYLOAD, 1).await.unwrap();
    // Another daemon is deciding a grant for flow f: it holds the flow's lock.
    let (holder, conn) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls).await.unwrap();
    let task = tokio::spawn(conn);
    holder
        .batch_execute(
            "INSERT INTO claims (job_id, owner, fence, expires_ns)
             VALUES ('\\x00000000000000000000000000000001', 'flowd-test', 1, 9000000000000000000)",
        )
        .await
        .unwrap();
    holder
        .batch_execute("BEGIN; SELECT pg_advisory_xact_lock(hashtextextended('flowd throttle f', 0))")
        .await
        .unwrap();
    let lease = Lease {
        job: JobId(1),
        owner: "flowd-test".into(),
        fence: 1,
        expires: std::time::SystemTime::now(),
    };
    // Its turn by the line, but the lock is taken: it is told to ask again soon, and the
    // pool's one connection is free for everything else meanwhile.
    for _ in 0..3 {
        match store.take_slot(&lease, "f", 1, None).await.unwrap() {
            Slot::Wait(wait) => assert!(wait <= std::time::Duration::from_millis(50), "{wait:?}"),
            Slot::Granted => panic!("granted while another session held the flow's lock"),
        }
        assert!(store.execution(JobId(2)).await.unwrap().is_none());
    }
    holder.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(store.take_slot(&lease, "f", 1, None).await.unwrap(), Slot::Granted);
    drop(holder);
    let _ = task.await;
}
