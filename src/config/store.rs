//! The daemon config's `[store]`: which database keeps the executions. The embedded
//! redb file under `server.data_dir` by default; or PostgreSQL, whose URL is read from
//! the environment variable `url_env` names (a URL may hold a password: it never lives
//! in the file).

use super::diag::ConfigErrors;
use super::document::Table;
use std::time::Duration;

/// The most connections one daemon's pool may open.
const MAX_POOL: u64 = 1000;
const DEFAULT_POOL: u32 = 16;
/// How long a daemon's lease on an execution lasts without a heartbeat (it is renewed
/// every third of it): how soon another daemon takes over after a crash.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);
const LEASES: std::ops::RangeInclusive<Duration> = Duration::from_secs(1)..=Duration::from_secs(3600);
const URL_EXAMPLE: &str = "postgres://flowd:PASSWORD@127.0.0.1:5432/flowd";

/// redb's page cache by default: enough for the recent executions and indexes a busy
/// daemon reads, where redb's own default (1 GiB) lets memory grow with the file.
pub const DEFAULT_REDB_CACHE: u64 = 256 << 20;
/// The page cache's bounds: redb works below 1 MiB but re-reads every page; past 64 GiB
/// is a typo more likely than a wish.
const MIN_REDB_CACHE: u64 = 1 << 20;
const MAX_REDB_CACHE: u64 = 64 << 30;

/// Where executions are kept.
#[derive(Clone, PartialEq, Eq)]
pub enum StoreSection {
    /// The embedded database in `server.data_dir`, with a page cache of at most
    /// `cache_size` bytes (`[store] cache_size`).
    Redb { cache_size: u64 },
    /// PostgreSQL at the URL read from `$url_env` when the config loaded.
    Postgres {
        url_env: String,
        url: String,
        pool_size: u32,
        /// How long a lease on an execution lasts without a heartbeat.
        lease: Duration,
    },
}

impl Default for StoreSection {
    fn default() -> Self {
        StoreSection::Redb {
            cache_size: DEFAULT_REDB_CACHE,
        }
    }
}

impl std::fmt::Debug for StoreSection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreSection::Redb { cache_size } => f.debug_struct("Redb").field("cache_size", cache_size).finish(),
            // Never the URL: it may hold a password.
            StoreSection::Postgres {
                url_env,
                pool_size,
                lease,
                ..
            } => f
                .debug_struct("Postgres")
                .field("url_env", url_env)
                .field("pool_size", pool_size)
                .field("lease", lease)
                .finish_non_exhaustive(),
        }
    }
}

impl StoreSection {
    /// How long a lease on an execution lasts without a heartbeat (the embedded store,
    /// one process's, renews in memory: the default).
    pub fn lease(&self) -> Duration {
        match self {
            StoreSection::Redb { .. } => DEFAULT_LEASE,
            StoreSection::Postgres { lease, .. } => *lease,
        }
    }
}

fn valid_var(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Reads `[store]`. A missing or unusable variable stops `serve` and `validate` (in
/// `serve_errors`), not `flowd run`, which keeps no store of the daemon's.
pub(super) fn resolve(t: Option<Table>, errors: &mut ConfigErrors, serve_errors: &mut ConfigErrors) -> StoreSection {
    let Some(mut t) = t else {
        return StoreSection::default();
    };
    let source = t.source;
    let backend = t.choice("backend", &["redb", "postgres"], errors);
    let url_env = t.string("url_env", errors);
    let pool_size = t.int("pool_size", 1..=MAX_POOL, errors);
    let lease = t.duration("lease", LEASES, errors);
    let cache_size = t.bytes("cache_size", MIN_REDB_CACHE..=MAX_REDB_CACHE, errors);
    if let Some(url) = t.get("url") {
        errors.push(
            source
                .error(
                    url.span(),
                    "store.url: the database URL is not written in the config file (it may hold a password)",
                )
                .with_help("set it in an environment variable and name that variable with `url_env`"),
        );
    }
    t.finish(errors);
    let postgres = backend.as_ref().is_some_and(|b| *b.get_ref() == "postgres");
    if !postgres {
        for (key, span) in [
            ("url_env", url_env.as_ref().map(|u| u.span())),
            ("pool_size", pool_size.as_ref().map(|p| p.span())),
            ("lease", lease.as_ref().map(|l| l.span())),
        ] {
            if let Some(span) = span {
                errors.push(
                    source
                        .error(
                            span,
                            format!("store.{key} is for backend = \"postgres\"; this store is redb"),
                        )
                        .with_help("add backend = \"postgres\" to [store], or remove this key"),
                );
            }
        }
        return StoreSection::Redb {
            cache_size: cache_size.map_or(DEFAULT_REDB_CACHE, |c| c.into_inner()),
        };
    }
    if let Some(c) = &cache_size {
        errors.push(
            source
                .error(
                    c.span(),
                    "store.cache_size is redb's page cache; this store is PostgreSQL (the database server caches)",
                )
                .with_help("remove this key, or set backend = \"redb\""),
        );
    }
    let backend = backend.expect("postgres was chosen");
    let Some(url_env) = url_env else {
        errors.push(
            source
                .error(
                    backend.span(),
                    "store.backend = \"postgres\" needs store.url_env: the environment variable holding the database URL",
                )
                .with_help(format!(
                    "add url_env = \"FLOWD_DATABASE_URL\" and set that variable to a URL such as {URL_EXAMPLE}"
                )),
        );
        return StoreSection::default();
    };
    let var = url_env.get_ref();
    if !valid_var(var) {
        errors.push(
            source
                .error(
                    url_env.span(),
                    format!("store.url_env \"{var}\" is not an environment variable name"),
                )
                .with_help("name the variable, such as \"FLOWD_DATABASE_URL\", not its value"),
        );
        return StoreSection::default();
    }
    let pool_size = pool_size.map_or(DEFAULT_POOL, |p| p.into_inner() as u32);
    let url = match std::env::var(var) {
        Ok(v) if v.trim().is_empty() => {
            serve_errors.push(source.error(url_env.span(), format!("store.url_env: ${var} is empty")));
            String::new()
        }
        Ok(v) => {
            // Only the parser's reason is shown, never the value: it may hold a password.
            if let Err(e) = v.trim().parse::<tokio_postgres::Config>() {
                serve_errors.push(
                    source
                        .error(
                            url_env.span(),
                            format!("store.url_env: ${var} does not hold a PostgreSQL URL ({e})"),
                        )
                        .with_help(format!("such as {URL_EXAMPLE}")),
                );
            }
            v.trim().to_string()
        }
        Err(_) => {
            serve_errors.push(
                source
                    .error(
                        url_env.span(),
                        format!("store.url_env: the environment variable ${var} is not set (or not UTF-8)"),
                    )
                    .with_help(format!("set it to the database URL, such as {URL_EXAMPLE}")),
            );
            String::new()
        }
    };
    StoreSection::Postgres {
        url_env: var.clone(),
        url,
        pool_size,
        lease: lease.map_or(DEFAULT_LEASE, |l| l.into_inner()),
    }
}

#[cfg(test)]
mod tests {
    use super::valid_var;

    #[test]
    fn variable_names_are_told_from_values() {
        for ok in ["FLOWD_DATABASE_URL", "_X", "db1"] {
            assert!(valid_var(ok), "{ok}");
        }
        for bad in ["", "1X", "postgres://u@h/db", "A-B", "A B"] {
            assert!(!valid_var(bad), "{bad}");
        }
    }
}
