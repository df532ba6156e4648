//! `GET /metrics`: the Prometheus text format. Counters of ended executions and steps
//! (with step-duration histograms and fuel) from the engine, and at scrape time each
//! flow's queue depth and running executions, the worker cap, and the store's commits.

use super::params::Params;
use super::{Answer, boxed};
use crate::daemon::FlowLoad;
use crate::daemon::Shared;
use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use std::fmt::Write as _;

/// A per-flow gauge: name, help, and its value of a flow's load.
type Gauge = (&'static str, &'static str, fn(&FlowLoad) -> usize);

pub fn render(shared: &Shared, query: Option<&str>) -> Answer {
    Params::parse(query, &[])?;
    let mut out = String::with_capacity(4096);
    shared.metrics.render(&mut out);
    let mut load = shared.dispatcher.load();
    // Every loaded flow has its series, at 0 until something waits or runs.
    for name in shared.flows().by_name.keys() {
        if !load.flows.iter().any(|q| &q.flow == name) {
            load.flows.push(FlowLoad {
                flow: name.clone(),
                waiting: 0,
                running: 0,
            });
        }
    }
    load.flows.sort_by(|a, b| a.flow.cmp(&b.flow));
    let gauges: [Gauge; 2] = [
        ("flowd_queue_depth", "Executions waiting to start, per flow.", |q| {
            q.waiting
        }),
        ("flowd_executions_running", "Executions running now, per flow.", |q| {
            q.running
        }),
    ];
    for (name, help, value) in gauges {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for q in &load.flows {
            let _ = writeln!(
                out,
                "{name}{{flow=\"{}\"}} {}",
                crate::metrics::label(&q.flow),
                value(q)
            );
        }
    }
    out.push_str("# HELP flowd_workers The most executions that run at once (server.workers).\n");
    out.push_str("# TYPE flowd_workers gauge\n");
    let _ = writeln!(out, "flowd_workers {}", load.workers);
    out.push_str("# HELP flowd_live_tail_followers Clients following the logs (GET /v1/logs/follow).\n");
    out.push_str("# TYPE flowd_live_tail_followers gauge\n");
    let _ = writeln!(out, "flowd_live_tail_followers {}", shared.tail.followers());
    out.push_str("# HELP flowd_live_tail_readers Readers of the store for them: one, however many follow.\n");
    out.push_str("# TYPE flowd_live_tail_readers gauge\n");
    let _ = writeln!(out, "flowd_live_tail_readers {}", shared.tail.readers());
    shared.store.render_metrics(&mut out);
    shared.leases.render(&mut out);
    let mut r = Response::new(Full::new(Bytes::from(out)));
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    Ok(boxed(r))
}
