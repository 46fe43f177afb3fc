//! The commit log: the durable truth of the engine. Each epoch's commit (its state changes,
//! its completed requests with their answers and commit order) is one checksummed record,
//! appended by the committer thread; an answer is released only after the `fdatasync` that
//! covers its epoch's record. The state store is materialised from the log off that path,
//! and the log is cut behind the store's checkpoint.
//!
//! ```text
//! <data>/log/00000001764612345678.seg  (named by its first epoch; rolled over at a size)
//!   record record record ... [torn tail: cut with a log line when the log is opened]
//! open: every segment in order, records chained by prev_epoch (a gap: a missing segment);
//!       damage before the end of the log, or a record that does not decode: an error
//! ```

mod frame;
pub mod fs;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use stateful_core::records::commit::CommitRecord;

use super::error::{OpenError, ReadError, WriteError};
use fs::{LogFile, LogFs};

/// What a sync of the log means (how far an acknowledgement is durable).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncMode {
    /// `fdatasync`: survives a power cut.
    Fsync,
    /// Written to the OS only: survives a crash of the process, not of the machine.
    ProcessCrash,
}

/// The default size at which a segment is closed and a new one started.
pub const SEGMENT_BYTES: u64 = 64 << 20;

/// What opening the log found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogReport {
    /// Intact records in the log.
    pub records: u64,
    /// Bytes cut off the end of the last segment (a torn or corrupt tail).
    pub truncated_bytes: u64,
    /// The epoch of the last intact record (0: empty).
    pub last_epoch: u64,
}

/// A segment file.
#[derive(Debug, Clone)]
struct Segment {
    path: PathBuf,
    last_epoch: u64,
    len: u64,
}

/// The commit log of a data dir.
pub struct CommitLog {
    dir: PathBuf,
    fs: Arc<dyn LogFs>,
    sync: SyncMode,
    segment_bytes: u64,
    segments: Vec<Segment>,
    writer: Option<Box<dyn LogFile>>,
    last_epoch: u64,
    /// Bytes appended since the last sync.
    unsynced: bool,
    /// A write failed: the file may hold part of a record, so nothing more is appended.
    failed: bool,
}

impl std::fmt::Debug for CommitLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommitLog")
            .field("dir", &self.dir)
            .field("segments", &self.segments.len())
            .field("last_epoch", &self.last_epoch)
            .finish_non_exhaustive()
    }
}

fn segment_name(first_epoch: u64) -> String {
    format!("{first_epoch:020}.seg")
}

fn parse_name(name: &str) -> Option<u64> {
    name.strip_suffix(".seg")?.parse().ok()
}

/// The segments of `dir` in order, with their records.
fn read_segments(
    fs: &dyn LogFs,
    dir: &Path,
) -> Result<Vec<(Segment, frame::Scanned, u64)>, ReadError> {
    let mut names: Vec<(u64, String)> = fs
        .list(dir)?
        .into_iter()
        .filter_map(|n| parse_name(&n).map(|e| (e, n)))
        .collect();
    names.sort();
    let mut out = Vec::with_capacity(names.len());
    for (first, name) in names {
        let path = dir.join(&name);
        let bytes = fs.read(&path)?;
        let scanned = frame::scan(&bytes);
        let seg = Segment {
            path,
            last_epoch: scanned.records.last().map_or(first, |r| r.epoch),
            len: scanned.good_len as u64,
        };
        out.push((seg, scanned, bytes.len() as u64));
    }
    Ok(out)
}

/// Checks the segments and chains their records; returns them (every record in order) and
/// the bytes to cut off the last segment.
fn check(
    segments: &[(Segment, frame::Scanned, u64)],
    checkpoint: u64,
) -> Result<(Vec<CommitRecord>, u64), String> {
    let mut records: Vec<CommitRecord> = Vec::new();
    let mut cut = 0;
    let n = segments.len();
    for (i, (seg, scanned, total)) in segments.iter().enumerate() {
        let name = seg.path.display();
        if let Some((pos, e)) = &scanned.undecodable {
            return Err(format!(
                "{name}: the record at byte {pos} does not decode: {e}"
            ));
        }
        if let Some(pos) = scanned.damaged_at {
            return Err(format!(
                "{name}: the record at byte {pos} fails its checksum and intact records follow it: the log is damaged in the middle"
            ));
        }
        let tail = total - seg.len;
        if tail > 0 && i + 1 < n {
            return Err(format!(
                "{name}: {tail} bytes at the end of a segment that is not the last one do not form a record: the log is damaged"
            ));
        }
        if i + 1 == n {
            cut = tail;
        }
        for r in &scanned.records {
            let expected = records.last().map(|p| p.epoch);
            match expected {
                Some(prev) if r.prev_epoch != prev || r.epoch <= prev => {
                    return Err(format!(
                        "{name}: epoch {} follows epoch {} but names {} before it: a segment of the log is missing",
                        r.epoch, prev, r.prev_epoch
                    ));
                }
                None if r.prev_epoch > checkpoint => {
                    return Err(format!(
                        "{name}: the log starts at epoch {} after epoch {}, but the state store's checkpoint is epoch {checkpoint}: the segments in between are missing",
                        r.epoch, r.prev_epoch
                    ));
                }
                _ => {}
            }
            records.push(r.clone());
        }
    }
    Ok((records, cut))
}

impl CommitLog {
    /// Opens the log in `dir` (creating it), given the epoch the state store has
    /// materialised (`checkpoint`): returns the log, the records after the checkpoint (what
    /// recovery applies), and what it found. A torn tail is cut (with a log line); damage
    /// before the end, a missing segment or an undecodable record is an error.
    pub fn open(
        dir: &Path,
        fs: Arc<dyn LogFs>,
        sync: SyncMode,
        checkpoint: u64,
    ) -> Result<(CommitLog, Vec<CommitRecord>, LogReport), OpenError> {
        fs.create_dir(dir)?;
        let found =
            read_segments(fs.as_ref(), dir).map_err(|e| OpenError::Corrupt(e.to_string()))?;
        let (records, cut) = check(&found, checkpoint).map_err(OpenError::Corrupt)?;
        let mut segments: Vec<Segment> = found.into_iter().map(|(s, _, _)| s).collect();
        if cut > 0
            && let Some(last) = segments.last()
        {
            tracing::warn!(
                segment = %last.path.display(),
                bytes = cut,
                "the commit log ends in a torn or corrupt record; cutting it off"
            );
            fs.truncate(&last.path, last.len)?;
        }
        // An empty segment (created, nothing synced into it) names no epoch: drop it. A log
        // wholly behind the checkpoint holds nothing recovery needs: it goes, and the next
        // record starts the chain again from the checkpoint.
        let last = records.last().map_or(0, |r| r.epoch);
        while segments
            .last()
            .is_some_and(|s| s.len == 0 || last < checkpoint)
        {
            if let Some(s) = segments.pop() {
                fs.remove(&s.path)?;
            }
        }
        fs.sync_dir(dir)?;
        let report = LogReport {
            records: records.len() as u64,
            truncated_bytes: cut,
            last_epoch: records.last().map_or(0, |r| r.epoch),
        };
        let log = CommitLog {
            dir: dir.to_owned(),
            fs,
            sync,
            segment_bytes: SEGMENT_BYTES,
            segments,
            writer: None,
            last_epoch: report.last_epoch.max(checkpoint),
            unsynced: false,
            failed: false,
        };
        let after = records
            .into_iter()
            .filter(|r| r.epoch > checkpoint)
            .collect();
        Ok((log, after, report))
    }

    /// Rolls segments over at `bytes` instead of [`SEGMENT_BYTES`] (tests).
    pub fn with_segment_bytes(mut self, bytes: u64) -> Self {
        self.segment_bytes = bytes.max(1);
        self
    }

    /// The epoch of the last record appended (or of the checkpoint, when the log was empty).
    pub fn last_epoch(&self) -> u64 {
        self.last_epoch
    }

    fn writer_for(&mut self, epoch: u64, len: u64) -> Result<&mut Box<dyn LogFile>, WriteError> {
        let full = self
            .segments
            .last()
            .is_none_or(|s| s.len > 0 && s.len + len > self.segment_bytes);
        if full || self.writer.is_none() {
            if full {
                // The old segment's bytes are durable before the new one is used.
                if let Some(mut w) = self.writer.take() {
                    w.sync_data()?;
                }
                let path = self.dir.join(segment_name(epoch));
                self.segments.push(Segment {
                    path,
                    last_epoch: epoch,
                    len: 0,
                });
            }
            let path = self
                .segments
                .last()
                .map(|s| s.path.clone())
                .unwrap_or_default();
            self.writer = Some(self.fs.open_append(&path)?);
            if full {
                self.fs.sync_dir(&self.dir)?;
            }
        }
        self.writer.as_mut().ok_or(WriteError::Failed)
    }

    /// Appends one epoch's record (durable after [`CommitLog::sync`]). Its `prev_epoch` must
    /// be the last epoch of the log.
    pub fn append(&mut self, record: &CommitRecord) -> Result<(), WriteError> {
        if self.failed {
            return Err(WriteError::Failed);
        }
        if record.epoch <= self.last_epoch || record.prev_epoch != self.last_epoch {
            return Err(WriteError::Corrupt(format!(
                "epoch {} (after {}) appended after epoch {}",
                record.epoch, record.prev_epoch, self.last_epoch
            )));
        }
        let bytes = frame::frame(record).map_err(WriteError::Corrupt)?;
        let len = bytes.len() as u64;
        let written = self
            .writer_for(record.epoch, len)
            .and_then(|w| w.write_all(&bytes).map_err(WriteError::from));
        if let Err(e) = written {
            self.failed = true;
            return Err(e);
        }
        if let Some(s) = self.segments.last_mut() {
            s.len += len;
            s.last_epoch = record.epoch;
        }
        self.last_epoch = record.epoch;
        self.unsynced = true;
        Ok(())
    }

    /// Makes every appended record durable as the sync mode says (`fdatasync`, or a write to
    /// the OS); returns at once when nothing was appended since the last sync.
    pub fn sync(&mut self) -> Result<(), WriteError> {
        if self.failed {
            return Err(WriteError::Failed);
        }
        if !self.unsynced {
            return Ok(());
        }
        let Some(w) = self.writer.as_mut() else {
            return Ok(());
        };
        let done = match self.sync {
            SyncMode::Fsync => w.sync_data(),
            SyncMode::ProcessCrash => w.flush(),
        };
        if let Err(e) = done {
            self.failed = true;
            return Err(e.into());
        }
        self.unsynced = false;
        Ok(())
    }

    /// Deletes every segment whose records all have epochs up to `epoch` (the state store's
    /// durable checkpoint), except the one being written.
    pub fn truncate_through(&mut self, epoch: u64) -> Result<usize, WriteError> {
        let mut removed = 0;
        while self.segments.len() > 1 && self.segments[0].last_epoch <= epoch {
            let s = self.segments.remove(0);
            self.fs.remove(&s.path)?;
            removed += 1;
        }
        if removed > 0 {
            self.fs.sync_dir(&self.dir)?;
        }
        Ok(removed)
    }

    /// Removes every record after `epoch` (a cluster's recovery: those epochs were not
    /// committed on every process, so they never were acknowledged); `checkpoint` is the
    /// store's (the chain restarts from it if nothing is left). Only before appending.
    pub fn cut_after(&mut self, epoch: u64, checkpoint: u64) -> Result<usize, WriteError> {
        let mut cut = 0;
        while let Some(seg) = self.segments.last().cloned() {
            if seg.last_epoch <= epoch {
                break;
            }
            let scanned = frame::scan(&self.fs.read(&seg.path)?);
            let keep = scanned
                .records
                .iter()
                .take_while(|r| r.epoch <= epoch)
                .count();
            cut += scanned.records.len() - keep;
            if keep == 0 {
                self.fs.remove(&seg.path)?;
                self.segments.pop();
                continue;
            }
            let len = scanned.ends[keep - 1] as u64;
            self.fs.truncate(&seg.path, len)?;
            if let Some(s) = self.segments.last_mut() {
                s.len = len;
                s.last_epoch = scanned.records[keep - 1].epoch;
            }
            break;
        }
        self.fs.sync_dir(&self.dir)?;
        self.writer = None;
        self.last_epoch = self
            .segments
            .last()
            .map_or(checkpoint, |s| s.last_epoch.max(checkpoint));
        Ok(cut)
    }

    /// Bytes the log takes.
    pub fn size(&self) -> u64 {
        self.segments.iter().map(|s| s.len).sum()
    }
}

/// Every intact record of the log in `dir`, without changing it (a torn tail is ignored):
/// for the tools.
pub fn read_log(dir: &Path) -> Result<Vec<CommitRecord>, ReadError> {
    let found = read_segments(&fs::OsFs, dir)?;
    check(&found, u64::MAX)
        .map(|(r, _)| r)
        .map_err(ReadError::Corrupt)
}
