//! The PostgreSQL backend measured in one run beside redb, on a PostgreSQL cluster of the
//! benchmark's own (`scripts/postgres.sh` with a directory and port of its own, stopped at
//! the end; `FLOWD_BENCH_POSTGRES=URL` uses a running server instead).
//!
//! 1. Throughput: 1, 2 and 3 `flowd serve` processes sharing one database, and one on redb
//!    (before and after them: the machine's speed moves during a run), under the same
//!    webhook load from this process (64 keep-alive connections spread over the daemons),
//!    for a flow answered at once (`async`: 202, then a transform and a log record) and one
//!    that holds the request to its `respond` step (`sync`: the peer shape of
//!    benches/load.rs). Per shape: executions finished per second (all sent during the
//!    window, counted until every one is final) and the ratio to redb's, CPU per execution
//!    of the daemons, of PostgreSQL (its postmaster and every child) and of the load
//!    generator (from /proc), PostgreSQL's commits and WAL fsyncs per execution, and what
//!    the database's connections were doing (`pg_stat_activity` sampled every 20 ms) and
//!    whether a daemon's pool had callers waiting (`/metrics`). Each deployment has a
//!    database of its own, dropped after it.
//! 2. Queries: benches/admin.rs's requests over 1,000,000 executions (100,000 with
//!    `--quick`) in PostgreSQL, seeded through `Store::write` into a database kept for the
//!    next run (`--drop` drops it at the end), with its size on disk.
//!
//! 3. A throttle under a backlog: three daemons each accept their share of a burst of
//!    webhooks to a flow with a `rate`, at once; how fast the executions started (from
//!    their stored `started_at`) against the rate, the most that started in any one
//!    second, and how many store transactions each start took (the waiters' asks).
//!
//! Run: `cargo bench --bench postgres` (`-- --quick` for a short run, `-- --throughput`,
//! `-- --queries` or `-- --throttle` for one part).

#[path = "admin.rs"]
#[allow(dead_code)]
mod admin;
#[path = "support/flows.rs"]
#[allow(dead_code)]
mod flows;
#[path = "support/http.rs"]
#[allow(dead_code)]
mod http;

use flowd::engine::ExecutionStatus;
use flowd::store::PostgresStore;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::runtime::Runtime;

/// The allocator the `flowd` binary uses (for the load generator here).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const CONNECTIONS: usize = 64;
/// The variable the daemons read the database's URL from.
const URL_ENV: &str = "FLOWD_BENCH_DATABASE_URL";
/// The benchmark's own cluster.
const PG_PORT: &str = "55433";
/// Longer than a backend may hold its statistics before reporting them (1 s).
const STATS_DELAY: Duration = Duration::from_millis(1500);

/// One flow driven by the load: where, with what, answered how.
struct Shape {
    name: &'static str,
    label: &'static str,
    path: &'static str,
    body: &'static [u8],
    status: u16,
}

const SHAPES: [Shape; 2] = [
    Shape {
        name: "async",
        label: "async: 202, transform, log",
        path: "/async",
        body: flows::BODY,
        status: 202,
    },
    Shape {
        name: "sync",
        label: "sync: 3 transforms, respond",
        path: "/peer",
        body: flows::PEER_BODY,
        status: 200,
    },
];

fn manifest() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The server's URL, and whether this run started it (and so stops it).
fn server() -> (String, bool) {
    if let Ok(url) = std::env::var("FLOWD_BENCH_POSTGRES")
        && !url.trim().is_empty()
    {
        return (url.trim().to_string(), false);
    }
    let out = std::process::Command::new("bash")
        .arg(manifest().join("scripts/postgres.sh"))
        .envs(cluster_env())
        .stderr(std::process::Stdio::inherit())
        .output()
        .expect("run scripts/postgres.sh");
    assert!(out.status.success(), "scripts/postgres.sh failed: {:?}", out.status);
    (String::from_utf8(out.stdout).expect("a URL").trim().to_string(), true)
}

fn cluster_env() -> [(&'static str, String); 2] {
    let tmp = std::env::temp_dir().join("flowd-bench-postgres");
    [
        ("FLOWD_PG_DIR", tmp.display().to_string()),
        ("FLOWD_PG_PORT", PG_PORT.to_string()),
    ]
}

fn stop_server() {
    let status = std::process::Command::new("bash")
        .arg(manifest().join("scripts/postgres.sh"))
        .arg("stop")
        .envs(cluster_env())
        .status()
        .expect("run scripts/postgres.sh stop");
    assert!(status.success(), "scripts/postgres.sh stop failed");
}

/// `url` with its database replaced by `db`.
fn with_database(url: &str, db: &str) -> String {
    let (base, _) = url.rsplit_once('/').expect("a URL with a database");
    format!("{base}/{db}")
}

async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("connecting to {url}: {e}"));
    tokio::spawn(conn);
    client
}

/// The server's settings that decide its write costs, and its version.
async fn describe_server(pg: &tokio_postgres::Client) -> String {
    let mut parts = Vec::new();
    for name in [
        "server_version",
        "shared_buffers",
        "synchronous_commit",
        "fsync",
        "wal_sync_method",
        "max_connections",
    ] {
        let row = pg.query_one(&format!("SHOW {name}"), &[]).await.expect("a setting");
        parts.push(format!("{name} {}", row.get::<_, String>(0)));
    }
    parts.join(", ")
}

/// The postmaster's pid, when the server runs on this machine: the parent of the backend
/// serving `pg`.
async fn postmaster(pg: &tokio_postgres::Client) -> Option<u32> {
    let backend: i32 = pg.query_one("SELECT pg_backend_pid()", &[]).await.ok()?.get(0);
    let stat = proc_stat(backend as u32)?;
    Some(stat.ppid)
}

struct ProcStat {
    ppid: u32,
    /// utime + stime, and cutime + cstime (waited-for children), in seconds.
    own: f64,
    children: f64,
}

fn proc_stat(pid: u32) -> Option<ProcStat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces), from the state (field 3) on.
    let f: Vec<&str> = text[text.rfind(')')? + 2..].split_whitespace().collect();
    // SAFETY: sysconf reads a constant of the system.
    let tick = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let n = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0) / tick;
    Some(ProcStat {
        ppid: f.get(1)?.parse().ok()?,
        own: n(11) + n(12),
        children: n(13) + n(14),
    })
}

/// CPU seconds of the server: the postmaster, every child it reaped, every child alive.
fn postgres_cpu(postmaster: u32) -> f64 {
    let Some(main) = proc_stat(postmaster) else {
        return 0.0;
    };
    let mut total = main.own + main.children;
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if let Some(s) = proc_stat(pid)
            && s.ppid == postmaster
        {
            total += s.own;
        }
    }
    total
}

/// CPU seconds of this process (the load generator and the samplers).
fn own_cpu() -> f64 {
    // SAFETY: getrusage writes into the struct it is given and nothing else.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// The database's write counters: transactions committed and rolled back, WAL records,
/// WAL writes and fsyncs (server-wide: nothing else runs on the benchmark's cluster).
#[derive(Clone, Copy, Default)]
struct Counters {
    commits: i64,
    rollbacks: i64,
    wal_records: i64,
    wal_writes: i64,
    wal_syncs: i64,
}

async fn counters(pg: &tokio_postgres::Client, db: &str) -> Counters {
    let row = pg
        .query_one(
            "SELECT d.xact_commit, d.xact_rollback, w.wal_records, w.wal_write, w.wal_sync
             FROM pg_stat_database d, pg_stat_wal w WHERE d.datname = $1",
            &[&db],
        )
        .await
        .expect("pg_stat_database and pg_stat_wal");
    Counters {
        commits: row.get(0),
        rollbacks: row.get(1),
        wal_records: row.get(2),
        wal_writes: row.get(3),
        wal_syncs: row.get(4),
    }
}

/// What the database's client connections were doing, sampled.
#[derive(Default)]
struct Activity {
    samples: u64,
    open: u64,
    /// Connections in a statement or inside a transaction, summed over the samples.
    busy: u64,
    /// What the busy ones were on: a wait event, "on CPU", or "idle in transaction".
    on: BTreeMap<String, u64>,
}

impl Activity {
    fn summary(&self) -> String {
        if self.samples == 0 {
            return "no samples".into();
        }
        let mut on: Vec<_> = self.on.iter().collect();
        on.sort_by_key(|(_, n)| std::cmp::Reverse(**n));
        let shown: Vec<String> = on
            .iter()
            .take(5)
            .map(|(what, n)| format!("{what} {:.0}%", 100.0 * **n as f64 / self.busy.max(1) as f64))
            .collect();
        format!(
            "{:.1} of {:.0} connections busy on average: {}",
            self.busy as f64 / self.samples as f64,
            self.open as f64 / self.samples as f64,
            shown.join(", ")
        )
    }
}

/// Samples `pg_stat_activity` for `db` every 20 ms until `stop`.
async fn sample_activity(pg: tokio_postgres::Client, db: String, stop: Arc<AtomicBool>) -> Activity {
    let mut a = Activity::default();
    let st = pg
        .prepare(
            "SELECT state, CASE WHEN state = 'idle in transaction' THEN 'idle in transaction (waiting on flowd)'
                                ELSE coalesce(wait_event_type || ':' || wait_event, 'on CPU') END
             FROM pg_stat_activity WHERE datname = $1 AND backend_type = 'client backend'",
        )
        .await
        .expect("the sampling query");
    while !stop.load(Ordering::Relaxed) {
        let rows = pg.query(&st, &[&db]).await.expect("pg_stat_activity");
        a.samples += 1;
        a.open += rows.len() as u64;
        for r in rows {
            let state: Option<String> = r.get(0);
            if matches!(state.as_deref(), Some("active" | "idle in transaction")) {
                a.busy += 1;
                *a.on.entry(r.get(1)).or_default() += 1;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    a
}

/// The largest `flowd_store_pool_waiting` each daemon showed, and the mean over samples,
/// sampled from `/metrics` every 100 ms until `stop`.
fn sample_pools(admins: Vec<SocketAddr>, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<(f64, f64)> {
    std::thread::spawn(move || {
        let mut clients: Vec<admin::Client> = admins.into_iter().map(admin::Client::connect).collect();
        let (mut max, mut sum, mut n) = (0f64, 0f64, 0u64);
        while !stop.load(Ordering::Relaxed) {
            for c in &mut clients {
                let (status, body) = c.get("/metrics", true);
                assert_eq!(status, 200, "GET /metrics");
                let text = String::from_utf8_lossy(&body);
                let waiting = text
                    .lines()
                    .find_map(|l| l.strip_prefix("flowd_store_pool_waiting "))
                    .and_then(|v| v.trim().parse::<f64>().ok())
                    .unwrap_or(0.0);
                max = max.max(waiting);
                sum += waiting;
                n += 1;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        (max, sum / n.max(1) as f64)
    })
}

/// One deployment: `flowd serve` processes on one store.
struct Deployment {
    label: String,
    daemons: Vec<admin::Daemon>,
    /// Its database, on PostgreSQL.
    database: Option<String>,
    _dir: tempfile::TempDir,
}

/// The daemon config: both flows, the viewer token, the store.
fn write_daemon(dir: &Path, postgres: bool, extra: Option<&str>) -> PathBuf {
    let flows = dir.join("flows");
    std::fs::create_dir_all(&flows).expect("the flows directory");
    std::fs::write(flows.join("async.toml"), flows::ASYNC_FLOW).expect("a flow file");
    std::fs::write(flows.join("peer.toml"), flows::PEER_FLOW).expect("a flow file");
    if let Some(extra) = extra {
        std::fs::write(flows.join("extra.toml"), extra).expect("a flow file");
    }
    let mut toml = format!(
        "environment = \"bench\"\nflows = \"flows\"\n\n[server]\nlisten = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n\
         data_dir = \"data\"\nworkers = 256\n\n[[server.tokens]]\nname = \"bench\"\nrole = \"viewer\"\nenv = \"{}\"\n\n\
         [limits]\ninstances = 512\n\n[connectors.transform]\nbundled = \"transform\"\n\n[connectors.log]\nbundled = \"log\"\n",
        admin::TOKEN_ENV
    );
    if postgres {
        toml.push_str(&format!("\n[store]\nbackend = \"postgres\"\nurl_env = \"{URL_ENV}\"\n"));
    }
    let config = dir.join("flowd.toml");
    std::fs::write(&config, toml).expect("the daemon config");
    config
}

fn deploy(rt: &Runtime, server: &str, daemons: usize, postgres: bool, n: usize, extra: Option<&str>) -> Deployment {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let database = postgres.then(|| {
        let name = format!("flowd_bench_daemons_{}_{n}", std::process::id());
        rt.block_on(async {
            let pg = connect(server).await;
            pg.batch_execute(&format!("CREATE DATABASE {name}"))
                .await
                .expect("CREATE DATABASE");
        });
        name
    });
    let url = database.as_deref().map(|d| with_database(server, d));
    let mut started = Vec::new();
    for i in 0..daemons {
        let config = write_daemon(&dir.path().join(format!("d{i}")), postgres, extra);
        let envs: Vec<(&str, &str)> = url.iter().map(|u| (URL_ENV, u.as_str())).collect();
        started.push(admin::Daemon::start_with(&config, &envs));
    }
    let label = match (postgres, daemons) {
        (false, _) => "redb, 1 daemon".to_string(),
        (true, 1) => "postgres, 1 daemon".to_string(),
        (true, k) => format!("postgres, {k} daemons"),
    };
    Deployment {
        label,
        daemons: started,
        database,
        _dir: dir,
    }
}

impl Deployment {
    /// Stops the daemons (SIGTERM) and drops the database.
    fn remove(self, rt: &Runtime, server: &str) {
        let Deployment { daemons, database, .. } = self;
        drop(daemons);
        if let Some(name) = database {
            rt.block_on(async {
                let pg = connect(server).await;
                pg.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await
                    .expect("DROP DATABASE");
            });
        }
    }

    fn flowd_cpu(&self) -> f64 {
        self.daemons
            .iter()
            .filter_map(|d| proc_stat(d.child.id()))
            .map(|s| s.own)
            .sum()
    }

    /// Waits until no execution is unfinished, as the first daemon sees the store.
    fn settle(&self, within: Duration) {
        let mut client = admin::Client::connect(self.daemons[0].admin);
        let end = Instant::now() + within;
        loop {
            let open = client.get_json("/v1/executions?status=pending,queued,running,paused&limit=1");
            if open["executions"].as_array().is_some_and(Vec::is_empty) {
                return;
            }
            assert!(
                Instant::now() < end,
                "{}: executions unfinished after {within:?}",
                self.label
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// What one shape measured on one deployment.
struct Measured {
    executions: u64,
    rate: f64,
    flowd_us: f64,
    postgres_us: f64,
    generator_us: f64,
    busy: f64,
    counters: Option<Counters>,
    activity: Activity,
    pool_waiting: (f64, f64),
}

struct Watch<'a> {
    server: &'a str,
    postmaster: Option<u32>,
}

fn measure(rt: &Runtime, d: &Deployment, shape: &Shape, window: Duration, watch: &Watch) -> Measured {
    let addrs: Vec<SocketAddr> = d.daemons.iter().map(|x| x.trigger).collect();
    // Warm up: compiled components, connections, the first pages.
    rt.block_on(http::closed_loop(
        &addrs,
        shape.path,
        shape.body,
        shape.status,
        CONNECTIONS,
        Duration::from_millis(500),
    ));
    d.settle(Duration::from_secs(120));
    // A backend reports its counters at most once a second: let the warm-up's in first.
    std::thread::sleep(STATS_DELAY);
    let pg = watch.postmaster.map(|_| rt.block_on(connect(watch.server)));
    let before = match (&pg, &d.database) {
        (Some(pg), Some(db)) => Some(rt.block_on(counters(pg, db))),
        _ => None,
    };
    let stop = Arc::new(AtomicBool::new(false));
    let activity = match &d.database {
        Some(db) => {
            let sampler = rt.block_on(connect(watch.server));
            Some(rt.spawn(sample_activity(sampler, db.clone(), stop.clone())))
        }
        None => None,
    };
    let pools = d
        .database
        .is_some()
        .then(|| sample_pools(d.daemons.iter().map(|x| x.admin).collect(), stop.clone()));
    let cpu0 = (d.flowd_cpu(), watch.postmaster.map_or(0.0, postgres_cpu), own_cpu());
    let start = Instant::now();
    let (_, n) = rt.block_on(http::closed_loop(
        &addrs,
        shape.path,
        shape.body,
        shape.status,
        CONNECTIONS,
        window,
    ));
    d.settle(Duration::from_secs(600));
    let took = start.elapsed().as_secs_f64();
    let cpu1 = (d.flowd_cpu(), watch.postmaster.map_or(0.0, postgres_cpu), own_cpu());
    stop.store(true, Ordering::Relaxed);
    let activity = activity.map_or_else(Activity::default, |t| rt.block_on(t).expect("the sampler"));
    let pool_waiting = pools.map_or((0.0, 0.0), |t| t.join().expect("the pool sampler"));
    std::thread::sleep(STATS_DELAY);
    let after = match (&pg, &d.database) {
        (Some(pg), Some(db)) => Some(rt.block_on(counters(pg, db))),
        _ => None,
    };
    let per = |s: f64| s * 1e6 / n.max(1) as f64;
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get()) as f64;
    let counters = before.zip(after).map(|(b, a)| Counters {
        commits: a.commits - b.commits,
        rollbacks: a.rollbacks - b.rollbacks,
        wal_records: a.wal_records - b.wal_records,
        wal_writes: a.wal_writes - b.wal_writes,
        wal_syncs: a.wal_syncs - b.wal_syncs,
    });
    Measured {
        executions: n,
        rate: n as f64 / took,
        flowd_us: per(cpu1.0 - cpu0.0),
        postgres_us: per(cpu1.1 - cpu0.1),
        generator_us: per(cpu1.2 - cpu0.2),
        busy: ((cpu1.0 - cpu0.0) + (cpu1.1 - cpu0.1) + (cpu1.2 - cpu0.2)) / took / cores,
        counters,
        activity,
        pool_waiting,
    }
}

/// Every execution the load sent is stored and ended `success` (PostgreSQL: counted in
/// the database); then what the executions did to each table, per execution: rows
/// inserted, updated (how many of them HOT: no index touched), deleted, and dead rows
/// left for vacuum.
fn check_and_churn(rt: &Runtime, server: &str, d: &Deployment) -> Option<String> {
    let db = d.database.as_ref()?;
    Some(rt.block_on(async {
        let pg = connect(&with_database(server, db)).await;
        let row = pg
            .query_one(
                "SELECT count(*) FILTER (WHERE status = $1), count(*) FROM executions",
                &[&i16::from(ExecutionStatus::Success.code())],
            )
            .await
            .expect("counting executions");
        let (ok, all): (i64, i64) = (row.get(0), row.get(1));
        assert_eq!(ok, all, "{}: {} of {all} executions did not succeed", d.label, all - ok);
        let rows = pg
            .query(
                "SELECT relname, n_tup_ins, n_tup_upd, n_tup_hot_upd, n_tup_del, n_dead_tup
                 FROM pg_stat_user_tables WHERE n_tup_ins + n_tup_upd + n_tup_del > 0
                 ORDER BY n_tup_ins + n_tup_upd + n_tup_del DESC",
                &[],
            )
            .await
            .expect("pg_stat_user_tables");
        let per = |v: i64| v as f64 / all.max(1) as f64;
        let tables: Vec<String> = rows
            .iter()
            .map(|r| {
                let (upd, hot): (i64, i64) = (r.get(2), r.get(3));
                format!(
                    "{} {:.2}/{:.2} ({:.0}% HOT)/{:.2}/{:.2}",
                    r.get::<_, String>(0),
                    per(r.get(1)),
                    per(upd),
                    100.0 * hot as f64 / upd.max(1) as f64,
                    per(r.get(4)),
                    per(r.get(5))
                )
            })
            .collect();
        format!(
            "{all} executions; per execution, table inserts/updates/deletes/dead rows: {}",
            tables.join(", ")
        )
    }))
}

fn throughput(rt: &Runtime, server: &str, quick: bool) {
    let window = if quick {
        Duration::from_secs(2)
    } else {
        Duration::from_secs(5)
    };
    let (settings, postmaster) = rt.block_on(async {
        let pg = connect(server).await;
        (describe_server(&pg).await, postmaster(&pg).await)
    });
    let watch = Watch { server, postmaster };
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    println!(
        "throughput: webhook load from this process, {CONNECTIONS} keep-alive connections spread over the daemons, {} s per shape; load average at start {}",
        window.as_secs(),
        load_average()
    );
    println!(
        "  this machine has {cores} cores: the load generator, every daemon and PostgreSQL share them, so 2 or 3 daemons show the cost of sharing the work, not scale-out"
    );
    println!("  PostgreSQL: {settings}; each daemon's pool: 16 connections ([store] pool_size's default)");
    let plan: [(bool, usize); 5] = [(false, 1), (true, 1), (true, 2), (true, 3), (false, 1)];
    let mut results: Vec<(String, Vec<Measured>, Option<String>)> = Vec::new();
    for (i, (postgres, daemons)) in plan.into_iter().enumerate() {
        let d = deploy(rt, server, daemons, postgres, i, None);
        let measured: Vec<Measured> = SHAPES.iter().map(|s| measure(rt, &d, s, window, &watch)).collect();
        let churn = check_and_churn(rt, server, &d);
        let label = if i == plan.len() - 1 {
            format!("{} (again)", d.label)
        } else {
            d.label.clone()
        };
        d.remove(rt, server);
        results.push((label, measured, churn));
    }
    for (k, shape) in SHAPES.iter().enumerate() {
        let redb = (results[0].1[k].rate + results[results.len() - 1].1[k].rate) / 2.0;
        println!();
        println!(
            "  {:<28} {:>8} {:>8} {:>8} {:>9} {:>10} {:>9} {:>8} {:>8}",
            shape.label, "exec/s", "vs redb", "executed", "flowd CPU", "postgres", "generator", "CPU busy", "commits"
        );
        for (label, m, _) in &results {
            let m = &m[k];
            println!(
                "  {label:<28} {:>8.0} {:>7.2}x {:>8} {:>6.0} µs {:>7.0} µs {:>6.0} µs {:>7.0}% {:>8}",
                m.rate,
                m.rate / redb,
                m.executions,
                m.flowd_us,
                m.postgres_us,
                m.generator_us,
                100.0 * m.busy,
                m.counters.map_or_else(
                    || "-".into(),
                    |c| format!("{:.2}", c.commits as f64 / m.executions as f64)
                ),
            );
        }
    }
    println!();
    println!(
        "  (CPU per execution; redb's ratio base is the mean of its two runs; commits per execution; CPU busy of {cores} cores)"
    );
    println!("  where PostgreSQL's time went, per deployment and shape:");
    for (label, measured, churn) in &results {
        if let Some(churn) = churn {
            println!("  {label:<22} {churn}");
        }
        for (shape, m) in SHAPES.iter().zip(measured) {
            let Some(c) = m.counters else { continue };
            let per = |v: i64| v as f64 / m.executions.max(1) as f64;
            println!(
                "  {label:<22} {:<5}: {:.2} commits, {:.2} rollbacks, {:.1} WAL records, {:.2} WAL writes, {:.2} WAL fsyncs per execution",
                shape.name,
                per(c.commits),
                per(c.rollbacks),
                per(c.wal_records),
                per(c.wal_writes),
                per(c.wal_syncs),
            );
            println!("  {:<22}        {}", "", m.activity.summary());
            println!(
                "  {:<22}        callers waiting for a pool connection: at most {:.0}, {:.2} on average per daemon",
                "", m.pool_waiting.0, m.pool_waiting.1
            );
        }
    }
    println!("  load average at the end {}", load_average());
}

/// benches/admin.rs's requests over a store of `n` executions in PostgreSQL.
fn queries(rt: &Runtime, server: &str, quick: bool, drop_after: bool) {
    let n: usize = if quick { 100_000 } else { 1_000_000 };
    let (light, heavy) = if quick { (500, 100) } else { (2000, 500) };
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("the target directory")
        .to_path_buf();
    let root = target
        .join("bench-admin-data")
        .join(format!("postgres-{}-{n}", admin::SHAPE));
    std::fs::create_dir_all(&root).expect("the bench directory");
    let db = format!("flowd_bench_admin_{}_{n}", admin::SHAPE);
    let url = with_database(server, &db);
    println!();
    println!(
        "queries: flowd admin API over {n} executions in PostgreSQL (benches/admin.rs's store: 5 flows, 2 projects, 3 steps each, 2-3 log records each); load average {}",
        load_average()
    );
    let pg = rt.block_on(connect(server));
    let exists = rt
        .block_on(pg.query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&db]))
        .expect("pg_database")
        .is_some();
    if !exists {
        // A marker without its database (a new cluster): seed afresh.
        let _ = std::fs::remove_file(root.join("seeded-until"));
    }
    let seeded_before = root.join("seeded-until").exists();
    admin::prepare_store(rt, &root, n, 4, &|fresh| {
        if fresh {
            rt.block_on(async {
                // Two statements: neither may run inside a transaction block.
                pg.batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
                    .await
                    .expect("DROP DATABASE");
                pg.batch_execute(&format!("CREATE DATABASE {db}"))
                    .await
                    .expect("CREATE DATABASE");
            });
        }
        Arc::new(
            rt.block_on(PostgresStore::open(&url, 1 << 20, 8))
                .expect("open the store"),
        )
    });
    let client = rt.block_on(connect(&url));
    if !seeded_before {
        // A bulk load leaves the planner without statistics until autovacuum's analyze
        // comes round; a store filled by daemons over weeks has them.
        let start = Instant::now();
        rt.block_on(client.batch_execute("VACUUM ANALYZE"))
            .expect("VACUUM ANALYZE");
        println!("data: VACUUM ANALYZE in {:.1}s", start.elapsed().as_secs_f64());
    }
    let sizes = rt
        .block_on(client.query(
            "SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c
             JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = 'public' AND c.relkind = 'r' ORDER BY 2 DESC",
            &[],
        ))
        .expect("table sizes");
    let total: i64 = rt
        .block_on(client.query_one("SELECT pg_database_size(current_database())", &[]))
        .expect("pg_database_size")
        .get(0);
    let per: Vec<String> = sizes
        .iter()
        .take(6)
        .map(|r| format!("{} {:.0}", r.get::<_, String>(0), r.get::<_, i64>(1) as f64 / n as f64))
        .collect();
    println!(
        "data: pg_database_size {:.2} GB ({:.0} B per execution; tables with their indexes, B per execution: {})",
        total as f64 / 1e9,
        total as f64 / n as f64,
        per.join(", ")
    );
    // As for redb: the figures measure the queries, not this VM's disk.
    let start = Instant::now();
    let dir: String = rt
        .block_on(client.query_one(
            "SELECT current_setting('data_directory') || '/base/' || oid FROM pg_database WHERE datname = current_database()",
            &[],
        ))
        .expect("the database's directory")
        .get(0);
    let mut bytes = 0u64;
    for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        if let Ok(mut f) = std::fs::File::open(entry.path()) {
            bytes += std::io::copy(&mut f, &mut std::io::sink()).unwrap_or(0);
        }
    }
    println!(
        "data: the database's files ({:.2} GB) read through once (into the OS page cache) in {:.1}s",
        bytes as f64 / 1e9,
        start.elapsed().as_secs_f64()
    );
    let direct = {
        let store = rt
            .block_on(PostgresStore::open(&url, 1 << 20, 8))
            .expect("open the store");
        admin::direct_download(rt, &store)
    };
    let config = admin::write_config(&root);
    let mut toml = std::fs::read_to_string(&config).expect("the daemon config");
    toml.push_str(&format!("\n[store]\nbackend = \"postgres\"\nurl_env = \"{URL_ENV}\"\n"));
    std::fs::write(&config, toml).expect("the daemon config");
    let started = Instant::now();
    let daemon = admin::Daemon::start_with(&config, &[(URL_ENV, &url)]);
    daemon.announce(started);
    admin::queries(&daemon, direct, light, heavy);
    drop(daemon);
    if drop_after {
        rt.block_on(pg.batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)")))
            .expect("DROP DATABASE");
        let _ = std::fs::remove_file(root.join("seeded-until"));
        println!("data: dropped {db}");
    }
}

/// A flow whose starts are paced at `rate` a second, with room for any backlog.
fn paced_flow(rate: f64) -> String {
    format!(
        "[flow]\nname = \"paced\"\nthrottle = {{ max_concurrency = 1000, rate = {rate}, queue_capacity = 100000, max_wait = \"1h\" }}\n\
         [trigger.http]\npath = \"/paced\"\n\n\
         [[steps]]\nname = \"shape\"\nconnector = \"transform\"\nconfig = {{ from = \"trigger.body\", fields = {{ id = \"id\" }} }}\n"
    )
}

fn throttle(rt: &Runtime, server: &str, quick: bool) {
    const DAEMONS: usize = 3;
    let plan: &[(f64, usize)] = if quick {
        &[(8.0, 45)]
    } else {
        &[(8.0, 45), (8.0, 150), (40.0, 600)]
    };
    println!();
    println!(
        "throttle: {DAEMONS} daemons on one database each accept their share of a burst of webhooks to a flow with `rate`; load average at start {}",
        load_average()
    );
    println!(
        "  {:<20} {:>10} {:>12} {:>8} {:>14} {:>16}",
        "rate, backlog", "took", "starts/s", "of rate", "most in 1 s", "store txns/start"
    );
    for (i, &(rate, backlog)) in plan.iter().enumerate() {
        let d = deploy(rt, server, DAEMONS, true, 100 + i, Some(&paced_flow(rate)));
        let db = d.database.clone().expect("a database");
        let pg = rt.block_on(connect(server));
        std::thread::sleep(STATS_DELAY);
        let before = rt.block_on(counters(&pg, &db));
        let addrs: Vec<SocketAddr> = d.daemons.iter().map(|x| x.trigger).collect();
        rt.block_on(async {
            let senders: Vec<_> = addrs
                .iter()
                .enumerate()
                .map(|(k, &addr)| {
                    let share = backlog / DAEMONS + usize::from(k < backlog % DAEMONS);
                    tokio::spawn(async move {
                        let mut s = http::connect(addr).await;
                        for _ in 0..share {
                            let status = http::send(&mut s, addr, "POST", "/paced", flows::BODY).await;
                            assert_eq!(status, 202, "a webhook to {addr} answered {status}");
                        }
                    })
                })
                .collect();
            for s in senders {
                s.await.expect("a sender");
            }
        });
        d.settle(Duration::from_secs(600));
        std::thread::sleep(STATS_DELAY);
        let after = rt.block_on(counters(&pg, &db));
        let mut client = admin::Client::connect(d.daemons[0].admin);
        let mut starts: Vec<i64> = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(c) => format!("/v1/executions?flow=paced&limit=500&cursor={c}"),
                None => "/v1/executions?flow=paced&limit=500".to_string(),
            };
            let page = client.get_json(&path);
            for e in page["executions"].as_array().expect("executions") {
                assert_eq!(e["status"], "success", "{e}");
                let at = e["started_at"].as_str().expect("started_at");
                let at = chrono::DateTime::parse_from_rfc3339(at).expect("an RFC 3339 time");
                starts.push(at.timestamp_micros());
            }
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => break,
            }
        }
        assert_eq!(starts.len(), backlog, "every execution of the backlog stored");
        starts.sort_unstable();
        let span = (starts[backlog - 1] - starts[0]) as f64 / 1e6;
        let per_second = (backlog - 1) as f64 / span;
        let most = (0..backlog)
            .map(|i| starts[i..].iter().take_while(|t| **t - starts[i] < 1_000_000).count())
            .max()
            .unwrap_or(0);
        let txns = (after.commits + after.rollbacks - before.commits - before.rollbacks) as f64 / backlog as f64;
        println!(
            "  {:<20} {:>9.2}s {:>12.2} {:>7.0}% {:>14} {:>16.1}",
            format!("{rate}/s, {backlog}"),
            span,
            per_second,
            100.0 * per_second / rate,
            most,
            txns
        );
        d.remove(rt, server);
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let has = |a: &str| args.iter().any(|x| x == a);
    let quick = has("--quick");
    let parts = ["--throughput", "--queries", "--throttle"];
    let only = |a: &str| has(a) || !parts.iter().any(|p| has(p));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let (server, started) = server();
    if only("--throughput") {
        throughput(&rt, &server, quick);
    }
    if only("--queries") {
        queries(&rt, &server, quick, has("--drop"));
    }
    if only("--throttle") {
        throttle(&rt, &server, quick);
    }
    if started {
        stop_server();
    }
}
