//! Fires `schedule` flows: one task per flow sleeps until the next cron time in the
//! flow's time zone, stores the fire time with the execution it starts (so a fire is never
//! both run and replayed, and of daemons sharing a store only the first to store it
//! runs it), replays fire times missed while the daemon was down per `catch_up`, and
//! applies `overlap` when the previous run is still going.

use super::Shared;
use super::dispatch::Done;
use crate::config::{Flow, Overlap, TriggerKind};
use crate::engine::Admission;
use crate::plugin::TriggerEvent;
use crate::schedule::Schedule;
use crate::store::{StoreError, Write, WriteError};
use std::sync::Arc;
use std::time::SystemTime;

pub fn spawn(shared: Arc<Shared>, flow: Arc<Flow>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        if let Err(e) = run(&shared, &flow).await {
            tracing::error!(flow = %flow.name, error = %e, "the schedule stopped");
        }
    })
}

async fn run(shared: &Shared, flow: &Arc<Flow>) -> anyhow::Result<()> {
    let Some(schedule) = Schedule::of(&flow.trigger.kind) else {
        return Ok(());
    };
    let TriggerKind::Schedule { overlap, .. } = flow.trigger.kind else {
        return Ok(());
    };
    let store = shared
        .dispatcher
        .executor()
        .store()
        .cloned()
        .expect("the daemon always has a store");
    let mut runs: Vec<Done> = Vec::new();
    let now = SystemTime::now();
    let mut last = match store.last_fire(&flow.name).await? {
        Some(last) => {
            for t in schedule.missed(last, now) {
                tracing::info!(flow = %flow.name, at = %crate::time_format::rfc3339(t), "catching up a fire time missed while flowd was down");
                fire(shared, flow, overlap, t, &mut runs).await?;
            }
            last.max(now)
        }
        None => now,
    };
    loop {
        let Some(next) = schedule.next(last, 1).first().copied() else {
            return Ok(());
        };
        let wait = next.duration_since(SystemTime::now()).unwrap_or_default();
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shared.stopping.cancelled() => return Ok(()),
        }
        fire(shared, flow, overlap, next, &mut runs).await?;
        last = next;
    }
}

async fn fire(
    shared: &Shared,
    flow: &Arc<Flow>,
    overlap: Overlap,
    at: SystemTime,
    runs: &mut Vec<Done>,
) -> anyhow::Result<()> {
    runs.retain(|d| !d.is_done());
    // The fire time is taken with what becomes of it: daemons sharing the store all fire
    // it, and the one whose record commits first decides.
    let record = vec![Write::Fire {
        flow: flow.name.clone(),
        at,
    }];
    let store = shared
        .dispatcher
        .executor()
        .store()
        .cloned()
        .expect("the daemon has a store");
    let skipped = |why: &'static str| async move {
        match store.write(record).await {
            Ok(()) => {
                tracing::info!(flow = %flow.name, at = %crate::time_format::rfc3339(at), "schedule fire skipped: {why}");
                Ok(())
            }
            Err(WriteError::AlreadyFired { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    };
    if !shared.is_active(&flow.name) {
        // Not replayed when the flow is activated again: it was off at that time.
        return Ok(skipped("the flow is inactive").await?);
    }
    if overlap == Overlap::Skip && !runs.is_empty() {
        return Ok(skipped("the previous run is still going").await?);
    }
    let Ok(reservation) = shared.dispatcher.reserve(flow) else {
        return Ok(skipped("the flow's throttle queue is full").await?);
    };
    let event = TriggerEvent::schedule(at);
    let admitted = shared
        .dispatcher
        .executor()
        .admit_with(
            flow,
            event,
            vec![Write::Fire {
                flow: flow.name.clone(),
                at,
            }],
        )
        .await;
    let admitted = match admitted {
        Err(StoreError::Write(WriteError::AlreadyFired { .. })) => {
            tracing::debug!(flow = %flow.name, at = %crate::time_format::rfc3339(at), "schedule fire taken by another daemon");
            return Ok(());
        }
        other => other?,
    };
    match admitted {
        Admission::Accepted(a) => {
            let after = if overlap == Overlap::Queue {
                runs.clone()
            } else {
                Vec::new()
            };
            runs.push(shared.dispatcher.submit_after(reservation, *a, after));
        }
        Admission::Dropped(_) | Admission::Failed(_) | Admission::TooLarge(_) => {}
    }
    Ok(())
}
