//! Where a component runs. Every invocation starts on the caller's runtime, beside the
//! listeners, the dispatcher and every other short invocation; one that keeps running
//! (past [`DEMOTE_AFTER`] units of fuel: a few milliseconds of running code, counted in
//! instructions so that a short step preempted on a busy machine is not taken for a long
//! one) moves to the slow lane: a runtime of its own whose threads have a low CPU priority (nice
//! [`SLOW_NICE`]), so a runaway component gets a small share of what the rest want and
//! never holds a worker they need. A component waiting on I/O or a timer does not run, and
//! stays where it is.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;

/// Fuel an invocation may burn before it moves to the slow lane (a bundled `transform`
/// step burns a few hundred thousand units; a tight loop, about ten million a
/// millisecond here).
pub(crate) const DEMOTE_AFTER: u64 = 20_000_000;

/// The slow lane's nice value: about a tenth of the weight of a normal thread, so a
/// runaway still runs often enough to meet its own timeout (and give back its worker)
/// while the rest is busy; at 19 (a sixty-eighth) it could wait past its deadline for
/// long stretches, holding its worker all the while.
const SLOW_NICE: i32 = 10;

/// One invocation's place: set (by its store's epoch callback) when it is to move.
#[derive(Clone, Default)]
pub(crate) struct Lane {
    demoted: Arc<AtomicBool>,
}

impl Lane {
    /// Called at each epoch tick that finds the invocation running, with the fuel it has
    /// burned so far.
    pub(crate) fn ticked(&self, fuel_used: u64) {
        if fuel_used >= DEMOTE_AFTER {
            self.demoted.store(true, Ordering::Relaxed);
        }
    }

    /// Runs `work` (see [`Lane::run`]) and drops what it hands back held here, on the
    /// caller's lane.
    pub(crate) async fn run_then_release<F, T, H>(self, work: Pin<Box<F>>) -> T
    where
        F: Future<Output = (T, H)> + Send + 'static,
        T: Send + 'static,
        H: Send + 'static,
    {
        let (out, held) = self.run(work).await;
        drop(held);
        out
    }

    /// Runs `work` here until it is demoted, then on the slow lane to its end. It comes
    /// boxed, so that it can move there, and so that the futures awaiting this one hold a
    /// pointer rather than the invocation's whole state machine (copied at every move).
    pub(crate) async fn run<F>(self, mut work: Pin<Box<F>>) -> F::Output
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let here = std::future::poll_fn(|cx| match work.as_mut().poll(cx) {
            Poll::Ready(out) => Poll::Ready(Some(out)),
            // A demoted invocation yields at its next tick: that is where it moves.
            Poll::Pending if self.demoted.load(Ordering::Relaxed) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        })
        .await;
        if let Some(out) = here {
            return out;
        }
        // Dropped by its caller, the invocation stops there too.
        let mut task = AbortOnDrop(slow_lane().spawn(work));
        match (&mut task.0).await {
            Ok(out) => out,
            // The slow lane is never shut down: only a panic ends a task early, and it
            // goes on to the caller.
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => std::panic::resume_unwind(Box::new(format!("the slow lane dropped an invocation: {e}"))),
        }
    }
}

/// A slow-lane task that ends with the future waiting for it.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The slow lane, started the first time an invocation is demoted. It has one thread
/// fewer than the machine has cores (one on a single core): however many runaways it runs,
/// a core is left to everything else. A low priority alone is not enough: with every core
/// held by a runaway, the store's fdatasync calls took 70–180 ms at times (measured with
/// `perf trace`), and every webhook held open for its durable answer waited that long
/// (`cargo bench --bench containment`: a healthy flow's p99 at 8× alone with a thread per
/// core, 1.6–2.2× with one core left free).
fn slow_lane() -> &'static tokio::runtime::Handle {
    static SLOW: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    SLOW.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let threads = cores.saturating_sub(1).max(1);
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("flowd-slow-lane")
            .on_thread_start(slow_priority)
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("cannot start the slow lane's threads: {e}"))
    })
    .handle()
}

/// Gives the calling thread the slow lane's CPU priority. On Linux the nice value is a
/// thread's own, so the rest of the process keeps its priority.
fn slow_priority() {
    // SAFETY: setpriority on the calling thread's id changes only its scheduling weight.
    let failed = unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, SLOW_NICE) != 0
    };
    if failed {
        tracing::warn!(
            error = %std::io::Error::last_os_error(),
            "the slow lane's thread keeps its CPU priority: a runaway component competes with the rest"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_demoted_invocation_finishes_on_a_low_priority_thread() {
        let lane = Lane::default();
        let flag = lane.clone();
        let main_thread = std::thread::current().id();
        let (thread, nice) = lane
            .run(Box::pin(async move {
                flag.ticked(DEMOTE_AFTER / 2);
                tokio::task::yield_now().await;
                flag.ticked(DEMOTE_AFTER);
                tokio::task::yield_now().await;
                let nice =
                    unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::syscall(libc::SYS_gettid) as libc::id_t) };
                (std::thread::current().id(), nice)
            }))
            .await;
        assert_ne!(thread, main_thread, "it moved");
        assert_eq!(nice, SLOW_NICE);
        assert!(std::thread::current().name().is_some_and(|n| !n.contains("slow")));
    }

    #[tokio::test]
    async fn a_short_invocation_stays_where_it_started() {
        let main_thread = std::thread::current().id();
        let thread = Lane::default()
            .run(Box::pin(async {
                tokio::task::yield_now().await;
                std::thread::current().id()
            }))
            .await;
        assert_eq!(thread, main_thread);
    }
}
