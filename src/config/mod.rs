//! Configuration: the daemon config and flow files, parsed with every key checked and
//! resolved into validated types (with `file:line:column` for every problem) before
//! anything runs. Nothing past this module reads TOML.

mod daemon;
mod diag;
mod flow;
pub mod http_grant;
pub mod template;
mod tokens;
pub mod units;

pub use daemon::{
    BUNDLED, ConnectorConfig, ConnectorSource, DaemonConfig, DirGrant, Grants, Limits, Server, StepLimits,
};
pub(crate) use daemon::{NAME_RULE, valid_name};
pub use diag::{ConfigError, ConfigErrors, Location, SourceFile};
pub use flow::{
    Action, BodyKind, CatchUp, ConnectorCall, Flow, OnError, Overlap, Pause, RetryPolicy, Signature, Step, Throttle,
    Trigger, TriggerKind, toml_to_json,
};
pub use template::Template;
pub use tokens::{AdminToken, Role};

use std::path::{Path, PathBuf};

/// Every `*.toml` file in a flows directory, sorted by name.
pub fn flow_files(dir: &Path) -> Result<Vec<PathBuf>, ConfigError> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| ConfigError::file(dir, format!("cannot read the flows directory: {e}")))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file())
        .collect();
    files.sort();
    Ok(files)
}
