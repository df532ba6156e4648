//! The bundled `http` connector and the host's outbound-HTTP policy, through the real
//! `flowd run` binary against a local hyper server on 127.0.0.1: success, 5xx retried
//! then succeeding, denied hosts (by name, by IP literal, by a name resolving to
//! loopback), a redirect to a denied host, the grant's timeout and response cap.

mod support;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::body::{Body, Frame};
use hyper::{Request, Response};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use support::{Setup, list_executions, show, spawn_recorded, step};

/// A local API: per-path hit counters, answers described below in `answer`.
struct Api {
    addr: SocketAddr,
    hits: Arc<Mutex<HashMap<String, u32>>>,
}

impl Api {
    fn start() -> Api {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let hits: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
        let counters = hits.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                loop {
                    let (stream, _) = listener.accept().await.unwrap();
                    let hits = counters.clone();
                    tokio::spawn(async move {
                        let service = hyper::service::service_fn(move |req| answer(req, hits.clone()));
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                            .await;
                    });
                }
            });
        });
        Api { addr, hits }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn hits(&self, path: &str) -> u32 {
        self.hits.lock().unwrap().get(path).copied().unwrap_or(0)
    }
}

type Reply = Response<BoxBody<Bytes, std::convert::Infallible>>;

fn reply(status: u16, headers: &[(&str, &str)], body: impl Into<Bytes>) -> Reply {
    let mut r = Response::builder().status(status);
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    r.body(Full::new(body.into()).boxed()).unwrap()
}

/// A body of unknown length (sent chunked), so only counting can enforce a cap.
struct Chunks(Vec<Bytes>);

impl Body for Chunks {
    type Data = Bytes;
    type Error = std::convert::Infallible;
    fn poll_frame(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Poll::Ready(self.0.pop().map(|b| Ok(Frame::data(b))))
    }
}

async fn answer(
    req: Request<Incoming>,
    hits: Arc<Mutex<HashMap<String, u32>>>,
) -> Result<Reply, std::convert::Infallible> {
    let path = req.uri().path().to_string();
    let n = {
        let mut h = hits.lock().unwrap();
        let n = h.entry(path.clone()).or_default();
        *n += 1;
        *n
    };
    let json = [("content-type", "application/json")];
    Ok(match path.as_str() {
        "/echo" => {
            let method = req.method().to_string();
            let query = req.uri().query().unwrap_or("").to_string();
            let header = |name: &str| req.headers().get(name).map(|v| v.to_str().unwrap().to_string());
            let (content_type, authorization, custom) =
                (header("content-type"), header("authorization"), header("x-custom"));
            let body = req.into_body().collect().await.unwrap().to_bytes();
            let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let out = json!({"method": method, "query": query, "content_type": content_type,
                "authorization": authorization, "custom": custom, "body": body});
            reply(200, &json, out.to_string())
        }
        // Fails twice with 503, then answers.
        "/flaky" if n <= 2 => reply(503, &[], "try again later"),
        "/flaky" => reply(200, &json, json!({"succeeded_on": n}).to_string()),
        "/missing" => reply(404, &[], "no such thing"),
        "/redirect-ok" => reply(302, &[("location", "/echo")], ""),
        "/redirect-metadata" => reply(302, &[("location", "http://169.254.169.254/latest/meta-data/")], ""),
        "/slow" => {
            tokio::time::sleep(Duration::from_secs(5)).await;
            reply(200, &[], "late")
        }
        "/stalls" => Response::new(
            Stall {
                first: Some(Bytes::from_static(b"{\"partial\": ")),
                sleep: Box::pin(tokio::time::sleep(Duration::from_secs(5))),
            }
            .boxed(),
        ),
        "/big" => reply(200, &[], vec![b'x'; 64 << 10]),
        "/big-chunked" => Response::new(Chunks(vec![Bytes::from(vec![b'x'; 8 << 10]); 8]).boxed()),
        _ => reply(500, &[], "unknown path"),
    })
}

/// A setup with connector `api` (the bundled http connector) granted `allow`.
fn setup(allow: &[String], extra: &str) -> Setup {
    let allow: Vec<String> = allow.iter().map(|a| format!("{a:?}")).collect();
    with_api(&format!("grants.http = {{ allow = [{}]{extra} }}\n", allow.join(", ")))
}

/// A setup with connector `api` (the bundled http connector) and these extra lines.
fn with_api(lines: &str) -> Setup {
    let setup = Setup::new("");
    let mut config = std::fs::read_to_string(setup.config()).unwrap();
    config.push_str(&format!("[connectors.api]\nbundled = \"http\"\n{lines}"));
    std::fs::write(setup.config(), config).unwrap();
    setup
}

/// Writes flow `call`: one step `call` using `api` with `config` (a TOML inline table).
fn call_flow(setup: &Setup, config: &str, keys: &str) -> std::path::PathBuf {
    setup.flow(
        "call",
        &format!("[flow]\nname = \"call\"\n[trigger.manual]\n[[steps]]\nname = \"call\"\nconnector = \"api\"\nconfig = {config}\n{keys}\n"),
    )
}

fn run(setup: &Setup, config: &str, keys: &str) -> (i32, Value) {
    let flow = call_flow(setup, config, keys);
    setup.run(&flow, Some(&json!({"id": 42, "note": "a b&c"})))
}

fn origin(api: &Api) -> String {
    format!("http://{}", api.addr)
}

#[test]
fn a_step_that_can_reach_out_is_stored_running_before_its_request_leaves() {
    // A step granted outbound HTTP acts on the world: its start must be durable before it
    // runs. Killed the moment its request arrives, the store already shows it running.
    let api = Api::start();
    let setup = setup(&[origin(&api)], "");
    let flow = call_flow(&setup, &format!("{{ url = \"{}\" }}", api.url("/slow")), "");
    let mut child = spawn_recorded(&setup, &flow, &json!({}));
    let waited = Instant::now();
    while api.hits("/slow") == 0 {
        assert!(waited.elapsed() < Duration::from_secs(60), "the request never came");
        std::thread::sleep(Duration::from_micros(200));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let all = list_executions(&setup, None);
    assert_eq!(all.len(), 1, "{all:#?}");
    let d = show(&setup, all[0]["job_id"].as_str().unwrap());
    assert_eq!(d["steps"][0]["status"], "running", "{d:#}");
}

#[test]
fn a_granted_call_succeeds_with_status_headers_and_parsed_body() {
    let api = Api::start();
    let setup = setup(&[origin(&api)], "");
    let config = format!(
        "{{ method = \"POST\", url = \"{}\", query = {{ id = \"{{{{ trigger.body.id }}}}\", note = \"{{{{ trigger.body.note }}}}\" }}, headers = {{ x-custom = \"yes\", authorization = \"Bearer t0k\" }}, body = {{ order = \"{{{{ trigger.body.id }}}}\" }} }}",
        api.url("/echo")
    );
    let (code, report) = run(&setup, &config, "");
    assert_eq!(code, 0, "{report:#}");
    let out = &step(&report, "call")["output"];
    assert_eq!(out["status"], 200);
    assert_eq!(out["headers"]["content-type"], "application/json");
    assert_eq!(out["url"], api.url("/echo?id=42&note=a%20b%26c"));
    let body = &out["body"];
    assert_eq!(body["method"], "POST");
    assert_eq!(body["query"], "id=42&note=a%20b%26c");
    assert_eq!(
        body["content_type"], "application/json",
        "a JSON body is labelled as such"
    );
    assert_eq!(body["authorization"], "Bearer t0k");
    assert_eq!(body["custom"], "yes");
    assert_eq!(body["body"], json!({"order": 42}), "placeholders resolved in the body");
}

#[test]
fn a_5xx_is_retried_until_it_succeeds() {
    let api = Api::start();
    let setup = setup(&[origin(&api)], "");
    let config = format!("{{ url = \"{}\" }}", api.url("/flaky"));
    let (code, report) = run(&setup, &config, "retry = { attempts = 3, backoff = \"10ms\" }");
    assert_eq!(code, 0, "{report:#}");
    let s = step(&report, "call");
    assert_eq!(s["output"]["body"], json!({"succeeded_on": 3}));
    let tries = s["tries"].as_array().unwrap();
    assert_eq!(tries.len(), 3, "{s:#}");
    for t in &tries[..2] {
        assert_eq!(t["error"]["kind"], "connector");
        assert_eq!(t["error"]["code"], "status");
        assert_eq!(t["error"]["retryable"], true);
        assert!(
            t["error"]["message"].as_str().unwrap().contains("answered 503"),
            "{t:#}"
        );
    }
    assert_eq!(api.hits("/flaky"), 3);

    // A 4xx is the caller's mistake: not retried.
    let config = format!("{{ url = \"{}\" }}", api.url("/missing"));
    let (code, report) = run(&setup, &config, "retry = { attempts = 3, backoff = \"10ms\" }");
    assert_eq!(code, 1);
    let s = step(&report, "call");
    assert_eq!(s["error"]["retryable"], false);
    assert_eq!(s["tries"].as_array().unwrap().len(), 1);
    assert_eq!(api.hits("/missing"), 1);
    // Unless the flow asks for the status as data.
    let config = format!("{{ url = \"{}\", fail_on_status = false }}", api.url("/missing"));
    let (code, report) = run(&setup, &config, "");
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(step(&report, "call")["output"]["status"], 404);
    assert_eq!(step(&report, "call")["output"]["body"], "no such thing");
}

fn host_error(report: &Value) -> (String, Value) {
    let s = step(report, "call");
    assert_eq!(report["status"], "failed", "{report:#}");
    assert_eq!(s["error"]["kind"], "host", "{s:#}");
    (s["error"]["message"].as_str().unwrap().to_string(), s.clone())
}

#[test]
fn hosts_outside_the_allow_list_are_denied_by_name() {
    let api = Api::start();
    let setup = setup(&[origin(&api), "api.example.com".into()], "");
    // Another port on the same address, another loopback address, a name.
    let other_port = format!("http://127.0.0.1:{}/", api.addr.port() + 1);
    for (url, host) in [
        (other_port.as_str(), format!("127.0.0.1:{}", api.addr.port() + 1)),
        ("http://127.0.0.2/x", "127.0.0.2".to_string()),
        ("http://evil.example.com/", "evil.example.com".to_string()),
        ("http://api.example.com/", "api.example.com".to_string()),
    ] {
        let (code, report) = run(&setup, &format!("{{ url = \"{url}\" }}"), "");
        assert_eq!(code, 1);
        let (message, s) = host_error(&report);
        assert_eq!(s["error"]["code"], "denied");
        assert_eq!(s["error"]["retryable"], false);
        assert!(
            message.contains(&format!("host {host} ")) && message.contains("grants.http.allow"),
            "{url}: {message}"
        );
        // The refusal is in the step's log too.
        let logs = &s["tries"][0]["logs"];
        assert!(
            logs.as_array().unwrap().iter().any(|l| l["category"] == "http"),
            "{s:#}"
        );
    }
}

#[test]
fn a_name_resolving_to_loopback_is_denied_unless_its_address_is_listed() {
    let api = Api::start();
    let port = api.addr.port();
    let config = format!("{{ url = \"http://localhost:{port}/echo\" }}");
    let setup_named = setup(&[format!("http://localhost:{port}")], "");
    let (code, report) = run(&setup_named, &config, "");
    assert_eq!(code, 1);
    let (message, _) = host_error(&report);
    assert!(
        message.contains("localhost resolves to") && message.contains("not a public address"),
        "{message}"
    );
    assert_eq!(api.hits("/echo"), 0);

    let setup_listed = setup(
        &[format!("http://localhost:{port}"), "127.0.0.1".into(), "[::1]".into()],
        "",
    );
    let (code, report) = run(&setup_listed, &config, "");
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(step(&report, "call")["output"]["body"]["method"], "GET");
}

#[test]
fn a_redirect_is_followed_only_to_allowed_hosts() {
    let api = Api::start();
    let setup = setup(&[origin(&api)], "");
    let (code, report) = run(&setup, &format!("{{ url = \"{}\" }}", api.url("/redirect-ok")), "");
    assert_eq!(code, 0, "{report:#}");
    let out = &step(&report, "call")["output"];
    assert_eq!(out["url"], api.url("/echo"));
    assert_eq!(out["body"]["method"], "GET");

    let (code, report) = run(
        &setup,
        &format!("{{ url = \"{}\" }}", api.url("/redirect-metadata")),
        "",
    );
    assert_eq!(code, 1);
    let (message, s) = host_error(&report);
    assert_eq!(s["error"]["code"], "denied");
    assert!(message.contains("host 169.254.169.254 "), "{message}");
    assert_eq!(api.hits("/redirect-metadata"), 1);
}

/// Sends its headers and a first chunk, then stalls.
struct Stall {
    first: Option<Bytes>,
    sleep: Pin<Box<tokio::time::Sleep>>,
}

impl Body for Stall {
    type Data = Bytes;
    type Error = std::convert::Infallible;
    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Some(b) = self.first.take() {
            return Poll::Ready(Some(Ok(Frame::data(b))));
        }
        self.sleep.as_mut().poll(cx).map(|()| None)
    }
}

#[test]
fn the_grants_timeout_stops_a_stalled_body() {
    let api = Api::start();
    let setup = setup(&[origin(&api)], ", timeout = \"300ms\"");
    let (code, report) = run(&setup, &format!("{{ url = \"{}\" }}", api.url("/stalls")), "");
    assert_eq!(code, 1);
    let (message, s) = host_error(&report);
    assert_eq!(s["error"]["code"], "timeout", "{s:#}");
    assert!(message.contains("reading the response from"), "{message}");
}

#[test]
fn the_grants_timeout_stops_a_slow_response() {
    let api = Api::start();
    let setup = setup(&[origin(&api)], ", timeout = \"300ms\"");
    let start = Instant::now();
    let (code, report) = run(&setup, &format!("{{ url = \"{}\" }}", api.url("/slow")), "");
    let took = start.elapsed();
    assert_eq!(code, 1);
    let (message, s) = host_error(&report);
    assert_eq!(s["error"]["code"], "timeout", "{s:#}");
    assert_eq!(s["error"]["retryable"], true, "a timeout may pass on another try");
    assert!(
        message.contains("300ms") && message.contains("grants.http.timeout"),
        "{message}"
    );
    assert!(
        took < Duration::from_secs(4),
        "the server sleeps 5s; the grant allows 300ms"
    );
}

#[test]
fn the_grants_response_cap_refuses_a_larger_body() {
    let api = Api::start();
    let setup = setup(&[origin(&api)], ", max_response = \"16KiB\"");
    // Refused on its declared length, and, sent chunked, when the count passes the cap.
    for (path, declared) in [("/big", true), ("/big-chunked", false)] {
        let (code, report) = run(&setup, &format!("{{ url = \"{}\" }}", api.url(path)), "");
        assert_eq!(code, 1);
        let (message, s) = host_error(&report);
        assert_eq!(s["error"]["code"], "response_too_large");
        assert!(
            message.contains("over 16.0 KiB (grants.http.max_response)"),
            "{message}"
        );
        assert_eq!(message.contains("it declares 64.0 KiB"), declared, "{message}");
    }
}

#[test]
fn without_a_grant_the_connector_cannot_load() {
    let setup = with_api("");
    let flow = call_flow(&setup, "{ url = \"http://127.0.0.1:9/\" }", "");
    let stderr = setup.refused(&flow);
    assert!(
        stderr.contains("wasi:http/outgoing-handler") && stderr.contains("grants.http.allow"),
        "{stderr}"
    );
}

#[test]
fn bad_configs_are_rejected_before_running() {
    let api = Api::start();
    let setup = setup(&[origin(&api)], "");
    let flow = call_flow(
        &setup,
        "{ url = \"ftp://x\", method = \"FETCH\", headers = { \"bad header\" = \"v\" }, max_redirects = 99, colour = 1 }",
        "",
    );
    let stderr = setup.refused(&flow);
    for expected in [
        "config.url: scheme \"ftp\" is not http or https",
        "config.method: unknown method \"FETCH\"",
        "config.headers.bad header: not a valid header name",
        "config.max_redirects: expected a number from 0 to 20",
        "config.colour: unknown key",
    ] {
        assert!(stderr.contains(expected), "missing {expected:?} in:\n{stderr}");
    }
}
