//! Broken config files, each paired with the exact text `flowd validate` must print for
//! it (`<case>.err` beside `<case>.toml`, or beside a `<case>/` directory of flow files,
//! under tests/fixtures/config/), and `flowd serve` must print the same text with the same
//! exit code: the two load through one path and can never disagree.
//!
//! Daemon configs (`daemon-bad/`) are checked where they are. Flows (`flows-bad/`) are
//! copied into a fresh directory as `flows/<case>.toml` (or the files of `<case>/`) beside
//! a `flowd.toml` made from `flowd.toml` here, and checked from there.
//! Set FLOWD_BLESS=1 to write the `.err` files from the current output instead.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn config_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/config")
}

/// Variables the fixtures name: tokens of every quality, one value shared by two.
const ENV: &[(&str, &str)] = &[
    ("FLOWD_FIXTURE_TOKEN_VIEWER", "viewer-token-0123456789"),
    ("FLOWD_FIXTURE_TOKEN_OPERATOR", "operator-token-0123456789"),
    ("FLOWD_FIXTURE_TOKEN_SAME", "viewer-token-0123456789"),
    ("FLOWD_FIXTURE_TOKEN_SPACES", "                "),
    ("FLOWD_FIXTURE_TOKEN_PADDED", "     short-token      "),
];

fn command(dir: &Path, args: &[&str]) -> Command {
    let mut c = support::flowd();
    c.current_dir(dir).args(args).stdin(Stdio::null());
    for (k, v) in ENV {
        c.env(k, v);
    }
    c
}

/// Runs a command that must end by itself (a config it accepts would make `serve` run
/// on: that fails the test, after a deadline, instead of hanging it).
fn finish(mut c: Command) -> (i32, String) {
    let mut child = c.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
            return (status.code().unwrap_or(-1), stderr);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{c:?} did not end: it accepted the config");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Checks one case: `validate` and `serve` in `dir` with `config`, against `expected_path`.
fn check(dir: &Path, config: &str, rel: &str, expected_path: &Path, failures: &mut Vec<String>) {
    let (code, stderr) = finish(command(dir, &["validate", "--config", config]));
    let (serve_code, serve_stderr) = finish(command(dir, &["serve", "--config", config]));
    if std::env::var_os("FLOWD_BLESS").is_some() {
        std::fs::write(expected_path, &stderr).unwrap();
    }
    let expected =
        std::fs::read_to_string(expected_path).unwrap_or_else(|_| panic!("{} is missing", expected_path.display()));
    if code != 2 {
        failures.push(format!("{rel}: validate exited {code}, not 2\n{stderr}"));
    }
    if stderr != expected {
        failures.push(format!("{rel}: validate\n--- expected\n{expected}--- got\n{stderr}"));
    }
    if serve_code != code || serve_stderr != stderr {
        failures.push(format!(
            "{rel}: serve disagrees with validate (exit {serve_code} vs {code})\n--- serve\n{serve_stderr}--- validate\n{stderr}"
        ));
    }
}

fn cases(sub: &str) -> Vec<PathBuf> {
    let mut cases: Vec<PathBuf> = std::fs::read_dir(config_dir().join(sub))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir() || p.extension().is_some_and(|e| e == "toml"))
        .collect();
    cases.sort();
    cases
}

fn report(failures: Vec<String>, n: usize) {
    assert!(
        failures.is_empty(),
        "{} problems over {n} cases:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn broken_daemon_configs_give_exact_errors_in_validate_and_serve() {
    let cases = cases("daemon-bad");
    let mut failures = Vec::new();
    for case in &cases {
        let rel = format!("daemon-bad/{}", case.file_name().unwrap().to_str().unwrap());
        check(&config_dir(), &rel, &rel, &case.with_extension("err"), &mut failures);
    }
    assert!(cases.len() >= 15, "only {} broken daemon configs", cases.len());
    report(failures, cases.len());
}

/// A daemon config for flow fixtures: the one here, reading `flows/`, on free ports.
fn flow_setup(case: &Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let base = std::fs::read_to_string(config_dir().join("flowd.toml")).unwrap();
    std::fs::write(
        dir.path().join("flowd.toml"),
        format!(
            "flows = \"flows\"\n{base}\n[server]\nlisten = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\ndata_dir = \"data\"\n"
        ),
    )
    .unwrap();
    let flows = dir.path().join("flows");
    std::fs::create_dir(&flows).unwrap();
    if case.is_dir() {
        for f in std::fs::read_dir(case).unwrap() {
            let f = f.unwrap().path();
            std::fs::copy(&f, flows.join(f.file_name().unwrap())).unwrap();
        }
    } else {
        std::fs::copy(case, flows.join(case.file_name().unwrap())).unwrap();
    }
    dir
}

#[test]
fn broken_flows_give_exact_errors_in_validate_and_serve() {
    let cases = cases("flows-bad");
    let mut failures = Vec::new();
    for case in &cases {
        let name = case.file_name().unwrap().to_str().unwrap();
        let dir = flow_setup(case);
        let expected = config_dir()
            .join("flows-bad")
            .join(Path::new(name).with_extension("err"));
        check(
            dir.path(),
            "flowd.toml",
            &format!("flows-bad/{name}"),
            &expected,
            &mut failures,
        );
    }
    assert!(cases.len() >= 35, "only {} broken flow cases", cases.len());
    report(failures, cases.len());
}

#[test]
fn the_bundled_example_config_is_valid() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = support::flowd()
        .current_dir(root)
        .args(["validate", "--config", "config/flowd.toml"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(stdout.trim(), "ok: config/flowd.toml and 3 flows are valid");
}

#[test]
fn a_flow_file_given_on_the_command_line_is_checked_with_the_rest() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("copy.toml");
    std::fs::copy(root.join("config/flows/order-intake.toml"), &copy).unwrap();
    let out = support::flowd()
        .current_dir(root)
        .args(["validate", "--config", "config/flowd.toml"])
        .arg(&copy)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let copy = copy.display();
    let expected = format!(
        "error: flow name \"order-intake\" is already used by config/flows/order-intake.toml
 --> {copy}:4:8
  |
4 | name = \"order-intake\"
  |        ^^^^^^^^^^^^^^
  |
 ::: config/flows/order-intake.toml:4:8
  |
4 | name = \"order-intake\"
  |        -------------- first used here
  |
  = help: flow names are unique: rename one (`name` in [flow], else the file name)

error: could not load the config: 1 error (3 of 4 flows valid)
"
    );
    assert_eq!(stderr, expected);
}

#[test]
fn links_that_cannot_be_followed_are_reported_not_skipped() {
    let dir = flow_setup(&config_dir().join("flows-bad/no-steps.toml"));
    std::fs::remove_file(dir.path().join("flows/no-steps.toml")).unwrap();
    let flows = dir.path().join("flows");
    std::os::unix::fs::symlink("missing.toml", flows.join("dangling.toml")).unwrap();
    std::os::unix::fs::symlink("loop.toml", flows.join("loop.toml")).unwrap();
    let (code, stderr) = finish(command(dir.path(), &["validate", "--config", "flowd.toml"]));
    assert_eq!(code, 2, "{stderr}");
    assert_eq!(
        stderr,
        "error: flows/dangling.toml: cannot read file: No such file or directory (os error 2)

error: flows/loop.toml: cannot read file: Too many levels of symbolic links (os error 40)

error: could not load the config: 2 errors
"
    );
}

#[test]
fn json_messages_carry_places_help_and_the_rendered_text() {
    let dir = flow_setup(&config_dir().join("flows-bad/connector-typo.toml"));
    let out = command(
        dir.path(),
        &["validate", "--config", "flowd.toml", "--message-format", "json"],
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    let e = &lines[0];
    assert_eq!(e["reason"], "config-error");
    assert_eq!(e["level"], "error");
    assert_eq!(
        e["location"],
        serde_json::json!({ "file": "flows/connector-typo.toml", "line": 9, "column": 13, "width": 11, "label": null })
    );
    assert_eq!(e["help"], "did you mean `transform`?");
    assert!(
        e["rendered"]
            .as_str()
            .unwrap()
            .starts_with("error: unknown connector \"transfrom\"")
    );
    assert_eq!(
        lines[1],
        serde_json::json!({ "reason": "summary", "errors": 1, "checked": "0 of 1 flow valid" })
    );
}

#[test]
fn run_needs_no_admin_token_variables() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("flowd.toml"),
        "[[server.tokens]]\nname = \"dash\"\nrole = \"viewer\"\nenv = \"FLOWD_TEST_TOKEN_NEVER_SET_3\"\n\n[connectors.log]\nbundled = \"log\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("hello.toml"),
        "[trigger.manual]\n[[steps]]\nname = \"say\"\nconnector = \"log\"\nconfig = { message = \"hi\" }\n",
    )
    .unwrap();
    let out = support::flowd()
        .current_dir(dir.path())
        .args(["run", "hello.toml", "--config", "flowd.toml"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // validate and serve still refuse it.
    let (code, stderr) = finish(command(dir.path(), &["validate", "--config", "flowd.toml"]));
    assert_eq!(code, 2);
    assert!(stderr.contains("$FLOWD_TEST_TOKEN_NEVER_SET_3 is not set"), "{stderr}");
}
