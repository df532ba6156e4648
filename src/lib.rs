//! flowd runs automation flows whose triggers and actions are sandboxed WebAssembly
//! components.
//!
//! The modules, in layers from the ground up; each imports only from layers below its
//! own (`tests/layers.rs` checks this, and that no two files import each other):
//!
//! 0. [`status`] (execution and step statuses, how a step used its connector),
//!    `sync` (locks that survive a panicking holder), `time_format` (RFC 3339, clamped
//!    time arithmetic): the vocabulary every layer shares.
//! 1. [`config`]: the daemon config and flow files, read key by key and validated into
//!    resolved types before anything runs; every problem located and rendered as cargo
//!    renders diagnostics.
//! 2. [`plugin`]: the wasmtime engine, compiled-component cache, linker and sandbox
//!    policy; one bounded store (fuel, epoch deadline, memory limiter) per invocation.
//!    [`schedule`]: cron schedules in IANA time zones, next fire times and catch-up.
//! 3. [`store`]: durable executions: the backend-neutral async `Store` trait (with its
//!    claims for daemons sharing a store), the embedded redb backend (the default) and
//!    the PostgreSQL backend.
//! 4. [`loader`]: one loader for a whole setup (connectors, flows, each step's config
//!    through its connector, the checks across flows, listeners and tokens), used by
//!    `serve`, `validate`, reload, `run` and the offline commands alike.
//! 5. [`engine`]: how an event becomes an execution and how an execution runs, every
//!    transition recorded before it is acted upon.
//! 6. [`metrics`]: counters and histograms for `/metrics` (an engine observer);
//!    [`detail`]: the typed read model of one execution (its attempts, steps, payloads
//!    by key, whether it can be retried), for the API and the CLI.
//! 7. [`daemon`]: `flowd serve`: the listeners, dispatch, schedules, the admin API and
//!    its web console (built from `console/` and embedded), operator actions and shutdown.
//! 8. [`cli`]: the `flowd` command line, one module per command.

pub mod cli;
pub mod config;
pub mod daemon;
pub mod detail;
pub mod engine;
pub mod loader;
pub mod metrics;
pub mod plugin;
pub mod schedule;
pub mod status;
pub mod store;
pub(crate) mod sync;
pub(crate) mod time_format;
