//! Builds a workspace of WebAssembly guests from a build script: the test fixtures for
//! `wasm32-wasip2`, the bundled connectors as core modules for `wasm32-unknown-unknown`
//! (flowd's build script makes them components). Shared (via `#[path]`) by both build
//! scripts, so the guests are always compiled from the sources in the repository.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The target of guests that use WASI through the standard library.
pub const TARGET: &str = "wasm32-wasip2";

/// The target of guests that import only what their WIT world names: no WASI comes with
/// the standard library, so each instance of their component is one core module.
pub const CORE_TARGET: &str = "wasm32-unknown-unknown";

/// Fails the build with a message that says exactly what to do when `target` is absent.
pub fn require_target(target: &str) {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let sysroot = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    let installed = sysroot
        .map(|s| s.join("lib/rustlib").join(target).join("lib").is_dir())
        .unwrap_or(false);
    if !installed {
        eprintln!(
            "\nerror: the `{target}` Rust target is not installed, and flowd's connectors are \
             built for it.\n       Run `rustup target add {TARGET} {CORE_TARGET}` and build again.\n"
        );
        std::process::exit(1);
    }
}

/// Where guests are built: one directory per host profile, shared by every build script
/// (so the bundled connectors and the fixtures reuse each other's compiled dependencies).
pub fn guest_target_dir() -> PathBuf {
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR is set for build scripts"));
    // OUT_DIR is <target>/<profile>/build/<pkg>-<hash>/out.
    out.ancestors()
        .nth(3)
        .expect("OUT_DIR has the layout cargo documents")
        .join("wasm-guests")
}

/// Builds every member of the workspace at `manifest` in release mode for `target` and
/// returns the directory holding the `.wasm` files.
pub fn build_workspace(manifest: &Path, target: &str) -> PathBuf {
    let target_dir = guest_target_dir();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.arg("build")
        .arg("--release")
        .arg("--locked")
        .arg("--workspace")
        .args(["--target", target])
        .arg("--manifest-path")
        .arg(manifest)
        .arg("--target-dir")
        .arg(&target_dir);
    // The host build's flags and wrappers (clippy, coverage) must not leak into the guests.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_PROFILE_RELEASE_DEBUG",
    ] {
        cmd.env_remove(var);
    }
    let output = cmd.output().expect("running cargo to build the wasm guests");
    if !output.status.success() {
        eprintln!("{}", String::from_utf8_lossy(&output.stderr));
        panic!(
            "building the wasm guests of {} failed (output above)",
            manifest.display()
        );
    }
    target_dir.join(target).join("release")
}

/// Makes cargo rerun the build script when anything under `dir` changes.
pub fn watch(dir: &Path) {
    println!("cargo:rerun-if-changed={}", dir.display());
}
