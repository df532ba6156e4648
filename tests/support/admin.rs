//! What the admin API tests share: two tokens (viewer and operator) configured through
//! environment variables, a daemon started with them, the flows most of them use, and
//! a log record's plain-text line as the API and the CLI print it.

use super::{Daemon, Setup};
use serde_json::Value;

pub const VIEWER: &str = "viewer-token-0123456789";
pub const OPERATOR: &str = "operator-token-0123456789";

/// `[server]` lines naming the two tokens.
pub const TOKENS: &str = "[[server.tokens]]\nname = \"dash\"\nrole = \"viewer\"\nenv = \"FLOWD_TEST_VIEWER\"\n[[server.tokens]]\nname = \"ops\"\nrole = \"operator\"\nenv = \"FLOWD_TEST_OPERATOR\"\n";

/// A manual flow of one echo step.
pub const BY_HAND: &str =
    "[flow]\nname = \"by-hand\"\n[trigger.manual]\n[[steps]]\nname = \"s\"\nconnector = \"echo\"\n";

/// A schedule flow that fires at 03:00 (not during a test).
pub const NIGHTLY: &str = "[flow]\nname = \"nightly\"\n[trigger.schedule]\ncron = \"0 0 3 * * *\"\n[[steps]]\nname = \"s\"\nconnector = \"echo\"\n";

/// Two log steps per execution: `order <id> in` (info, category a), `order <id> late`
/// (warn, category b).
pub const NOISY: &str = "[flow]\nname = \"noisy\"\n[trigger.http]\npath = \"/noisy\"\n\n[[steps]]\nname = \"s1\"\nconnector = \"log\"\nconfig = { level = \"info\", category = \"a\", message = \"order {{ trigger.body.id }} in\" }\n\n[[steps]]\nname = \"s2\"\nconnector = \"log\"\nconfig = { level = \"warn\", category = \"b\", message = \"order {{ trigger.body.id }} late\" }\n";

/// The daemon of `setup` with both tokens in its environment.
pub fn start(setup: &Setup) -> Daemon {
    Daemon::start_with_env(
        setup,
        &[("FLOWD_TEST_VIEWER", VIEWER), ("FLOWD_TEST_OPERATOR", OPERATOR)],
    )
}

/// A log record (as the JSON search gives it) as one line of the text download.
pub fn text_line(l: &Value) -> String {
    format!(
        "{} {:<5} {} {}/{} {}: {}",
        l["time"].as_str().unwrap(),
        l["level"].as_str().unwrap(),
        l["job_id"].as_str().unwrap(),
        l["flow"].as_str().unwrap(),
        l["step"].as_str().unwrap(),
        l["category"].as_str().unwrap(),
        l["message"].as_str().unwrap()
    )
}

/// A route pattern of the route table with each `{capture}` filled in: the job `job`
/// and the step, flows and payload of [`BY_HAND`] and [`NIGHTLY`].
pub fn route_path(pattern: &str, job: &str) -> String {
    pattern
        .replace("{job_id}", job)
        .replace("{step}", "s")
        .replace("{payload}", "output")
        .replace("{flow}", "nightly")
        .replace("{name}", "by-hand")
}
