//! The audit trail of the admin API: every change asked through it (activate,
//! deactivate, enable, disable, retry, resume, run, reload) is written to the daemon's
//! log with the name of the token that asked, what it acted on and the status answered,
//! whether the change was made or refused.

use super::auth::Caller;
use super::routes::Endpoint;
use hyper::StatusCode;

/// What a change route does, and to what kind of thing (its capture names one).
fn action(e: Endpoint) -> (&'static str, &'static str) {
    match e {
        Endpoint::Retry => ("retry", "execution"),
        Endpoint::Resume => ("resume", "execution"),
        Endpoint::ScheduleEnable => ("enable", "schedule"),
        Endpoint::ScheduleDisable => ("disable", "schedule"),
        Endpoint::ScheduleRun => ("run", "schedule"),
        Endpoint::FlowActivate => ("activate", "flow"),
        Endpoint::FlowDeactivate => ("deactivate", "flow"),
        Endpoint::FlowRun => ("run", "flow"),
        Endpoint::Reload => ("reload", "config"),
        _ => ("read", "api"),
    }
}

/// Logs one change request by `token` to the route `endpoint` (with its path
/// `captures`), answered `status`.
pub fn change(token: &Caller, endpoint: Endpoint, captures: &[&str], status: StatusCode) {
    let (action, kind) = action(endpoint);
    // Quoted (Debug), so a name from the request cannot forge log lines.
    let target = match captures.first() {
        Some(name) => format!("{kind} {name}"),
        None => kind.to_string(),
    };
    let token_name = token.name.as_str();
    let role = token.role.as_str();
    let status = status.as_u16();
    if status < 400 {
        tracing::info!(token = ?token_name, %role, %action, target = ?target, status, "admin API change");
    } else {
        tracing::warn!(token = ?token_name, %role, %action, target = ?target, status, "admin API change refused");
    }
}
