//! The one wasmtime `Engine`: component model, fuel, epoch interruption, and a pooling
//! allocator sized from the daemon's limits; plus the single epoch ticker that drives
//! every store's deadline.

use super::functions::FunctionCache;
use crate::config::Limits;
use anyhow::Context as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, OptLevel, PoolingAllocationConfig};

/// How often the epoch advances: the resolution of timeouts, and how often a running
/// component yields to the async runtime.
pub const TICK: Duration = Duration::from_millis(2);

const WASM_PAGE: u64 = 64 << 10;

/// Bytes of each linear memory reset in place rather than decommitted.
const KEEP_RESIDENT: usize = 4 << 20;

/// Core instances one component may hold.
const CORE_INSTANCES_PER_COMPONENT: u32 = 64;

/// Each memory's slot when the address space allows (`max_memory` is at most 4 GiB, a
/// 32-bit memory's largest): every address a guest can form lands in the slot or its
/// guard pages, so compiled code needs no bounds check on a load or store (explicit
/// checks cost ~7% of the daemon's CPU per execution on the peer shape, its three
/// `transform` steps: five paired runs of `benches/peer`'s load).
const FULL_SLOT: u64 = 1 << 32;

/// Builds the engine. The pool holds `limits.instances` component instances, each with
/// room for `limits.max_step.memory` bytes of linear memory and nothing more; compiled
/// functions are kept in `functions` when given. Each memory's slot reserves
/// [`FULL_SLOT`] of address space (not memory) unless the process may not (`ulimit -v`);
/// then it reserves `max_memory` only, with a warning that says why.
pub fn build(limits: &Limits, functions: Option<Arc<FunctionCache>>) -> anyhow::Result<Engine> {
    let max_memory = limits.max_step.memory.div_ceil(WASM_PAGE) * WASM_PAGE;
    match build_with(limits, functions.clone(), max_memory, FULL_SLOT) {
        Ok(engine) => Ok(engine),
        Err(full) => {
            let engine = build_with(limits, functions, max_memory, max_memory)?;
            tracing::warn!(
                error = %format!("{full:#}"),
                "the connector pool could not reserve 4 GiB of address space per memory \
                 (is `ulimit -v` set?); memories are sized to limits.max_step.memory instead, and connectors run \
                 with a bounds check on every load and store (slower)"
            );
            Ok(engine)
        }
    }
}

fn build_with(
    limits: &Limits,
    functions: Option<Arc<FunctionCache>>,
    max_memory: u64,
    reservation: u64,
) -> anyhow::Result<Engine> {
    let instances = limits.instances;

    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(instances)
        // Rust components hold a handful of core instances (the program plus shims), a
        // componentize-py one 38 (the interpreter, libc and its extension modules). A core
        // instance's slot is a count, not reserved memory, so the room costs nothing.
        .total_core_instances(instances * CORE_INSTANCES_PER_COMPONENT)
        .max_core_instances_per_component(CORE_INSTANCES_PER_COMPONENT)
        .total_memories(instances * 2)
        .max_memories_per_component(2)
        .total_tables(instances * 4)
        .max_tables_per_component(8)
        .total_stacks(instances)
        .max_memory_size(max_memory as usize)
        // Resetting a slot's dirty pages in place (found with PAGEMAP_SCAN on Linux 6.7+)
        // instead of madvise-and-refault saves the page faults, copy-on-write copies and
        // cross-CPU TLB shootdowns that otherwise dominate a short invocation. A Rust
        // guest's stack sits below its data, so the resident window must cover both.
        .pagemap_scan(Enabled::Auto)
        .linear_memory_keep_resident(KEEP_RESIDENT)
        .table_keep_resident(16 << 10)
        // A slot whose memory grew past the resident window is decommitted as soon as it
        // is freed, so the next invocation can reuse it: batching decommits would keep up
        // to a batch of full-size memories resident, and RSS would climb by a memory cap
        // per invocation before falling back (a step growing to 128 MiB, run one at a
        // time, took RSS to 2.25 GB). Small invocations stay within the window and queue
        // nothing to decommit.
        .decommit_batch_size(1);

    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .consume_fuel(true)
        .epoch_interruption(true)
        .cranelift_opt_level(OptLevel::Speed)
        // Growth past `max_memory` is refused by the pool whatever the slot's size.
        .memory_reservation(reservation)
        .memory_reservation_for_growth(0)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    if let Some(f) = functions {
        config.enable_incremental_compilation(f).map_err(anyhow::Error::from)?;
    }
    Engine::new(&config)
        .map_err(anyhow::Error::from)
        .context("creating the wasmtime engine (pooling allocator)")
}

/// Advances the engine's epoch every [`TICK`] until dropped; the thread is joined on drop.
pub struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    pub fn start(engine: Engine) -> EpochTicker {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("flowd-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(TICK);
                    engine.increment_epoch();
                }
            })
            .expect("spawning the epoch ticker thread");
        EpochTicker {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
