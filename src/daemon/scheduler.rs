//! Fires `schedule` flows: one task per flow sleeps until the next cron time in the
//! flow's time zone, stores the fire time with the execution it starts (so a fire is never
//! both run and replayed), replays fire times missed while the daemon was down per
//! `catch_up`, and applies `overlap` when the previous run is still going.

use super::Shared;
use super::dispatch::Done;
use crate::config::{Flow, Overlap, TriggerKind};
use crate::engine::Admission;
use crate::plugin::TriggerEvent;
use crate::schedule::Schedule;
use crate::store::Write;
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
    let record = vec![Write::LastFire {
        flow: flow.name.clone(),
        at,
    }];
    if !shared.is_active(&flow.name) {
        // Not replayed when the flow is activated again: it was off at that time.
        shared
            .dispatcher
            .executor()
            .store()
            .cloned()
            .expect("the daemon has a store")
            .write(record)
            .await?;
        return Ok(());
    }
    if overlap == Overlap::Skip && !runs.is_empty() {
        tracing::info!(flow = %flow.name, at = %crate::time_format::rfc3339(at), "schedule fire skipped: the previous run is still going");
        if let Some(store) = shared.dispatcher.executor().store() {
            store.write(record).await?;
        }
        return Ok(());
    }
    let Ok(reservation) = shared.dispatcher.reserve(flow) else {
        tracing::warn!(flow = %flow.name, at = %crate::time_format::rfc3339(at), "schedule fire skipped: the flow's throttle queue is full");
        if let Some(store) = shared.dispatcher.executor().store() {
            store.write(record).await?;
        }
        return Ok(());
    };
    let event = TriggerEvent::schedule(at);
    match shared.dispatcher.executor().admit_with(flow, event, record).await? {
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
