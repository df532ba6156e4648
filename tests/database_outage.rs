//! A daemon on PostgreSQL through a database outage: every connection it had is cut and
//! new ones are refused for a while (a restart, a network cut, a stall past the pool's
//! timeouts), through a proxy between the daemon and the server. An execution running
//! through it waits the outage out and ends as its steps say, not `failed` by flowd; a
//! webhook or an admin read that comes in meanwhile is told the database is unavailable
//! (503, with `Retry-After`), at once.

mod support;

use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::admin::{OPERATOR, TOKENS, ended, flow_file, get, hook, wait_status};
use support::postgres::Database;
use support::{DATABASE_URL_VAR, Daemon, Setup};

/// A TCP proxy to the test server that can cut its connections and refuse new ones.
struct Proxy {
    addr: SocketAddr,
    up: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    fn start(to: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let proxy = Proxy {
            addr: listener.local_addr().unwrap(),
            up: Arc::new(AtomicBool::new(true)),
            open: Arc::default(),
        };
        let (up, open) = (proxy.up.clone(), proxy.open.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                // Refused: closed before the server's greeting.
                if !up.load(Ordering::SeqCst) {
                    continue;
                }
                let Ok(server) = TcpStream::connect(to) else { continue };
                open.lock()
                    .unwrap()
                    .extend([client.try_clone().unwrap(), server.try_clone().unwrap()]);
                for (mut from, mut into) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut into);
                        let _ = into.shutdown(Shutdown::Both);
                    });
                }
            }
        });
        proxy
    }

    /// Cuts every connection and refuses new ones until [`Proxy::restore`].
    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for s in self.open.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

/// The server's address in a `postgres://user@host:port/db` URL.
fn server_addr(url: &str) -> SocketAddr {
    let rest = url.split_once('@').unwrap().1;
    rest.split_once('/').unwrap().0.parse().unwrap()
}

#[test]
fn an_execution_running_through_a_database_outage_waits_it_out_and_ends_as_its_steps_say() {
    let db = Database::create();
    let proxy = Proxy::start(server_addr(&db.url));
    let proxied = db
        .url
        .replace(&server_addr(&db.url).to_string(), &proxy.addr.to_string());
    let setup = Setup::embedded("", &format!("shutdown_grace = \"1s\"\n{TOKENS}")).use_postgres(db);
    setup.flow(
        "slow",
        &flow_file(
            "slow",
            "/slow",
            "[[steps]]\nname = \"work\"\nconnector = \"sleeper\"\nconfig = { ms = 1500 }\n[[steps]]\nname = \"after\"\nconnector = \"echo\"\n",
        ),
    );
    let d = Daemon::start_with_env(
        &setup,
        &[
            (DATABASE_URL_VAR, proxied.as_str()),
            ("FLOWD_TEST_VIEWER", support::admin::VIEWER),
            ("FLOWD_TEST_OPERATOR", OPERATOR),
        ],
    );
    let job = hook(&d, "/slow", "{}");
    wait_status(&d, &job, "running");
    // The step ends, and the next starts, while the database is away.
    proxy.cut();
    let asked = Instant::now();
    let r = d.request("POST", "/slow", &[], b"{}");
    assert_eq!(r.status, 503, "{}", String::from_utf8_lossy(&r.body));
    assert!(
        asked.elapsed() < Duration::from_secs(4),
        "a webhook is told at once, not after the pool's timeouts: {:?}",
        asked.elapsed()
    );
    // A read that finds no connection is told so (503, to ask again), not an error of
    // the daemon's (500).
    let r = d.admin("GET", &format!("/v1/executions/{job}"), Some(OPERATOR), b"");
    assert_eq!(r.status, 503, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["error"]["code"], "store_unavailable");
    assert_eq!(r.header("retry-after"), Some("5"));
    // So is an operator's write that finds none: nothing was sent, and the flow stays on
    // (it takes the webhook at the end).
    let r = d.admin("POST", "/v1/flows/slow/deactivate", Some(OPERATOR), b"");
    assert_eq!(r.status, 503, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["error"]["code"], "store_unavailable");
    assert_eq!(r.header("retry-after"), Some("5"));
    // Past the step's end (1.5 s), and the first tries for a connection.
    std::thread::sleep(Duration::from_secs(2));
    proxy.restore();

    let row = ended(&d, &job, 1);
    assert_eq!(row["status"], "success", "{row:#}\n{}", d.log.lock().unwrap());
    let detail = get(&d, &format!("/v1/executions/{job}"));
    let steps = detail["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 2, "{detail:#}");
    for s in steps {
        assert_eq!(s["status"], "success", "{detail:#}");
        assert_eq!(
            s["tries"].as_array().unwrap().len(),
            1,
            "each step ran once: {detail:#}"
        );
    }
    let log = d.log.lock().unwrap().clone();
    assert!(
        log.contains("a running execution's write waits for the database"),
        "{log}"
    );
    assert!(log.contains("the database answers again"), "{log}");
    // And it takes webhooks again.
    let next = hook(&d, "/slow", "{}");
    assert_eq!(ended(&d, &next, 1)["status"], "success");
    d.stop();
}
