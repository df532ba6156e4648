//! Configuration: the daemon config and flow files, parsed with every key checked and
//! resolved into validated types (with `file:line:column` for every problem) before
//! anything runs. Nothing past this module reads TOML.
//!
//! - `document`: a TOML document read key by key, every mistake collected, every value
//!   range-checked.
//! - `diag`: source files with their line starts, and the located errors.
//! - `daemon`, `flow`, `tokens`: the two kinds of file and the admin tokens.
//! - [`CronExpr`]: cron expressions as crontab reads them.
//! - [`report`]: diagnostics rendered as cargo renders them, or as JSON lines.

mod cron;
mod daemon;
mod diag;
mod document;
mod flow;
pub mod http_grant;
pub mod report;
mod store;
pub mod template;
mod tokens;
pub mod units;
pub mod webhook_path;

pub use cron::{CronError, CronExpr};
pub use daemon::{
    BUNDLED, ConnectorConfig, ConnectorSource, DaemonConfig, DirGrant, Grants, Limits, Places, Server, StepLimits,
};
pub(crate) use daemon::{NAME_RULE, valid_name};
pub use diag::{ConfigError, ConfigErrors, Location, Place, Related, Snippet, SourceFile, closest, did_you_mean};
pub use flow::{
    Action, BodyKind, CatchUp, ConnectorCall, Flow, MAX_WAIT, OnError, Overlap, Pause, RetryPolicy, Signature, Step,
    Throttle, Trigger, TriggerKind, header_control, toml_to_json,
};
pub use store::{DEFAULT_REDB_CACHE, StoreSection};
pub use template::{Outputs, Template};
pub use tokens::{AdminToken, Role};

use std::path::{Path, PathBuf};

/// Every `*.toml` file in a flows directory, sorted by name. A directory that cannot be
/// read is an error at `place` (the config's `flows` key); an entry that cannot be
/// followed (a dangling or looping link, no permission) is an error of its own, never
/// skipped.
pub fn flow_files(dir: &Path, place: Option<&Place>) -> (Vec<PathBuf>, ConfigErrors) {
    let mut files = Vec::new();
    let mut errors = ConfigErrors::default();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            let message = format!("cannot read the flows directory {}: {e}", dir.display());
            errors.push(match place {
                Some(p) => p.error(message),
                None => ConfigError::new(message),
            });
            return (files, errors);
        }
    };
    for entry in entries {
        let path = match entry {
            Ok(e) => e.path(),
            Err(e) => {
                errors.push(ConfigError::new(format!(
                    "{}: cannot list an entry: {e}",
                    dir.display()
                )));
                continue;
            }
        };
        if path.extension().is_none_or(|x| x != "toml") {
            continue;
        }
        match std::fs::metadata(&path) {
            Ok(m) if m.is_file() => files.push(path),
            Ok(_) => errors.push(ConfigError::file(
                &path,
                "is not a file (only `*.toml` files are flows)",
            )),
            Err(e) => errors.push(ConfigError::file(&path, format!("cannot read file: {e}"))),
        }
    }
    files.sort();
    errors.sort();
    (files, errors)
}
