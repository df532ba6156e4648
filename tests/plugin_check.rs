//! `flowd plugin check` on real components: the world, each import and the host's
//! verdict on it, whether it can run, and the compiled-component cache across starts.

mod support;

use std::path::Path;
use std::process::Output;

fn check(file: &Path, cache: Option<&Path>) -> (i32, String) {
    check_with(file, cache, &[])
}

fn check_with(file: &Path, cache: Option<&Path>, extra: &[&str]) -> (i32, String) {
    let mut cmd = support::flowd();
    if let Some(c) = cache {
        cmd.env("XDG_CACHE_HOME", c);
    }
    let out: Output = cmd.arg("plugin").arg("check").arg(file).args(extra).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap(), text)
}

/// The verdict printed for the first import whose name starts with `prefix`.
fn verdict<'a>(text: &'a str, prefix: &str) -> &'a str {
    text.lines()
        .map(str::trim)
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no import {prefix}… in\n{text}"))
}

#[test]
fn an_action_connector_can_run() {
    let (code, text) = check(&support::fixture("echo"), None);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("world:    flowd:connector/action-connector"), "{text}");
    assert!(
        verdict(&text, "flowd:connector/log@0.1.0").ends_with("offered"),
        "{text}"
    );
    assert!(verdict(&text, "wasi:cli/stderr@0.2").ends_with("offered"), "{text}");
    assert!(text.contains("can run:  yes"), "{text}");
}

#[test]
fn a_trigger_connector_is_recognised() {
    let (code, text) = check(&support::fixture("trigger-echo"), None);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("world:    flowd:connector/trigger-connector"), "{text}");
}

#[test]
fn sockets_are_named_and_denied_without_a_grant() {
    let (code, text) = check(&support::fixture("sockets"), None);
    assert_eq!(code, 0, "linked but denied: it can still be loaded\n{text}");
    let line = verdict(&text, "wasi:sockets/tcp@0.2");
    assert!(
        line.contains("denied: no socket addresses are granted (grants.sockets)"),
        "{line}"
    );
    assert!(text.contains("imports denied until granted)"), "{text}");
}

#[test]
fn outbound_http_is_refused_without_a_grant_and_offered_with_one() {
    let (code, text) = check(&support::fixture("http"), None);
    assert_eq!(code, 1, "{text}");
    let line = verdict(&text, "wasi:http/outgoing-handler@0.2");
    assert!(
        line.contains("not offered: outbound HTTP is not granted: list the origins it may call in grants.http.allow"),
        "{line}"
    );
    let can_run = text.lines().find(|l| l.starts_with("can run:")).unwrap();
    assert!(
        can_run.starts_with("can run:  no: imports what this host does not offer: wasi:http/"),
        "{can_run}"
    );

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("flowd.toml");
    std::fs::write(
        &config,
        "[connectors.api]\nbundled = \"http\"\ngrants.http = { allow = [\"api.example.com\", \"http://127.0.0.1:8080\"] }\n",
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let (code, text) = check_with(
        &support::fixture("http"),
        None,
        &["--config", config, "--grants-of", "api"],
    );
    assert_eq!(code, 0, "{text}");
    let line = verdict(&text, "wasi:http/outgoing-handler@0.2");
    assert!(
        line.ends_with("granted (https://api.example.com:443, http://127.0.0.1:8080)"),
        "{line}"
    );
    assert!(text.contains("can run:  yes"), "{text}");
    let (code, text) = check_with(
        &support::fixture("http"),
        None,
        &["--config", config, "--grants-of", "nope"],
    );
    assert_eq!(code, 2, "{text}");
    assert!(
        text.contains("--grants-of nope:") && text.contains("names no connector \"nope\""),
        "{text}"
    );
}

#[test]
fn an_unknown_import_is_named() {
    let (code, text) = check(&support::fixture("unknown-import"), None);
    assert_eq!(code, 1, "{text}");
    assert!(
        verdict(&text, "acme:vault/secrets@1.0.0").contains("not offered: this host does not provide it"),
        "{text}"
    );
}

#[test]
fn malformed_components_are_refused_with_a_reason() {
    let empty = tempfile::tempdir().unwrap();
    let (code, text) = check(&support::fixture("core-module"), Some(empty.path()));
    assert_eq!(code, 1);
    let cached = std::fs::read_dir(empty.path().join("flowd")).map_or(0, |d| d.count());
    assert_eq!(cached, 0, "a core module is refused before anything is compiled");
    assert!(
        text.contains(
            "can run:  no: a core WebAssembly module, not a component: make it one with `wasm-tools component new`"
        ),
        "{text}"
    );

    let (code, text) = check(&support::fixture("no-exports"), None);
    assert_eq!(code, 1);
    assert!(text.contains("implements neither flowd world"), "{text}");

    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, b"\0asm\x0d\0\x01\0garbage").unwrap();
    let (code, text) = check(&junk, Some(dir.path()));
    assert_eq!(code, 1);
    assert!(
        text.contains("can run:  no: not a valid WebAssembly component"),
        "{text}"
    );

    // A file that is not WebAssembly at all is told so in one line, with what it looks like.
    for (bytes, says) in [
        (&b""[..], "can run:  no: not WebAssembly: the file is empty\n"),
        (
            b"hello\n",
            "can run:  no: not WebAssembly: it starts with text, \"hello\", where a component starts with \\0asm\n",
        ),
        (
            b"(component)",
            "can run:  no: not WebAssembly: it starts with text, \"(component)\", where a component starts with \\0asm (WebAssembly text: turn it into a binary with `wasm-tools parse`)\n",
        ),
    ] {
        std::fs::write(&junk, bytes).unwrap();
        let (code, text) = check(&junk, Some(dir.path()));
        assert_eq!(code, 1, "{text}");
        assert!(text.contains(says), "{text}");
    }

    let (code, text) = check(&dir.path().join("absent.wasm"), Some(dir.path()));
    assert_eq!(code, 2);
    assert!(text.contains("cannot read"), "{text}");
}

#[test]
fn a_second_start_loads_the_compiled_component_from_the_cache() {
    let cache = tempfile::tempdir().unwrap();
    let echo = support::fixture("echo");
    let (code, first) = check(&echo, Some(cache.path()));
    assert_eq!(code, 0, "{first}");
    assert!(first.contains("compile:  compiled in"), "{first}");
    let (_, second) = check(&echo, Some(cache.path()));
    assert!(
        second.contains("compile:  loaded from the compiled-component cache in"),
        "{second}"
    );

    // A damaged cache entry is not trusted blindly: it is compiled again and replaced.
    let entries: Vec<_> = std::fs::read_dir(cache.path().join("flowd"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "cwasm"))
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    std::fs::write(&entries[0], b"not machine code").unwrap();
    let (code, third) = check(&echo, Some(cache.path()));
    assert_eq!(code, 0, "{third}");
    assert!(third.contains("compile:  compiled in"), "{third}");
    let (_, fourth) = check(&echo, Some(cache.path()));
    assert!(fourth.contains("loaded from the compiled-component cache"), "{fourth}");
}

#[test]
fn an_export_that_does_not_match_the_world_is_named_in_check_and_in_run() {
    let mismatch = "`run` does not match the world: the component has run(config: string, input: string) -> result<string, step-error>, the world run(ctx: context, config: string, input: string) -> result<string, step-error>";
    let (code, text) = check(&support::fixture("no-ctx"), None);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains(&format!("can run:  no: {mismatch}")), "{text}");

    let setup = support::Setup::new("");
    let flow = setup.flow("t", &support::one_step("stale", "{}", ""));
    let connector = format!("stale={}", support::fixture("no-ctx").display());
    let out = setup.run_raw(&flow, None, &["--connector", &connector]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(mismatch), "{stderr}");
    assert!(!stderr.contains("tuple"), "{stderr}");
}

#[test]
fn the_cache_is_capped_by_size_evicting_the_least_recently_used() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let check_in = |size: u64, name: &str| {
        let config = dir.path().join("flowd.toml");
        std::fs::write(
            &config,
            format!("cache_dir = {:?}\ncache_size = {size}\n", cache.display().to_string()),
        )
        .unwrap();
        let (code, text) = check_with(&support::fixture(name), None, &["--config", config.to_str().unwrap()]);
        assert_eq!(code, 0, "{text}");
        text
    };
    // The compiled components, name and size; the function cache beside them is counted
    // on its own below.
    let files = || -> Vec<(String, u64)> {
        let mut v: Vec<(String, u64)> = std::fs::read_dir(&cache)
            .map(|d| {
                d.flatten()
                    .filter(|e| e.path().extension().is_some_and(|x| x == "cwasm"))
                    .map(|e| {
                        (
                            e.file_name().to_string_lossy().into_owned(),
                            e.metadata().unwrap().len(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    };
    // Each fixture's compiled size, measured with room for all three.
    let mut size = std::collections::BTreeMap::new();
    for name in ["echo", "fail", "panic"] {
        let before: Vec<String> = files().into_iter().map(|(f, _)| f).collect();
        check_in(1 << 40, name);
        let (file, len) = files().into_iter().find(|(f, _)| !before.contains(f)).unwrap();
        size.insert(name, (file, len));
    }
    let (a, b, c) = (&size["echo"], &size["fail"], &size["panic"]);
    // The components' share is four fifths of `cache_size`, which is at least 1 MiB.
    let cap = (a.1 + b.1 + c.1 / 2).max((1 << 20) * 4 / 5 + 1).next_multiple_of(4);
    let cache_size = cap / 4 * 5;
    assert!(
        a.1 + b.1 <= cap && a.1 + b.1 + c.1 > cap && a.1 + c.1 <= cap,
        "the fixtures' sizes do not suit this test: {size:?}"
    );
    std::fs::remove_dir_all(&cache).unwrap();

    check_in(cache_size, "echo");
    check_in(cache_size, "fail");
    // echo is used again, so fail is now the least recently used.
    let text = check_in(cache_size, "echo");
    assert!(text.contains("loaded from the compiled-component cache"), "{text}");
    check_in(cache_size, "panic");
    let names: Vec<String> = files().into_iter().map(|(f, _)| f).collect();
    assert!(names.contains(&a.0) && names.contains(&c.0), "{names:?}");
    assert!(!names.contains(&b.0), "the least recently used stays: {names:?}");
    assert!(files().iter().map(|(_, l)| l).sum::<u64>() <= cap);
    assert!(functions(&cache).1 <= cache_size / 5, "{:?}", functions(&cache));

    // A cap smaller than the function cache evicts from it too, the oldest first. More
    // components' functions first, so that they outgrow a fifth of the smallest cap.
    for name in ["looper", "membomb", "recursion"] {
        check_in(1 << 40, name);
    }
    let (count, bytes) = functions(&cache);
    assert!(count > 0 && bytes > 0, "no compiled functions were kept");
    let small = (1u64 << 20).max(bytes * 5 / 2).next_multiple_of(5);
    assert!(
        bytes > small / 5,
        "{bytes} bytes of functions fit under a cap of {small}: nothing to evict"
    );
    std::fs::remove_file(cache.join(&c.0)).unwrap();
    check_in(small, "panic");
    let (_, after) = functions(&cache);
    assert!(
        after <= small / 5 && after < bytes,
        "{after} of {bytes} bytes kept under a cap of {small}"
    );
}

/// The function cache's entries: how many and their bytes.
fn functions(cache: &Path) -> (usize, u64) {
    std::fs::read_dir(cache.join("functions")).map_or((0, 0), |d| {
        d.flatten()
            .map(|e| e.metadata().unwrap().len())
            .fold((0, 0), |(n, b), len| (n + 1, b + len))
    })
}

/// `component` with a custom section added: another build of the same code, as a
/// toolchain makes when only a name, a date or a data byte changed.
fn rebuilt(component: &[u8], stamp: &str) -> Vec<u8> {
    let name = b"flowd-test-build";
    let mut body = vec![name.len() as u8];
    body.extend_from_slice(name);
    body.extend_from_slice(stamp.as_bytes());
    assert!(body.len() < 128, "one-byte LEB length");
    let mut out = component.to_vec();
    out.push(0); // a custom section
    out.push(body.len() as u8);
    out.extend_from_slice(&body);
    out
}

#[test]
fn a_rebuilt_component_reuses_the_functions_compiled_before() {
    let cache = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let original = std::fs::read(support::fixture("echo")).unwrap();
    let first = work.path().join("echo-1.wasm");
    std::fs::write(&first, rebuilt(&original, "1")).unwrap();
    let (code, text) = check(&first, Some(cache.path()));
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("compile:  compiled in"), "{text}");
    let kept = functions(&cache.path().join("flowd"));
    assert!(kept.0 > 0, "the first compile kept its functions: {kept:?}");

    // Another build: a new component (compiled, not loaded), its functions found in the
    // cache. (wasmtime gives some of a component's functions a new key on each compile,
    // the same code or not: 7% for this one on most runs, 21% once in a full CI run; a
    // cache that kept nothing would add all of them again.)
    let second = work.path().join("echo-2.wasm");
    std::fs::write(&second, rebuilt(&original, "2")).unwrap();
    let (code, text) = check(&second, Some(cache.path()));
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("compile:  compiled in"), "{text}");
    let now = functions(&cache.path().join("flowd"));
    assert!(
        now.0 - kept.0 <= kept.0 / 2,
        "most functions came from the cache: {kept:?} then {now:?}"
    );
    let kept = now;

    // Different code compiles its own functions, and both builds still run.
    let (code, text) = check(&support::fixture("fail"), Some(cache.path()));
    assert_eq!(code, 0, "{text}");
    assert!(functions(&cache.path().join("flowd")).0 > kept.0);
    let setup = support::Setup::new("");
    let flow = setup.flow("t", &support::one_step("echo", "{}", ""));
    for build in [&first, &second] {
        let connector = format!("echo={}", build.display());
        let out = setup.run_raw(&flow, None, &["--connector", &connector]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
}
