//! This daemon's leases on the executions it holds (queued, running, or a long pause
//! parked): renewed together by a heartbeat every third of their time; one whose
//! renewal is refused (another daemon claimed it), or that ran out while the database
//! could not be reached, is lost: its run starts no further step and the log says so.

use crate::engine::Hold;
use crate::store::{ClaimError, JobId, Lease, Store};
use crate::sync::Lock as _;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio_util::sync::CancellationToken;

pub struct Leases {
    store: Arc<dyn Store>,
    /// Who this daemon is in the store's claims (unique per start).
    pub owner: String,
    pub ttl: Duration,
    held: Mutex<HashMap<JobId, Hold>>,
    taken_over: AtomicU64,
    lost: AtomicU64,
    heartbeat_failures: AtomicU64,
}

impl Leases {
    pub fn new(store: Arc<dyn Store>, owner: String, ttl: Duration) -> Leases {
        Leases {
            store,
            owner,
            ttl,
            held: Mutex::default(),
            taken_over: AtomicU64::new(0),
            lost: AtomicU64::new(0),
            heartbeat_failures: AtomicU64::new(0),
        }
    }

    /// Keeps `lease` renewed from now on; the hold its run goes under.
    pub fn hold(&self, lease: Lease) -> Hold {
        let hold = Hold {
            lease,
            lost: CancellationToken::new(),
        };
        self.held.locked().insert(hold.lease.job, hold.clone());
        hold
    }

    /// Counts executions taken over from a daemon whose leases expired.
    pub fn taken_over(&self, n: usize) {
        self.taken_over.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Claims `job` for this daemon; `None` when another daemon holds it.
    pub async fn claim(&self, job: JobId) -> Result<Option<Hold>, ClaimError> {
        match self.store.claim(job, &self.owner, self.ttl).await {
            Ok(lease) => Ok(Some(self.hold(lease))),
            Err(ClaimError::Held { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Stops renewing `job`'s lease and gives it up, so it is free at once.
    pub async fn release(&self, job: JobId) {
        let Some(hold) = self.held.locked().remove(&job) else {
            return;
        };
        if hold.lost.is_cancelled() {
            return;
        }
        if let Err(e) = self.store.release(hold.lease).await {
            tracing::debug!(job = %job, error = %e, "giving up a lease");
        }
    }

    /// Gives up every lease (at shutdown: another daemon takes them over at once).
    pub async fn release_all(&self) {
        let jobs: Vec<JobId> = self.held.locked().keys().copied().collect();
        for job in jobs {
            self.release(job).await;
        }
    }

    /// Renews every lease held; marks lost those refused, and those that ran out while
    /// the store could not be reached.
    pub async fn beat(&self) {
        let leases: Vec<Lease> = self.held.locked().values().map(|h| h.lease.clone()).collect();
        if leases.is_empty() {
            return;
        }
        let mut held = match self.store.renew(&self.owner, &leases, self.ttl).await {
            Ok(renewed) => {
                let renewed: HashMap<JobId, Lease> = renewed.into_iter().map(|l| (l.job, l)).collect();
                let mut given_up = Vec::new();
                {
                    let mut held = self.held.locked();
                    for lease in &leases {
                        match (renewed.get(&lease.job), held.get_mut(&lease.job)) {
                            (Some(r), Some(h)) if h.lease.fence == r.fence => h.lease.expires = r.expires,
                            // Given up (its run ended, or the daemon is stopping) while
                            // this renewal was on its way: the renewal took the claim
                            // back, which would keep every other daemon off it for a
                            // lease's time, so it is given up again.
                            (Some(r), _) => given_up.push(r.clone()),
                            (None, _) => {
                                if let Some(h) = held.remove(&lease.job) {
                                    self.lose(&h, "another daemon claimed it after it expired");
                                }
                            }
                        }
                    }
                }
                for lease in given_up {
                    let job = lease.job;
                    if let Err(e) = self.store.release(lease).await {
                        tracing::debug!(job = %job, error = %e, "giving up a lease the heartbeat renewed after its release");
                    }
                }
                return;
            }
            Err(e) => {
                self.heartbeat_failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, leases = leases.len(), "lease heartbeat failed: the store could not renew this daemon's leases");
                self.held.locked()
            }
        };
        let now = SystemTime::now();
        let expired: Vec<JobId> = held
            .values()
            .filter(|h| h.lease.expires <= now)
            .map(|h| h.lease.job)
            .collect();
        for job in expired {
            if let Some(h) = held.remove(&job) {
                self.lose(&h, "it expired while the store could not be reached");
            }
        }
    }

    fn lose(&self, hold: &Hold, why: &str) {
        self.lost.fetch_add(1, Ordering::Relaxed);
        hold.lost.cancel();
        tracing::warn!(job = %hold.lease.job, fence = hold.lease.fence, "lost the lease on execution {}: {why}; this daemon starts no further step of it and leaves it to the daemon that takes it over", hold.lease.job);
    }

    /// Lease figures in the Prometheus text format.
    pub fn render(&self, out: &mut String) {
        let held = self.held.locked().len() as u64;
        for (name, kind, help, value) in [
            (
                "flowd_leases_held",
                "gauge",
                "Executions this daemon holds under a lease (queued, running or parked).",
                held,
            ),
            (
                "flowd_leases_taken_over_total",
                "counter",
                "Unfinished executions this daemon claimed after their lease expired (or at start).",
                self.taken_over.load(Ordering::Relaxed),
            ),
            (
                "flowd_leases_lost_total",
                "counter",
                "Leases this daemon lost: another daemon claimed the execution, or it expired unrenewed.",
                self.lost.load(Ordering::Relaxed),
            ),
            (
                "flowd_lease_heartbeat_failures_total",
                "counter",
                "Heartbeats that could not renew this daemon's leases (the store was unreachable).",
                self.heartbeat_failures.load(Ordering::Relaxed),
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            let _ = writeln!(out, "{name} {value}");
        }
    }
}

/// Renews `leases` every third of their time until `stopping`.
pub fn spawn_heartbeat(leases: Arc<Leases>, stopping: CancellationToken) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let every = leases.ttl / 3;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stopping.cancelled() => return,
            }
            leases.beat().await;
        }
    })
}
