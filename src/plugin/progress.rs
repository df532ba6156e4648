//! Progress of the compiles that take long: a component of [`LARGE`] or more that is not
//! in the cache (an interpreter guest: seconds to tens of seconds) is announced when its
//! compile starts and when it ends, to whatever the binary installed with [`report_to`]
//! (the CLI prints to stderr, `serve` logs).

use std::sync::OnceLock;
use std::time::Duration;

/// Components at least this large have their compiles reported.
pub const LARGE: u64 = 1 << 20;

/// One stage of a compile.
#[derive(Debug)]
pub enum Compile<'a> {
    Started {
        label: &'a str,
        size: u64,
    },
    Finished {
        label: &'a str,
        size: u64,
        elapsed: Duration,
        /// Written to the compiled-component cache, so the next load is fast.
        cached: bool,
    },
    Failed {
        label: &'a str,
        size: u64,
    },
}

type Sink = Box<dyn Fn(&Compile<'_>) + Send + Sync>;

static SINK: OnceLock<Sink> = OnceLock::new();

/// Sends every report of this process to `sink` (the first call wins).
pub fn report_to(sink: impl Fn(&Compile<'_>) + Send + Sync + 'static) {
    let _ = SINK.set(Box::new(sink));
}

pub(super) fn report(event: &Compile<'_>) {
    let (Compile::Started { size, .. } | Compile::Finished { size, .. } | Compile::Failed { size, .. }) = event;
    let size = *size;
    if size >= LARGE
        && let Some(sink) = SINK.get()
    {
        sink(event);
    }
}
