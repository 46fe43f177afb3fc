//! The durable ingress log: every accepted request, appended to our own file before it runs.
//!
//! ```text
//! file:   record record record ... [torn tail, cut off by `open`]
//! record: [len: u32 LE][crc32(payload): u32 LE][payload: IngressRecord record, len bytes]
//! ```
//!
//! Appends go through a `BufWriter`; [`IngressLog::sync`] flushes it and calls `sync_data`,
//! and only synced records survive a crash. On open the file is scanned; the first record
//! that is incomplete or fails its CRC ends the log: the file is truncated there (a write
//! torn by a crash), and appends continue after the last good record. Recovery replays the
//! records [`IngressLog::read_from`] returns that the store has no completion for.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

pub use stateful_core::records::ingress::IngressRecord;
use stateful_core::records::{decode, encode};

use super::crc::crc32;
use super::error::{OpenError, ReadError, WriteError};
use super::store::StateStore;

/// Bytes of a record header: length and CRC.
const HEADER: usize = 8;
/// The records of `records` that `store` has no completion for (those below its completion
/// watermark all completed): what recovery runs again.
pub(crate) fn incomplete(
    store: &dyn StateStore,
    records: Vec<IngressRecord>,
) -> Result<Vec<IngressRecord>, ReadError> {
    let below = store.horizon()?.complete_below_seq;
    let done: std::collections::HashSet<u64> =
        store.completed_seqs_from(below)?.into_iter().collect();
    Ok(records
        .into_iter()
        .filter(|r| r.seq >= below && !done.contains(&r.seq))
        .collect())
}

/// Largest payload a record may have; a larger length in the file is treated as corruption.
pub const MAX_RECORD: usize = 64 << 20;

/// A request to append: an [`IngressRecord`] before the log assigns its seq.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRecord {
    /// See [`IngressRecord::timestamp_ms`].
    pub timestamp_ms: u64,
    /// See [`IngressRecord::lambda`].
    pub lambda: u16,
    /// See [`IngressRecord::key`].
    pub key: Vec<u8>,
    /// See [`IngressRecord::handler`].
    pub handler: u16,
    /// See [`IngressRecord::args`].
    pub args: Vec<u8>,
    /// See [`IngressRecord::idempotency_key`].
    pub idempotency_key: Option<String>,
}

impl NewRecord {
    fn with_seq(self, seq: u64) -> IngressRecord {
        IngressRecord {
            seq,
            timestamp_ms: self.timestamp_ms,
            lambda: self.lambda,
            key: self.key,
            handler: self.handler,
            args: self.args,
            idempotency_key: self.idempotency_key,
        }
    }
}

/// What [`IngressLog::open`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpenReport {
    /// Intact records in the log.
    pub records: u64,
    /// Bytes cut off the end (a torn or corrupt tail); 0 after a clean stop.
    pub truncated_bytes: u64,
}

#[derive(Debug)]
struct Inner {
    writer: BufWriter<File>,
    next_seq: u64,
    /// Records were appended since the last `sync`.
    dirty: bool,
    /// A write failed: the buffer may hold part of a record, so nothing more is appended.
    failed: bool,
}

/// The append-only ingress log file.
///
/// # Examples
///
/// ```
/// use stateful_runtime::storage::ingress::{IngressLog, NewRecord};
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// let (log, report) = IngressLog::open(&dir.path().join("ingress.log"))?;
/// assert_eq!(report.records, 0);
/// let rec = NewRecord {
///     timestamp_ms: 1, lambda: 0, key: b"k".to_vec(), handler: 2, args: vec![], idempotency_key: None,
/// };
/// let seq = log.append(rec)?;
/// log.sync()?;
/// assert_eq!(log.read_from(seq)?[0].handler, 2);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct IngressLog {
    path: PathBuf,
    inner: Mutex<Inner>,
}

/// Reads every intact record of the log at `path` without changing the file (a torn tail is
/// ignored, not truncated): for replaying another data dir.
pub fn read_log(path: &Path) -> Result<Vec<IngressRecord>, ReadError> {
    let bytes = std::fs::read(path)?;
    let (records, _) = scan(&bytes)?;
    Ok(records)
}

/// Reads the intact records of the log at `path` in order, one at a time (the file is never
/// held in memory whole), handing each with `seq >= from_seq` to `visit` until it returns
/// `false`. A torn tail ends the scan, as it ends the log.
pub fn scan_log(
    path: &Path,
    from_seq: u64,
    mut visit: impl FnMut(IngressRecord) -> bool,
) -> Result<(), ReadError> {
    let mut r = std::io::BufReader::new(File::open(path)?);
    let mut header = [0u8; HEADER];
    let mut payload = Vec::new();
    loop {
        match r.read_exact(&mut header) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e.into()),
        }
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        if len > MAX_RECORD {
            return Ok(());
        }
        payload.resize(len, 0);
        match r.read_exact(&mut payload) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e.into()),
        }
        if crc32(&payload) != crc {
            return Ok(());
        }
        let Ok(record) = decode::<IngressRecord>(&payload) else {
            return Ok(());
        };
        if record.seq >= from_seq && !visit(record) {
            return Ok(());
        }
    }
}

impl IngressLog {
    /// Opens (or creates) the log at `path`, truncating a torn or corrupt tail.
    ///
    /// Fails with [`OpenError::Corrupt`] when an intact record breaks the seq order.
    pub fn open(path: &Path) -> Result<(Self, OpenReport), OpenError> {
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let (records, good_len) = scan(&bytes).map_err(|e| OpenError::Corrupt(e.to_string()))?;
        let truncated_bytes = (bytes.len() - good_len) as u64;
        if truncated_bytes > 0 {
            tracing::warn!(
                path = %path.display(),
                truncated_bytes,
                kept_records = records.len(),
                "ingress log ends in a torn or corrupt record; truncating it"
            );
            file.set_len(good_len as u64)?;
            file.sync_data()?;
        }
        file.seek(SeekFrom::End(0))?;
        let next_seq = records.last().map_or(1, |r| r.seq + 1);
        let report = OpenReport {
            records: records.len() as u64,
            truncated_bytes,
        };
        let log = Self {
            path: path.to_path_buf(),
            inner: Mutex::new(Inner {
                writer: BufWriter::new(file),
                next_seq,
                dirty: false,
                failed: false,
            }),
        };
        Ok((log, report))
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock can only leave a partly written record in the
        // buffer, which the next open detects by its CRC or length.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends a record and returns its seq. Durable only after [`IngressLog::sync`].
    ///
    /// After an I/O error every later append and sync fails: reopen the log, which drops a
    /// partly written record.
    pub fn append(&self, record: NewRecord) -> Result<u64, WriteError> {
        let mut inner = self.lock();
        check_not_failed(&inner)?;
        let seq = inner.next_seq;
        let payload =
            encode(&record.with_seq(seq)).map_err(|e| WriteError::Corrupt(e.to_string()))?;
        if payload.len() > MAX_RECORD {
            return Err(WriteError::TooLarge {
                what: "an ingress record",
                len: payload.len(),
            });
        }
        let mut header = [0u8; HEADER];
        header[..4].copy_from_slice(&(payload.len() as u32).to_le_bytes());
        header[4..].copy_from_slice(&crc32(&payload).to_le_bytes());
        inner.dirty = true;
        let written = inner
            .writer
            .write_all(&header)
            .and_then(|()| inner.writer.write_all(&payload));
        if let Err(e) = written {
            inner.failed = true;
            return Err(e.into());
        }
        inner.next_seq += 1;
        Ok(seq)
    }

    /// Makes every appended record durable (flush + `fdatasync`); returns at once when
    /// nothing was appended since the last sync.
    pub fn sync(&self) -> Result<(), WriteError> {
        let mut inner = self.lock();
        check_not_failed(&inner)?;
        if !inner.dirty {
            return Ok(());
        }
        let synced = inner
            .writer
            .flush()
            .and_then(|()| inner.writer.get_ref().sync_data());
        if let Err(e) = synced {
            inner.failed = true;
            return Err(e.into());
        }
        inner.dirty = false;
        Ok(())
    }

    /// Every record with `seq >= from_seq`, in order (reads the file).
    pub fn read_from(&self, from_seq: u64) -> Result<Vec<IngressRecord>, ReadError> {
        let bytes = {
            let mut inner = self.lock();
            inner.writer.flush()?;
            std::fs::read(&self.path)?
        };
        let (records, good_len) = scan(&bytes)?;
        if good_len != bytes.len() {
            return Err(ReadError::Corrupt(format!(
                "ingress log {} is corrupt at byte {good_len}",
                self.path.display()
            )));
        }
        Ok(records.into_iter().filter(|r| r.seq >= from_seq).collect())
    }

    /// The seq the next append gets.
    pub fn next_seq(&self) -> u64 {
        self.lock().next_seq
    }
}

fn check_not_failed(inner: &Inner) -> Result<(), WriteError> {
    if inner.failed {
        return Err(WriteError::Failed);
    }
    Ok(())
}

/// Decodes records from the start of `bytes` up to the first incomplete or corrupt one;
/// returns them and the length of the intact prefix.
fn scan(bytes: &[u8]) -> Result<(Vec<IngressRecord>, usize), ReadError> {
    let mut records: Vec<IngressRecord> = Vec::new();
    let mut pos = 0;
    while let Some(header) = bytes.get(pos..pos + HEADER) {
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        if len > MAX_RECORD {
            break;
        }
        let Some(payload) = bytes.get(pos + HEADER..pos + HEADER + len) else {
            break;
        };
        if crc32(payload) != crc {
            break;
        }
        let Ok(record) = decode::<IngressRecord>(payload) else {
            break;
        };
        match records.last() {
            Some(last) if record.seq <= last.seq => {
                return Err(ReadError::Corrupt(format!(
                    "ingress record at byte {pos} has seq {} after seq {}",
                    record.seq, last.seq
                )));
            }
            _ => {}
        }
        records.push(record);
        pos += HEADER + len;
    }
    Ok((records, pos))
}

#[cfg(test)]
#[path = "ingress_tests.rs"]
mod tests;
