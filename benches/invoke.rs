//! Per-step cost of flowd's invocation path (`Connector::run`: a fresh bounded store,
//! WASI with captured stdio, the log import, output checks) against raw wasmtime
//! `InstancePre` instantiate + call of the same echo component, measured in one run.
//!
//! Run: `cargo bench --bench invoke` (add `-- --quick` for a short run).

use flowd::config::{DaemonConfig, Flow, SourceFile, StepLimits};
use flowd::engine::Executor;
use flowd::plugin::bindings::action::{ActionConnector, ActionConnectorPre};
use flowd::plugin::bindings::{log_iface, types};
use flowd::plugin::{CallContext, Registry, Runtime, TriggerEvent};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// The allocator the `flowd` binary uses.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The least a host must hold to run the component: WASI and a `log` that keeps nothing.
struct Raw {
    wasi: WasiCtx,
    table: ResourceTable,
}

impl WasiView for Raw {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl log_iface::Host for Raw {
    fn log(&mut self, _: log_iface::Level, _: String, _: String) {}
}

impl types::Host for Raw {}

/// A plain engine: pooling allocator (same sizes as flowd's), no fuel, no epochs.
fn plain_engine() -> Engine {
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(100)
        .total_core_instances(800)
        .total_memories(200)
        .total_tables(400)
        .total_stacks(100)
        .max_memory_size(64 << 20)
        .linear_memory_keep_resident(64 << 10);
    let mut c = Config::new();
    c.memory_reservation(64 << 20)
        .memory_reservation_for_growth(0)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Engine::new(&c).unwrap()
}

fn raw_pre(engine: &Engine, wasm: &[u8]) -> ActionConnectorPre<Raw> {
    let component = Component::new(engine, wasm).unwrap();
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).unwrap();
    log_iface::add_to_linker::<Raw, HasSelf<Raw>>(&mut linker, |s| s).unwrap();
    ActionConnectorPre::new(linker.instantiate_pre(&component).unwrap()).unwrap()
}

fn wit_ctx() -> types::Context {
    types::Context {
        job_id: "01940000-0000-7000-8000-000000000000".into(),
        project: "bench".into(),
        flow: "bench".into(),
        step: "echo".into(),
        attempt: 1,
        environment: "bench".into(),
    }
}

/// One raw call; `bounded` sets the fuel and epoch deadline flowd's engine requires.
async fn raw_call(engine: &Engine, pre: &ActionConnectorPre<Raw>, config: &str, input: &str, bounded: bool) {
    let mut store = Store::new(
        engine,
        Raw {
            wasi: WasiCtx::builder().build(),
            table: ResourceTable::new(),
        },
    );
    if bounded {
        store.set_fuel(u64::MAX).unwrap();
        store.set_epoch_deadline(u64::MAX / 2);
    }
    let inst: ActionConnector = pre.instantiate_async(&mut store).await.unwrap();
    let out = inst
        .flowd_connector_action()
        .call_run(&mut store, &wit_ctx(), config, input)
        .await
        .unwrap();
    assert!(out.is_ok());
}

/// Median over rounds of the mean time per call within a round.
fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (rounds, per_round) = if quick { (3, 300) } else { (9, 2000) };
    let wasm = std::fs::read(flowd_fixtures::wasm("echo")).unwrap();

    let mut config = DaemonConfig::builtin();
    config.cache_dir = None;
    config.limits.max_step.memory = 64 << 20;
    config.limits.step.memory = 64 << 20;
    config.limits.instances = 100;
    let rt = Arc::new(Runtime::new(&config).unwrap());
    let connector = Arc::new(rt.load("echo", &wasm, &Default::default()).unwrap());
    let plain = plain_engine();
    let plain_pre = raw_pre(&plain, &wasm);
    let flowd_engine_pre = raw_pre(rt.engine(), &wasm);

    // A ~1 KiB input, as a step of a small flow would get.
    let input_value = json!({"trigger": {"body": {"order": {"id": "A-1", "note": "x".repeat(900)}}}, "steps": {}});
    let input = input_value.to_string();
    let config_text = json!({"greeting": "hi"}).to_string();
    let config_shared: std::sync::Arc<str> = config_text.as_str().into();
    let limits = StepLimits {
        fuel: 1_000_000_000,
        timeout: Duration::from_secs(10),
        memory: 64 << 20,
    };
    let ctx = CallContext {
        job_id: "01940000-0000-7000-8000-000000000000".into(),
        project: "bench".into(),
        flow: "bench".into(),
        step: "echo".into(),
        attempt: 1,
        environment: "bench".into(),
    };

    // A one-step flow through the whole executor, for scale.
    let mut flow_config = config.clone();
    flow_config.connectors.clear();
    let dir = std::env::temp_dir();
    let mut registry_config = flow_config.clone();
    registry_config.connectors.clear();
    let (mut registry, _) = Registry::load(rt.clone(), &registry_config);
    let echo_path = flowd_fixtures::wasm("echo");
    registry.insert_file("echo", &echo_path).unwrap();
    flow_config.connectors.insert(
        "echo".into(),
        flowd::config::ConnectorConfig {
            name: "echo".into(),
            source: flowd::config::ConnectorSource::File(echo_path.clone()),
            grants: Default::default(),
            location: None,
            place: None,
        },
    );
    let flow_src = SourceFile::new(
        dir.join("bench.toml"),
        "[flow]\nname = \"bench\"\n[trigger.manual]\n[[steps]]\nname = \"echo\"\nconnector = \"echo\"\nconfig = { greeting = \"hi\" }\n",
    );
    let flow = Flow::parse(&flow_src, &flow_config).unwrap();
    let executor = Executor::new(Arc::new(registry), "bench");

    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let names = [
        "raw wasmtime: InstancePre instantiate + call (plain engine)",
        "raw wasmtime on flowd's engine (fuel + epochs on)",
        "flowd invocation path: Connector::run",
        "flowd executor: one-step flow, trigger to report",
    ];
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
    tokio.block_on(async {
        for warm in [true, false] {
            for _ in 0..(if warm { 1 } else { rounds }) {
                // Interleaved, so drift on a busy machine hits every variant alike.
                for (i, s) in samples.iter_mut().enumerate() {
                    let n = if warm { 200 } else { per_round };
                    let t = Instant::now();
                    for _ in 0..n {
                        match i {
                            0 => raw_call(&plain, &plain_pre, &config_text, &input, false).await,
                            1 => raw_call(rt.engine(), &flowd_engine_pre, &config_text, &input, true).await,
                            2 => {
                                let inv = connector
                                    .run(&rt, &ctx, config_shared.clone(), input.clone(), &limits, limits.timeout)
                                    .await;
                                assert!(inv.result.is_ok());
                            }
                            _ => {
                                let r = executor
                                    .execute(&flow, TriggerEvent::Manual(json!({"n": 1})))
                                    .await
                                    .unwrap();
                                assert_eq!(r.status, flowd::engine::ExecutionStatus::Success);
                            }
                        }
                    }
                    if !warm {
                        s.push(t.elapsed().as_secs_f64() / n as f64);
                    }
                }
            }
        }
    });
    let base = median(samples[0].clone());
    println!("echo component (~1 KiB input), median of {rounds} rounds x {per_round} calls, one thread");
    for (name, s) in names.iter().zip(&samples) {
        let m = median(s.clone());
        println!("  {name:<58} {:>8.2} us  {:>5.2}x", m * 1e6, m / base);
    }
    let ratio = median(samples[2].clone()) / base;
    println!("flowd invocation path / raw wasmtime: {ratio:.2}x (target <= 1.30x)");
}
