//! Where the bytes of the redb file go: each table's entries, stored key and value bytes,
//! pages, B-tree metadata and fragmentation, beside the pages redb has allocated and the
//! file's length. What the load benchmark prints per execution, to choose encodings and
//! layouts by measurement.

use super::{Db, read_err};
use crate::store::ReadError;
use redb::{ReadableTableMetadata, TableHandle};

/// One table's share of the file.
#[derive(Debug, Clone)]
pub struct TableSpace {
    pub name: String,
    pub entries: u64,
    /// Key and value bytes as inserted.
    pub stored_bytes: u64,
    /// Leaf and branch pages, whole.
    pub page_bytes: u64,
    /// Keys in branch pages and other metadata.
    pub metadata_bytes: u64,
    /// Bytes of its pages that hold nothing.
    pub fragmented_bytes: u64,
}

/// The whole file.
#[derive(Debug, Clone)]
pub struct Space {
    pub tables: Vec<TableSpace>,
    /// Pages allocated to anything (tables, redb's own trees); the rest of the file is free.
    pub allocated_bytes: u64,
    pub file_bytes: u64,
}

/// Measures `db`. It takes a write transaction (for the allocator's figures) and drops it
/// uncommitted, so it waits for the writer's commit in progress.
pub(super) fn measure(db: &Db, file_bytes: u64) -> Result<Space, ReadError> {
    let (allocated_bytes, page_size) = {
        // The writer's open transaction holds the write lock until it commits.
        db.unseen.wait();
        let txn = db.file.begin_write().map_err(read_err)?;
        let stats = txn.stats().map_err(read_err)?;
        let page_size = stats.page_size() as u64;
        let allocated = stats.allocated_pages() * page_size;
        txn.abort().map_err(read_err)?;
        (allocated, page_size)
    };
    let txn = db.read().map_err(read_err)?;
    let mut tables = Vec::new();
    for handle in txn.list_tables().map_err(read_err)? {
        let name = handle.name().to_string();
        let table = txn.open_untyped_table(handle).map_err(read_err)?;
        let stats = table.stats().map_err(read_err)?;
        tables.push(TableSpace {
            name,
            entries: table.len().map_err(read_err)?,
            stored_bytes: stats.stored_bytes(),
            page_bytes: (stats.leaf_pages() + stats.branch_pages()) * page_size,
            metadata_bytes: stats.metadata_bytes(),
            fragmented_bytes: stats.fragmented_bytes(),
        });
    }
    Ok(Space {
        tables,
        allocated_bytes,
        file_bytes,
    })
}
