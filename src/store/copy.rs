//! Moving an embedded redb store into PostgreSQL (`flowd store copy`): into an empty
//! database only, part by part in key order, one page per transaction, then the counts
//! of both compared. The target must start empty, so a copy that stopped half-way is
//! started again on a new (or dropped and created again) database, never merged.

use super::redb::{Export, Part};
use super::{Counts, PostgresStore, ReadError, RedbStore, Store, WriteError};

/// Rows read and written per transaction.
pub const PAGE: usize = 1000;

/// Why a copy stopped.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error(
        "{target} is not empty (it holds {counts}): copy into an empty database; after an interrupted copy, drop the database and create it again"
    )]
    NotEmpty { target: String, counts: Counts },
    #[error("reading the redb store: {0}")]
    Read(ReadError),
    #[error("reading {target}: {source}")]
    ReadTarget { target: String, source: ReadError },
    #[error("writing {part} to {target}: {source}")]
    Write {
        part: &'static str,
        target: String,
        source: WriteError,
    },
    #[error("the copy does not match its source: the redb store holds {expected}, {target} holds {copied}")]
    Mismatch {
        target: String,
        expected: Counts,
        copied: Counts,
    },
}

/// Copies everything in `from` into the empty `to`, calling `progress` after each page
/// with its part, the rows of that part copied so far and the part's total. The counts
/// copied (equal on both sides).
pub async fn copy(
    from: &RedbStore,
    to: &PostgresStore,
    mut progress: impl FnMut(Part, u64, u64),
) -> Result<Counts, CopyError> {
    let target = to.name().to_string();
    let read_target = |source| CopyError::ReadTarget {
        target: target.clone(),
        source,
    };
    let there = to.counts().await.map_err(read_target)?;
    if there.total() > 0 {
        return Err(CopyError::NotEmpty { target, counts: there });
    }
    let source = from.counts().map_err(CopyError::Read)?;
    let mut at = Export::default();
    let mut done = (Part::Executions, 0u64);
    while let Some(page) = from.export_page(&mut at, PAGE).map_err(CopyError::Read)? {
        if page.part != done.0 {
            done = (page.part, 0);
        }
        to.write(page.writes).await.map_err(|source| CopyError::Write {
            part: page.part.name(),
            target: target.clone(),
            source,
        })?;
        done.1 += page.rows as u64;
        progress(page.part, done.1, page.part.of(&source));
    }
    let copied = to.counts().await.map_err(read_target)?;
    if copied != source {
        return Err(CopyError::Mismatch {
            target,
            expected: source,
            copied,
        });
    }
    Ok(copied)
}
