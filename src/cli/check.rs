//! `flowd plugin check`: what a component is and whether this host can run it.

use crate::config::Grants;
use crate::config::units::format_bytes;
use crate::plugin::{Origin, Runtime, Verdict};
use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
pub struct CheckArgs {
    /// The component (`.wasm`).
    file: PathBuf,
    /// The daemon config whose limits and cache the check uses (default: built-in).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Judge the imports under the grants of this connector of the config (default: none).
    #[arg(long, value_name = "NAME")]
    grants_of: Option<String>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

pub async fn check(args: CheckArgs) -> u8 {
    let config = match super::daemon_config(args.config.as_ref()) {
        Ok(c) => c,
        Err(errors) => {
            super::print_errors(&errors);
            return 2;
        }
    };
    let bytes = match std::fs::read(&args.file) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", args.file.display());
            return 2;
        }
    };
    let runtime = match Runtime::new(&config) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e:#}");
            return 2;
        }
    };
    let grants = match &args.grants_of {
        None => Grants::default(),
        Some(name) => match config.connectors.get(name) {
            Some(c) => c.grants.clone(),
            None => {
                eprintln!(
                    "error: --grants-of {name}: {} names no connector \"{name}\"",
                    config.describe()
                );
                return 2;
            }
        },
    };
    let label = args.file.display().to_string();
    let info = match runtime.inspect(&label, &bytes, &grants) {
        Ok((_, info)) => info,
        Err(e) => {
            if args.json {
                println!(
                    "{}",
                    serde_json::json!({ "file": args.file, "can_run": false, "error": e.to_string() })
                );
            } else {
                println!(
                    "file:     {} ({})",
                    args.file.display(),
                    format_bytes(bytes.len() as u64)
                );
                println!("can run:  no: {e}");
            }
            return 1;
        }
    };
    // Linking is the final word: it also catches type mismatches the policy cannot see.
    let verdict = runtime
        .load(&label, &bytes, &grants)
        .map(|_| ())
        .map_err(|e| e.to_string());
    if args.json {
        let v = serde_json::json!({
            "file": args.file,
            "info": info,
            "can_run": verdict.is_ok(),
            "error": verdict.as_ref().err(),
        });
        println!("{}", serde_json::to_string_pretty(&v).expect("serializes"));
    } else {
        println!(
            "file:     {} ({}, sha256 {})",
            args.file.display(),
            format_bytes(info.size),
            info.sha256
        );
        match info.world {
            Some(w) => println!("world:    {}", w.wit_name()),
            None => println!(
                "world:    none (exports: {})",
                if info.exports.is_empty() {
                    "nothing".into()
                } else {
                    info.exports.join(", ")
                }
            ),
        }
        let how = match info.origin {
            Origin::Compiled => "compiled",
            Origin::Cached => "loaded from the compiled-component cache",
            Origin::Skipped => "skipped",
        };
        if info.origin == Origin::Skipped {
            println!("compile:  skipped: this host refuses its imports");
        } else {
            println!("compile:  {how} in {:.1} ms", info.load_time.as_secs_f64() * 1000.0);
        }
        println!("imports:");
        let width = info.imports.iter().map(|i| i.name.len()).max().unwrap_or(0);
        for i in &info.imports {
            println!("  {:<width$}  {}", i.name, i.verdict);
        }
        let denied = info
            .imports
            .iter()
            .filter(|i| matches!(i.verdict, Verdict::Denied(_)))
            .count();
        match &verdict {
            Ok(()) if denied > 0 => println!(
                "can run:  yes ({denied} import{} denied until granted)",
                if denied == 1 { "" } else { "s" }
            ),
            Ok(()) => println!("can run:  yes"),
            Err(e) => println!("can run:  no: {e}"),
        }
    }
    if verdict.is_ok() { 0 } else { 1 }
}
