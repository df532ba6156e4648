//! The admin API's routes in one table: the router answers exactly these, and the
//! OpenAPI document (`docs/openapi.json`) lists exactly these (a test holds the two
//! together). A route's path segments are literals or `{name}` captures.

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No token needed (`/healthz`, and signing in to the console).
    Public,
    /// Any configured token.
    Viewer,
    /// An operator token: the route changes something.
    Operator,
}

/// Which handler answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Health,
    Metrics,
    OpenApi,
    SignIn,
    Session,
    SignOut,
    ExecutionList,
    ExecutionHistogram,
    ExecutionDetail,
    TriggerPayload,
    StepPayload,
    Retry,
    Resume,
    LogSearch,
    LogDownload,
    LogFollow,
    ScheduleList,
    ScheduleExecutions,
    ScheduleEnable,
    ScheduleDisable,
    ScheduleRun,
    FlowList,
    FlowActivate,
    FlowDeactivate,
    FlowRun,
    Reload,
}

#[derive(Debug, Clone, Copy)]
pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
    pub access: Access,
    pub endpoint: Endpoint,
}

const fn route(method: &'static str, path: &'static str, access: Access, endpoint: Endpoint) -> Route {
    Route {
        method,
        path,
        access,
        endpoint,
    }
}

use Access::{Operator, Public, Viewer};
use Endpoint as E;

pub const ROUTES: &[Route] = &[
    route("GET", "/healthz", Public, E::Health),
    route("GET", "/metrics", Viewer, E::Metrics),
    route("GET", "/v1/openapi.json", Viewer, E::OpenApi),
    route("POST", "/v1/session", Public, E::SignIn),
    route("GET", "/v1/session", Viewer, E::Session),
    route("DELETE", "/v1/session", Viewer, E::SignOut),
    route("GET", "/v1/executions", Viewer, E::ExecutionList),
    route("GET", "/v1/executions/histogram", Viewer, E::ExecutionHistogram),
    route("GET", "/v1/executions/{job_id}", Viewer, E::ExecutionDetail),
    route("GET", "/v1/executions/{job_id}/trigger", Viewer, E::TriggerPayload),
    route(
        "GET",
        "/v1/executions/{job_id}/steps/{step}/{payload}",
        Viewer,
        E::StepPayload,
    ),
    route("POST", "/v1/executions/{job_id}/retry", Operator, E::Retry),
    route("POST", "/v1/executions/{job_id}/resume", Operator, E::Resume),
    route("GET", "/v1/logs", Viewer, E::LogSearch),
    route("GET", "/v1/logs/download", Viewer, E::LogDownload),
    route("GET", "/v1/logs/follow", Viewer, E::LogFollow),
    route("GET", "/v1/schedules", Viewer, E::ScheduleList),
    route("GET", "/v1/schedules/executions", Viewer, E::ScheduleExecutions),
    route("POST", "/v1/schedules/{flow}/enable", Operator, E::ScheduleEnable),
    route("POST", "/v1/schedules/{flow}/disable", Operator, E::ScheduleDisable),
    route("POST", "/v1/schedules/{flow}/run", Operator, E::ScheduleRun),
    route("GET", "/v1/flows", Viewer, E::FlowList),
    route("POST", "/v1/flows/{name}/activate", Operator, E::FlowActivate),
    route("POST", "/v1/flows/{name}/deactivate", Operator, E::FlowDeactivate),
    route("POST", "/v1/flows/{name}/run", Operator, E::FlowRun),
    route("POST", "/v1/reload", Operator, E::Reload),
];

/// Why no route answers a request.
#[derive(Debug, PartialEq, Eq)]
pub enum Miss {
    NotFound,
    /// The path exists with these methods only.
    Method(String),
}

/// The captures of `pattern` in `path`, when it matches; literal segments count too, so
/// of two matching patterns the one with more literals wins (`/v1/logs/download` over a
/// hypothetical `/v1/logs/{x}`).
fn matches<'p>(pattern: &str, path: &'p [&'p str]) -> Option<(usize, Vec<&'p str>)> {
    let segments: Vec<&str> = pattern.split('/').skip(1).collect();
    if segments.len() != path.len() {
        return None;
    }
    let mut literals = 0;
    let mut captures = Vec::new();
    for (want, have) in segments.iter().zip(path) {
        if want.starts_with('{') {
            if have.is_empty() {
                return None;
            }
            captures.push(*have);
        } else if want == have {
            literals += 1;
        } else {
            return None;
        }
    }
    Some((literals, captures))
}

/// The route for `method` and `path` with its captures, in pattern order.
pub fn find<'p>(method: &str, path: &'p [&'p str]) -> Result<(&'static Route, Vec<&'p str>), Miss> {
    let mut best: Option<(usize, &'static Route, Vec<&'p str>)> = None;
    let mut allowed: Vec<&str> = Vec::new();
    for r in ROUTES {
        let Some((literals, captures)) = matches(r.path, path) else {
            continue;
        };
        if r.method != method {
            if !allowed.contains(&r.method) {
                allowed.push(r.method);
            }
            continue;
        }
        if best.as_ref().is_none_or(|(l, ..)| literals > *l) {
            best = Some((literals, r, captures));
        }
    }
    match best {
        Some((_, r, captures)) => Ok((r, captures)),
        None if allowed.is_empty() => Err(Miss::NotFound),
        None => Err(Miss::Method(allowed.join(", "))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segs(p: &str) -> Vec<&str> {
        p.split('/').skip(1).collect()
    }

    #[test]
    fn literals_win_and_methods_are_listed() {
        let p = segs("/v1/schedules/executions");
        assert_eq!(find("GET", &p).unwrap().0.endpoint, Endpoint::ScheduleExecutions);
        let p = segs("/v1/schedules/nightly/run");
        let (r, c) = find("POST", &p).unwrap();
        assert_eq!((r.endpoint, c), (Endpoint::ScheduleRun, vec!["nightly"]));
        assert_eq!(find("GET", &p).unwrap_err(), Miss::Method("POST".into()));
        assert_eq!(find("GET", &segs("/v1/nothing")).unwrap_err(), Miss::NotFound);
        assert_eq!(find("GET", &segs("/v1/flows//run")).unwrap_err(), Miss::NotFound);
        let p = segs("/v1/executions/histogram");
        assert_eq!(find("GET", &p).unwrap().0.endpoint, Endpoint::ExecutionHistogram);
        let p = segs("/v1/session");
        assert_eq!(find("PATCH", &p).unwrap_err(), Miss::Method("POST, GET, DELETE".into()));
    }

    #[test]
    fn every_pattern_is_unique_and_well_formed() {
        for (i, a) in ROUTES.iter().enumerate() {
            assert!(a.path.starts_with('/'), "{}", a.path);
            for b in &ROUTES[i + 1..] {
                assert!(
                    !(a.method == b.method && a.path == b.path),
                    "{} {} twice",
                    a.method,
                    a.path
                );
            }
        }
    }
}
