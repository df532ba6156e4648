//! Broken config files, each paired with the exact error text `flowd validate` must
//! print for it (`<name>.err` beside `<name>.toml` under tests/fixtures/config/).
//! Set FLOWD_BLESS=1 to write the `.err` files from the current output instead.

mod support;

use std::path::{Path, PathBuf};

fn config_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/config")
}

/// Runs `flowd validate` in the fixtures directory so paths in messages are relative.
fn validate(args: &[&str]) -> (i32, String) {
    let out = support::flowd()
        .current_dir(config_dir())
        .arg("validate")
        .args(args)
        .output()
        .unwrap();
    (out.status.code().unwrap(), String::from_utf8(out.stderr).unwrap())
}

fn check_dir(sub: &str, args_for: impl Fn(&str) -> Vec<String>) -> usize {
    let bless = std::env::var_os("FLOWD_BLESS").is_some();
    let mut files: Vec<PathBuf> = std::fs::read_dir(config_dir().join(sub))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    let mut failures = Vec::new();
    for file in &files {
        let rel = format!("{sub}/{}", file.file_name().unwrap().to_str().unwrap());
        let args = args_for(&rel);
        let (code, stderr) = validate(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(code, 1, "{rel} must fail validation; stderr:\n{stderr}");
        let expected_path = file.with_extension("err");
        if bless {
            std::fs::write(&expected_path, &stderr).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path)
            .unwrap_or_else(|_| panic!("{} is missing", expected_path.display()));
        if stderr != expected {
            failures.push(format!("{rel}\n--- expected\n{expected}--- got\n{stderr}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} files differ:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
    files.len()
}

#[test]
fn broken_flows_give_exact_located_errors() {
    let n = check_dir("flows-bad", |rel| {
        vec!["--config".into(), "flowd.toml".into(), rel.into()]
    });
    assert!(n >= 15, "only {n} broken flow files");
}

#[test]
fn broken_daemon_configs_give_exact_located_errors() {
    let n = check_dir("daemon-bad", |rel| vec!["--config".into(), rel.into()]);
    assert!(n >= 5, "only {n} broken daemon configs");
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
fn a_flow_name_used_twice_is_reported_naming_both_files() {
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
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let expected = format!(
        "error: {}: flow name \"order-intake\" is already used by config/flows/order-intake.toml\n1 error\n3 of 4 flows valid\n",
        copy.display()
    );
    assert_eq!(stderr, expected);
}
