//! Files on disk kept by recency: a file's modification time is its last use (a use
//! touches it), and a directory is trimmed to a size by removing the least recently used.

use std::path::{Path, PathBuf};

/// Removes the least recently used files of `dir` that `select` picks until those left
/// add up to `cap` bytes; `keep` stays whatever its age.
pub(super) fn evict(dir: &Path, cap: u64, select: impl Fn(&Path) -> bool, keep: Option<&Path>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut files: Vec<(std::time::SystemTime, u64, PathBuf)> = entries
        .flatten()
        .filter(|e| select(&e.path()))
        .filter_map(|e| {
            let meta = e.metadata().ok().filter(std::fs::Metadata::is_file)?;
            Some((meta.modified().ok()?, meta.len(), e.path()))
        })
        .collect();
    let mut total: u64 = files.iter().map(|(_, len, _)| len).sum();
    files.sort();
    for (_, len, path) in files {
        if total <= cap {
            break;
        }
        if Some(path.as_path()) == keep {
            continue;
        }
        // Another process may have removed it already; either way it is gone.
        let _ = std::fs::remove_file(&path);
        total = total.saturating_sub(len);
    }
}

/// Marks a file as just used.
pub(super) fn touch(path: &Path) {
    if let Ok(f) = std::fs::File::options().write(true).open(path) {
        let _ = f.set_modified(std::time::SystemTime::now());
    }
}
