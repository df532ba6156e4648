//! The on-disk cache of compiled components, keyed by the component's content hash and
//! the engine's compatibility hash, so a second start loads machine code instead of
//! compiling again.
//!
//! The cache is capped by size: a file's modification time is its last use (a load
//! touches it), and after each write the least recently used files are removed until the
//! rest fit, the file just written always kept. A fifth of the cap is the function cache's
//! (`functions`, in the `functions` subdirectory), the rest the compiled components'.
//!
//! Invariant: a cache file is written to a temporary name and renamed into place, so a
//! reader sees a whole artifact or none. Loading trusts the file's contents (it is
//! native code): the directory is created private to the user running flowd.

use super::functions::FunctionCache;
use super::lru;
use anyhow::Context as _;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use wasmtime::Engine;
use wasmtime::component::Component;

pub struct Cache {
    dir: PathBuf,
    engine_key: String,
    /// The most the cache's files may add up to, in bytes.
    cap: u64,
    functions: Option<Arc<FunctionCache>>,
}

/// The function cache's share of the cap: one part in this many.
const FUNCTIONS_SHARE: u64 = 5;

/// Where the function cache lives inside the cache directory.
pub fn functions_dir(dir: &Path) -> PathBuf {
    dir.join("functions")
}

/// Where a component came from, for `flowd plugin check` and the load log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Compiled,
    Cached,
    /// Not compiled: what the bytes say already rules it out.
    Skipped,
}

impl Cache {
    /// The cache in `dir`; `functions` is the engine's function cache, when it has one.
    pub fn open(dir: &Path, engine: &Engine, cap: u64, functions: Option<Arc<FunctionCache>>) -> anyhow::Result<Cache> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating the component cache {}", dir.display()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
        }
        let mut h = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        Ok(Cache {
            dir: dir.to_path_buf(),
            engine_key: format!("{:016x}", h.finish()),
            cap,
            functions,
        })
    }

    fn path_for(&self, content_hash: &str) -> PathBuf {
        self.dir.join(format!("{content_hash}-{}.cwasm", self.engine_key))
    }

    /// The compiled component for `content_hash`, when the cache holds a usable one.
    pub fn load(&self, engine: &Engine, content_hash: &str) -> Option<Component> {
        let path = self.path_for(content_hash);
        if !path.is_file() {
            return None;
        }
        // SAFETY: the file was produced by `Engine::precompile_component` for an engine
        // with this compatibility hash and written atomically into a private directory.
        match unsafe { Component::deserialize_file(engine, &path) } {
            Ok(c) => {
                lru::touch(&path);
                Some(c)
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "unusable cache entry; compiling again");
                None
            }
        }
    }

    /// Keeps a compiled component; whether it was written.
    pub fn keep(&self, component: &Component, content_hash: &str) -> bool {
        let path = self.path_for(content_hash);
        match self.store(component, &path) {
            Ok(()) => {
                let functions_cap = self.cap / FUNCTIONS_SHARE;
                lru::evict(&self.dir, self.cap - functions_cap, is_component, Some(&path));
                if let Some(f) = &self.functions {
                    f.evict(functions_cap);
                }
                true
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "could not write the component cache");
                false
            }
        }
    }

    fn store(&self, component: &Component, path: &Path) -> anyhow::Result<()> {
        let bytes = component.serialize().map_err(anyhow::Error::from)?;
        // Unique per process and call: concurrent writers never share a temporary file.
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let tmp = path.with_extension(format!("tmp-{}-{n}", std::process::id()));
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, path)?;
        Ok(())
    }
}

fn is_component(path: &Path) -> bool {
    path.extension().is_some_and(|x| x == "cwasm")
}

pub fn compile(engine: &Engine, bytes: &[u8]) -> anyhow::Result<Component> {
    Component::new(engine, bytes).map_err(anyhow::Error::from)
}
