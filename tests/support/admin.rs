//! What the admin API tests share: two tokens (viewer and operator) configured through
//! environment variables, a daemon started with them, the flows most of them use, and
//! a log record's plain-text line as the API and the CLI print it.

use super::{Daemon, HttpResponse, Setup};
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

/// The messages of a log search's page (`{"logs": [...]}`), in its order.
pub fn log_messages(page: &Value) -> Vec<String> {
    page["logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["message"].as_str().unwrap().to_string())
        .collect()
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

/// A setup with the tokens and three flows: `ok` (a webhook on `/ok`, one echo step),
/// `bad` (project `other`, a webhook on `/bad` whose step fails) and `nightly` (03:00 in
/// Tokyo).
pub fn ok_bad_nightly() -> Setup {
    let setup = Setup::with_server("", TOKENS);
    setup.flow(
        "ok",
        "[flow]\nname = \"ok\"\n[trigger.http]\npath = \"/ok\"\n[[steps]]\nname = \"s\"\nconnector = \"echo\"\n",
    );
    setup.flow(
        "bad",
        "[flow]\nname = \"bad\"\nproject = \"other\"\n[trigger.http]\npath = \"/bad\"\n[[steps]]\nname = \"s\"\nconnector = \"fail\"\n",
    );
    setup.flow(
        "nightly",
        "[flow]\nname = \"nightly\"\n[trigger.schedule]\ncron = \"0 0 3 * * *\"\ntimezone = \"Asia/Tokyo\"\n[[steps]]\nname = \"s\"\nconnector = \"echo\"\n",
    );
    setup
}

/// POST as the operator: status and JSON body.
pub fn post_op(d: &Daemon, path: &str, body: &[u8]) -> (u16, Value) {
    let r = d.admin("POST", path, Some(OPERATOR), body);
    let v = if r.body.is_empty() { Value::Null } else { r.json() };
    (r.status, v)
}

/// Steps: an echo, then a step that fails.
pub const ECHO_THEN_FAIL: &str =
    "[[steps]]\nname = \"first\"\nconnector = \"echo\"\n[[steps]]\nname = \"second\"\nconnector = \"fail\"\n";
/// Steps: one echo.
pub const ONE_ECHO: &str = "[[steps]]\nname = \"s\"\nconnector = \"echo\"\n";
/// Steps: a pause until resumed, then an echo.
pub const PAUSE_THEN_ECHO: &str =
    "[[steps]]\nname = \"wait\"\npause = \"until_resumed\"\n[[steps]]\nname = \"after\"\nconnector = \"echo\"\n";

/// A flow `name` with a webhook on `path` and `steps` (TOML of its `[[steps]]`).
pub fn flow_file(name: &str, path: &str, steps: &str) -> String {
    format!("[flow]\nname = \"{name}\"\n[trigger.http]\npath = \"{path}\"\n{steps}")
}

/// Waits (at most [`super::PATIENCE`]) until `job` is in `status`.
pub fn wait_status(d: &Daemon, job: &str, status: &str) {
    let end = std::time::Instant::now() + super::PATIENCE;
    while polled(d, &format!("/v1/executions?job_id={job}"), end)["executions"][0]["status"] != status {
        assert!(std::time::Instant::now() < end, "{job} never {status}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// `GET path` as the viewer, for a loop waiting until `end`: a store the daemon says is
/// unavailable (503 `store_unavailable`: a PostgreSQL database that stalled, e.g. on a
/// slow fsync of a busy disk, and left no connection free in time) is asked again until
/// then, as its `Retry-After` invites; anything else must answer 200. Its JSON, or
/// `Null` when it was not read.
fn polled(d: &Daemon, path: &str, end: std::time::Instant) -> Value {
    let r = d.admin("GET", path, Some(VIEWER), b"");
    if r.status == 503
        && std::time::Instant::now() < end
        && String::from_utf8_lossy(&r.body).contains("\"store_unavailable\"")
    {
        std::thread::sleep(std::time::Duration::from_millis(200));
        return Value::Null;
    }
    get_answered(d, path, r)
}

/// `/metrics` as the viewer once it holds every one of `lines` (at most [`super::PATIENCE`]): the
/// dispatcher's gauges and counters move just after an execution's end is stored, so a
/// reader that saw the end may see them a moment later. The text.
pub fn metrics_holding(d: &Daemon, lines: &[&str]) -> String {
    let end = std::time::Instant::now() + super::PATIENCE;
    loop {
        let r = d.admin("GET", "/metrics", Some(VIEWER), b"");
        assert_eq!(r.status, 200);
        assert!(
            r.header("content-type")
                .unwrap()
                .starts_with("text/plain; version=0.0.4")
        );
        let text = String::from_utf8(r.body).unwrap();
        let missing = lines.iter().find(|line| !text.lines().any(|l| l == **line));
        match missing {
            None => return text,
            Some(line) => assert!(std::time::Instant::now() < end, "{line} in\n{text}"),
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// `GET path` as the viewer: it must answer 200; its JSON.
pub fn get(d: &Daemon, path: &str) -> Value {
    get_answered(d, path, d.admin("GET", path, Some(VIEWER), b""))
}

fn get_answered(d: &Daemon, path: &str, r: HttpResponse) -> Value {
    if r.status != 200 {
        let tail = d.log_tail(8000);
        panic!(
            "{path}: {} {}\nthe daemon's log ends:\n{tail}",
            r.status,
            String::from_utf8_lossy(&r.body)
        );
    }
    r.json()
}

/// POSTs `body` to the webhook `path`: it must answer 202; the job id.
pub fn hook(d: &Daemon, path: &str, body: &str) -> String {
    let r = d.request("POST", path, &[], body.as_bytes());
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    r.json()["job_id"].as_str().unwrap().to_string()
}

/// Sends `n` webhooks to `/ok` and one to `/bad` after every other of them (of
/// [`ok_bad_nightly`]), and waits until all have ended: their job ids, `/ok`'s and `/bad`'s.
pub fn ok_and_bad(d: &Daemon, n: usize) -> (Vec<String>, Vec<String>) {
    let mut ok = Vec::new();
    let mut bad = Vec::new();
    for i in 0..n {
        ok.push(hook(d, "/ok", "{\"n\":1}"));
        if i % 2 == 0 {
            bad.push(hook(d, "/bad", "{\"n\":1}"));
        }
    }
    for j in ok.iter().chain(&bad) {
        ended(d, j, 1);
    }
    (ok, bad)
}

/// Runs `path` (a flow whose second and last step fails), retries the failed execution
/// from its failed step and waits for the retry to fail again: the job id and the step rows
/// of attempt 2.
pub fn failed_then_retried(d: &Daemon, path: &str) -> (String, Value, Vec<Value>) {
    let job = hook(d, path, "{\"n\":1}");
    assert_eq!(ended(d, &job, 1)["status"], "failed");
    let (status, v) = post_op(d, &format!("/v1/executions/{job}/retry"), b"");
    assert_eq!((status, v), (202, serde_json::json!({"job_id": job, "attempt": 2})));
    assert_eq!(ended(d, &job, 2)["status"], "failed");
    let detail = get(d, &format!("/v1/executions/{job}"));
    let a2 = detail["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["attempt"] == 2)
        .cloned()
        .collect();
    (job, detail, a2)
}

/// Waits (at most [`super::PATIENCE`]) until `job` has ended its attempt `attempt`; its list row.
pub fn ended(d: &Daemon, job: &str, attempt: u64) -> Value {
    let end = std::time::Instant::now() + super::PATIENCE;
    loop {
        let v = polled(d, &format!("/v1/executions?job_id={job}"), end);
        if let Some(row) = v["executions"].get(0)
            && row["finished_at"].is_string()
            && row["attempt"] == attempt
        {
            return row.clone();
        }
        assert!(
            std::time::Instant::now() < end,
            "{job} never ended attempt {attempt}: {v}"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// The job ids of an execution list, in its order.
pub fn ids(v: &Value) -> Vec<String> {
    v["executions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["job_id"].as_str().unwrap().to_string())
        .collect()
}

/// `r` is a 400 `bad_parameter` whose message starts with the parameter `name` and says
/// `says`; `what` names the request in a failure.
pub fn assert_bad_parameter(r: &super::HttpResponse, name: &str, says: &str, what: &str) {
    assert_eq!(r.status, 400, "{what}");
    let e = &r.json()["error"];
    assert_eq!(e["code"], "bad_parameter", "{what}");
    let message = e["message"].as_str().unwrap();
    assert!(
        message.starts_with(&format!("query parameter `{name}`")),
        "{what}: {message}"
    );
    assert!(message.contains(says), "{what}: {message}");
}

/// A live tail (`GET /v1/logs/follow?…`) as the viewer, its body read as it arrives.
pub struct Follow {
    stream: std::net::TcpStream,
    raw: Vec<u8>,
    /// Where the body starts in `raw`.
    body: usize,
}

impl Follow {
    /// Opens the tail with `query` and reads its head, which must be a 200 of NDJSON.
    pub fn open(d: &Daemon, query: &str) -> Follow {
        use std::io::Write;
        let mut stream = std::net::TcpStream::connect(d.admin).unwrap();
        write!(
            stream,
            "GET /v1/logs/follow?{query} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {VIEWER}\r\n\r\n"
        )
        .unwrap();
        stream
            .set_read_timeout(Some(std::time::Duration::from_millis(100)))
            .unwrap();
        let mut f = Follow {
            stream,
            raw: Vec::new(),
            body: 0,
        };
        f.read_until(&|raw| raw.windows(4).any(|w| w == b"\r\n\r\n"));
        f.body = f.raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let head = String::from_utf8_lossy(&f.raw[..f.body]).to_lowercase();
        assert!(head.starts_with("http/1.1 200"), "{head}");
        assert!(head.contains("content-type: application/x-ndjson"), "{head}");
        f
    }

    /// Reads (at most 30 s) until `done` holds of everything received.
    fn read_until(&mut self, done: &dyn Fn(&[u8]) -> bool) {
        use std::io::Read;
        let end = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let mut buf = [0u8; 4096];
        while !done(&self.raw) {
            assert!(
                std::time::Instant::now() < end,
                "{}",
                String::from_utf8_lossy(&self.raw)
            );
            match self.stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => self.raw.extend_from_slice(&buf[..n]),
                Err(_) => {}
            }
        }
    }

    fn records_of(raw: &[u8]) -> Vec<Value> {
        let (body, _) = super::dechunk(raw);
        String::from_utf8(body)
            .unwrap()
            .lines()
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Every record received so far.
    pub fn records(&self) -> Vec<Value> {
        Follow::records_of(&self.raw[self.body..])
    }

    /// Reads until a record whose message is `message` arrived (at most 30 s).
    pub fn wait_for(&mut self, message: &str) {
        let at = self.body;
        self.read_until(&|raw| Follow::records_of(&raw[at..]).iter().any(|l| l["message"] == message));
    }

    /// Reads until the body's last chunk (at most 30 s).
    pub fn wait_end(&mut self) {
        let at = self.body;
        self.read_until(&|raw| super::dechunk(&raw[at..]).1);
    }
}
