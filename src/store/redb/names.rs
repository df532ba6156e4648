//! Values every execution of a flow version repeats (its project, flow, version, trigger
//! and environment; each step's name, kind and connector with its content hash; a log
//! record's step, connector and action with them), stored once in the `names` table and
//! referred to from rows by a small number. The table is never pruned and is held in
//! memory, so only values a flow's config fixes belong here, never one a connector
//! chooses at run time (a log record's category or message).
//!
//! Numbers are handed out on the caller's task as rows are encoded. A number stays
//! "pending" until a commit that stored its value succeeds: every write that refers to a
//! pending number carries the value too (inserting it again is harmless), so whichever of
//! them commits first makes it durable, and a failed commit loses no value a stored row
//! refers to.

use crate::store::ReadError;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// A value with its number, to be stored with the rows that refer to it.
pub(super) type Pending = (u32, Arc<[u8]>);

#[derive(Default)]
pub(super) struct Names {
    inner: Mutex<Inner>,
}

/// The most numbers one gap in a stored names table may skip: numbers handed out to
/// writes that never committed, far more than any run of failed writes hands out.
const MAX_SKIPPED: usize = 1 << 20;

#[derive(Default)]
struct Inner {
    ids: HashMap<Arc<[u8]>, u32>,
    /// Indexed by number, with whether a commit stored it. `None`: a number handed out
    /// before a restart to a write that never committed; no stored row refers to it.
    values: Vec<(Option<Arc<[u8]>>, bool)>,
}

impl Names {
    /// The names a database holds, in increasing number. Numbers may skip: one handed out
    /// to a write that was refused or failed, and needed by no later write, was never
    /// stored; new numbers start past the highest stored.
    pub(super) fn loaded(stored: impl IntoIterator<Item = (u32, Vec<u8>)>) -> Result<Names, ReadError> {
        let mut inner = Inner::default();
        for (id, value) in stored {
            if (id as usize) < inner.values.len() {
                return Err(ReadError::Corrupt {
                    table: "names",
                    detail: format!("number {id} follows {}", inner.values.len() - 1),
                });
            }
            // Each skipped number takes a slot in memory: a damaged table must not make
            // opening the store allocate without bound.
            if id as usize - inner.values.len() > MAX_SKIPPED {
                return Err(ReadError::Corrupt {
                    table: "names",
                    detail: format!(
                        "number {id} skips more than {MAX_SKIPPED} numbers after {}",
                        inner.values.len() as i64 - 1
                    ),
                });
            }
            inner.values.resize(id as usize, (None, true));
            let value: Arc<[u8]> = value.into();
            inner.ids.insert(value.clone(), id);
            inner.values.push((Some(value), true));
        }
        Ok(Names {
            inner: Mutex::new(inner),
        })
    }

    /// The number of `value`, made now if it has none; a value not yet durable is added to
    /// `pending` (once).
    pub(super) fn number(&self, value: &[u8], pending: &mut Vec<Pending>) -> u32 {
        let mut inner = crate::sync::Lock::locked(&self.inner);
        let id = match inner.ids.get(value) {
            Some(id) => *id,
            None => {
                let id = u32::try_from(inner.values.len()).expect("fewer than 2^32 distinct names");
                let value: Arc<[u8]> = value.into();
                inner.ids.insert(value.clone(), id);
                inner.values.push((Some(value), false));
                id
            }
        };
        if let (Some(value), false) = &inner.values[id as usize]
            && !pending.iter().any(|(p, _)| *p == id)
        {
            pending.push((id, value.clone()));
        }
        id
    }

    /// The value numbered `id`.
    pub(super) fn value(&self, table: &'static str, id: u32) -> Result<Arc<[u8]>, ReadError> {
        crate::sync::Lock::locked(&self.inner)
            .values
            .get(id as usize)
            .and_then(|(v, _)| v.clone())
            .ok_or_else(|| ReadError::Corrupt {
                table,
                detail: format!("a row refers to name {id}, which the names table does not hold"),
            })
    }

    /// A value a batch replayed from the write-ahead log stores under `id`.
    pub(super) fn restore(&self, id: u32, value: Arc<[u8]>) {
        let mut inner = crate::sync::Lock::locked(&self.inner);
        let i = id as usize;
        if i >= inner.values.len() {
            inner.values.resize(i + 1, (None, true));
        }
        inner.ids.insert(value.clone(), id);
        inner.values[i] = (Some(value), true);
    }

    /// How many values are numbered.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        crate::sync::Lock::locked(&self.inner).ids.len()
    }

    /// A commit stored these numbers' values.
    pub(super) fn stored(&self, ids: impl IntoIterator<Item = u32>) {
        let mut inner = crate::sync::Lock::locked(&self.inner);
        for id in ids {
            if let Some(v) = inner.values.get_mut(id as usize) {
                v.1 = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_is_pending_until_stored_and_then_numbered_the_same() {
        let names = Names::loaded([(0, b"a".to_vec())]).unwrap();
        let mut pending = Vec::new();
        assert_eq!(names.number(b"a", &mut pending), 0);
        assert!(pending.is_empty(), "a loaded name is durable");
        assert_eq!(names.number(b"b", &mut pending), 1);
        assert_eq!(names.number(b"b", &mut pending), 1);
        assert_eq!(pending.len(), 1, "listed once");
        // Another write before the first commits carries the value too.
        let mut other = Vec::new();
        assert_eq!(names.number(b"b", &mut other), 1);
        assert_eq!(other.len(), 1);
        names.stored([1]);
        let mut after = Vec::new();
        names.number(b"b", &mut after);
        assert!(after.is_empty());
        assert_eq!(&*names.value("steps", 1).unwrap(), b"b");
        assert!(matches!(
            names.value("steps", 7),
            Err(ReadError::Corrupt { table: "steps", .. })
        ));
        // A number never stored (its write refused or failed) reads as missing, and
        // numbering goes on past the highest stored.
        let skipped = Names::loaded([(0, b"a".to_vec()), (2, b"c".to_vec())]).unwrap();
        assert!(matches!(
            skipped.value("steps", 1),
            Err(ReadError::Corrupt { table: "steps", .. })
        ));
        assert_eq!(&*skipped.value("steps", 2).unwrap(), b"c");
        let mut fresh = Vec::new();
        assert_eq!(skipped.number(b"d", &mut fresh), 3);
        assert_eq!(fresh.len(), 1);
        assert!(Names::loaded([(1, b"a".to_vec()), (1, b"b".to_vec())]).is_err());
        // A damaged number far past the others is refused, not allocated for.
        assert!(matches!(
            Names::loaded([(0, b"a".to_vec()), (u32::MAX, b"z".to_vec())]),
            Err(ReadError::Corrupt { table: "names", .. })
        ));
        assert!(Names::loaded([(MAX_SKIPPED as u32, b"z".to_vec())]).is_ok());
    }
}
