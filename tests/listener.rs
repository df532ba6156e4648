//! Both listeners against hostile and broken clients, over raw sockets to the real daemon:
//! a request head sent a byte at a time, an idle connection, a body shorter than its
//! Content-Length, requests hyper refuses (answered in the JSON error shape), a missing,
//! repeated or invalid `Host`, a client speaking HTTP/2, running out of file descriptors (a lowered
//! `RLIMIT_NOFILE`), and the connection cap.

mod support;

use serde_json::Value;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};
use support::{Daemon, Setup};

const ECHO: &str =
    "[flow]\nname = \"hook\"\n[trigger.http]\npath = \"/hook\"\n[[steps]]\nname = \"s\"\nconnector = \"echo\"\n";

fn daemon(server: &str) -> (Setup, Daemon) {
    let setup = Setup::with_server("", server);
    setup.flow("hook", ECHO);
    let d = support::admin::start(&setup);
    (setup, d)
}

/// What the server sent until it closed the connection (at most `secs` seconds), and
/// whether it did close it.
fn read_until_closed(s: &mut TcpStream, secs: u64) -> (Vec<u8>, bool) {
    s.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let end = Instant::now() + Duration::from_secs(secs);
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < end {
        match s.read(&mut buf) {
            Ok(0) => return (got, true),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => return (got, true),
        }
    }
    (got, false)
}

/// The status and JSON body of a raw response.
fn parse(raw: &[u8]) -> (u16, Value, String) {
    let text = String::from_utf8_lossy(raw).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no response: {text:?}"));
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let json = serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {text:?}"));
    (status, json, head.to_ascii_lowercase())
}

#[test]
fn a_head_sent_a_byte_at_a_time_is_cut_off() {
    let (_setup, d) = daemon("header_read_timeout = \"1s\"");
    for addr in [d.addr, d.admin] {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(b"POST /hook HTTP/1.1\r\nHost: x\r\n").unwrap();
        // A header line every 300 ms: the head never ends, the connection must.
        let end = Instant::now() + Duration::from_secs(20);
        let mut closed = false;
        while Instant::now() < end {
            std::thread::sleep(Duration::from_millis(300));
            if s.write_all(b"X-Slow: 1\r\n").is_err() {
                closed = true;
                break;
            }
            let (_, eof) = read_until_closed(&mut s, 0);
            if eof {
                closed = true;
                break;
            }
        }
        assert!(closed, "{addr}: a head dribbled for 20 s was never cut off");
    }
    assert!(d.log.lock().unwrap().contains("trigger listener ready"));
}

#[test]
fn an_idle_connection_is_closed_before_and_between_requests() {
    let (_setup, d) = daemon("idle_timeout = \"1s\"");
    for addr in [d.addr, d.admin] {
        let mut silent = TcpStream::connect(addr).unwrap();
        let (_, closed) = read_until_closed(&mut silent, 20);
        assert!(closed, "{addr}: a connection that never sent anything stayed open");

        // After one request on a kept-alive connection, the wait for the next is bounded too.
        let mut kept = TcpStream::connect(addr).unwrap();
        kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let (got, closed) = read_until_closed(&mut kept, 20);
        assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 "), "{got:?}");
        assert!(closed, "{addr}: an idle kept-alive connection stayed open");
    }
}

#[test]
fn a_body_shorter_than_its_length_is_answered_408() {
    let (_setup, d) = daemon("body_read_timeout = \"1s\"\nheader_read_timeout = \"1s\"\nidle_timeout = \"1s\"");
    let mut s = TcpStream::connect(d.addr).unwrap();
    s.write_all(
        b"POST /hook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 10\r\n\r\n{\"a\":",
    )
    .unwrap();
    let (got, closed) = read_until_closed(&mut s, 20);
    assert!(closed, "the connection was held: {got:?}");
    let (status, json, _) = parse(&got);
    assert_eq!(status, 408);
    assert_eq!(json["error"]["code"], "body_timeout");
    assert!(
        json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("server.body_read_timeout"),
        "{json}"
    );
    // Nothing was recorded for it, and the listener goes on.
    let r = d.request("POST", "/hook", &[], b"{}");
    assert_eq!(r.status, 202);
}

/// Requests hyper refuses before flowd sees them: each gets the JSON error shape.
#[test]
fn requests_hyper_refuses_get_the_json_error_shape() {
    let (_setup, d) = daemon("");
    let long_target = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(70_000));
    let big_headers = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\n{}\r\n",
        (0..20)
            .map(|i| format!("X-Big-{i}: {}\r\n", "b".repeat(4000)))
            .collect::<String>()
    );
    let many_headers = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\n{}\r\n",
        (0..100).map(|i| format!("X-{i}: v\r\n")).collect::<String>()
    );
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            "a malformed request line",
            b"NOT HTTP AT ALL\r\n\r\n".to_vec(),
            400,
            "bad_request",
        ),
        (
            "invalid UTF-8 in the path",
            b"GET /caf\xc3\x28 HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            400,
            "bad_request",
        ),
        (
            "two Content-Lengths",
            b"POST /hook HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}".to_vec(),
            400,
            "bad_request",
        ),
        ("a target over 64 KiB", long_target.into_bytes(), 431, "head_too_large"),
        ("headers over 64 KiB", big_headers.into_bytes(), 431, "head_too_large"),
        ("101 small headers", many_headers.into_bytes(), 431, "head_too_large"),
    ];
    for addr in [d.addr, d.admin] {
        for (what, request, want, code) in &cases {
            let mut s = TcpStream::connect(addr).unwrap();
            let _ = s.write_all(request);
            let (got, _) = read_until_closed(&mut s, 10);
            let (status, json, head) = parse(&got);
            assert_eq!(status, *want, "{addr} {what}");
            assert_eq!(json["error"]["code"], *code, "{addr} {what}");
            assert!(head.contains("content-type: application/json"), "{addr} {what}: {head}");
            if *want == 431 {
                assert_eq!(
                    json["error"]["message"],
                    "the request head is too large: its request line and headers are over 64 KiB, or it has more than 100 headers",
                    "{addr} {what}"
                );
            }
        }
        // The same on a connection that already carried a request.
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut first = [0u8; 1024];
        let n = s.read(&mut first).unwrap();
        assert!(String::from_utf8_lossy(&first[..n]).starts_with("HTTP/1.1 "));
        s.write_all(b"NOT HTTP AT ALL\r\n\r\n").unwrap();
        let (got, _) = read_until_closed(&mut s, 10);
        let (status, json, _) = parse(&got);
        assert_eq!(
            (status, json["error"]["code"].as_str()),
            (400, Some("bad_request")),
            "{addr}"
        );
    }
}

/// A client that opens with HTTP/2's preface (prior knowledge) is answered in HTTP/2 on
/// both listeners: the server's preface (an empty SETTINGS frame), then GOAWAY with error
/// HTTP_1_1_REQUIRED (RFC 9113 §3.4, §7) saying why, and the connection closed; however
/// the preface arrives, and only at the start of a connection. A request whose method
/// happens to be `PRI` is HTTP/1.1 as any other.
#[test]
fn an_http2_client_is_told_to_use_http_1_1() {
    let (_setup, d) = daemon("");
    let preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    let client_settings = [0u8, 0, 0, 0x4, 0, 0, 0, 0, 0];
    for addr in [d.addr, d.admin] {
        for split in [0, 1, 5, 16] {
            let mut s = TcpStream::connect(addr).unwrap();
            s.set_nodelay(true).unwrap();
            if split == 1 {
                // The server closes once the request line is in: later writes may fail.
                for b in preface {
                    if s.write_all(&[*b]).is_err() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(2));
                }
            } else {
                let at = if split == 0 { preface.len() } else { split };
                s.write_all(&preface[..at]).unwrap();
                std::thread::sleep(Duration::from_millis(20));
                let _ = s.write_all(&preface[at..]);
            }
            let _ = s.write_all(&client_settings);
            let (got, closed) = read_until_closed(&mut s, 10);
            assert!(closed, "{addr} split {split}: left open");
            assert!(got.len() > 17, "{addr} split {split}: {got:?}");
            // SETTINGS: length 0, type 4, no flags, stream 0.
            assert_eq!(got[..9], [0, 0, 0, 0x4, 0, 0, 0, 0, 0], "{addr} split {split}");
            // GOAWAY: its length, type 7, stream 0; last stream 0, error 0xd.
            let frame = &got[9..];
            let len = u32::from_be_bytes([0, frame[0], frame[1], frame[2]]) as usize;
            assert_eq!(frame[3..9], [0x7, 0, 0, 0, 0, 0], "{addr} split {split}");
            assert_eq!(
                frame.len(),
                9 + len,
                "{addr} split {split}: one GOAWAY and nothing after"
            );
            assert_eq!(frame[9..13], [0, 0, 0, 0], "{addr} split {split}");
            assert_eq!(frame[13..17], [0, 0, 0, 0xd], "{addr} split {split}: HTTP_1_1_REQUIRED");
            let why = String::from_utf8_lossy(&frame[17..]);
            assert!(why.contains("HTTP/1.1 only"), "{addr} split {split}: {why}");
        }
        // `PRI` as an HTTP/1.1 method: an ordinary request, answered in HTTP/1.1.
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(b"PRI /hook HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let (got, _) = read_until_closed(&mut s, 10);
        let (status, json, _) = parse(&got);
        assert!(matches!(status, 401 | 404 | 405), "{addr}: {status} {json}");
        assert!(json["error"]["code"].is_string(), "{addr}: {json}");
        // The listener goes on serving.
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let (got, _) = read_until_closed(&mut s, 10);
        assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 "), "{addr}");
    }
}

/// RFC 9112 §3.2: an HTTP/1.1 request without a Host, or any request with two or with
/// one that is not a host and port, is answered 400 on both listeners, nothing recorded,
/// and its connection closed; HTTP/1.0 may leave Host out, and an empty one is valid.
#[test]
fn a_missing_repeated_or_invalid_host_is_answered_400_and_the_connection_closed() {
    let (_setup, d) = daemon(support::admin::TOKENS);
    let head = |version: &str, hosts: &str| format!("POST /hook {version}\r\n{hosts}Content-Length: 2\r\n\r\n{{}}");
    let refused = [
        (
            "no Host on HTTP/1.1",
            head("HTTP/1.1", ""),
            "the request has no Host header, which HTTP/1.1 requires (RFC 9112 §3.2)".to_string(),
        ),
        (
            "two Hosts",
            head("HTTP/1.1", "Host: a\r\nHost: b\r\n"),
            "the request has 2 Host headers; it may have one (RFC 9112 §3.2)".into(),
        ),
        (
            "the same Host twice",
            head("HTTP/1.1", "Host: a\r\nHost: a\r\n"),
            "the request has 2 Host headers; it may have one (RFC 9112 §3.2)".into(),
        ),
        (
            "three Hosts on HTTP/1.0",
            head("HTTP/1.0", "Host: a\r\nHost: b\r\nHost: c\r\n"),
            "the request has 3 Host headers; it may have one (RFC 9112 §3.2)".into(),
        ),
        ("a space in Host", head("HTTP/1.1", "Host: a b\r\n"), bad_host("a b")),
        (
            "user information in Host",
            head("HTTP/1.1", "Host: user@a\r\n"),
            bad_host("user@a"),
        ),
        (
            "a port past 65535",
            head("HTTP/1.1", "Host: a:65536\r\n"),
            bad_host("a:65536"),
        ),
        (
            "a port that is not a number",
            head("HTTP/1.1", "Host: a:http\r\n"),
            bad_host("a:http"),
        ),
        (
            "an unbracketed IPv6 address",
            head("HTTP/1.1", "Host: ::1\r\n"),
            bad_host("::1"),
        ),
    ];
    let taken = [
        ("no Host on HTTP/1.0", head("HTTP/1.0", "")),
        ("an empty Host", head("HTTP/1.1", "Host:\r\n")),
        (
            "a bracketed IPv6 address and port",
            head("HTTP/1.1", "Host: [::1]:8080\r\n"),
        ),
        ("an empty port", head("HTTP/1.1", "Host: example.com:\r\n")),
        ("port 65535", head("HTTP/1.1", "Host: EXAMPLE.com:65535\r\n")),
    ];
    for addr in [d.addr, d.admin] {
        for (what, request, message) in &refused {
            let mut s = TcpStream::connect(addr).unwrap();
            // A second request after it on the same connection is never read.
            let _ = s.write_all(format!("{request}GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
            let (got, closed) = read_until_closed(&mut s, 10);
            let (status, json, head) = parse(&got);
            assert_eq!(
                (status, json["error"]["code"].as_str()),
                (400, Some("bad_host")),
                "{addr} {what}"
            );
            assert_eq!(json["error"]["message"], *message, "{addr} {what}");
            assert!(closed && head.contains("connection: close"), "{addr} {what}: {head}");
            let answers = String::from_utf8_lossy(&got)
                .lines()
                .filter(|l| l.starts_with("HTTP/1."))
                .count();
            assert_eq!(answers, 1, "{addr} {what}");
        }
    }
    for (what, request) in &taken {
        let mut s = TcpStream::connect(d.addr).unwrap();
        let _ = s.write_all(request.as_bytes());
        let (got, _) = read_until_closed(&mut s, 10);
        let (status, json, _) = parse(&got);
        assert_eq!(status, 202, "{what}: {json}");
    }
    let listed = d.admin("GET", "/v1/executions?flow=hook", Some(support::admin::VIEWER), b"");
    assert_eq!(listed.json()["executions"].as_array().map(Vec::len), Some(taken.len()));
}

fn bad_host(value: &str) -> String {
    format!("the request's Host header {value:?} is not a host with an optional port (RFC 9112 §3.2)")
}

/// Opens `n` connections to `addr` that each sent half a request head.
fn half_open(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    (0..n)
        .filter_map(|_| {
            let mut s = TcpStream::connect(addr).ok()?;
            let _ = s.write_all(b"POST /hook HTTP/1.1\r\nHost: x\r\n");
            Some(s)
        })
        .collect()
}

#[test]
fn running_out_of_file_descriptors_backs_off_and_recovers() {
    let setup = Setup::with_server("", "max_connections = 100000\nheader_read_timeout = \"1m\"");
    setup.flow("hook", ECHO);
    let d = Daemon::start_limited(&setup, 200);
    // More than the ~180 descriptors the daemon has left, fewer than its listen backlog.
    let held = half_open(d.addr, 250);
    std::thread::sleep(Duration::from_secs(2));
    let failing = |log: &str| {
        log.lines()
            .filter(|l| l.contains("accepting connections fails"))
            .count()
    };
    let log = d.log.lock().unwrap().clone();
    assert_eq!(
        failing(&log),
        1,
        "said once, not at every retry:\n{}",
        &log[..log.len().min(4000)]
    );
    assert!(log.len() < 64 << 10, "the log grew by {} bytes in 2 s", log.len());
    drop(held);
    // Once descriptors are free again, both listeners serve.
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let answered = support::try_http_request(d.addr, "POST", "/hook", &[], b"{}");
        if answered.as_ref().is_ok_and(|r| r.status == 202) {
            break;
        }
        assert!(
            Instant::now() < end,
            "the trigger listener never came back: {answered:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(d.admin("GET", "/healthz", None, b"").status, 200);
    assert!(d.log.lock().unwrap().contains("accepting connections again"));
}

#[test]
fn past_the_connection_cap_new_connections_wait_their_turn() {
    let (_setup, d) = daemon("max_connections = 20\nheader_read_timeout = \"1m\"");
    let held = half_open(d.addr, 20);
    // The 21st waits in the backlog: its request is answered once one closes.
    let addr = d.addr;
    let waiting = std::thread::spawn(move || support::http_request(addr, "POST", "/hook", &[], b"{}"));
    std::thread::sleep(Duration::from_millis(500));
    assert!(!waiting.is_finished(), "served past the cap");
    drop(held);
    assert_eq!(waiting.join().unwrap().status, 202);
    let log = d.log.lock().unwrap().clone();
    assert_eq!(
        log.lines()
            .filter(|l| l.contains("server.max_connections allows"))
            .count(),
        1,
        "{log}"
    );
    // The admin listener has its own cap and was never held up.
    assert_eq!(d.admin("GET", "/healthz", None, b"").status, 200);
}
