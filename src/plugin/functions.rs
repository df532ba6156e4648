//! Cranelift's incremental compilation cache on disk: each compiled function kept under the
//! hash cranelift gives it (the function's body and the compiler's settings), so a rebuilt
//! component compiles only the functions that changed. A JavaScript or Python connector
//! embeds the same interpreter build after build, so its rebuild reuses most of its code.
//!
//! Invariant: an entry is written to a temporary name and renamed into place, so a reader
//! sees a whole entry or none; cranelift checks an entry's version before it trusts it.
//! The entries are bounded by size with the least recently used removed first (a hit
//! touches its file), by the component cache after each compile (see `cache`, `lru`).

use std::borrow::Cow;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use wasmtime::CacheStore;

#[derive(Debug)]
pub struct FunctionCache {
    dir: PathBuf,
}

impl FunctionCache {
    /// The cache in `dir`, made (private to the user running flowd) by the first compile
    /// that keeps a function.
    pub fn new(dir: &Path) -> FunctionCache {
        FunctionCache { dir: dir.to_path_buf() }
    }

    fn create_dir(&self) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&self.dir, std::fs::Permissions::from_mode(0o700))?;
        }
        Ok(())
    }

    fn path_for(&self, key: &[u8]) -> PathBuf {
        let mut name = String::with_capacity(key.len() * 2);
        for b in key {
            let _ = write!(name, "{b:02x}");
        }
        self.dir.join(name)
    }

    /// Removes the least recently used entries until the rest add up to `cap` bytes.
    pub fn evict(&self, cap: u64) {
        super::lru::evict(&self.dir, cap, |_| true, None);
    }
}

impl CacheStore for FunctionCache {
    fn get(&self, key: &[u8]) -> Option<Cow<'_, [u8]>> {
        let path = self.path_for(key);
        let bytes = std::fs::read(&path).ok()?;
        super::lru::touch(&path);
        Some(Cow::Owned(bytes))
    }

    fn insert(&self, key: &[u8], value: Vec<u8>) -> bool {
        let path = self.path_for(key);
        // Unique per process and call: concurrent compiles never share a temporary file.
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let tmp = path.with_extension(format!("tmp-{}-{n}", std::process::id()));
        let write = || std::fs::write(&tmp, &value).and_then(|()| std::fs::rename(&tmp, &path));
        let written = match write() {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => self.create_dir().and_then(|()| write()),
            other => other,
        };
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written.is_ok()
    }
}
