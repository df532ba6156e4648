//! The connector runtime in-process, on one engine: a component that traps, loops or
//! exhausts a limit never spoils the next invocation, the instance pool is not leaked,
//! and a looping component does not hold up other work on the async runtime.

mod support;

use flowd::config::{DaemonConfig, Grants, StepLimits};
use flowd::plugin::{CallContext, Connector, ErrorKind, Runtime};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

fn runtime(instances: u32) -> Arc<Runtime> {
    let mut config = DaemonConfig::builtin();
    config.cache_dir = Some(support::cache_dir().join("flowd"));
    config.limits.instances = instances;
    config.limits.max_step.fuel = u64::MAX / 4;
    Arc::new(Runtime::new(&config).expect("runtime"))
}

fn load(rt: &Runtime, name: &str) -> Arc<Connector> {
    let bytes = std::fs::read(support::fixture(name)).unwrap();
    Arc::new(
        rt.load(name, &bytes, &Grants::default())
            .unwrap_or_else(|e| panic!("loading {name}: {e}")),
    )
}

fn ctx() -> CallContext {
    CallContext {
        job_id: "job".into(),
        project: "p".into(),
        flow: "f".into(),
        step: "s".into(),
        attempt: 1,
        environment: "test".into(),
    }
}

fn limits(fuel: u64, timeout_ms: u64, memory_mib: u64) -> StepLimits {
    StepLimits {
        fuel,
        timeout: Duration::from_millis(timeout_ms),
        memory: memory_mib << 20,
    }
}

async fn run(rt: &Arc<Runtime>, c: &Arc<Connector>, config: Value, l: StepLimits) -> Result<Value, ErrorKind> {
    let inv = c
        .run(
            rt,
            &ctx(),
            config.to_string().into(),
            r#"{"trigger": 1, "steps": {}}"#.into(),
            &l,
            l.timeout,
        )
        .await;
    inv.result.map(|o| o.value).map_err(|f| f.kind)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_failure_leaves_the_engine_usable() {
    // Four slots: the pool is reused many times over, so a slot lost to a trap would show.
    let rt = runtime(4);
    let echo = load(&rt, "echo");
    let cases: Vec<(&str, Value, StepLimits, ErrorKind)> = vec![
        (
            "fail",
            json!({}),
            limits(1_000_000_000, 5_000, 32),
            ErrorKind::Connector,
        ),
        (
            "looper",
            json!({}),
            limits(5_000_000, 30_000, 32),
            ErrorKind::FuelExhausted,
        ),
        ("looper", json!({}), limits(u64::MAX / 8, 200, 32), ErrorKind::Timeout),
        (
            "membomb",
            json!({}),
            limits(u64::MAX / 8, 30_000, 8),
            ErrorKind::MemoryLimit,
        ),
        (
            "recursion",
            json!({}),
            limits(1_000_000_000, 5_000, 32),
            ErrorKind::Trap,
        ),
        ("panic", json!({}), limits(1_000_000_000, 5_000, 32), ErrorKind::Trap),
        (
            "huge-output",
            json!({"bytes": 2_000_000}),
            limits(1_000_000_000, 5_000, 32),
            ErrorKind::InvalidOutput,
        ),
        (
            "not-json",
            json!({}),
            limits(1_000_000_000, 5_000, 32),
            ErrorKind::InvalidOutput,
        ),
    ];
    for round in 0..3 {
        for (name, config, l, kind) in &cases {
            let c = load(&rt, name);
            assert_eq!(
                run(&rt, &c, config.clone(), *l).await,
                Err(*kind),
                "{name} (round {round})"
            );
            let after = run(&rt, &echo, json!({"after": name}), limits(1_000_000_000, 5_000, 32)).await;
            assert_eq!(after.expect("echo after a failure")["config"], json!({"after": name}));
        }
    }
}

/// On a single-threaded runtime, a component that never yields would keep every other
/// task from running until it is killed. The looper runs for up to 20 s; the echo
/// executions must all complete while it is still running.
#[tokio::test(flavor = "current_thread")]
async fn a_looping_component_does_not_block_other_executions() {
    let rt = runtime(8);
    let looper = load(&rt, "looper");
    let echo = load(&rt, "echo");
    let looping = {
        let (rt, looper) = (rt.clone(), looper.clone());
        tokio::spawn(async move { run(&rt, &looper, json!({}), limits(u64::MAX / 8, 20_000, 32)).await })
    };
    // Let the looper start and enter its loop.
    tokio::time::sleep(Duration::from_millis(50)).await;
    for i in 0..20 {
        let out = run(&rt, &echo, json!({"i": i}), limits(1_000_000_000, 5_000, 32)).await;
        assert_eq!(out.expect("echo")["config"]["i"], i);
        assert!(!looping.is_finished(), "echo {i} only ran after the looper ended");
    }
    looping.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_invocations_share_the_pool() {
    let rt = runtime(16);
    let echo = load(&rt, "echo");
    let mut tasks = Vec::new();
    for i in 0..64 {
        let (rt, echo) = (rt.clone(), echo.clone());
        tasks.push(tokio::spawn(async move {
            run(&rt, &echo, json!({"i": i}), limits(1_000_000_000, 10_000, 16)).await
        }));
    }
    for (i, t) in tasks.into_iter().enumerate() {
        assert_eq!(t.await.unwrap().expect("echo")["config"]["i"], i);
    }
}
