//! flowd runs automation flows whose triggers and actions are sandboxed WebAssembly
//! components.
//!
//! - [`config`]: the daemon config and flow files, read key by key and validated into
//!   resolved types before anything runs; every problem located and rendered as cargo
//!   renders diagnostics.
//! - [`plugin`]: the wasmtime engine, compiled-component cache, linker and sandbox policy;
//!   one bounded store (fuel, epoch deadline, memory limiter) per invocation.
//! - [`engine`]: the executor and the execution/step status machine.
//! - [`loader`]: one loader for a whole setup (connectors, flows, each step's config
//!   through its connector, the checks across flows, listeners and tokens), used by
//!   `serve`, `validate`, reload, `run` and the offline commands alike.
//! - [`schedule`]: cron schedules in IANA time zones: next fire times and catch-up.
//! - [`store`]: durable executions: the `Store` trait and its redb implementation.
//! - [`daemon`]: `flowd serve`: the trigger listener, dispatch, the admin API and shutdown.
//! - [`metrics`]: counters and histograms of executions and steps for `/metrics`.
//! - [`cli`]: the `flowd` command line.

pub mod cli;
pub mod config;
pub mod daemon;
pub mod engine;
pub mod loader;
pub mod metrics;
pub mod plugin;
pub mod schedule;
pub mod status;
pub mod store;
pub(crate) mod sync;
pub(crate) mod time_format;
pub mod views;
