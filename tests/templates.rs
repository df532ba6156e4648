//! `flowd plugin new` for each language and world: the project builds with the first
//! line of its README (less the install step: the toolchains `examples/connectors/build.sh`
//! installed are reused), `flowd plugin check` accepts it, and the README's second line
//! runs its example flow. `flowd plugin wit` writes the WIT this binary serves.

mod support;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where `examples/connectors/build.sh` installed the JavaScript and Python toolchains.
fn built_dir() -> PathBuf {
    match std::env::var_os("FLOWD_CONNECTORS_DIR") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/connectors"),
    }
}

/// The command between the backticks of a README line starting with `label`.
fn command<'a>(readme: &'a str, label: &str) -> &'a str {
    let line = readme
        .lines()
        .find(|l| l.starts_with(label))
        .unwrap_or_else(|| panic!("no {label} line in\n{readme}"));
    line.split('`').nth(1).unwrap_or_else(|| panic!("no command in {line}"))
}

fn template(lang: &str, world: &str) {
    let name = format!("hello-{lang}-{world}");
    let tmp = tempfile::tempdir().unwrap();
    let out = support::flowd()
        .args(["plugin", "new", "--lang", lang, "--world", world, "--into"])
        .arg(tmp.path())
        .arg(&name)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let project = tmp.path().join(&name);
    let readme = std::fs::read_to_string(project.join("README.md")).unwrap();
    assert!(
        readme.starts_with("Build: `"),
        "the README's first line builds it:\n{readme}"
    );

    // The README's build line is `INSTALL && BUILD`; the install step is left out.
    let (install, build) = command(&readme, "Build:").split_once(" && ").unwrap();
    let mut sh = Command::new("sh");
    sh.arg("-c").arg(build).current_dir(&project);
    match lang {
        "js" => {
            assert_eq!(install, "npm ci");
            let modules = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/connectors/js/node_modules");
            assert!(modules.is_dir(), "run examples/connectors/build.sh first");
            std::os::unix::fs::symlink(modules, project.join("node_modules")).unwrap();
        }
        "python" => {
            assert_eq!(install, "pip install -r requirements.txt");
            let venv = built_dir().join("venv/bin");
            assert!(venv.is_dir(), "run examples/connectors/build.sh first");
            let path = std::env::var("PATH").unwrap_or_default();
            sh.env("PATH", format!("{}:{path}", venv.display()));
        }
        _ => {
            assert_eq!(install, "rustup target add wasm32-wasip2");
            // Both Rust projects share one target directory, so the dependencies compile once.
            let shared = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("template-target");
            std::fs::create_dir_all(&shared).unwrap();
            std::os::unix::fs::symlink(&shared, project.join("target")).unwrap();
            sh.env("CARGO_TARGET_DIR", &shared);
            for var in [
                "RUSTFLAGS",
                "CARGO_ENCODED_RUSTFLAGS",
                "RUSTC_WRAPPER",
                "RUSTC_WORKSPACE_WRAPPER",
            ] {
                sh.env_remove(var);
            }
        }
    }
    let built = sh.output().unwrap();
    assert!(
        built.status.success(),
        "{build}:\n{}{}",
        String::from_utf8_lossy(&built.stdout),
        String::from_utf8_lossy(&built.stderr)
    );

    let run = command(&readme, "Run:");
    let args: Vec<&str> = run.strip_prefix("flowd ").unwrap().split_whitespace().collect();
    let wasm = args
        .iter()
        .find_map(|a| a.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no --connector {name}=… in {run}"));
    let check = run_in(&project, &["plugin", "check", wasm]);
    assert_eq!(check.0, 0, "{}{}", check.1, check.2);
    assert!(
        check
            .1
            .contains(&format!("world:    flowd:connector/{world}-connector")),
        "{}",
        check.1
    );

    let mut with_json = args.clone();
    with_json.push("--json");
    let (code, stdout, stderr) = run_in(&project, &with_json);
    assert_eq!(code, 0, "{run}:\n{stdout}{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    let greeted = match world {
        "action" => &support::step(&report, "greet")["output"]["message"],
        _ => &report["trigger"]["payload"]["message"],
    };
    assert_eq!(greeted, "Hello, ADA!", "{report:#}");
}

fn run_in(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = support::flowd().args(args).current_dir(dir).output().unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn rust_action() {
    template("rust", "action");
}

#[test]
fn rust_trigger() {
    template("rust", "trigger");
}

#[test]
fn js_action() {
    template("js", "action");
}

#[test]
fn js_trigger() {
    template("js", "trigger");
}

#[test]
fn python_action() {
    template("python", "action");
}

#[test]
fn python_trigger() {
    template("python", "trigger");
}

#[test]
fn plugin_wit_writes_the_wit_this_binary_serves() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("deps/flowd");
    let (code, out, err) = run_in(tmp.path(), &["plugin", "wit", dir.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("wit");
    let mut served = 0;
    for entry in std::fs::read_dir(&repo).unwrap() {
        let source = entry.unwrap().path();
        let written = dir.join(source.file_name().unwrap());
        assert_eq!(
            std::fs::read_to_string(&written).unwrap_or_default(),
            std::fs::read_to_string(&source).unwrap(),
            "{}",
            written.display()
        );
        served += 1;
    }
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), served);
}

#[test]
fn a_project_is_not_written_over_an_existing_one() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("taken")).unwrap();
    std::fs::write(tmp.path().join("taken/keep.txt"), "mine").unwrap();
    let (code, _, err) = run_in(tmp.path(), &["plugin", "new", "--lang", "rust", "taken"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("exists and is not empty"), "{err}");
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("taken/keep.txt")).unwrap(),
        "mine"
    );
    let (code, _, err) = run_in(tmp.path(), &["plugin", "new", "--lang", "js", "no/slashes"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("is not a connector name"), "{err}");
}
