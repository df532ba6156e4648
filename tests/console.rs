//! The web console as the daemon serves it: its files (caching rules, CSP, the client-side
//! route fallback), sign-in and sessions (the cookie, roles, same-origin changes, sign-out,
//! the failed sign-in limit), the local operator token of a loopback daemon without tokens,
//! the histogram endpoint against the list it summarises, and the console itself in
//! headless Chromium (`console/e2e/console.test.mjs`) against a real daemon.

mod support;

use serde_json::{Value, json};
use support::admin::{OPERATOR, TOKENS, VIEWER, get, ids, start};
use support::{Daemon, HttpResponse, Setup, http_request};

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

fn page(d: &Daemon, path: &str) -> HttpResponse {
    http_request(d.admin, "GET", path, &[], b"")
}

#[test]
fn the_console_is_served_with_its_caching_rules_and_a_strict_csp() {
    let setup = Setup::with_server("", TOKENS);
    let d = start(&setup);
    assert!(
        d.banner.contains(&format!("flowd: web console on http://{}/", d.admin)),
        "{}",
        d.banner
    );
    let index = page(&d, "/");
    assert_eq!(index.status, 200);
    assert_eq!(index.header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(index.header("cache-control"), Some("no-cache"));
    assert_eq!(index.header("content-security-policy"), Some(CSP));
    assert_eq!(index.header("x-content-type-options"), Some("nosniff"));
    let html = String::from_utf8(index.body.clone()).unwrap();
    // Every script is a file of its own (the CSP runs no inline script) under /assets/.
    let scripts: Vec<&str> = html.split("<script").skip(1).collect();
    assert!(!scripts.is_empty(), "{html}");
    for s in &scripts {
        assert!(s.contains("src=\"/assets/"), "an inline or foreign script: <script{s}");
    }
    let assets: Vec<&str> = html
        .split("\"/assets/")
        .skip(1)
        .map(|s| s.split('"').next().unwrap())
        .collect();
    assert!(
        assets.iter().any(|a| a.ends_with(".js")) && assets.iter().any(|a| a.ends_with(".css")),
        "{html}"
    );
    for a in &assets {
        let r = page(&d, &format!("/assets/{a}"));
        assert_eq!(r.status, 200, "{a}");
        assert_eq!(
            r.header("cache-control"),
            Some("public, max-age=31536000, immutable"),
            "{a}"
        );
        assert_eq!(r.header("content-security-policy"), Some(CSP));
        let ty = r.header("content-type").unwrap();
        assert!(
            (a.ends_with(".js") && ty.starts_with("text/javascript"))
                || (a.ends_with(".css") && ty.starts_with("text/css")),
            "{a}: {ty}"
        );
    }
    // Client-side routes are index.html; a missing asset is a 404, not the page.
    for route in [
        "/executions",
        "/executions/0193a1f0-0000-7000-8000-000000000000",
        "/logs?level=warn",
        "/flows/",
    ] {
        let r = page(&d, route);
        assert_eq!(
            (r.status, r.header("cache-control")),
            (200, Some("no-cache")),
            "{route}"
        );
        assert_eq!(r.body, index.body, "{route}");
    }
    let r = page(&d, "/assets/index-missing.js");
    assert_eq!(r.status, 404);
    assert_eq!(r.header("content-security-policy"), Some(CSP));
    // The API keeps its paths and its rules: no token, no answer.
    assert_eq!(page(&d, "/v1/executions").status, 401);
    assert_eq!(page(&d, "/v1/nothing").status, 401);
    assert_eq!(page(&d, "/metrics").status, 401);
    assert_eq!(page(&d, "/healthz").status, 200);
    // Only GET serves pages.
    assert_eq!(http_request(d.admin, "POST", "/executions", &[], b"").status, 401);
    d.stop();
}

fn gunzip(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(data), &mut out)
        .unwrap_or_else(|e| panic!("not gzip ({e}): {} bytes", data.len()));
    out
}

#[test]
fn whole_answers_go_out_gzipped_to_clients_that_take_it_and_streams_as_they_are() {
    let setup = Setup::with_server("", TOKENS);
    let d = start(&setup);
    let auth = format!("Bearer {VIEWER}");
    let fetch = |path: &str, accept: Option<&str>| {
        let mut headers = vec![("Authorization", auth.as_str())];
        if let Some(a) = accept {
            headers.push(("Accept-Encoding", a));
        }
        http_request(d.admin, "GET", path, &headers, b"")
    };
    let html = String::from_utf8(page(&d, "/").body).unwrap();
    let script = html
        .split("\"/assets/")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .map(|a| format!("/assets/{a}"))
        .expect("the page names its script");
    // The console's script and the API's OpenAPI document: each well over 1 KiB.
    for path in [script.as_str(), "/v1/openapi.json"] {
        let plain = fetch(path, None);
        assert_eq!(plain.status, 200, "{path}");
        assert_eq!(plain.header("content-encoding"), None, "{path}");
        assert_eq!(plain.header("vary"), Some("accept-encoding"), "{path}");
        assert!(plain.body.len() > 4096, "{path}: {}", plain.body.len());
        for accept in [
            "gzip",
            "gzip, deflate, br, zstd",
            "br;q=1.0, gzip;q=0.5",
            "*",
            "x-gzip",
            "gzip;q=abc, *",
        ] {
            let r = fetch(path, Some(accept));
            assert_eq!(r.status, 200, "{path} {accept}");
            assert_eq!(r.header("content-encoding"), Some("gzip"), "{path} {accept}");
            assert_eq!(r.header("vary"), Some("accept-encoding"), "{path} {accept}");
            assert_eq!(
                r.header("content-length").map(|l| l.parse::<usize>().unwrap()),
                Some(r.body.len()),
                "{path} {accept}"
            );
            assert!(r.body.len() * 2 < plain.body.len(), "{path} {accept}: {}", r.body.len());
            assert_eq!(gunzip(&r.body), plain.body, "{path} {accept}");
        }
        for accept in [
            "gzip;q=0",
            "*, gzip;q=0",
            "*;q=0",
            "br, deflate",
            "identity",
            "gzip;q=2",
        ] {
            let r = fetch(path, Some(accept));
            assert_eq!(r.status, 200, "{path} {accept}");
            assert_eq!(r.header("content-encoding"), None, "{path} {accept}");
            assert_eq!(r.body, plain.body, "{path} {accept}");
        }
    }
    // Small answers are not worth it, whatever the client takes.
    let health = fetch("/healthz", Some("gzip"));
    assert_eq!((health.status, health.header("content-encoding")), (200, None));
    let missing = fetch("/v1/nothing", Some("gzip"));
    assert_eq!((missing.status, missing.header("content-encoding")), (404, None));
    assert_eq!(missing.json()["error"]["code"], "not_found");
    // A download is a stream: it goes out as written, chunk by chunk.
    let download = fetch("/v1/logs/download?format=ndjson", Some("gzip"));
    assert_eq!(download.status, 200, "{}", String::from_utf8_lossy(&download.body));
    assert_eq!(download.header("content-encoding"), None);
    assert_eq!(download.header("transfer-encoding"), Some("chunked"));
    d.stop();
}

/// The `flowd_session` cookie a sign-in answer sets, and the whole header.
fn signed_in(d: &Daemon, token: &str) -> (String, String, Value) {
    let r = http_request(
        d.admin,
        "POST",
        "/v1/session",
        &[("Content-Type", "application/json")],
        json!({ "token": token }).to_string().as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let set = r.header("set-cookie").expect("Set-Cookie").to_string();
    let pair = set.split(';').next().unwrap().trim().to_string();
    assert!(pair.starts_with("flowd_session=") && pair.len() > 40, "{set}");
    (pair, set, r.json())
}

fn with_cookie(d: &Daemon, method: &str, path: &str, cookie: &str, origin: Option<&str>, body: &[u8]) -> HttpResponse {
    let mut headers = vec![("Cookie", cookie)];
    if let Some(o) = origin {
        headers.push(("Origin", o));
    }
    http_request(d.admin, method, path, &headers, body)
}

#[test]
fn sign_in_mints_an_http_only_strict_cookie_that_carries_the_tokens_role() {
    let setup = Setup::with_server("", &format!("timezone = \"Asia/Kolkata\"\n{TOKENS}"));
    setup.flow("by-hand", support::admin::BY_HAND);
    let d = start(&setup);
    assert!(!d.banner.contains("local operator token"), "{}", d.banner);
    let origin = format!("http://{}", d.admin);

    let (viewer, set, who) = signed_in(&d, VIEWER);
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"] {
        assert!(set.split("; ").any(|a| a == attr), "{attr} in {set}");
    }
    assert_eq!(
        who,
        json!({ "name": "dash", "role": "viewer", "via": "session", "timezone": "Asia/Kolkata", "environment": "test" })
    );
    let r = with_cookie(&d, "GET", "/v1/session", &viewer, None, b"");
    assert_eq!((r.status, &r.json()["role"]), (200, &json!("viewer")));
    assert_eq!(with_cookie(&d, "GET", "/v1/executions", &viewer, None, b"").status, 200);
    // A viewer's session changes nothing, whatever the page sends.
    let r = with_cookie(&d, "POST", "/v1/flows/by-hand/run", &viewer, Some(&origin), b"{}");
    assert_eq!((r.status, &r.json()["error"]["code"]), (403, &json!("forbidden")));

    let (operator, _, who) = signed_in(&d, OPERATOR);
    assert_eq!((&who["name"], &who["role"]), (&json!("ops"), &json!("operator")));
    let r = with_cookie(&d, "POST", "/v1/flows/by-hand/run", &operator, Some(&origin), b"{}");
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    let job = r.json()["job_id"].as_str().unwrap().to_string();
    // The audit line names the token behind the session.
    d.wait_log_line("the audit line of a change through a session", 10, |l| {
        l.contains("admin API change token=\"ops\"") && l.contains("action=run")
    });
    // A change through a session from anywhere but the console's own origin is refused:
    // "same site" ignores ports, so the cookie alone proves nothing.
    for bad in [None, Some("http://127.0.0.1:1"), Some("null")] {
        let r = with_cookie(&d, "POST", "/v1/flows/by-hand/run", &operator, bad, b"{}");
        assert_eq!(
            (r.status, &r.json()["error"]["code"]),
            (403, &json!("cross_origin")),
            "{bad:?}"
        );
    }
    // A bearer token needs no Origin (scripts, the CLI).
    assert_eq!(
        d.admin("POST", "/v1/flows/by-hand/run", Some(OPERATOR), b"{}").status,
        202
    );

    // Wrong tokens and bodies.
    for (body, status) in [
        (json!({ "token": "not-a-configured-token" }), 401),
        (json!({ "token": "" }), 401),
        (json!({ "value": OPERATOR }), 400),
    ] {
        let r = http_request(d.admin, "POST", "/v1/session", &[], body.to_string().as_bytes());
        assert_eq!(r.status, status, "{body}");
        assert!(r.header("set-cookie").is_none());
    }
    assert_eq!(
        with_cookie(&d, "GET", "/v1/executions", "flowd_session=forged", None, b"").status,
        401
    );

    // Signing out ends the session (a copy of the cookie is worth nothing) and clears it.
    let r = with_cookie(&d, "DELETE", "/v1/session", &operator, Some(&origin), b"");
    assert_eq!((r.status, r.json()), (200, json!({ "signed_out": true })));
    assert!(r.header("set-cookie").unwrap().contains("Max-Age=0"));
    assert_eq!(with_cookie(&d, "GET", "/v1/session", &operator, None, b"").status, 401);
    assert_eq!(with_cookie(&d, "GET", "/v1/session", &viewer, None, b"").status, 200);

    // Failed sign-ins are limited: after 10 in a minute (2 above), even a good token waits.
    for _ in 0..8 {
        let r = http_request(
            d.admin,
            "POST",
            "/v1/session",
            &[],
            br#"{"token": "guess-guess-guess-guess"}"#,
        );
        assert_eq!(r.status, 401);
    }
    let r = http_request(
        d.admin,
        "POST",
        "/v1/session",
        &[],
        json!({ "token": OPERATOR }).to_string().as_bytes(),
    );
    assert_eq!(
        (r.status, &r.json()["error"]["code"]),
        (429, &json!("too_many_sign_ins"))
    );
    // Bearer tokens and live sessions are not affected.
    assert_eq!(with_cookie(&d, "GET", "/v1/session", &viewer, None, b"").status, 200);
    let _ = get(&d, &format!("/v1/executions?job_id={job}"));

    // The log has the tokens' names and no token or session id.
    let log = d.log.lock().unwrap().clone();
    assert!(log.contains("console sign-in") && log.contains("\"dash\""), "{log}");
    for secret in [
        VIEWER,
        OPERATOR,
        viewer.trim_start_matches("flowd_session="),
        operator.trim_start_matches("flowd_session="),
    ] {
        assert!(!log.contains(secret), "the daemon log holds a secret");
    }
    assert!(!d.banner.contains(VIEWER) && !d.banner.contains(OPERATOR));
    d.stop();
}

#[test]
fn without_tokens_a_loopback_daemon_prints_a_local_operator_token_and_with_tokens_never() {
    let setup = Setup::with_server("", "");
    setup.flow("by-hand", support::admin::BY_HAND);
    let d = Daemon::start(&setup);
    let token = d
        .local_token()
        .unwrap_or_else(|| panic!("no local operator token in:\n{}", d.banner));
    assert_eq!(token.len(), 48, "{token}");
    // It signs in as an operator and works as a bearer token too.
    let (cookie, _, who) = signed_in(&d, &token);
    assert_eq!((&who["name"], &who["role"]), (&json!("local"), &json!("operator")));
    let origin = format!("http://{}", d.admin);
    assert_eq!(
        with_cookie(&d, "POST", "/v1/flows/by-hand/run", &cookie, Some(&origin), b"{}").status,
        202
    );
    assert_eq!(d.admin("GET", "/v1/flows", Some(&token), b"").status, 200);
    assert_eq!(d.admin("GET", "/v1/flows", None, b"").status, 401);
    let log = d.log.lock().unwrap().clone();
    assert!(!log.contains(&token), "the token is printed, never logged");
    // A reload of the same file changes no setting: the token made at start is not one.
    let reload = |d: &Daemon| d.admin("POST", "/v1/reload", Some(&token), b"").status;
    assert_eq!(reload(&d), 200);
    d.wait_log_line("the reload", 10, |l| l.contains("reloaded the config"));
    assert!(
        !d.log.lock().unwrap().contains("settings changed"),
        "{}",
        d.log_tail(2000)
    );
    let file = std::fs::read_to_string(setup.config()).unwrap();
    std::fs::write(
        setup.config(),
        file.replacen("[server]\n", "[server]\nmax_body = 4096\n", 1),
    )
    .unwrap();
    assert_eq!(reload(&d), 200);
    d.wait_log_line("the warning", 10, |l| {
        l.contains("[server] settings changed: they apply at the next start")
    });
    std::fs::write(setup.config(), file).unwrap();
    d.stop();
    // Another start, another token.
    let again = Daemon::start(&setup);
    assert!(again.banner.contains("local operator token") && !again.banner.contains(&token));
    again.stop();

    // With a token configured, none is made.
    let setup = Setup::with_server("", TOKENS);
    let d = start(&setup);
    assert!(!d.banner.contains("local operator token"), "{}", d.banner);
    d.stop();
}

/// Per-status counts of a histogram answer, summed over its buckets.
fn histogram_counts(h: &Value) -> std::collections::BTreeMap<String, u64> {
    let mut out = std::collections::BTreeMap::new();
    for b in h["buckets"].as_array().unwrap() {
        for (s, n) in b["counts"].as_object().unwrap() {
            *out.entry(s.clone()).or_default() += n.as_u64().unwrap();
        }
    }
    out.retain(|_, n| *n > 0);
    out
}

fn list_counts(d: &Daemon, query: &str) -> std::collections::BTreeMap<String, u64> {
    let v = get(d, &format!("/v1/executions?limit=1000{query}"));
    let mut out = std::collections::BTreeMap::new();
    for e in v["executions"].as_array().unwrap() {
        *out.entry(e["status"].as_str().unwrap().to_string()).or_default() += 1;
    }
    out
}

#[test]
fn the_histogram_counts_what_the_list_shows_for_every_filter() {
    let setup = Setup::with_server("", &format!("timezone = \"Asia/Kolkata\"\n{TOKENS}"));
    setup.flow("by-hand", support::admin::BY_HAND);
    setup.flow(
        "ok",
        "[flow]\nname = \"ok\"\nproject = \"shop\"\n[trigger.http]\npath = \"/ok\"\n[[steps]]\nname = \"s\"\nconnector = \"echo\"\n",
    );
    setup.flow(
        "bad",
        "[flow]\nname = \"bad\"\nproject = \"other\"\n[trigger.http]\npath = \"/bad\"\n[[steps]]\nname = \"s\"\nconnector = \"fail\"\n",
    );
    let d = start(&setup);
    let mut jobs = Vec::new();
    for i in 0..5 {
        jobs.push(support::admin::hook(&d, "/ok", &format!("{{\"i\": {i}}}")));
    }
    for i in 0..3 {
        jobs.push(support::admin::hook(&d, "/bad", &format!("{{\"i\": {i}}}")));
    }
    for _ in 0..2 {
        let r = d.admin("POST", "/v1/flows/by-hand/run", Some(OPERATOR), b"{}");
        jobs.push(r.json()["job_id"].as_str().unwrap().to_string());
    }
    for j in &jobs {
        support::admin::ended(&d, j, 1);
    }
    let one_bad = jobs[5].clone();
    let now = chrono::Utc::now();
    let earlier = (now - chrono::Duration::hours(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let later = (now + chrono::Duration::minutes(5)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let filters = [
        String::new(),
        "&preset=today".into(),
        "&preset=1h".into(),
        "&preset=yesterday".into(),
        "&status=failed".into(),
        "&status=success,failed".into(),
        "&flow=ok".into(),
        "&project=other".into(),
        "&trigger_kind=manual".into(),
        format!("&job_id={one_bad}"),
        format!("&from={earlier}&to={later}&flow=bad&status=failed"),
        // Ranges of years and millennia still come in at most 60 buckets.
        "&from=2016-01-01T00:00:00Z".into(),
        "&from=0001-01-01T00:00:00Z&to=9999-12-31T23:59:59Z".into(),
    ];
    for f in &filters {
        let h = get(&d, &format!("/v1/executions/histogram?{}", f.trim_start_matches('&')));
        let want = list_counts(&d, f);
        assert_eq!(histogram_counts(&h), want, "histogram{f}: {h}");
        assert_eq!(h["total"], want.values().sum::<u64>(), "{f}");
        // Buckets follow each other without a gap, and the range lies within them.
        let buckets = h["buckets"].as_array().unwrap();
        assert!(
            !buckets.is_empty() && buckets.len() <= 60,
            "{f}: {} buckets",
            buckets.len()
        );
        for w in buckets.windows(2) {
            assert_eq!(w[0]["end"], w[1]["start"], "{f}");
        }
        let at = |v: &Value| chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap()).unwrap();
        assert!(at(&buckets[0]["start"]) <= at(&h["from"]), "{f}");
        assert!(at(&buckets[buckets.len() - 1]["end"]) >= at(&h["to"]), "{f}");
        assert_eq!(h["timezone"], "Asia/Kolkata");
    }
    assert_eq!(list_counts(&d, "").values().sum::<u64>(), 10);
    // "today" starts at midnight in Kolkata, and its buckets at Kolkata's half hours.
    let h = get(&d, "/v1/executions/histogram?preset=today");
    let kolkata: chrono_tz::Tz = "Asia/Kolkata".parse().unwrap();
    let midnight = now
        .with_timezone(&kolkata)
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_local_timezone(kolkata)
        .unwrap()
        .with_timezone(&chrono::Utc);
    assert_eq!(h["from"], midnight.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
    assert_eq!(h["buckets"][0]["start"], h["from"]);
    // A bad filter is the list's 400.
    let r = d.admin("GET", "/v1/executions/histogram?status=done", Some(VIEWER), b"");
    support::admin::assert_bad_parameter(&r, "status", "not a status", "histogram?status=done");
    let r = d.admin("GET", "/v1/executions/histogram?limit=5", Some(VIEWER), b"");
    support::admin::assert_bad_parameter(&r, "limit", "unknown", "histogram?limit=5");
    let _ = ids(&get(&d, "/v1/executions"));
    d.stop();
}

/// The flows the browser tests drive: every trigger kind, every final status, a pause
/// until resumed, log records, and a payload full of HTML. The schedule fires on 29
/// February only, so it never adds an execution while the tests count them.
const E2E_FLOWS: &[(&str, &str)] = &[
    (
        "orders",
        "[flow]\nname = \"orders\"\nproject = \"shop\"\n[trigger.http]\npath = \"/orders\"\n[[steps]]\nname = \"note\"\nconnector = \"log\"\nconfig = { level = \"info\", category = \"intake\", message = \"order {{ trigger.body.id }} in\" }\n[[steps]]\nname = \"store\"\nconnector = \"echo\"\n",
    ),
    (
        "failing",
        "[flow]\nname = \"failing\"\nproject = \"shop\"\n[trigger.http]\npath = \"/failing\"\n[[steps]]\nname = \"charge\"\nconnector = \"fail\"\n",
    ),
    (
        "partial",
        "[flow]\nname = \"partial\"\nproject = \"ops\"\n[trigger.manual]\n[[steps]]\nname = \"flaky\"\nconnector = \"fail\"\non_error = \"continue\"\n[[steps]]\nname = \"uses_flaky\"\nconnector = \"echo\"\nconfig = { x = \"{{ steps.flaky.value }}\" }\n[[steps]]\nname = \"independent\"\nconnector = \"echo\"\nconfig = { z = \"{{ trigger.body.z }}\" }\n",
    ),
    (
        "hold",
        "[flow]\nname = \"hold\"\nproject = \"ops\"\n[trigger.manual]\n[[steps]]\nname = \"wait\"\npause = \"until_resumed\"\n[[steps]]\nname = \"after\"\nconnector = \"echo\"\n",
    ),
    (
        "nightly",
        "[flow]\nname = \"nightly\"\nproject = \"ops\"\n[trigger.schedule]\ncron = \"0 0 3 29 2 *\"\ntimezone = \"Asia/Tokyo\"\n[[steps]]\nname = \"s\"\nconnector = \"echo\"\n",
    ),
    (
        "xss",
        "[flow]\nname = \"xss\"\nproject = \"shop\"\n[trigger.http]\npath = \"/xss\"\n[[steps]]\nname = \"shout\"\nconnector = \"log\"\nconfig = { level = \"warn\", message = \"said {{ trigger.body.html }}\" }\n",
    ),
    (
        "quick",
        "[flow]\nname = \"quick\"\nproject = \"ops\"\n[trigger.manual]\n[[steps]]\nname = \"s\"\nconnector = \"echo\"\n",
    ),
];

/// Runs `console/e2e/console.test.mjs` (node's test runner, playwright-core, Debian's
/// Chromium) against a daemon in Asia/Kolkata time. `FLOWD_SCREENSHOTS=1` also writes the
/// README's screenshots to `docs/console/`.
#[test]
fn the_console_in_chromium() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let console = root.join("console");
    let chromium = std::env::var("FLOWD_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        std::path::Path::new(&chromium).exists(),
        "{chromium} is missing: run console/setup.sh (it installs Debian's chromium)"
    );
    assert!(
        console.join("node_modules/playwright-core").is_dir(),
        "console/node_modules is missing: run console/setup.sh"
    );
    let setup = Setup::with_server("", &format!("timezone = \"Asia/Kolkata\"\n{TOKENS}"));
    for (name, toml) in E2E_FLOWS {
        setup.flow(name, toml);
    }
    let d = start(&setup);
    let shots = root.join("docs/console");
    let mut cmd = std::process::Command::new("node");
    cmd.args([
        "--test",
        "--test-concurrency=1",
        "--test-reporter=spec",
        "e2e/console.test.mjs",
    ])
    .current_dir(&console)
    .env("FLOWD_ADMIN", format!("http://{}", d.admin))
    .env("FLOWD_TRIGGER", format!("http://{}", d.addr))
    .env("FLOWD_OPERATOR", OPERATOR)
    .env("FLOWD_VIEWER", VIEWER)
    .env("FLOWD_SETUP", setup.dir.path())
    .env("FLOWD_CHROMIUM", &chromium)
    .env("TZ", "America/New_York");
    if std::env::var_os("FLOWD_SCREENSHOTS").is_some() {
        std::fs::create_dir_all(&shots).unwrap();
        cmd.env("FLOWD_SCREENSHOTS", &shots);
    } else {
        cmd.env_remove("FLOWD_SCREENSHOTS");
    }
    let out = cmd
        .output()
        .expect("running node (console/setup.sh installs what it needs)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success(),
        "the browser tests failed ({}); the daemon's log:\n{}",
        out.status,
        d.log.lock().unwrap()
    );
    // node's runner says how many ran; none skipped, none left out.
    assert!(
        stdout.contains("ℹ fail 0") && stdout.contains("ℹ skipped 0"),
        "{stdout}"
    );
    d.stop();
}

/// An execution created at `t` (job id of that millisecond) of `flow` in `project`.
fn seeded(t: std::time::SystemTime, flow: &str, project: &str, kind: &str, status: &str) -> flowd::store::Execution {
    flowd::store::Execution {
        job_id: flowd::store::JobId::at(t),
        project: project.into(),
        flow: flow.into(),
        flow_version: "v".into(),
        trigger_kind: kind.into(),
        trigger_fingerprint: "f".into(),
        environment: "test".into(),
        status: serde_json::from_value(json!(status)).unwrap(),
        attempt: 1,
        created_at: t,
        started_at: Some(t),
        finished_at: Some(t),
        steps_total: 1,
        steps_executed: 1,
        resume_at: None,
    }
}

#[test]
fn every_bucket_of_the_histogram_holds_what_the_list_shows_for_its_span() {
    use flowd::store::{RedbStore, Store, Write};
    use std::time::{Duration, SystemTime};
    let setup = Setup::with_server("", &format!("timezone = \"Asia/Kolkata\"\n{TOKENS}"));
    // 400 executions over the last 3 days, at uneven times, of 3 flows in 2 projects.
    let now = SystemTime::now();
    let statuses = ["success", "failed", "partially_executed", "rejected", "success"];
    let flows = [("a", "p1", "http"), ("b", "p1", "schedule"), ("c", "p2", "manual")];
    let rows: Vec<_> = (0..400u64)
        .map(|i| {
            let back = Duration::from_millis((i * i * 1_621 + i * 7_919) % (3 * 86_400_000));
            let (flow, project, kind) = flows[(i % 3) as usize];
            seeded(now - back, flow, project, kind, statuses[(i % 5) as usize])
        })
        .collect();
    {
        let store = RedbStore::open(&setup.path("data"), 1 << 20).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(store.write(rows.into_iter().map(Write::Execution).collect()))
            .unwrap();
    }
    let d = start(&setup);
    for filter in [
        "preset=3d",
        "preset=this_week&flow=b",
        "preset=7d&project=p2",
        "status=failed,rejected",
        "preset=1d&trigger_kind=http&status=success",
    ] {
        let h = get(&d, &format!("/v1/executions/histogram?{filter}"));
        let buckets = h["buckets"].as_array().unwrap();
        let mut total = 0;
        for b in buckets {
            // The list over the bucket's span, [start, end): `to` is inclusive, so 1 ms before.
            let end = chrono::DateTime::parse_from_rfc3339(b["end"].as_str().unwrap()).unwrap()
                - chrono::Duration::milliseconds(1);
            let start = b["start"].as_str().unwrap();
            let mut span = filter
                .split('&')
                .filter(|f| !f.starts_with("preset="))
                .map(str::to_string)
                .collect::<Vec<_>>();
            // A bucket may begin before the range: the range's start bounds it then.
            let from = std::cmp::max(
                chrono::DateTime::parse_from_rfc3339(start).unwrap(),
                chrono::DateTime::parse_from_rfc3339(h["from"].as_str().unwrap()).unwrap(),
            );
            span.push(format!(
                "from={}",
                from.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                    .replace('+', "%2B")
            ));
            span.push(format!(
                "to={}",
                end.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                    .replace('+', "%2B")
            ));
            let want = list_counts(&d, &format!("&{}", span.join("&")));
            let got: std::collections::BTreeMap<String, u64> = b["counts"]
                .as_object()
                .unwrap()
                .iter()
                .filter(|(_, n)| n.as_u64() != Some(0))
                .map(|(s, n)| (s.clone(), n.as_u64().unwrap()))
                .collect();
            assert_eq!(got, want, "{filter}: bucket {start}");
            total += want.values().sum::<u64>();
        }
        assert_eq!(h["total"], total, "{filter}");
        assert!(total > 0, "{filter} counts something");
    }
    // Without a time filter the range starts at the oldest execution.
    let h = get(&d, "/v1/executions/histogram");
    let oldest = get(&d, "/v1/executions?limit=1000")["executions"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()["created_at"]
        .clone();
    assert_eq!(h["from"], oldest);
    assert_eq!(h["total"], 400);
    d.stop();
}
