//! The write-ahead log beside the database (`flowd.wal`): each group commit's writes are
//! appended to it and made durable by one sequential write (direct and synchronous where
//! the file system allows, else through the page cache and a sync), while redb commits
//! them in memory only. A checkpoint (a durable redb commit) makes every record before it
//! redundant and the log starts over at its beginning; at open, the records past the last
//! batch the database holds are applied again.
//!
//! A record is `len: u32, crc32: u32, seq: u64, body` (little-endian; the checksum covers
//! the sequence number and the body). Records are numbered one after another; reading
//! stops at the first that is torn, fails its checksum or breaks the numbering, which is
//! where a crash cut the log short or where older records left from before the last
//! checkpoint begin.

use super::encoded::Encoded;
use super::names::Pending;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

/// Bytes before a record's body.
const HEADER: u64 = 4 + 4 + 8;

/// The file grows by zeroed chunks of this size, so an append overwrites blocks already
/// allocated and its sync has no file size to write.
const GROW: u64 = 1 << 20;

/// The most bytes the log holds: a batch that would go past is committed durably to the
/// database instead.
pub(super) const MAX_BYTES: u64 = 64 << 20;

/// A record read back at open.
pub(super) struct Record {
    pub(super) seq: u64,
    pub(super) writes: Vec<Encoded>,
}

pub(super) struct Wal {
    file: File,
    /// The same file opened for direct, synchronous writes (`O_DIRECT | O_DSYNC`), where
    /// the file system allows it: an append is then one aligned write that returns once
    /// durable, without the page cache's writeback and a separate sync.
    direct: Option<Direct>,
    path: PathBuf,
    /// Where the next record goes; 0 when every record is redundant.
    end: u64,
    /// Bytes of the file already allocated (written).
    allocated: u64,
    /// The number of the next batch.
    next: u64,
    /// A batch is missing from the log (see [`Wal::skipped`]).
    broken: bool,
}

/// The log cannot be read, or does not fit the database beside it.
#[derive(Debug, thiserror::Error)]
pub(super) enum WalError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{path}: its records start at batch {first}, but the database beside it holds batches up to {applied} only: \
         the log belongs to another copy of the database (restore flowd.redb and flowd.wal together; \
         moving the log aside opens the database without the batches it holds)"
    )]
    Gap { path: String, first: u64, applied: u64 },
    #[error("{path}: batch {seq} passed its checksum but cannot be read: {detail}")]
    Undecodable { path: String, seq: u64, detail: String },
}

impl Wal {
    /// Opens (or creates) the log at `path` and reads the records past batch `applied`,
    /// the last one the database holds.
    pub(super) fn open(path: &Path, applied: u64) -> Result<(Wal, Vec<Record>), WalError> {
        let io = |source| WalError::Io {
            path: path.display().to_string(),
            source,
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(io)?;
        let allocated = file.metadata().map_err(io)?.len();
        let mut records = Vec::new();
        let mut offset = 0;
        let mut last: Option<u64> = None;
        while let Some((seq, body, len)) = read_at(&file, offset, allocated).map_err(io)? {
            if last.is_some_and(|l| seq != l + 1) {
                break;
            }
            last = Some(seq);
            offset += len;
            if seq <= applied {
                continue;
            }
            if records.is_empty() && seq != applied + 1 {
                return Err(WalError::Gap {
                    path: path.display().to_string(),
                    first: seq,
                    applied,
                });
            }
            let writes = decode(&body).map_err(|detail| WalError::Undecodable {
                path: path.display().to_string(),
                seq,
                detail,
            })?;
            records.push(Record { seq, writes });
        }
        // Reading stopped at `offset`: at a crash's torn tail, at records older than the
        // last checkpoint, or at damage, which shows as intact records numbered on past
        // one that is not. Those batches were acknowledged and cannot be applied in order:
        // said loudly, with the log kept as it was before it is written over.
        if let Some(l) = last {
            let intact = intact_after(&file, offset, allocated, l + 1).map_err(io)?;
            if intact > 0 {
                let stamp = std::time::SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                let copy = path.with_file_name(format!(
                    "{}.damaged-{stamp}",
                    path.file_name().map_or("flowd.wal".into(), |n| n.to_string_lossy())
                ));
                let kept = match std::fs::copy(path, &copy) {
                    Ok(_) => format!("the log as it was is kept in {}", copy.display()),
                    Err(e) => format!("the log could not be kept aside ({}: {e})", copy.display()),
                };
                tracing::error!(
                    path = %path.display(),
                    "batch {} of the write-ahead log is damaged (its checksum or length fails), yet the {intact} batches after it are intact: the log is corrupt, not cut short by a crash. Batches up to {l} are applied; {} to {}, acknowledged when they were written, are not; {kept}",
                    l + 1,
                    l + 1,
                    l + 1 + intact
                );
            }
        }
        let next = records.last().map_or(applied, |r| r.seq) + 1;
        let direct = match Direct::open(path) {
            Ok(direct) => Some(direct),
            Err(e) => {
                tracing::info!(path = %path.display(), error = %e, "the file system refuses direct writes: the write-ahead log goes through the page cache, with fdatasync");
                None
            }
        };
        let wal = Wal {
            file,
            direct,
            path: path.to_path_buf(),
            end: 0,
            allocated,
            next,
            broken: false,
        };
        Ok((wal, records))
    }

    /// Batch `seq` was committed to the database in memory but could not be appended: the
    /// log's numbering has a hole until the next checkpoint, so no batch goes into it
    /// before then.
    pub(super) fn skipped(&mut self, seq: u64) {
        self.next = seq + 1;
        self.broken = true;
    }

    /// The number the next batch takes.
    pub(super) fn next_seq(&self) -> u64 {
        self.next
    }

    /// The number of the last batch taken.
    pub(super) fn last_seq(&self) -> u64 {
        self.next - 1
    }

    /// Whether a batch is in the log and not yet in a durable commit of the database.
    pub(super) fn is_empty(&self) -> bool {
        self.end == 0
    }

    /// Whether a body of `len` bytes still fits.
    pub(super) fn fits(&self, len: usize) -> bool {
        !self.broken && self.end + HEADER + len as u64 <= MAX_BYTES
    }

    /// Appends batch `seq` and syncs it: when this returns, the batch is durable.
    pub(super) fn append(&mut self, seq: u64, body: &[u8]) -> std::io::Result<()> {
        debug_assert_eq!(seq, self.next);
        let mut record = Vec::with_capacity(HEADER as usize + body.len());
        record.extend_from_slice(&(body.len() as u32).to_le_bytes());
        let mut crc = crc32fast::Hasher::new();
        crc.update(&seq.to_le_bytes());
        crc.update(body);
        record.extend_from_slice(&crc.finalize().to_le_bytes());
        record.extend_from_slice(&seq.to_le_bytes());
        record.extend_from_slice(body);
        let need = self.end + record.len() as u64;
        if need > self.allocated {
            let target = need.div_ceil(GROW) * GROW;
            let zeros = vec![0u8; GROW as usize];
            while self.allocated < target {
                let n = (target - self.allocated).min(GROW) as usize;
                self.file.write_all_at(&zeros[..n], self.allocated)?;
                self.allocated += n as u64;
            }
        }
        let direct = match &mut self.direct {
            Some(direct) => match direct.write(self.end, &record) {
                Ok(()) => true,
                Err(e) => {
                    tracing::warn!(path = %self.path.display(), error = %e, "a direct write to the write-ahead log failed; writing through the page cache from now on");
                    self.direct = None;
                    false
                }
            },
            None => false,
        };
        if !direct {
            self.file.write_all_at(&record, self.end)?;
            self.file.sync_data()?;
        }
        self.end = need;
        self.next = seq + 1;
        Ok(())
    }

    /// The database committed batch `seq` (and all before it) durably: the log starts
    /// over, the next batch numbered `seq + 1`.
    pub(super) fn checkpointed(&mut self, seq: u64) {
        self.end = 0;
        if let Some(direct) = &mut self.direct {
            direct.tail_len = 0;
        }
        self.broken = false;
        self.next = seq + 1;
    }

    /// At a clean close, after the last checkpoint: the file gives its space back.
    pub(super) fn close(self) {
        if self.end == 0
            && let Err(e) = self.file.set_len(0)
        {
            tracing::warn!(path = %self.path.display(), error = %e, "could not empty the write-ahead log");
        }
    }
}

/// Direct writes are whole blocks of this size at offsets it divides.
const BLOCK: usize = 4096;

/// The log's file opened for direct synchronous writes, and the bytes of the block the
/// log ends in (rewritten, unchanged, with the next record).
struct Direct {
    file: File,
    /// An aligned buffer: the end block's bytes, then each new record, then zeros.
    buf: Vec<u8>,
    /// Where the aligned part of `buf` starts.
    at: usize,
    /// How many bytes of the log's end block `buf` holds.
    tail_len: usize,
}

impl Direct {
    fn open(path: &Path) -> std::io::Result<Direct> {
        use std::os::unix::fs::OpenOptionsExt as _;
        let file = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_DIRECT | libc::O_DSYNC)
            .open(path)?;
        let buf = vec![0u8; 2 * BLOCK];
        let at = buf.as_ptr().align_offset(BLOCK);
        Ok(Direct {
            file,
            buf,
            at,
            tail_len: 0,
        })
    }

    /// Writes `record` at `end` (in allocated space) and returns once it is durable.
    fn write(&mut self, end: u64, record: &[u8]) -> std::io::Result<()> {
        let start = end - self.tail_len as u64;
        debug_assert_eq!(start % BLOCK as u64, 0);
        let used = self.tail_len + record.len();
        let len = used.div_ceil(BLOCK) * BLOCK;
        if self.at + len > self.buf.len() {
            let mut bigger = vec![0u8; len + 2 * BLOCK];
            let at = bigger.as_ptr().align_offset(BLOCK);
            bigger[at..at + self.tail_len].copy_from_slice(&self.buf[self.at..self.at + self.tail_len]);
            self.buf = bigger;
            self.at = at;
        }
        let area = &mut self.buf[self.at..self.at + len];
        area[self.tail_len..used].copy_from_slice(record);
        area[used..].fill(0);
        self.file.write_all_at(area, start)?;
        // The new end block's bytes move to the front for the next record.
        let keep = used % BLOCK;
        let from = used - keep;
        self.buf.copy_within(self.at + from..self.at + used, self.at);
        self.tail_len = keep;
        Ok(())
    }
}

/// The record at `offset`, with its length, or `None` where no whole valid record is.
fn read_at(file: &File, offset: u64, size: u64) -> std::io::Result<Option<(u64, Vec<u8>, u64)>> {
    if offset + HEADER > size {
        return Ok(None);
    }
    let mut header = [0u8; HEADER as usize];
    file.read_exact_at(&mut header, offset)?;
    let len = u32::from_le_bytes(header[0..4].try_into().expect("4 bytes")) as u64;
    let crc = u32::from_le_bytes(header[4..8].try_into().expect("4 bytes"));
    let seq = u64::from_le_bytes(header[8..16].try_into().expect("8 bytes"));
    if len == 0 || offset + HEADER + len > size || len > MAX_BYTES {
        return Ok(None);
    }
    let mut body = vec![0u8; len as usize];
    file.read_exact_at(&mut body, offset + HEADER)?;
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&seq.to_le_bytes());
    hasher.update(&body);
    if hasher.finalize() != crc {
        return Ok(None);
    }
    Ok(Some((seq, body, HEADER + len)))
}

/// How many intact records numbered `damaged + 1`, `damaged + 2`, … follow the record at
/// `offset` (numbered `damaged`, which did not read), where its length can be trusted.
fn intact_after(file: &File, offset: u64, size: u64, damaged: u64) -> std::io::Result<u64> {
    if offset + HEADER > size {
        return Ok(0);
    }
    let mut len = [0u8; 4];
    file.read_exact_at(&mut len, offset)?;
    let len = u64::from(u32::from_le_bytes(len));
    if len == 0 || len > MAX_BYTES {
        return Ok(0);
    }
    let (mut at, mut intact) = (offset + HEADER + len, 0);
    while let Some((seq, _, len)) = read_at(file, at, size)? {
        if seq != damaged + 1 + intact {
            break;
        }
        intact += 1;
        at += len;
    }
    Ok(intact)
}

// Tags of the writes in a record's body. They are on disk: never renumber them.
const NAME: u8 = 1;
const EXECUTION: u8 = 2;
const FLOW_ACTIVE: u8 = 3;
const LAST_FIRE: u8 = 4;
const FIRE: u8 = 5;
const ATTEMPT: u8 = 6;
const STEP: u8 = 7;
const PAYLOAD: u8 = 8;
const BUNDLE: u8 = 9;
const LOG: u8 = 10;

/// The bytes [`encode`] appends for `w`, so a body is allocated once for its batch.
pub(super) fn encoded_len(w: &Encoded) -> usize {
    const LEN: usize = 4;
    const PAYLOAD_KEY: usize = 16 + 4 + 4 + 1;
    1 + match w {
        Encoded::Name((_, value)) => 4 + LEN + value.len(),
        Encoded::Execution { flow, bytes, .. } => 16 + LEN + flow.len() + 1 + LEN + bytes.len(),
        Encoded::FlowActive { flow, .. } => LEN + flow.len() + 1,
        Encoded::LastFire { flow, .. } | Encoded::Fire { flow, .. } => LEN + flow.len() + 8,
        Encoded::Attempt { bytes, .. } => 16 + 4 + LEN + bytes.len(),
        Encoded::Step { bytes, .. } => 16 + 4 + 4 + LEN + bytes.len(),
        Encoded::Payload { bytes, .. } | Encoded::Bundle { bytes, .. } => PAYLOAD_KEY + LEN + bytes.len(),
        Encoded::Log { bytes, .. } => 8 + 16 + 4 + LEN + bytes.len(),
    }
}

/// Appends `w` to a record's body.
pub(super) fn encode(body: &mut Vec<u8>, w: &Encoded) {
    fn bytes(body: &mut Vec<u8>, b: &[u8]) {
        body.extend_from_slice(&(b.len() as u32).to_le_bytes());
        body.extend_from_slice(b);
    }
    fn payload_key(body: &mut Vec<u8>, k: &(u128, u32, u32, u8)) {
        body.extend_from_slice(&k.0.to_le_bytes());
        body.extend_from_slice(&k.1.to_le_bytes());
        body.extend_from_slice(&k.2.to_le_bytes());
        body.push(k.3);
    }
    match w {
        Encoded::Name((id, value)) => {
            body.push(NAME);
            body.extend_from_slice(&id.to_le_bytes());
            bytes(body, value);
        }
        Encoded::Execution {
            id,
            flow,
            status,
            bytes: b,
        } => {
            body.push(EXECUTION);
            body.extend_from_slice(&id.to_le_bytes());
            bytes(body, flow.as_bytes());
            body.push(*status);
            bytes(body, b);
        }
        Encoded::FlowActive { flow, active } => {
            body.push(FLOW_ACTIVE);
            bytes(body, flow.as_bytes());
            body.push(u8::from(*active));
        }
        Encoded::LastFire { flow, at } => {
            body.push(LAST_FIRE);
            bytes(body, flow.as_bytes());
            body.extend_from_slice(&at.to_le_bytes());
        }
        Encoded::Fire { flow, at } => {
            body.push(FIRE);
            bytes(body, flow.as_bytes());
            body.extend_from_slice(&super::nanos(*at).to_le_bytes());
        }
        Encoded::Attempt { key, bytes: b } => {
            body.push(ATTEMPT);
            body.extend_from_slice(&key.0.to_le_bytes());
            body.extend_from_slice(&key.1.to_le_bytes());
            bytes(body, b);
        }
        Encoded::Step { key, bytes: b } => {
            body.push(STEP);
            body.extend_from_slice(&key.0.to_le_bytes());
            body.extend_from_slice(&key.1.to_le_bytes());
            body.extend_from_slice(&key.2.to_le_bytes());
            bytes(body, b);
        }
        Encoded::Payload { key, bytes: b } => {
            body.push(PAYLOAD);
            payload_key(body, key);
            bytes(body, b);
        }
        Encoded::Bundle { key, bytes: b } => {
            body.push(BUNDLE);
            payload_key(body, key);
            bytes(body, b);
        }
        Encoded::Log {
            time,
            job,
            seq,
            bytes: b,
        } => {
            body.push(LOG);
            body.extend_from_slice(&time.to_le_bytes());
            body.extend_from_slice(&job.to_le_bytes());
            body.extend_from_slice(&seq.to_le_bytes());
            bytes(body, b);
        }
    }
}

/// The writes of a record's body.
pub(super) fn decode(body: &[u8]) -> Result<Vec<Encoded>, String> {
    let mut r = Reader { body, at: 0 };
    let mut out = Vec::new();
    while r.at < body.len() {
        let tag = r.u8()?;
        let w = match tag {
            NAME => {
                let id = r.u32()?;
                let value: Pending = (id, r.bytes()?.into());
                Encoded::Name(value)
            }
            EXECUTION => Encoded::Execution {
                id: r.u128()?,
                flow: r.string()?,
                status: r.u8()?,
                bytes: r.bytes()?,
            },
            FLOW_ACTIVE => Encoded::FlowActive {
                flow: r.string()?,
                active: r.u8()? != 0,
            },
            LAST_FIRE => Encoded::LastFire {
                flow: r.string()?,
                at: r.u64()?,
            },
            FIRE => Encoded::Fire {
                flow: r.string()?,
                at: UNIX_EPOCH + Duration::from_nanos(r.u64()?),
            },
            ATTEMPT => Encoded::Attempt {
                key: (r.u128()?, r.u32()?),
                bytes: r.bytes()?,
            },
            STEP => Encoded::Step {
                key: (r.u128()?, r.u32()?, r.u32()?),
                bytes: r.bytes()?,
            },
            PAYLOAD => Encoded::Payload {
                key: (r.u128()?, r.u32()?, r.u32()?, r.u8()?),
                bytes: r.bytes()?,
            },
            BUNDLE => Encoded::Bundle {
                key: (r.u128()?, r.u32()?, r.u32()?, r.u8()?),
                bytes: r.bytes()?,
            },
            LOG => Encoded::Log {
                time: r.u64()?,
                job: r.u128()?,
                seq: r.u32()?,
                bytes: r.bytes()?,
            },
            other => return Err(format!("unknown write tag {other} at byte {}", r.at - 1)),
        };
        out.push(w);
    }
    Ok(out)
}

struct Reader<'a> {
    body: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        let end = self
            .at
            .checked_add(n)
            .filter(|e| *e <= self.body.len())
            .ok_or_else(|| format!("ends inside a write at byte {}", self.at))?;
        let s = &self.body[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }
    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }
    fn u128(&mut self) -> Result<u128, String> {
        Ok(u128::from_le_bytes(self.take(16)?.try_into().expect("16 bytes")))
    }
    fn bytes(&mut self) -> Result<Vec<u8>, String> {
        let n = self.u32()? as usize;
        Ok(self.take(n)?.to_vec())
    }
    fn string(&mut self) -> Result<String, String> {
        let at = self.at;
        String::from_utf8(self.bytes()?).map_err(|_| format!("a name at byte {at} is not UTF-8"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_of_each() -> Vec<Encoded> {
        vec![
            Encoded::Name((7, b"flow-a".to_vec().into())),
            Encoded::Execution {
                id: u128::MAX - 3,
                flow: "orders".into(),
                status: 4,
                bytes: vec![1, 2, 3],
            },
            Encoded::FlowActive {
                flow: "orders".into(),
                active: false,
            },
            Encoded::LastFire {
                flow: "nightly".into(),
                at: 1_700_000_000_123_456_789,
            },
            Encoded::Fire {
                flow: "nightly".into(),
                at: UNIX_EPOCH + Duration::from_nanos(1_700_000_000_000_000_001),
            },
            Encoded::Attempt {
                key: (9, 2),
                bytes: vec![],
            },
            Encoded::Step {
                key: (9, 2, 5),
                bytes: vec![0xff; 300],
            },
            Encoded::Payload {
                key: (9, u32::MAX, 1, 2),
                bytes: b"{}".to_vec(),
            },
            Encoded::Bundle {
                key: (9, 1, 0, 255),
                bytes: vec![5; 70_000],
            },
            Encoded::Log {
                time: 42,
                job: 9,
                seq: 77,
                bytes: b"record".to_vec(),
            },
        ]
    }

    fn body(writes: &[Encoded]) -> Vec<u8> {
        let mut b = Vec::new();
        for w in writes {
            encode(&mut b, w);
        }
        b
    }

    #[test]
    fn every_write_reads_back_as_written() {
        let writes = one_of_each();
        let b = body(&writes);
        let back = decode(&b).unwrap();
        assert_eq!(back.len(), writes.len());
        assert_eq!(body(&back), b, "decoding then encoding gives the same bytes");
        // A body cut anywhere, or with an unknown tag, is an error, never a panic.
        for cut in [1, 5, 17, b.len() - 1] {
            assert!(decode(&b[..cut]).is_err(), "cut at {cut}");
        }
        assert!(decode(&[200]).err().unwrap().contains("unknown write tag 200"));
        for (i, w) in writes.iter().enumerate() {
            assert_eq!(body(std::slice::from_ref(w)).len(), encoded_len(w), "write {i}");
        }
    }

    fn appended(wal: &mut Wal, n: u64) {
        for _ in 0..n {
            let seq = wal.next_seq();
            wal.append(seq, &body(&one_of_each()[..2])).unwrap();
        }
    }

    #[test]
    fn records_of_every_size_read_back_with_direct_writes_and_through_the_page_cache() {
        for direct in [true, false] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("flowd.wal");
            let (mut wal, _) = Wal::open(&path, 0).unwrap();
            if direct && wal.direct.is_none() {
                eprintln!(
                    "{} refuses O_DIRECT: only writes through the page cache are tested",
                    path.display()
                );
                continue;
            }
            if !direct {
                wal.direct = None;
            }
            // Records that end inside a block, exactly at its end, and span several.
            let sizes = [
                10,
                BLOCK - HEADER as usize - 10 - HEADER as usize,
                1,
                3 * BLOCK + 5,
                BLOCK,
                0,
                70_000,
            ];
            let bodies: Vec<Vec<u8>> = sizes
                .iter()
                .enumerate()
                .map(|(i, n)| (0..*n).map(|j| (i * 31 + j) as u8).collect())
                .collect();
            let log = |wal: &mut Wal, bodies: &[Vec<u8>]| {
                for b in bodies {
                    let mut w = Vec::new();
                    encode(&mut w, &Encoded::Name((1, b.clone().into())));
                    let seq = wal.next_seq();
                    wal.append(seq, &w).unwrap();
                }
            };
            let names = |records: &[Record]| -> Vec<Vec<u8>> {
                records
                    .iter()
                    .flat_map(|r| &r.writes)
                    .map(|w| match w {
                        Encoded::Name((_, v)) => v.to_vec(),
                        _ => panic!("only names were logged"),
                    })
                    .collect()
            };
            log(&mut wal, &bodies);
            assert_eq!(wal.direct.is_some(), direct, "no direct write failed");
            drop(wal);
            let (mut wal, records) = Wal::open(&path, 0).unwrap();
            assert_eq!(seqs(&records), (1..=7).collect::<Vec<_>>(), "direct: {direct}");
            assert_eq!(names(&records), bodies, "direct: {direct}");
            // After a checkpoint the log starts over on top of older records, not read again.
            wal.checkpointed(7);
            if !direct {
                wal.direct = None;
            }
            log(&mut wal, &bodies[..3]);
            assert_eq!(wal.direct.is_some(), direct, "no direct write failed");
            drop(wal);
            let (_, records) = Wal::open(&path, 7).unwrap();
            assert_eq!(seqs(&records), vec![8, 9, 10], "direct: {direct}");
            assert_eq!(names(&records), bodies[..3].to_vec(), "direct: {direct}");
        }
    }

    fn seqs(records: &[Record]) -> Vec<u64> {
        records.iter().map(|r| r.seq).collect()
    }

    #[test]
    fn records_past_the_applied_batch_are_read_back_up_to_a_torn_or_damaged_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flowd.wal");
        let (mut wal, records) = Wal::open(&path, 0).unwrap();
        assert!(records.is_empty() && wal.is_empty());
        assert_eq!(wal.next_seq(), 1);
        appended(&mut wal, 5);
        assert!(!wal.is_empty());
        drop(wal);

        let (wal, records) = Wal::open(&path, 0).unwrap();
        assert_eq!(seqs(&records), [1, 2, 3, 4, 5]);
        assert_eq!(records[0].writes.len(), 2);
        assert_eq!(wal.next_seq(), 6);
        // The database holds up to batch 3: only 4 and 5 are applied again.
        let (_, records) = Wal::open(&path, 3).unwrap();
        assert_eq!(seqs(&records), [4, 5]);
        // Holding all of them: nothing to apply, and numbering goes on after the database's.
        let (wal, records) = Wal::open(&path, 9).unwrap();
        assert!(records.is_empty());
        assert_eq!(wal.next_seq(), 10);

        // A byte of record 4 damaged: the log ends before it.
        let file = OpenOptions::new().write(true).open(&path).unwrap();
        let record = HEADER + body(&one_of_each()[..2]).len() as u64;
        file.write_all_at(&[0xAA], 3 * record + HEADER + 3).unwrap();
        let (_, records) = Wal::open(&path, 0).unwrap();
        assert_eq!(seqs(&records), [1, 2, 3]);
        // Record 5 is intact after it: damage, not a crash's tail, so the log is kept aside.
        let kept = |dir: &Path| {
            std::fs::read_dir(dir)
                .unwrap()
                .filter(|e| {
                    e.as_ref()
                        .unwrap()
                        .file_name()
                        .to_string_lossy()
                        .starts_with("flowd.wal.damaged-")
                })
                .count()
        };
        assert_eq!(kept(dir.path()), 1);
        // Record 3 torn by a crash mid-write: it ends before it.
        file.set_len(2 * record + HEADER + 5).unwrap();
        let (_, records) = Wal::open(&path, 1).unwrap();
        assert_eq!(seqs(&records), [2]);
        assert_eq!(kept(dir.path()), 1, "a torn tail is no damage: nothing more kept");
    }

    #[test]
    fn after_a_checkpoint_the_log_starts_over_and_older_records_are_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flowd.wal");
        let (mut wal, _) = Wal::open(&path, 0).unwrap();
        appended(&mut wal, 4);
        wal.checkpointed(4);
        assert!(wal.is_empty());
        appended(&mut wal, 1);
        drop(wal);
        // Batch 5 overwrote batch 1; batches 2-4 behind it break the numbering.
        let (_, records) = Wal::open(&path, 4).unwrap();
        assert_eq!(seqs(&records), [5]);
        // The database at the checkpoint's batch or later: nothing to apply.
        let (_, records) = Wal::open(&path, 5).unwrap();
        assert!(records.is_empty());

        // A clean close gives the space back.
        let (mut wal, _) = Wal::open(&path, 5).unwrap();
        wal.checkpointed(5);
        wal.close();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
    }

    #[test]
    fn a_log_whose_records_start_past_the_database_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flowd.wal");
        let (mut wal, _) = Wal::open(&path, 10).unwrap();
        appended(&mut wal, 2);
        drop(wal);
        // An older copy of the database, which holds batches up to 6 only.
        let err = Wal::open(&path, 6).err().unwrap();
        assert!(
            matches!(
                err,
                WalError::Gap {
                    first: 11,
                    applied: 6,
                    ..
                }
            ),
            "{err}"
        );
        assert!(
            err.to_string().contains("restore flowd.redb and flowd.wal together"),
            "{err}"
        );
    }

    #[test]
    fn a_batch_that_would_pass_the_cap_does_not_fit() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = Wal::open(&dir.path().join("flowd.wal"), 0).unwrap();
        assert!(wal.fits((MAX_BYTES - HEADER) as usize));
        assert!(!wal.fits((MAX_BYTES - HEADER + 1) as usize));
        wal.skipped(1);
        assert!(
            !wal.fits(1),
            "a hole in the numbering: nothing goes in before a checkpoint"
        );
        wal.checkpointed(1);
        assert!(wal.fits(1));
        assert_eq!(wal.next_seq(), 2);
    }
}
