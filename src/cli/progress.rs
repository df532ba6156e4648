//! Where compile progress goes: one line on stderr for the commands a person watches
//! (`compiling greet (11.5 MiB)… 14.1 s, cached`), log records for `serve`.

use crate::config::units::format_bytes;
use crate::plugin::progress::{self, Compile};
use std::io::Write as _;

pub fn install(serve: bool) {
    if serve {
        progress::report_to(|event| match event {
            Compile::Started { label, size } => {
                tracing::info!(connector = %label, size = %format_bytes(*size), "compiling a connector (not in the cache)")
            }
            Compile::Finished {
                label, elapsed, cached, ..
            } => tracing::info!(connector = %label, seconds = elapsed.as_secs_f64(), cached, "compiled a connector"),
            Compile::Failed { .. } => {}
        });
    } else {
        progress::report_to(|event| {
            let mut err = std::io::stderr().lock();
            let _ = match event {
                Compile::Started { label, size } => write!(err, "compiling {label} ({})… ", format_bytes(*size)),
                Compile::Finished { elapsed, cached, .. } => writeln!(
                    err,
                    "{:.1} s{}",
                    elapsed.as_secs_f64(),
                    if *cached { ", cached" } else { "" }
                ),
                Compile::Failed { .. } => writeln!(err, "failed"),
            };
            let _ = err.flush();
        });
    }
}
