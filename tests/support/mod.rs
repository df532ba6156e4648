//! Shared by the integration tests: a scratch setup (daemon config naming the fixture
//! connectors, a flows directory, the store: redb, or PostgreSQL when
//! `FLOWD_TEST_BACKEND=postgres`) and a way to run the real `flowd` binary against it.

#![allow(dead_code)]

pub mod admin;
pub mod ledger;
pub mod postgres;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// Every test shares one compiled-component cache, so each fixture compiles once per run.
pub fn cache_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("component-cache")
}

/// The `flowd` binary, with the shared cache.
pub fn flowd() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_flowd"));
    c.env("XDG_CACHE_HOME", cache_dir()).stdin(Stdio::null());
    c
}

/// [`flowd`] with a resource limit lowered first: `ulimit` is the shell's option and
/// value (`-n 200`: open files; `-v 16777216`: KiB of address space).
pub fn flowd_under(ulimit: &str) -> Command {
    let mut c = Command::new("sh");
    c.arg("-c")
        .arg(format!("ulimit {ulimit} && exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_flowd"))
        .env("XDG_CACHE_HOME", cache_dir())
        .stdin(Stdio::null());
    c
}

pub fn fixture(name: &str) -> PathBuf {
    flowd_fixtures::wasm(name)
}

/// The action fixtures, usable as connectors under their own names.
pub const ACTION_FIXTURES: &[&str] = &[
    "echo",
    "fail",
    "looper",
    "membomb",
    "recursion",
    "panic",
    "huge-output",
    "not-json",
    "log-flood",
    "stdout-writer",
    "sockets",
    "sleeper",
    "bad-abi",
];

/// How long a test waits for what a daemon will do (an answer, a status, an end): long
/// enough to ride out a stall of the machine. The 2-core VMs the suites run on at times
/// leave a CPU's queued work unrun for 30-40 s (their kernel logs "workqueue lockup ...
/// stuck for 38s"), and a PostgreSQL backend queued there stalls every daemon on it.
pub const PATIENCE: std::time::Duration = std::time::Duration::from_secs(90);

/// The variable a PostgreSQL setup's `[store]` names for its database URL.
pub const DATABASE_URL_VAR: &str = "FLOWD_TEST_DATABASE_URL";

/// Whether the suites' daemons keep their executions in PostgreSQL: `$FLOWD_TEST_BACKEND`
/// is `postgres` (`redb`, or unset, is the embedded default).
pub fn on_postgres() -> bool {
    match std::env::var("FLOWD_TEST_BACKEND").as_deref() {
        Ok("postgres") => true,
        Ok("redb") | Err(_) => false,
        Ok(other) => panic!("FLOWD_TEST_BACKEND={other:?}: expected redb or postgres"),
    }
}

/// A scratch directory with a daemon config (`flowd.toml`) and a `flows/` directory,
/// and, when its store is PostgreSQL, the database of its own (dropped with it).
pub struct Setup {
    pub dir: tempfile::TempDir,
    /// Shared by the setups of daemons on one database; dropped with the last.
    pub database: Option<std::sync::Arc<postgres::Database>>,
}

impl Setup {
    /// Bundled connectors plus every action fixture and `trigger-echo`, with `limits`
    /// (TOML lines for the `[limits]` table) on top of the defaults.
    pub fn new(limits: &str) -> Setup {
        Setup::with_server(limits, "")
    }

    /// Like [`Setup::new`], with extra lines for the `[server]` table (which always
    /// listens on 127.0.0.1 with a port the system picks, and records in `data/`, or in
    /// a database of its own when [`on_postgres`]).
    pub fn with_server(limits: &str, server: &str) -> Setup {
        let setup = Setup::embedded(limits, server);
        if on_postgres() {
            setup.use_postgres(postgres::Database::create())
        } else {
            setup
        }
    }

    /// Moves the setup's store to `db`: its config's `[store]` names
    /// [`DATABASE_URL_VAR`], which every daemon started on it gets (see [`Setup::env`]).
    pub fn use_postgres(mut self, db: impl Into<std::sync::Arc<postgres::Database>>) -> Setup {
        let mut toml = std::fs::read_to_string(self.config()).unwrap();
        toml.push_str(&format!(
            "[store]\nbackend = \"postgres\"\nurl_env = \"{DATABASE_URL_VAR}\"\npool_size = 4\n"
        ));
        std::fs::write(self.config(), toml).unwrap();
        self.database = Some(db.into());
        self
    }

    /// The environment a daemon or command on this setup's config needs (its database's URL).
    pub fn env(&self) -> Vec<(&'static str, String)> {
        self.database
            .iter()
            .map(|db| (DATABASE_URL_VAR, db.url.clone()))
            .collect()
    }

    /// [`Setup::with_server`] on the embedded store whatever the environment says.
    pub fn embedded(limits: &str, server: &str) -> Setup {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut toml = String::from("environment = \"test\"\nflows = \"flows\"\n");
        toml.push_str(&format!(
            "cache_dir = {:?}\n\n[server]\nlisten = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\ndata_dir = \"data\"\n{server}\n\n[limits]\n{limits}\n\n",
            cache_dir().join("flowd").display().to_string()
        ));
        for b in ["log", "transform", "reshape"] {
            toml.push_str(&format!("[connectors.{b}]\nbundled = \"{b}\"\n\n"));
        }
        for f in ACTION_FIXTURES.iter().chain(&["trigger-echo"]) {
            toml.push_str(&format!(
                "[connectors.{f}]\npath = {:?}\n\n",
                fixture(f).display().to_string()
            ));
        }
        // `flaky` keeps its call counter in `state/`, granted as /state.
        std::fs::create_dir(dir.path().join("state")).unwrap();
        toml.push_str(&format!(
            "[connectors.flaky]\npath = {:?}\ngrants = {{ dirs = [{{ host = \"state\", guest = \"/state\", writable = true }}] }}\n\n",
            fixture("flaky").display().to_string()
        ));
        std::fs::write(dir.path().join("flowd.toml"), toml).unwrap();
        std::fs::create_dir(dir.path().join("flows")).unwrap();
        Setup { dir, database: None }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn config(&self) -> PathBuf {
        self.path("flowd.toml")
    }

    /// Writes `flows/<name>.toml` and returns its path.
    pub fn flow(&self, name: &str, toml: &str) -> PathBuf {
        let p = self.path(&format!("flows/{name}.toml"));
        std::fs::write(&p, toml).unwrap();
        p
    }

    /// `flowd run --json` of a flow with `input`; the exit code and the report.
    pub fn run(&self, flow: &Path, input: Option<&Value>) -> (i32, Value) {
        let (code, report, _) = self.run_report(flowd(), flow, input);
        (code, report)
    }

    /// [`Setup::run`] through `cmd` (a `flowd` command: [`flowd`], [`flowd_under`]); the
    /// exit code, the report and what it printed on stderr.
    pub fn run_report(&self, cmd: Command, flow: &Path, input: Option<&Value>) -> (i32, Value, String) {
        let input = input.map(Value::to_string);
        report_of(self.run_raw_with(cmd, flow, input.as_deref(), &["--json"]))
    }

    /// [`Setup::run`] with the input given as text, exactly as the connector is to see it
    /// (repeated keys, escapes and number forms kept).
    pub fn run_text(&self, flow: &Path, input: &str) -> (i32, Value) {
        let (code, report, _) = report_of(self.run_raw_with(flowd(), flow, Some(input), &["--json"]));
        (code, report)
    }

    /// What `flowd run` printed on stderr for `flow`, which it must refuse to run.
    pub fn refused(&self, flow: &Path) -> String {
        let out = self.run_raw(flow, None, &[]);
        assert_ne!(out.status.code(), Some(0), "{} ran", flow.display());
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    pub fn run_raw(&self, flow: &Path, input: Option<&Value>, extra: &[&str]) -> Output {
        let input = input.map(Value::to_string);
        self.run_raw_with(flowd(), flow, input.as_deref(), extra)
    }

    fn run_raw_with(&self, mut cmd: Command, flow: &Path, input: Option<&str>, extra: &[&str]) -> Output {
        cmd.arg("run")
            .arg(flow)
            .arg("--config")
            .arg(self.config())
            .args(extra)
            .envs(self.env());
        if let Some(input) = input {
            let p = self.path("input.json");
            std::fs::write(&p, input).unwrap();
            cmd.arg("--input").arg(p);
        }
        cmd.output().expect("running flowd")
    }
}

/// `flowd run --json`'s exit code, its report and what it printed on stderr.
fn report_of(out: Output) -> (i32, Value, String) {
    let code = out.status.code().expect("flowd exited normally");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "flowd run printed no JSON report ({e}); exit {code}\nstdout:\n{stdout}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (code, report, String::from_utf8_lossy(&out.stderr).into_owned())
}

/// The flags that make an offline command (or `flowd run`, when `args` are its) read and
/// write the setup's store: `--data-dir <setup>/data`, or on PostgreSQL the store of its
/// config (`--config`, unless `args` give it already; `run --record`).
pub fn store_flags(setup: &Setup, args: &[&str]) -> Vec<std::ffi::OsString> {
    match (&setup.database, args.first()) {
        (None, _) => vec!["--data-dir".into(), setup.path("data").into()],
        (Some(_), Some(&"run")) => vec!["--record".into()],
        (Some(_), _) if args.contains(&"--config") => Vec::new(),
        (Some(_), _) => vec!["--config".into(), setup.config().into()],
    }
}

/// Runs `flowd` with `args` on the setup's store (see [`store_flags`]): exit code,
/// stdout, stderr.
pub fn data_cli(setup: &Setup, args: &[&str]) -> (i32, String, String) {
    let out = flowd()
        .args(args)
        .args(store_flags(setup, args))
        .envs(setup.env())
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// `flowd run --json` of a flow recorded in the setup's store: the exit code and the report.
pub fn run_recorded(setup: &Setup, flow: &Path, input: &Value) -> (i32, Value) {
    let flags = store_flags(setup, &["run"]);
    let mut extra = vec!["--json"];
    extra.extend(flags.iter().map(|f| f.to_str().unwrap()));
    let out = setup.run_raw(flow, Some(input), &extra);
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap(), report)
}

/// Starts `flowd run` of a flow recorded in the setup's store without waiting for it (to
/// kill it mid-way).
pub fn spawn_recorded(setup: &Setup, flow: &Path, input: &Value) -> std::process::Child {
    let p = setup.path("input.json");
    std::fs::write(&p, input.to_string()).unwrap();
    flowd()
        .arg("run")
        .arg(flow)
        .arg("--config")
        .arg(setup.config())
        .args(store_flags(setup, &["run"]))
        .envs(setup.env())
        .arg("--input")
        .arg(p)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("starting flowd run")
}

/// Runs `f` on the setup's store (its redb data directory, or its database), opened for
/// the call, on a runtime of its own.
pub fn with_store<T: Send + 'static>(
    setup: &Setup,
    f: impl AsyncFnOnce(&dyn flowd::store::Store) -> T + Send + 'static,
) -> T {
    let (url, dir) = (setup.database.as_ref().map(|db| db.url.clone()), setup.path("data"));
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let store: Box<dyn flowd::store::Store> = match url {
                Some(url) => Box::new(flowd::store::PostgresStore::open(&url, 1 << 30, 2).await.unwrap()),
                None => Box::new(flowd::store::RedbStore::open(&dir, 1 << 30).unwrap()),
            };
            f(store.as_ref()).await
        })
    })
    .join()
    .unwrap()
}

/// Writes `writes` into the setup's store (no daemon may hold a redb one).
pub fn seed(setup: &Setup, writes: Vec<flowd::store::Write>) {
    with_store(setup, async move |store| store.write(writes).await.unwrap());
}

/// `flowd executions show --json` of a job, offline on the setup's store.
pub fn show(setup: &Setup, job: &str) -> Value {
    let (code, out, err) = data_cli(setup, &["executions", "show", job, "--json"]);
    assert_eq!(code, 0, "{err}");
    serde_json::from_str(&out).unwrap()
}

/// The recorded executions (of one flow, if given), oldest first, from `flowd executions
/// list` offline on the setup's store.
pub fn list_executions(setup: &Setup, flow: Option<&str>) -> Vec<Value> {
    let mut args = vec!["executions", "list", "--json", "--limit", "100000"];
    if let Some(f) = flow {
        args.extend(["--flow", f]);
    }
    let (code, out, err) = data_cli(setup, &args);
    assert_eq!(code, 0, "{err}");
    let page: Value = serde_json::from_str(&out).unwrap();
    let mut all: Vec<Value> = serde_json::from_value(page["executions"].clone()).unwrap();
    all.reverse();
    all
}

/// An RFC 3339 time as seconds since the epoch.
pub fn secs(v: &Value) -> f64 {
    let text = v.as_str().unwrap_or_else(|| panic!("not a time: {v}"));
    chrono::DateTime::parse_from_rfc3339(text).unwrap().timestamp_millis() as f64 / 1000.0
}

/// A one-step flow calling `connector` with `config` (TOML inline table) and step keys.
pub fn one_step(connector: &str, config: &str, step_keys: &str) -> String {
    format!(
        "[flow]\nname = \"t\"\n\n[trigger.manual]\n\n[[steps]]\nname = \"only\"\nconnector = \"{connector}\"\nconfig = {config}\n{step_keys}\n"
    )
}

pub fn step<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["steps"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == name))
        .unwrap_or_else(|| panic!("no step {name} in {report:#}"))
}

/// How much of a daemon's log a failing test shows (its end).
const LOG_SHOWN: usize = 16 * 1024;

/// A running `flowd serve`, killed when dropped.
pub struct Daemon {
    pub child: std::process::Child,
    pub addr: std::net::SocketAddr,
    /// The admin API's address.
    pub admin: std::net::SocketAddr,
    /// Every line the daemon wrote to stderr so far is read by a thread into this.
    pub log: std::sync::Arc<std::sync::Mutex<String>>,
    /// What `flowd serve` printed on stdout up to the trigger listener's line.
    pub banner: String,
}

impl Daemon {
    /// Starts the daemon on `setup`'s config and waits until it listens.
    pub fn start(setup: &Setup) -> Daemon {
        Daemon::start_with_env(setup, &[])
    }

    /// Starts the daemon; one whose database did not answer in time (a stall of the
    /// machine, see [`PATIENCE`]) is started again, until then.
    pub fn start_with_env(setup: &Setup, env: &[(&str, &str)]) -> Daemon {
        let end = std::time::Instant::now() + PATIENCE;
        loop {
            let mut cmd = flowd();
            cmd.arg("serve").arg("--config").arg(setup.config());
            cmd.envs(setup.env());
            for (k, v) in env {
                cmd.env(k, v);
            }
            match Daemon::try_spawn(cmd) {
                Ok(d) => return d,
                Err(log)
                    if log.contains("no connection to the database in time") && std::time::Instant::now() < end =>
                {
                    continue;
                }
                Err(log) => panic!("flowd serve did not start:\n{log}"),
            }
        }
    }

    /// Starts the daemon with its open-file limit (`RLIMIT_NOFILE`) lowered to `nofile`.
    pub fn start_limited(setup: &Setup, nofile: u32) -> Daemon {
        let mut cmd = flowd_under(&format!("-n {nofile}"));
        cmd.args(["serve", "--config"]).arg(setup.config()).envs(setup.env());
        Daemon::spawn(cmd)
    }

    /// Starts the daemon with files it writes limited to `bytes` (`RLIMIT_FSIZE`), as a
    /// full disk would: a write past it fails (EFBIG; SIGXFSZ is ignored).
    pub fn start_file_limited(setup: &Setup, bytes: u64, env: &[(&str, &str)]) -> Daemon {
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(format!("trap '' XFSZ; ulimit -f {} && exec \"$0\" \"$@\"", bytes / 512))
            .arg(env!("CARGO_BIN_EXE_flowd"))
            .env("XDG_CACHE_HOME", cache_dir())
            .stdin(Stdio::null());
        cmd.args(["serve", "--config"]).arg(setup.config()).envs(setup.env());
        cmd.envs(env.iter().copied());
        Daemon::spawn(cmd)
    }

    /// Runs `cmd` (a `flowd serve`) and waits until it listens.
    fn spawn(cmd: Command) -> Daemon {
        Daemon::try_spawn(cmd).unwrap_or_else(|log| panic!("flowd serve did not start:\n{log}"))
    }

    /// [`Daemon::spawn`], or what the daemon logged when it exited instead.
    fn try_spawn(mut cmd: Command) -> Result<Daemon, String> {
        use std::io::BufRead;
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("starting flowd serve");
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        let reader = std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut l = sink.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let stdout = child.stdout.take().unwrap();
        let mut lines = std::io::BufReader::new(stdout).lines();
        let mut admin = None;
        let mut banner = String::new();
        let addr = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    banner.push_str(&line);
                    banner.push('\n');
                    if let Some(a) = line.strip_prefix("flowd: admin listener on http://") {
                        admin = Some(a.parse().unwrap());
                    }
                    if let Some(a) = line.strip_prefix("flowd: trigger listener on http://") {
                        break a.parse().unwrap();
                    }
                }
                _ => {
                    let _ = child.wait();
                    let _ = reader.join();
                    return Err(log.lock().unwrap().clone());
                }
            }
        };
        std::thread::spawn(move || for _ in lines {});
        let admin = admin.expect("the admin listener is announced before the trigger one");
        Ok(Daemon {
            child,
            addr,
            admin,
            log,
            banner,
        })
    }

    /// Sends a signal (by name, e.g. "TERM") to the daemon.
    pub fn signal(&self, name: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(ok.success());
    }

    /// SIGTERM, then the exit code must be 0 within 30 s.
    pub fn stop(mut self) {
        self.signal("TERM");
        assert_eq!(self.wait(30), Some(0), "{}", self.log.lock().unwrap());
    }

    /// Waits for the daemon to exit, at most `secs`; its exit code.
    pub fn wait(&mut self, secs: u64) -> Option<i32> {
        let end = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        while std::time::Instant::now() < end {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        None
    }

    /// Waits until `n` executions of `flow` have ended (any final status, rejections
    /// too) by the daemon's `/metrics`, at most `secs`; panics with the log otherwise.
    /// Tests wait for this rather than sleep for a guessed time, which a busy machine
    /// overruns.
    pub fn wait_ended(&self, flow: &str, n: u64, secs: u64) {
        let series = format!("flowd_executions_total{{flow=\"{flow}\",");
        let end = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        loop {
            let r = self.admin("GET", "/metrics", Some(&self.viewer_token()), b"");
            assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
            let seen: u64 = String::from_utf8_lossy(&r.body)
                .lines()
                .filter(|l| l.starts_with(&series))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
                .sum();
            if seen >= n {
                return;
            }
            assert!(
                std::time::Instant::now() < end,
                "{seen} of {n} executions of {flow} ended within {secs}s:\n{}",
                self.log.lock().unwrap()
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// The local operator token the daemon printed on the line after announcing it (a
    /// loopback config without tokens), if it did.
    pub fn local_token(&self) -> Option<String> {
        self.banner
            .lines()
            .skip_while(|l| !l.contains("local operator token"))
            .nth(1)
            .and_then(|l| l.strip_prefix("flowd:"))
            .map(|t| t.trim().to_string())
    }

    /// A token that may read the admin API: the local operator token, else the viewer
    /// token of [`admin::TOKENS`].
    pub fn viewer_token(&self) -> String {
        self.local_token().unwrap_or_else(|| admin::VIEWER.to_string())
    }

    /// The end of the daemon's log so far, at most `max` bytes, from a line's start.
    pub fn log_tail(&self, max: usize) -> String {
        let log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        let from = (log.len().saturating_sub(max)..)
            .find(|i| log.is_char_boundary(*i))
            .unwrap_or(0);
        let tail = &log[from..];
        match (from, tail.find('\n')) {
            (1.., Some(i)) => tail[i + 1..].to_string(),
            _ => tail.to_string(),
        }
    }

    /// Waits until a line of the daemon's log passes `matches`, at most `secs`; panics
    /// with `what` and the log otherwise. The log is read by another thread, so a line
    /// written before an answer may arrive after it.
    pub fn wait_log_line(&self, what: &str, secs: u64, matches: impl Fn(&str) -> bool) {
        let end = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        loop {
            let log = self.log.lock().unwrap().clone();
            if log.lines().any(&matches) {
                return;
            }
            assert!(
                std::time::Instant::now() < end,
                "no log line {what} within {secs}s:\n{log}"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    pub fn request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> HttpResponse {
        http_request(self.addr, method, path, headers, body)
    }

    /// A request to the admin API, with `token` as the bearer token when given.
    pub fn admin(&self, method: &str, path: &str, token: Option<&str>, body: &[u8]) -> HttpResponse {
        let auth = token.map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", a.as_str())).collect();
        try_http_request(self.admin, method, path, &headers, body).unwrap_or_else(|e| {
            // What the daemon was doing: a request left unanswered is otherwise a mystery.
            let log = self.log.lock().unwrap_or_else(|p| p.into_inner()).clone();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            panic!(
                "{method} {path} to {}: {e}; the daemon's last log lines:\n{}",
                self.admin,
                tail.join("\n")
            )
        })
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // A failing test shows what its daemons said (the end of it, where a stall is).
        if std::thread::panicking() {
            let tail = self.log_tail(LOG_SHOWN);
            eprintln!(
                "--- the end of the log of the daemon at {} ---\n{tail}--- end of log ---",
                self.addr
            );
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request over a fresh connection (`Connection: close`), read to the end.
pub fn http_request(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpResponse {
    try_http_request(addr, method, path, headers, body).unwrap_or_else(|e| panic!("{method} {path} to {addr}: {e}"))
}

/// [`http_request`] for a peer that may die mid-request: no answer is an error.
pub fn try_http_request(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<HttpResponse, String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).map_err(|e| format!("connecting: {e}"))?;
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).map_err(|e| format!("sending: {e}"))?;
    let _ = s.write_all(body);
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("no HTTP response: {}", String::from_utf8_lossy(&raw)))?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no status line: {head}"))?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut r = HttpResponse {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    };
    if r.header("transfer-encoding") == Some("chunked") {
        r.body = dechunk(&r.body).0;
    }
    Ok(r)
}

/// The data of the complete chunks at the start of a chunked body, and whether the
/// last (zero-length) chunk was among them.
pub fn dechunk(mut raw: &[u8]) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    loop {
        let Some(eol) = raw.windows(2).position(|w| w == b"\r\n") else {
            return (out, false);
        };
        let size = usize::from_str_radix(std::str::from_utf8(&raw[..eol]).unwrap().trim(), 16).unwrap();
        if size == 0 {
            return (out, true);
        }
        let start = eol + 2;
        if raw.len() < start + size + 2 {
            return (out, false);
        }
        out.extend_from_slice(&raw[start..start + size]);
        raw = &raw[start + size + 2..];
    }
}

/// `data` as a sender with `Content-Encoding: gzip` sends it.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    encoded(flate2::read::GzEncoder::new(data, flate2::Compression::default()))
}

/// `data` as `Content-Encoding: deflate` means it (zlib-wrapped, RFC 9110).
pub fn zlib(data: &[u8]) -> Vec<u8> {
    encoded(flate2::read::ZlibEncoder::new(data, flate2::Compression::default()))
}

/// `data` as raw deflate, which some senders label `deflate`.
pub fn raw_deflate(data: &[u8]) -> Vec<u8> {
    encoded(flate2::read::DeflateEncoder::new(data, flate2::Compression::default()))
}

fn encoded(mut encoder: impl std::io::Read) -> Vec<u8> {
    let mut out = Vec::new();
    encoder.read_to_end(&mut out).unwrap();
    out
}
