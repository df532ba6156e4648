//! One invocation of a component: a fresh store bounded by fuel, an epoch deadline and a
//! memory limiter, run in its [`Lane`], and what it ended with, told as the contract's
//! error kinds. What a component hands the host in one call (its result, a log record, a
//! write) is bounded by `limits.max_payload` and a small margin, checked before the host
//! copies it out of the component's memory, and a step error's code and message are cut
//! to a bounded size: no component can fill the host's memory or the store through what
//! it returns.

use super::engine;
use super::failure::{ErrorKind, Failure};
use super::host::HostState;
use super::lanes::Lane;
use super::log::truncate;
use super::{Invocation, Output, Runtime};
use crate::config::units::{format_bytes, format_duration};
use crate::config::{Grants, StepLimits};
use crate::sync::Lock as _;
use std::time::{Duration, Instant};
use wasmtime::{Store, Trap, UpdateDeadline};

/// Fuel units between two write-backs of a running component's fuel count (about a
/// millisecond of running code here): how far off the fuel reported for a step stopped
/// by its timeout may be.
const FUEL_WRITE_BACK: u64 = 1_000_000;

/// The most of a step error's code that is kept.
const MAX_CODE: usize = 64;
/// The most of a step error's message that is kept (as much as a log record's).
const MAX_MESSAGE: usize = 8 << 10;

/// What a component may hand the host in one call beyond `limits.max_payload`: a step
/// error's code and message, a call's other values.
const TRANSFER_MARGIN: usize = 64 << 10;

/// A component's step error, its code and message cut (saying where) when too long.
pub(super) fn step_failure(e: super::bindings::types::StepError) -> Failure {
    Failure {
        kind: ErrorKind::Connector,
        code: Some(truncate(&e.code, MAX_CODE)),
        message: truncate(&e.message, MAX_MESSAGE),
        retryable: e.retryable,
    }
}

/// A component's result: at most `max` bytes, and JSON.
pub(super) fn output(text: String, max: u64) -> Result<Output, Failure> {
    if text.len() as u64 > max {
        return Err(Failure::new(
            ErrorKind::InvalidOutput,
            format!(
                "output is {}, over the {} payload limit (limits.max_payload)",
                format_bytes(text.len() as u64),
                format_bytes(max)
            ),
        ));
    }
    match serde_json::from_str(&text) {
        Ok(value) => Ok(Output { value, text }),
        Err(e) => {
            let head: String = text.chars().take(60).collect();
            Err(Failure::new(
                ErrorKind::InvalidOutput,
                format!("output is not JSON ({e}); it starts with {head:?}"),
            ))
        }
    }
}

/// A store for one invocation, bounded by `limits` and ending at `deadline`.
fn new_store(
    rt: &Runtime,
    grants: &Grants,
    limits: &StepLimits,
    deadline: Instant,
    lane: &Lane,
) -> anyhow::Result<Store<HostState>> {
    let state = HostState::new(grants, limits.memory, rt.limits.max_log_records)?;
    let mut store = Store::new(&rt.engine, state);
    store.limiter(|s| &mut s.limiter);
    store.set_hostcall_fuel(transfer_limit(rt));
    store.set_fuel(limits.fuel).map_err(anyhow::Error::from)?;
    // Compiled code keeps its fuel count in a register and writes it back only at calls
    // that need it, which an epoch interruption is not: without a write-back every
    // `FUEL_WRITE_BACK` units, a step stopped by its timeout would report only the fuel
    // it used before its first loop. The write-back also yields, as an epoch tick does.
    store
        .fuel_async_yield_interval(Some(FUEL_WRITE_BACK))
        .map_err(anyhow::Error::from)?;
    store.set_epoch_deadline(1);
    // Each tick, a running component either yields to the async runtime (so it never
    // holds a worker thread) or, past its deadline, is interrupted; one that keeps
    // running moves to the slow lane.
    let (lane, fuel) = (lane.clone(), limits.fuel);
    store.epoch_deadline_callback(move |ctx| {
        if Instant::now() >= deadline {
            return Ok(UpdateDeadline::Interrupt);
        }
        lane.ticked(fuel.saturating_sub(ctx.get_fuel().unwrap_or(fuel)));
        Ok(UpdateDeadline::Yield(1))
    });
    Ok(store)
}

/// What an invocation holds until it is over: its store (with its instance's pool slots)
/// and its place among `limits.instances`. The invocation hands it back rather than drop
/// it, so that it is released on the caller's lane: freeing pool slots takes the pool's
/// locks, which a slow-lane thread (lowest priority, descheduled at any moment) must not
/// hold while the rest waits.
pub(super) struct Held {
    _store: Option<Store<HostState>>,
    _slot: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl Held {
    /// Nothing held: the invocation never started.
    pub(super) fn none() -> Held {
        Held {
            _store: None,
            _slot: None,
        }
    }
}

/// Runs `call` in a fresh store bounded by `limits` and `timeout`, and reports it.
pub(super) async fn invoke<T, F>(
    rt: &Runtime,
    grants: &Grants,
    limits: &StepLimits,
    timeout: Duration,
    lane: &Lane,
    call: F,
) -> (Invocation<T>, Held)
where
    F: AsyncFnOnce(&mut Store<HostState>) -> Result<Result<T, Failure>, wasmtime::Error>,
{
    let Ok(slot) = rt.slots.clone().acquire_owned().await else {
        let f = Failure::new(ErrorKind::Host, "the instance pool is closed");
        return (failed(f, Duration::ZERO), Held::none());
    };
    let start = Instant::now();
    let deadline = crate::time_format::deadline_in(timeout);
    let mut store = match new_store(rt, grants, limits, deadline, lane) {
        Ok(s) => s,
        Err(e) => {
            let f = Failure::new(ErrorKind::Host, format!("cannot prepare the sandbox: {e:#}"));
            return (
                failed(f, start.elapsed()),
                Held {
                    _store: None,
                    _slot: Some(slot),
                },
            );
        }
    };
    // Epoch interruption stops WebAssembly code; this also bounds time spent in host calls.
    let outcome = tokio::time::timeout(timeout + engine::TICK * 10, call(&mut store)).await;
    let duration = start.elapsed();
    let fuel_used = limits.fuel.saturating_sub(store.get_fuel().unwrap_or(0));
    let state = store.data();
    let mut log = state.log.locked();
    log.finish();
    let result = match outcome {
        Err(_elapsed) => Err(timeout_failure(timeout)),
        Ok(Ok(r)) => r,
        Ok(Err(e)) => Err(classify(
            &e,
            state.limiter.refused,
            limits,
            timeout,
            log.trap_context().as_deref(),
            state.outbound_issue.locked().is_some(),
            rt.limits.max_payload,
        )),
    };
    // A component that fails after the host refused or failed one of its requests failed
    // because of it: report that (naming the destination), not the component's rewording.
    let result = match result {
        Err(f)
            if matches!(
                f.kind,
                ErrorKind::Connector | ErrorKind::Trap | ErrorKind::InvalidOutput
            ) =>
        {
            match state.outbound_issue.locked().take() {
                Some(issue) => Err(issue.into_failure()),
                None => Err(f),
            }
        }
        other => other,
    };
    let logs = std::mem::take(&mut log.records);
    let dropped_logs = log.dropped;
    drop(log);
    let invocation = Invocation {
        result,
        fuel_used,
        duration,
        logs,
        dropped_logs,
    };
    (
        invocation,
        Held {
            _store: Some(store),
            _slot: Some(slot),
        },
    )
}

fn failed<T>(f: Failure, duration: Duration) -> Invocation<T> {
    Invocation {
        result: Err(f),
        fuel_used: 0,
        duration,
        logs: Vec::new(),
        dropped_logs: 0,
    }
}

pub(super) fn timeout_failure(timeout: Duration) -> Failure {
    Failure::new(
        ErrorKind::Timeout,
        format!("did not finish within {}", format_duration(timeout)),
    )
}

/// The most bytes a component may hand the host in one call.
fn transfer_limit(rt: &Runtime) -> usize {
    usize::try_from(rt.limits.max_payload)
        .unwrap_or(usize::MAX)
        .saturating_add(TRANSFER_MARGIN)
}

/// What wasmtime says when a call moved more than [`transfer_limit`] out of a component.
const TRANSFER_EXHAUSTED: &str = "fuel allocated for hostcalls has been exhausted";

/// What an invocation that ended in an error ended with. An error that is neither a
/// trap, a limit nor a host request that failed is the component breaking the canonical
/// ABI (a string out of its memory's bounds, text that is not UTF-8, a bad value): its
/// fault, `invalid_output`.
fn classify(
    e: &wasmtime::Error,
    refused_memory: Option<u64>,
    limits: &StepLimits,
    timeout: Duration,
    stderr: Option<&str>,
    host_request_failed: bool,
    max_payload: u64,
) -> Failure {
    if let Some(asked) = refused_memory {
        return Failure::new(
            ErrorKind::MemoryLimit,
            format!(
                "memory limit of {} reached (the component asked to grow to {})",
                format_bytes(limits.memory),
                format_bytes(asked)
            ),
        );
    }
    if let Some(exit) = e.downcast_ref::<wasmtime_wasi::I32Exit>() {
        let mut message = format!("the component called exit({}) instead of returning a result", exit.0);
        if let Some(summary) = stderr {
            message.push_str(&format!("; {summary}"));
        }
        return Failure::new(ErrorKind::Trap, message);
    }
    match e.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => Failure::new(
            ErrorKind::FuelExhausted,
            format!("used all of its fuel ({} units)", limits.fuel),
        ),
        Some(Trap::Interrupt) => timeout_failure(timeout),
        Some(trap) => {
            // A trap displays as "wasm trap: …" itself.
            let mut message = trap.to_string();
            if let Some(summary) = stderr {
                message.push_str(&format!("; {summary}"));
            }
            Failure::new(ErrorKind::Trap, message)
        }
        None if format!("{e:#}").contains(TRANSFER_EXHAUSTED) => Failure::new(
            ErrorKind::InvalidOutput,
            format!(
                "output is over the {} payload limit (limits.max_payload): the component handed the host more than that (and a {} margin) in one call, refused before the host read it",
                format_bytes(max_payload),
                format_bytes(TRANSFER_MARGIN as u64)
            ),
        ),
        None if host_request_failed => Failure::new(ErrorKind::Host, first_line(e)),
        None => Failure::new(
            ErrorKind::InvalidOutput,
            format!("the component broke the component ABI: {}", first_line(e)),
        ),
    }
}

/// An error's message and causes on one line, without a backtrace.
fn first_line(e: &wasmtime::Error) -> String {
    let text = format!("{e:#}");
    let line = text.lines().next().unwrap_or("").trim();
    truncate(line, MAX_MESSAGE)
}
