//! What the HTTP benchmarks share: keep-alive connections to 127.0.0.1 and open-loop
//! latency at a fixed offered rate (latency counts from when a request was due, not when
//! it was sent, so a stall shows in full).

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

pub type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

pub async fn connect(addr: SocketAddr) -> Sender {
    let stream = TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let (send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    send
}

/// One request on `s`, read to its end; its status.
pub async fn send(s: &mut Sender, addr: SocketAddr, method: &str, path: &str, body: &'static [u8]) -> u16 {
    s.ready().await.unwrap();
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string())
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(body)))
        .unwrap();
    let resp = s.send_request(req).await.unwrap();
    let status = resp.status().as_u16();
    resp.into_body().collect().await.unwrap();
    status
}

/// Requests answered per second by `connections` keep-alive connections sending back to
/// back for `for_` (connection `i` to `addrs[i % addrs.len()]`), and how many were
/// answered; each answer must be `want`.
#[allow(dead_code)] // not every benchmark including this file uses it
pub async fn closed_loop(
    addrs: &[SocketAddr],
    path: &'static str,
    body: &'static [u8],
    want: u16,
    connections: usize,
    for_: Duration,
) -> (f64, u64) {
    let end = Instant::now() + for_;
    let mut tasks = Vec::new();
    for i in 0..connections {
        let addr = addrs[i % addrs.len()];
        tasks.push(tokio::spawn(async move {
            let mut s = connect(addr).await;
            let mut n = 0u64;
            while Instant::now() < end {
                assert_eq!(
                    send(&mut s, addr, "POST", path, body).await,
                    want,
                    "POST {path} on {addr}"
                );
                n += 1;
            }
            n
        }));
    }
    let start = Instant::now();
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    (total as f64 / start.elapsed().as_secs_f64(), total)
}

/// Every request's latency at `rate` requests per second for `for_`, open loop over
/// `connections` keep-alive connections, sorted; each answer must be `want`.
#[allow(clippy::too_many_arguments)]
pub async fn latencies(
    addr: SocketAddr,
    method: &'static str,
    path: &'static str,
    body: &'static [u8],
    want: u16,
    rate: f64,
    for_: Duration,
    connections: usize,
) -> Vec<Duration> {
    let n = (rate * for_.as_secs_f64()) as usize;
    let interval = Duration::from_secs_f64(1.0 / rate);
    let start = Instant::now() + Duration::from_millis(50);
    // Request i is due at start + i × interval; whichever connection is free takes it.
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            let mut s = connect(addr).await;
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let due = start + interval * i as u32;
                tokio::time::sleep_until(due.into()).await;
                assert_eq!(send(&mut s, addr, method, path, body).await, want, "{method} {path}");
                lat.push(due.elapsed());
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort();
    all
}

/// The `p`-th percentile (0–100) of sorted latencies.
pub fn percentile(sorted: &[Duration], p: usize) -> Duration {
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
