//! What a webhook sender gets and what is kept of its request, over real sockets against
//! the real daemon: bodies that are not the JSON they claim to be (400 with the line and
//! column, nothing recorded), nor JSON every reader after can read back (nested past 64
//! levels, here and on a manual run), bodies sent gzip- or deflate-encoded (stored decoded;
//! a coding flowd does not decode, a corrupt one or one that decodes past the limit
//! refused), dropped events (the flow's status, a log record with the
//! trigger connector's reason, a counter), a body the listener takes but whose payload
//! would not fit the store (413 before anything is recorded), repeated headers and query
//! keys and binary bodies kept whole, a U+0000 in JSON kept in every record (PostgreSQL's
//! text holds none) and found by a filter, and credentials redacted from what is stored and
//! shown (the trigger connector still seeing them).

mod support;

use serde_json::{Value, json};
use support::admin::{BY_HAND, OPERATOR, TOKENS, VIEWER, ended, get, log_messages, start};
use support::{Daemon, HttpResponse, Setup, gzip, raw_deflate, zlib};

/// The example config's `order-intake` flow, as shipped.
fn order_intake() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/flows/order-intake.toml")).unwrap()
}

fn metrics(d: &Daemon) -> String {
    let r = d.admin("GET", "/metrics", Some(VIEWER), b"");
    assert_eq!(r.status, 200);
    String::from_utf8(r.body).unwrap()
}

fn has_line(text: &str, line: &str) {
    assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
}

fn error_of(r: &HttpResponse) -> Value {
    r.json()["error"].clone()
}

/// The executions the daemon recorded (newest first).
fn executions(d: &Daemon, flow: &str) -> Vec<Value> {
    get(d, &format!("/v1/executions?flow={flow}"))["executions"]
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn the_deepest_body_taken_is_stored_and_read_back_and_one_level_deeper_is_refused() {
    // 64 levels: stored, read back, and given to a step (three levels further in) whose
    // output is stored and read back too.
    let setup = Setup::with_server("", TOKENS);
    setup.flow(
        "loose",
        "[flow]\nname = \"loose\"\n[trigger.http]\npath = \"/loose\"\n[[steps]]\nname = \"s\"\nconnector = \"echo\"\n",
    );
    setup.flow("by-hand", BY_HAND);
    let d = start(&setup);
    let nest = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
    let json_type = [("content-type", "application/json")];
    let hook = d.request("POST", "/loose", &json_type, nest(64).as_bytes());
    assert_eq!(hook.status, 202, "{hook:?}");
    let manual = d.admin("POST", "/v1/flows/by-hand/run", Some(OPERATOR), nest(64).as_bytes());
    assert_eq!(manual.status, 202, "{manual:?}");
    let deepest: Value = serde_json::from_str(&nest(64)).unwrap();
    for r in [hook, manual] {
        let job = r.json()["job_id"].as_str().unwrap().to_string();
        let row = ended(&d, &job, 1);
        let detail = get(&d, &format!("/v1/executions/{job}"));
        assert_eq!(row["status"], "success", "{job}: {}", detail["steps"]);
        assert_eq!(detail["trigger"]["body"], deepest, "{job}");
        assert_eq!(
            detail["steps"][0]["output"]["input"]["trigger"]["body"], deepest,
            "{job}"
        );
        let trigger = get(&d, &format!("/v1/executions/{job}/trigger"));
        assert_eq!(trigger["body"], deepest, "{job}");
    }
    let r = d.request("POST", "/loose", &json_type, nest(65).as_bytes());
    assert_eq!(
        (r.status, error_of(&r)["code"].as_str()),
        (400, Some("invalid_json")),
        "{r:?}"
    );
    let r = d.admin("POST", "/v1/flows/by-hand/run", Some(OPERATOR), nest(65).as_bytes());
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(
        error_of(&r)["message"],
        "the request body's arrays and objects are nested deeper than 64 levels at line 1 column 66"
    );
    assert_eq!(executions(&d, "loose").len() + executions(&d, "by-hand").len(), 2);
}

#[test]
fn bodies_sent_gzip_or_deflate_are_stored_decoded_and_bad_codings_are_refused_before_anything_is_recorded() {
    let setup = Setup::with_server("", &format!("max_body = 4096\n{TOKENS}"));
    setup.flow("order-intake", &order_intake());
    setup.flow(
        "loose",
        "[flow]\nname = \"loose\"\n[trigger.http]\npath = \"/loose\"\n[[steps]]\nname = \"s\"\nconnector = \"echo\"\n",
    );
    setup.flow("by-hand", BY_HAND);
    let d = start(&setup);
    let order = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/config/examples/order.json")).unwrap();

    // The example flow reads the order decoded, and answers as for the plain body.
    let r = d.request(
        "POST",
        "/hooks/orders",
        &[("content-type", "application/json"), ("content-encoding", "gzip")],
        &gzip(&order),
    );
    assert_eq!(
        (r.status, r.json()),
        (200, json!({"accepted": "A-1001", "total": 16.5})),
        "{r:?}"
    );

    // Every form of each coding, stored decoded; the headers are kept as sent.
    let doc = br#"{"n":1,"text":"caf\u00e9","list":[1,2,3]}"#;
    let (half, rest) = doc.split_at(10);
    let taken: Vec<(&str, &str, Vec<u8>)> = vec![
        ("gzip", "gzip", gzip(doc)),
        ("x-gzip", "x-gzip", gzip(doc)),
        ("upper case, after identity", "identity, GZIP", gzip(doc)),
        ("two gzip members", "gzip", [gzip(half), gzip(rest)].concat()),
        ("gzip twice", "gzip, gzip", gzip(&gzip(doc))),
        ("deflate (zlib)", "deflate", zlib(doc)),
        ("deflate (raw)", "deflate", raw_deflate(doc)),
        ("deflate then gzip", "deflate, gzip", gzip(&zlib(doc))),
        ("identity", "identity", doc.to_vec()),
    ];
    for (what, coding, body) in &taken {
        let r = d.request(
            "POST",
            "/loose",
            &[("content-type", "application/json"), ("content-encoding", coding)],
            body,
        );
        assert_eq!(r.status, 202, "{what}: {r:?}");
        let job = r.json()["job_id"].as_str().unwrap().to_string();
        let trigger = get(&d, &format!("/v1/executions/{job}/trigger"));
        assert_eq!(trigger["body"], serde_json::from_slice::<Value>(doc).unwrap(), "{what}");
        assert_eq!(trigger["headers"]["content-encoding"], *coding, "{what}");
    }
    // Exactly the limit once decoded is taken; a body of binary data too.
    let at_limit = format!("\"{}\"", "x".repeat(4094));
    let r = d.request(
        "POST",
        "/loose",
        &[("content-type", "application/json"), ("content-encoding", "gzip")],
        &gzip(at_limit.as_bytes()),
    );
    assert_eq!(r.status, 202, "{r:?}");
    let binary: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
    let r = d.request("POST", "/loose", &[("content-encoding", "deflate")], &zlib(&binary));
    assert_eq!(r.status, 202, "{r:?}");
    let decoded = get(
        &d,
        &format!("/v1/executions/{}/trigger", r.json()["job_id"].as_str().unwrap()),
    );
    let r = d.request("POST", "/loose", &[], &binary);
    let plain = get(
        &d,
        &format!("/v1/executions/{}/trigger", r.json()["job_id"].as_str().unwrap()),
    );
    assert_eq!(decoded["body_encoding"], "base64");
    assert_eq!(
        (&decoded["body"], &decoded["body_encoding"]),
        (&plain["body"], &plain["body_encoding"]),
        "a binary body decoded is stored as the same body sent plain"
    );
    let stored = executions(&d, "loose").len();

    // Refused, nothing recorded.
    let gz = gzip(doc);
    struct Refused {
        what: &'static str,
        coding: &'static str,
        body: Vec<u8>,
        status: u16,
        code: &'static str,
        message: &'static str,
    }
    let refused = vec![
        Refused {
            what: "brotli",
            coding: "br",
            body: doc.to_vec(),
            status: 415,
            code: "unsupported_encoding",
            message: "the request body's Content-Encoding \"br\" is not one flowd decodes (it decodes gzip, deflate)",
        },
        Refused {
            what: "zstd after gzip",
            coding: "gzip, zstd",
            body: gz.clone(),
            status: 415,
            code: "unsupported_encoding",
            message: "the request body's Content-Encoding \"zstd\" is not one flowd decodes (it decodes gzip, deflate)",
        },
        Refused {
            what: "three codings",
            coding: "gzip, gzip, gzip",
            body: gzip(&gzip(&gz)),
            status: 400,
            code: "bad_encoding",
            message: "the request body has 3 content codings; flowd undoes at most 2",
        },
        Refused {
            what: "plain JSON labelled gzip",
            coding: "gzip",
            body: doc.to_vec(),
            status: 400,
            code: "bad_encoding",
            message: "the request body is not valid gzip: invalid gzip header",
        },
        Refused {
            what: "gzip cut short",
            coding: "gzip",
            body: gz[..gz.len() - 9].to_vec(),
            status: 400,
            code: "bad_encoding",
            message: "the request body is not valid gzip: incomplete deflate stream",
        },
        Refused {
            what: "bytes after the gzip data",
            coding: "gzip",
            body: [gz.as_slice(), b"tail"].concat(),
            status: 400,
            code: "bad_encoding",
            message: "the request body is not valid gzip: 4 bytes follow the end of the compressed data",
        },
        Refused {
            what: "bytes after the deflate data",
            coding: "deflate",
            body: [zlib(doc).as_slice(), b"!"].concat(),
            status: 400,
            code: "bad_encoding",
            message: "the request body is not valid deflate: 1 byte follows the end of the compressed data",
        },
        Refused {
            what: "one byte over the limit once decoded",
            coding: "gzip",
            body: gzip(format!("\"{}\"", "x".repeat(4095)).as_bytes()),
            status: 413,
            code: "body_too_large",
            message: "the request body, decoded from gzip, is over the 4.0 KiB limit (server.max_body)",
        },
        Refused {
            what: "a megabyte of zeros in 1 KiB",
            coding: "deflate",
            body: zlib(&vec![b'0'; 1 << 20]),
            status: 413,
            code: "body_too_large",
            message: "the request body, decoded from deflate, is over the 4.0 KiB limit (server.max_body)",
        },
    ];
    for Refused {
        what,
        coding,
        body,
        status,
        code,
        message,
    } in &refused
    {
        let r = d.request(
            "POST",
            "/loose",
            &[("content-type", "application/json"), ("content-encoding", coding)],
            body,
        );
        assert_eq!(
            (r.status, error_of(&r)["code"].as_str()),
            (*status, Some(*code)),
            "{what}: {r:?}"
        );
        assert_eq!(error_of(&r)["message"], *message, "{what}");
        if *status == 415 {
            assert_eq!(r.header("accept-encoding"), Some("gzip, deflate"), "{what}");
        }
    }
    assert_eq!(executions(&d, "loose").len(), stored);

    // A manual run's body the same way.
    let admin = |coding: &str, body: &[u8]| {
        let auth = format!("Bearer {OPERATOR}");
        support::http_request(
            d.admin,
            "POST",
            "/v1/flows/by-hand/run",
            &[("Authorization", auth.as_str()), ("Content-Encoding", coding)],
            body,
        )
    };
    let r = admin("gzip", &gzip(doc));
    assert_eq!(r.status, 202, "{r:?}");
    let job = r.json()["job_id"].as_str().unwrap().to_string();
    assert_eq!(
        get(&d, &format!("/v1/executions/{job}/trigger"))["body"],
        serde_json::from_slice::<Value>(doc).unwrap()
    );
    let r = admin("br", doc);
    assert_eq!(
        (r.status, error_of(&r)["code"].as_str()),
        (415, Some("unsupported_encoding")),
        "{r:?}"
    );
    let r = admin("deflate", b"not deflate");
    assert_eq!(
        (r.status, error_of(&r)["code"].as_str()),
        (400, Some("bad_encoding")),
        "{r:?}"
    );
    assert_eq!(executions(&d, "by-hand").len(), 1);
}

/// A path is matched once percent-encodings are undone where RFC 3986 says they mean the
/// same (unreserved characters) and hex digits compared in either case; a path written
/// with a character a request cannot send as it is (`é`) is reached by its encoding.
#[test]
fn webhook_paths_match_however_equivalent_encodings_write_them() {
    let setup = Setup::with_server("", TOKENS);
    let replying = |name: &str, path: &str| {
        format!(
            "[flow]\nname = \"{name}\"\n[trigger.http]\npath = \"{path}\"\n[[steps]]\nname = \"r\"\nrespond = {{ status = 200, body = \"{name}\" }}\n"
        )
    };
    setup.flow("cafe", &replying("cafe", "/hooks/café"));
    setup.flow("spaced", &replying("spaced", "/hooks/a%20b"));
    setup.flow("tilde", &replying("tilde", "/hooks/%7Euser"));
    setup.flow("plain", &replying("plain", "/hooks/orders"));
    let d = start(&setup);
    for (sent, answered) in [
        ("/hooks/caf%C3%A9", Some("cafe")),
        ("/hooks/caf%c3%a9", Some("cafe")),
        ("/hooks/a%20b", Some("spaced")),
        ("/hooks/a%20B", None),
        ("/hooks/a b", None),
        ("/hooks/~user", Some("tilde")),
        ("/hooks/%7euser", Some("tilde")),
        ("/hooks/%6Frders", Some("plain")),
        ("/hooks/orders/", None),
        ("/hooks/ord%zzers", None),
    ] {
        let r = d.request("POST", sent, &[], b"{}");
        match answered {
            Some(name) => assert_eq!((r.status, r.body.as_slice()), (200, name.as_bytes()), "{sent}: {r:?}"),
            None => assert!(matches!(r.status, 400 | 404), "{sent}: {r:?}"),
        }
    }
    // The request's path is kept as it was sent.
    let r = d.request("POST", "/hooks/caf%c3%a9", &[], b"{}");
    let job = r.header("x-flowd-job-id").unwrap().to_string();
    assert_eq!(
        get(&d, &format!("/v1/executions/{job}/trigger"))["path"],
        "/hooks/caf%c3%a9"
    );
}

#[test]
fn bodies_that_are_not_the_json_they_claim_get_400_with_line_and_column_and_nothing_recorded() {
    let setup = Setup::with_server("", TOKENS);
    setup.flow("order-intake", &order_intake());
    setup.flow(
        "loose",
        "[flow]\nname = \"loose\"\n[trigger.http]\npath = \"/loose\"\n[[steps]]\nname = \"s\"\nconnector = \"echo\"\n",
    );
    let d = start(&setup);
    let json_type = [("content-type", "application/json")];

    // The example flow takes JSON: a truncated order, text, an empty body.
    let r = d.request("POST", "/hooks/orders", &json_type, br#"{"order": {"id": "A-1","#);
    assert_eq!(r.status, 400, "{r:?}");
    let e = error_of(&r);
    assert_eq!(e["code"], "invalid_json");
    assert_eq!((e["line"].as_u64(), e["column"].as_u64()), (Some(1), Some(23)), "{e}");
    let message = e["message"].as_str().unwrap();
    assert!(
        message.starts_with("flow \"order-intake\" takes a JSON body, and it is not valid JSON: ")
            && message.ends_with("at line 1 column 23"),
        "{message}"
    );
    let r = d.request(
        "POST",
        "/hooks/orders",
        &[("content-type", "text/plain")],
        b"one order, please",
    );
    assert_eq!((r.status, error_of(&r)["line"].as_u64()), (400, Some(1)), "{r:?}");
    let r = d.request(
        "POST",
        "/hooks/orders",
        &[],
        b"{\n  \"order\": {\n    \"id\": \"A-1\",,\n",
    );
    let e = error_of(&r);
    assert_eq!(
        (r.status, e["line"].as_u64(), e["column"].as_u64()),
        (400, Some(3), Some(17)),
        "{e}"
    );
    let r = d.request("POST", "/hooks/orders", &json_type, b"");
    assert_eq!(r.status, 400);
    assert_eq!(
        error_of(&r)["message"],
        "flow \"order-intake\" takes a JSON body, and the body is empty"
    );
    // JSON the payload could not hold as JSON, or the store could not read back, is
    // refused too, not kept as text: a number past a double, nesting past 64 levels (the
    // payload, steps and answers hold the body further in), a string that is not UTF-8 or holds
    // a lone surrogate.
    let deep = format!(r#"{{"order": {}{}}}"#, "[".repeat(64), "]".repeat(64));
    for (body, column, says) in [
        (
            &br#"{"order": {"id": 1e400}}"#[..],
            22,
            "it holds a number too large for a double",
        ),
        (
            deep.as_bytes(),
            75,
            "its arrays and objects are nested deeper than 64 levels",
        ),
        (&b"{\"order\": \"\xff\"}"[..], 12, "it is not valid JSON"),
        (&br#"{"order": "\ud800"}"#[..], 18, "it is not valid JSON"),
    ] {
        let r = d.request("POST", "/hooks/orders", &json_type, body);
        let what = String::from_utf8_lossy(body).chars().take(40).collect::<String>();
        assert_eq!(r.status, 400, "{what}: {r:?}");
        let e = error_of(&r);
        assert_eq!(e["code"], "invalid_json", "{what}: {e}");
        assert_eq!(
            (e["line"].as_u64(), e["column"].as_u64()),
            (Some(1), Some(column)),
            "{what}: {e}"
        );
        let message = e["message"].as_str().unwrap();
        assert!(
            message.starts_with(&format!("flow \"order-intake\" takes a JSON body, and {says}")),
            "{what}: {message}"
        );
    }

    // A flow that takes anything: a body sent as JSON must be JSON; text stays text.
    for content_type in ["application/json", "application/vnd.api+json; charset=utf-8"] {
        let r = d.request("POST", "/loose", &[("content-type", content_type)], b"{\"a\": tru");
        assert_eq!(r.status, 400, "{content_type}: {r:?}");
        let message = error_of(&r)["message"].as_str().unwrap().to_string();
        assert!(
            message.starts_with("the body is sent as JSON (its content-type says so), and it is not valid JSON"),
            "{message}"
        );
    }
    let r = d.request("POST", "/loose", &[("content-type", "text/plain")], b"{\"a\": tru");
    assert_eq!(r.status, 202, "{r:?}");
    let text_job = r.json()["job_id"].as_str().unwrap().to_string();
    ended(&d, &text_job, 1);
    let trigger = get(&d, &format!("/v1/executions/{text_job}/trigger"));
    assert_eq!(trigger["body"], "{\"a\": tru");
    // Sent as JSON: a number past a double is refused; nesting within the depth is JSON
    // in the payload.
    let r = d.request("POST", "/loose", &json_type, b"[1e999]");
    assert_eq!(
        (r.status, error_of(&r)["code"].as_str()),
        (400, Some("invalid_json")),
        "{r:?}"
    );
    let nested = format!("{}{}", "[".repeat(60), "]".repeat(60));
    let r = d.request("POST", "/loose", &json_type, nested.as_bytes());
    assert_eq!(r.status, 202, "{r:?}");
    let nested_job = r.json()["job_id"].as_str().unwrap().to_string();
    ended(&d, &nested_job, 1);
    let trigger = get(&d, &format!("/v1/executions/{nested_job}/trigger"));
    assert_eq!(
        trigger["body"],
        serde_json::from_str::<serde_json::Value>(&nested).unwrap()
    );

    assert!(
        executions(&d, "order-intake").is_empty(),
        "a refused body records nothing"
    );
    assert_eq!(executions(&d, "loose").len(), 2);
    let m = metrics(&d);
    has_line(
        &m,
        "flowd_webhook_requests_total{flow=\"order-intake\",outcome=\"invalid_json\"} 8",
    );
    has_line(
        &m,
        "flowd_webhook_requests_total{flow=\"loose\",outcome=\"invalid_json\"} 3",
    );
    has_line(
        &m,
        "flowd_webhook_requests_total{flow=\"loose\",outcome=\"accepted\"} 2",
    );

    // A byte order mark before JSON is ignored (RFC 8259 §8.1 allows it; .NET and
    // PowerShell senders write one); before text it is the text's.
    let bom = |body: &[u8]| [&b"\xEF\xBB\xBF"[..], body].concat();
    let order = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/config/examples/order.json")).unwrap();
    let r = d.request("POST", "/hooks/orders", &json_type, &bom(&order));
    assert_eq!(
        (r.status, r.json()),
        (200, json!({"accepted": "A-1001", "total": 16.5})),
        "{r:?}"
    );
    let r = d.request("POST", "/loose", &json_type, &bom(br#"{"a": [1]}"#));
    assert_eq!(r.status, 202, "{r:?}");
    let job = r.json()["job_id"].as_str().unwrap().to_string();
    ended(&d, &job, 1);
    assert_eq!(
        get(&d, &format!("/v1/executions/{job}/trigger"))["body"],
        json!({"a": [1]})
    );
    let r = d.request("POST", "/loose", &[("content-type", "text/plain")], &bom(b"hi"));
    assert_eq!(r.status, 202, "{r:?}");
    let job = r.json()["job_id"].as_str().unwrap().to_string();
    ended(&d, &job, 1);
    assert_eq!(get(&d, &format!("/v1/executions/{job}/trigger"))["body"], "\u{feff}hi");
    // Only one, and only at the start.
    for body in [bom(&bom(b"{}")), [&b"{} "[..], &bom(b"")].concat()] {
        let r = d.request("POST", "/loose", &json_type, &body);
        assert_eq!(
            (r.status, error_of(&r)["code"].as_str()),
            (400, Some("invalid_json")),
            "{r:?}"
        );
    }
    d.stop();
}

#[test]
fn a_dropped_event_gets_the_flows_status_and_leaves_a_log_record_and_a_count() {
    let setup = Setup::with_server("", TOKENS);
    setup.flow("order-intake", &order_intake());
    let filtered = |name: &str, extra: &str| {
        format!(
            "[flow]\nname = \"{name}\"\n[trigger.http]\npath = \"/{name}\"\n{extra}\n[trigger]\nconnector = \"reshape\"\nconfig = {{ filter = \"body.keep\" }}\n[[steps]]\nname = \"s\"\nconnector = \"echo\"\n"
        )
    };
    setup.flow("default", &filtered("default", ""));
    setup.flow("quiet", &filtered("quiet", "drop_status = 204"));
    setup.flow("reset", &filtered("reset", "drop_status = 205"));
    setup.flow(
        "silent",
        "[flow]\nname = \"silent\"\n[trigger.http]\npath = \"/silent\"\n[trigger]\nconnector = \"trigger-echo\"\nconfig = { drop = true }\n[[steps]]\nname = \"s\"\nconnector = \"echo\"\n",
    );
    let d = start(&setup);

    // The example flow refuses valid JSON that is not an order: its caller must know.
    let r = d.request("POST", "/hooks/orders", &[], b"[1,2,3]");
    assert_eq!(r.status, 422, "{r:?}");
    let reason = "filter `body.order` is false for the event";
    assert_eq!(
        r.json()["error"],
        json!({ "code": "event_dropped", "message": format!("the event was dropped: {reason}") })
    );
    let order_job = r.json()["job_id"].as_str().unwrap().to_string();

    // By default a drop is a 200 that says so: senders count 2xx as delivered.
    let r = d.request("POST", "/default", &[], br#"{"keep": false}"#);
    assert_eq!(r.status, 200, "{r:?}");
    let v = r.json();
    assert_eq!(
        (&v["dropped"], &v["reason"]),
        (&json!(true), &json!("filter `body.keep` is false for the event"))
    );
    let default_job = v["job_id"].as_str().unwrap().to_string();
    let r = d.request("POST", "/quiet", &[], br#"{"keep": false}"#);
    assert_eq!((r.status, r.body.len()), (204, 0));
    // A 205 has no content either (RFC 9110 §15.3.6): nothing but its head is sent.
    let r = d.request("POST", "/reset", &[], br#"{"keep": false}"#);
    assert_eq!(
        (r.status, r.body.len(), r.header("content-length")),
        (205, 0, Some("0")),
        "{r:?}"
    );
    let r = d.request("POST", "/silent", &[], b"{}");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json()["reason"],
        "connector \"trigger-echo\" returned none and logged no reason"
    );
    assert_eq!(d.request("POST", "/default", &[], br#"{"keep": true}"#).status, 202);

    // The trace: the connector's own record and the host's, under the event's job id.
    let logs = get(&d, &format!("/v1/logs?job_id={order_job}"))["logs"].clone();
    let logs = logs.as_array().unwrap();
    assert_eq!(logs.len(), 2, "{logs:#?}");
    let host = logs
        .iter()
        .find(|l| l["category"] == "event_dropped")
        .expect("the host's record");
    assert_eq!(host["level"], "warn");
    assert_eq!(host["action"], "event_dropped");
    assert_eq!(host["connector"], "reshape");
    assert_eq!(host["flow"], "order-intake");
    assert_eq!(
        host["message"],
        format!("event dropped by trigger connector \"reshape\": {reason}")
    );
    let own = logs
        .iter()
        .find(|l| l["category"] == "reshape")
        .expect("the connector's record");
    assert_eq!((&own["action"], &own["message"]), (&json!("accept"), &json!(reason)));
    let warned = get(&d, "/v1/logs?level=warn&category=event_dropped")["logs"].clone();
    assert_eq!(warned.as_array().unwrap().len(), 5, "one per dropped event: {warned:#}");
    assert!(
        warned
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["job_id"] == default_job.as_str()),
        "{warned:#}"
    );

    assert!(
        executions(&d, "order-intake").is_empty(),
        "a dropped event is no execution"
    );
    assert_eq!(executions(&d, "default").len(), 1);
    let m = metrics(&d);
    for line in [
        "flowd_webhook_requests_total{flow=\"order-intake\",outcome=\"dropped\"} 1",
        "flowd_webhook_requests_total{flow=\"default\",outcome=\"dropped\"} 1",
        "flowd_webhook_requests_total{flow=\"default\",outcome=\"accepted\"} 1",
        "flowd_webhook_requests_total{flow=\"quiet\",outcome=\"dropped\"} 1",
        "flowd_webhook_requests_total{flow=\"reset\",outcome=\"dropped\"} 1",
        "flowd_webhook_requests_total{flow=\"silent\",outcome=\"dropped\"} 1",
    ] {
        has_line(&m, line);
    }
    d.stop();
}

#[test]
fn a_body_the_listener_takes_fits_the_stored_payload_or_is_refused_before_anything_is_recorded() {
    let setup = Setup::with_server("max_payload = \"16KiB\"", &format!("max_body = \"16KiB\"\n{TOKENS}"));
    setup.flow(
        "big",
        "[flow]\nname = \"big\"\n[trigger.http]\npath = \"/big\"\n[[steps]]\nname = \"s\"\nconnector = \"echo\"\n",
    );
    let d = start(&setup);
    // Just under server.max_body: the request as stored (headers, query, body) is over.
    let body = json!({ "text": "x".repeat(16 * 1024 - 40) }).to_string();
    assert!(body.len() < 16 * 1024);
    let r = d.request("POST", "/big", &[("content-type", "application/json")], body.as_bytes());
    assert_eq!(r.status, 413, "{r:?}");
    let e = error_of(&r);
    assert_eq!(e["code"], "payload_too_large");
    let message = e["message"].as_str().unwrap();
    assert!(
        message.starts_with("the trigger payload is ")
            && message.ends_with(
                "bytes, over the 16384-byte limit (limits.max_payload) (it is this request as JSON: headers, query and body); nothing was recorded"
            ),
        "{message}"
    );
    let small = json!({ "text": "x".repeat(8 * 1024) }).to_string();
    let r = d.request("POST", "/big", &[], small.as_bytes());
    assert_eq!(r.status, 202, "{r:?}");
    ended(&d, r.json()["job_id"].as_str().unwrap(), 1);
    let all = executions(&d, "big");
    assert_eq!(all.len(), 1, "the refused request left nothing: {all:#?}");
    assert_eq!(all[0]["status"], "success");
    has_line(
        &metrics(&d),
        "flowd_webhook_requests_total{flow=\"big\",outcome=\"payload_too_large\"} 1",
    );
    d.stop();
}

#[test]
fn repeated_headers_and_query_keys_and_binary_bodies_are_kept_whole() {
    let setup = Setup::with_server("", TOKENS);
    setup.flow(
        "raw",
        "[flow]\nname = \"raw\"\n[trigger.http]\npath = \"/raw\"\n[[steps]]\nname = \"s\"\nconnector = \"echo\"\n",
    );
    // The bundled reshape connector reads a request the same way.
    setup.flow(
        "shaped",
        "[flow]\nname = \"shaped\"\n[trigger.http]\npath = \"/shaped\"\n[trigger]\nconnector = \"reshape\"\nconfig = { select = \"@\" }\n[[steps]]\nname = \"s\"\nconnector = \"echo\"\n",
    );
    let d = start(&setup);
    let binary: Vec<u8> = vec![0xff, 0x00, 0xfe, 0x80, b'a', 0xc3];
    let headers = [
        ("content-type", "application/octet-stream"),
        ("x-tag", "one"),
        ("x-tag", "two, three"),
        ("cookie", "a=1"),
        ("cookie", "b=2"),
    ];
    for path in ["/raw", "/shaped"] {
        let r = d.request(
            "POST",
            &format!("{path}?tag=a&one=1&tag=b&tag=c%20d"),
            &headers,
            &binary,
        );
        assert_eq!(r.status, 202, "{path}: {r:?}");
        let job = r.json()["job_id"].as_str().unwrap().to_string();
        ended(&d, &job, 1);
        let p = get(&d, &format!("/v1/executions/{job}/trigger"));
        assert_eq!(p["query"], json!({ "tag": ["a", "b", "c d"], "one": "1" }), "{path}");
        assert_eq!(p["headers"]["x-tag"], "one, two, three", "{path}");
        assert_eq!(p["headers"]["cookie"], "[redacted]", "{path}: a cookie is a credential");
        assert_eq!(p["body"], "/wD+gGHD", "{path}: the bytes in base64");
        assert_eq!(p["body_encoding"], "base64", "{path}");
    }
    // Text stays text, unmarked.
    let r = d.request("POST", "/raw", &[], "héllo\u{0}".as_bytes());
    let job = r.json()["job_id"].as_str().unwrap().to_string();
    ended(&d, &job, 1);
    let p = get(&d, &format!("/v1/executions/{job}/trigger"));
    assert_eq!(p["body"], "héllo\u{0}");
    assert!(p.get("body_encoding").is_none(), "{p}");
    d.stop();
}

#[test]
fn a_nul_character_is_kept_in_every_record_and_a_filter_may_name_it() {
    // PostgreSQL's text holds no U+0000, in a column or a jsonb string; JSON does, and so
    // does every record here (run on both backends). U+E000 is the escape PostgreSQL's
    // records use, so it must come back as sent too.
    let setup = Setup::with_server("", TOKENS);
    setup.flow(
        "nul",
        "[flow]\nname = \"nul\"\n[trigger.http]\npath = \"/nul\"\n[[steps]]\nname = \"s\"\nconnector = \"echo\"\n\
         [[steps]]\nname = \"say\"\nconnector = \"log\"\n\
         config = { level = \"warn\", category = \"c\", message = \"name {{ trigger.body.name }}\" }\n",
    );
    let d = start(&setup);
    let name = "a\0b\u{E000}c\u{E000}\u{E001}";
    let body = serde_json::to_vec(&json!({ "name": name, name: 1 })).unwrap();
    let r = d.request("POST", "/nul", &[("content-type", "application/json")], &body);
    assert_eq!(r.status, 202, "{r:?}");
    let job = r.json()["job_id"].as_str().unwrap().to_string();
    assert_eq!(ended(&d, &job, 1)["status"], "success");
    let trigger = get(&d, &format!("/v1/executions/{job}/trigger"));
    assert_eq!(trigger["body"], json!({ "name": name, name: 1 }));
    let detail = get(&d, &format!("/v1/executions/{job}"));
    assert_eq!(
        detail["steps"][1]["output"]["message"],
        format!("name {name}"),
        "{detail}"
    );
    let message = log_messages;
    let ours = vec![format!("name {name}")];
    assert_eq!(message(&get(&d, &format!("/v1/logs?job_id={job}&category=c"))), ours);
    assert_eq!(message(&get(&d, "/v1/logs?contains=%00")), ours, "the character itself");
    assert_eq!(
        message(&get(&d, "/v1/logs?contains=b%EE%80%80c")),
        ours,
        "the escape as text"
    );
    assert_eq!(
        message(&get(&d, "/v1/logs?contains=%00b%EE%80%80c%EE%80%80%EE%80%81")),
        ours
    );
    for nothing in [
        "/v1/logs?contains=0",
        "/v1/logs?contains=%00%00",
        "/v1/logs?category=%00",
    ] {
        assert_eq!(message(&get(&d, nothing)), Vec::<String>::new(), "{nothing}");
    }
    for filter in ["flow=a%00b", "project=%00"] {
        let page = get(&d, &format!("/v1/executions?{filter}"));
        assert_eq!(page["executions"], json!([]), "{filter}");
    }
    d.stop();
}

#[test]
fn credentials_are_redacted_from_stored_payloads_and_every_answer_but_reach_the_trigger_connector() {
    const AUTH: &str = "Bearer sk_live_0123456789abcdef";
    const COOKIE: &str = "session=c00kie-0123456789";
    const API_KEY: &str = "key-fedcba9876543210";
    let setup = Setup::with_server("", TOKENS);
    // Each flow logs its headers through a placeholder, too.
    let flow = |name: &str, http: &str, connector: &str| {
        let headers = if connector.is_empty() {
            "trigger.headers.authorization"
        } else {
            "trigger.event.headers"
        };
        format!(
            "[flow]\nname = \"{name}\"\n[trigger.http]\npath = \"/{name}\"\n{http}\n{connector}\n[[steps]]\nname = \"s\"\nconnector = \"echo\"\n[[steps]]\nname = \"note\"\nconnector = \"log\"\nconfig = {{ message = \"auth was {{{{ {headers} }}}}\" }}\n"
        )
    };
    let signed = "signature = { header = \"X-Signature\", secret_env = \"FLOWD_TEST_SECRET\" }";
    setup.flow("plain", &flow("plain", signed, ""));
    setup.flow(
        "tuned",
        &flow(
            "tuned",
            "keep_headers = [\"Authorization\"]\nredact_headers = [\"x-api-key\"]",
            "",
        ),
    );
    setup.flow(
        "connected",
        &flow("connected", signed, "[trigger]\nconnector = \"trigger-echo\""),
    );
    let d = support::Daemon::start_with_env(
        &setup,
        &[
            ("FLOWD_TEST_VIEWER", support::admin::VIEWER),
            ("FLOWD_TEST_OPERATOR", support::admin::OPERATOR),
            ("FLOWD_TEST_SECRET", "s3cret"),
        ],
    );
    let body = br#"{"n": 1}"#;
    let signature = {
        use hmac::{Hmac, Mac};
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(b"s3cret").unwrap();
        mac.update(body);
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    };
    let send = |path: &str| {
        let r = d.request(
            "POST",
            path,
            &[
                ("authorization", AUTH),
                ("cookie", COOKIE),
                ("x-signature", &signature),
                ("x-api-key", API_KEY),
            ],
            body,
        );
        // The signature was checked against what was sent.
        assert_eq!(r.status, 202, "{path}: {r:?}");
        let job = r.json()["job_id"].as_str().unwrap().to_string();
        ended(&d, &job, 1);
        job
    };
    let answers = |job: &str| -> Vec<(String, String)> {
        let mut out = Vec::new();
        for path in [
            format!("/v1/executions/{job}"),
            format!("/v1/executions/{job}/trigger"),
            format!("/v1/executions/{job}/steps/s/input"),
            format!("/v1/executions/{job}/steps/s/output"),
            format!("/v1/executions/{job}/steps/note/config"),
            format!("/v1/logs?job_id={job}"),
            format!("/v1/logs/download?format=text&job_id={job}"),
        ] {
            let r = d.admin("GET", &path, Some(VIEWER), b"");
            assert_eq!(r.status, 200, "{path}");
            out.push((path, String::from_utf8(r.body).unwrap()));
        }
        out
    };

    let job = send("/plain");
    let p = get(&d, &format!("/v1/executions/{job}/trigger"));
    for h in ["authorization", "cookie", "x-signature"] {
        assert_eq!(p["headers"][h], "[redacted]", "{h}: {p:#}");
    }
    assert_eq!(p["headers"]["x-api-key"], API_KEY, "not redacted by default");
    for (path, text) in answers(&job) {
        for secret in [AUTH, "sk_live_0123456789abcdef", COOKIE, signature.as_str()] {
            assert!(!text.contains(secret), "{secret} in {path}: {text}");
        }
    }

    let job = send("/tuned");
    let p = get(&d, &format!("/v1/executions/{job}/trigger"));
    assert_eq!(p["headers"]["authorization"], AUTH, "kept by the flow");
    assert_eq!(p["headers"]["x-api-key"], "[redacted]", "added by the flow");
    assert_eq!(p["headers"]["cookie"], "[redacted]");
    assert_eq!(p["headers"]["x-signature"], signature, "no signature on this flow");

    // The trigger connector got the request as sent (it copies the headers into its
    // output); what it returned is stored with the values cut out.
    let job = send("/connected");
    let p = get(&d, &format!("/v1/executions/{job}/trigger"));
    let headers = p["event"]["headers"].as_array().unwrap();
    for (name, shown) in [
        ("authorization", "[redacted]"),
        ("cookie", "[redacted]"),
        ("x-signature", "[redacted]"),
    ] {
        assert!(
            headers.contains(&json!([name, shown])),
            "{name} reached the connector, and is redacted: {headers:?}"
        );
    }
    for (path, text) in answers(&job) {
        for secret in [AUTH, COOKIE, signature.as_str()] {
            assert!(!text.contains(secret), "{secret} in {path}: {text}");
        }
    }
    d.stop();
}
