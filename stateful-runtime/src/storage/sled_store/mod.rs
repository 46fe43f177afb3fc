//! The sled implementation of [`StateStore`]: one tree, keys laid out for prefix scans,
//! materialised from the commit log.
//!
//! ```text
//! 'v' lambda:u16 group:u16 keylen:u32 key epoch:u64   -> 0 (tombstone) | 1 ++ value
//!                                                         | 2/3 n:u32 writer ids:u64*n (++ value)
//! 'e' epoch:u64                                        -> IndexEntry record
//! 'c' seq:u64                                          -> CompletionRecord (request, response,
//!                                                         order, epoch, call tree)
//! 'i' idempotency key                                  -> seq:u64
//! 'k'                                                  -> checkpoint epoch, next seq, next order
//! 'h'                                                  -> horizon epoch:u64 forgotten_below_seq:u64
//! 'a'                                                  -> app name
//! (all integers big-endian, so byte order is numeric order)
//! ```
//!
//! [`StateStore::apply`] writes the given epochs in `sled::Batch`es of at most 500 operations
//! (each whole or not at all; the checkpoint in the last): epochs that fit go into a batch
//! whole, a larger one (a bulk load's) is split, and applied again from the log after a crash
//! cut it short. [`StateStore::flush`] makes it durable: sled's flush, then an
//! `fsync` of sled's files (sled's own flush survives a process crash but not a power cut).
//! Compaction walks the `'e'` index from the oldest entry up to the new horizon, deleting
//! superseded versions (after raising `'h'`, so that no read can see them go) and then the
//! index entries themselves.

mod compact;
mod layout;
mod read;

use std::collections::BTreeSet;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use stateful_core::keys::KeyGroup;
use stateful_core::records::completion::CompletionRecord;
use stateful_core::records::encode;
use stateful_core::records::index::IndexEntry;

use super::error::{CompactError, OpenError, ReadError, WriteError};
use super::store::{
    Checkpoint, CommitRecord, Compacted, Completion, Horizon, MessageId, MessageRecord, StateStore,
    Version,
};
use layout::*;

/// [`StateStore`] on a sled database in a data dir.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use stateful_runtime::storage::{CommitRecord, SledStore, StateStore, WriteRecord};
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// let store = SledStore::open(dir.path())?;
/// let write = WriteRecord {
///     lambda: 1, group: 7, key: b"k".to_vec(), value: Some(b"v".to_vec()), writers: vec![1],
/// };
/// let epoch = CommitRecord {
///     epoch: 10, prev_epoch: 0, writes: vec![write], completions: vec![], messages: vec![], next_seq: 1, next_order: 0,
/// };
/// store.apply(&[Arc::new(epoch)])?;
/// store.flush()?;
/// assert_eq!(store.get(1, 7, b"k")?, Some(b"v".to_vec()));
/// assert_eq!(store.get_at(1, 7, b"k", 9)?, None);
/// assert_eq!(store.checkpoint()?.epoch, 10);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct SledStore {
    db: sled::Db,
    dir: PathBuf,
    /// Apply every epoch in one batch, however large (a cluster process's store).
    whole_epochs: bool,
}

impl SledStore {
    /// Opens (or creates) the store in `dir`.
    ///
    /// Fails with [`OpenError::Locked`] when another process (or another open handle in this
    /// process) holds the dir.
    pub fn open(dir: &Path) -> Result<Self, OpenError> {
        Self::open_with_cache(dir, DEFAULT_PAGE_CACHE_BYTES)
    }

    /// [`SledStore::open`] with a page cache of `bytes` (sled's own memory grows past it with
    /// the size of the store: measured at about 60 bytes per instance at 10M instances).
    pub fn open_with_cache(dir: &Path, bytes: u64) -> Result<Self, OpenError> {
        let db = sled::Config::new()
            .path(dir)
            // Flushes happen at checkpoints; no background flusher thread.
            .flush_every_ms(None)
            .cache_capacity(bytes)
            .open()
            .map_err(|e| map_open_error(e, dir))?;
        Ok(Self {
            db,
            dir: dir.to_owned(),
            whole_epochs: false,
        })
    }

    /// Never splits an epoch, however large (more memory for large epochs). For a cluster
    /// process: its restart may agree on an epoch below one its store holds part of, and
    /// then the log can no longer complete that epoch.
    pub fn with_whole_epochs(mut self) -> Self {
        self.whole_epochs = true;
        self
    }

    /// One epoch into `b` (which is applied and started again whenever it is full).
    fn apply_epoch(
        &self,
        r: &CommitRecord,
        b: &mut Batches,
        claimed: &mut BTreeSet<Vec<u8>>,
    ) -> Result<(), WriteError> {
        let mut entry = IndexEntry::default();
        for w in &r.writes {
            let k = version_key(w.lambda, w.group, &w.key, r.epoch)?;
            b.insert(
                &self.db,
                k.clone(),
                encode_value(w.value.as_deref(), &w.writers),
            )?;
            entry.versions.push(k);
        }
        for m in &r.messages {
            b.insert(&self.db, message_key(m.id), encode(m)?)?;
        }
        for c in &r.completions {
            let req = &c.request;
            if let Some(idem) = &req.idempotency_key {
                let ik = idempotency_key(idem);
                if claimed.insert(ik.clone()) && !self.db.contains_key(&ik)? {
                    b.insert(&self.db, ik, req.seq.to_be_bytes().to_vec())?;
                }
                // A delivery's completion: its message is no longer pending.
                if let Some(id) = MessageId::from_idempotency_key(idem) {
                    b.remove(&self.db, message_key(id))?;
                }
            }
            let stored = CompletionRecord {
                request: req.clone(),
                ok: c.ok,
                response: c.response.clone(),
                order: c.order,
                epoch: r.epoch,
                trace: c.trace.clone(),
            };
            b.insert(&self.db, completion_key(req.seq), encode(&stored)?)?;
            entry
                .completions
                .push((req.seq, req.idempotency_key.clone()));
        }
        if !entry.versions.is_empty() || !entry.completions.is_empty() {
            b.insert(&self.db, index_key(r.epoch), encode(&entry)?)?;
        }
        Ok(())
    }

    /// `fsync` of every file of the store: sled's own flush stops at the OS. A file sled
    /// removed meanwhile (a replaced snapshot) needs no sync.
    fn sync_files(&self) -> std::io::Result<()> {
        let gone = |e: &std::io::Error| e.kind() == ErrorKind::NotFound;
        let mut dirs = vec![self.dir.clone()];
        while let Some(d) = dirs.pop() {
            for e in std::fs::read_dir(&d)?.flatten() {
                let p = e.path();
                if p.is_dir() {
                    dirs.push(p);
                    continue;
                }
                match std::fs::File::open(&p).and_then(|f| f.sync_all()) {
                    Err(e) if !gone(&e) => return Err(e),
                    _ => {}
                }
            }
            std::fs::File::open(&d)?.sync_all()?;
        }
        Ok(())
    }
}

/// sled's page cache unless configured: sled's default is 1 GiB; the engine keeps live state
/// in its own cache, so a small one keeps the whole service well under 1 GiB.
pub const DEFAULT_PAGE_CACHE_BYTES: u64 = 128 << 20;

/// Operations in one sled batch. sled's memory grows with the size of its batches (measured:
/// 1M inserts in batches of 50,000 or 1,000 left the process at 3.4 GB or 1.1 GB, in batches
/// of 500 or 100 at 220 MB, and took no longer), so epochs are applied in batches of at most
/// this many.
const BATCH_OPS: usize = 500;

/// The sled operations of one apply, cut into batches of [`BATCH_OPS`]: epochs that fit go
/// into one batch whole; a larger epoch is split (see [`StateStore::apply`]).
#[derive(Default)]
struct Batches {
    open: sled::Batch,
    ops: usize,
    /// Whether an epoch larger than a batch may be split.
    split: bool,
}

impl Batches {
    /// Applies the open batch first when `ops` more would not fit in it.
    fn fit(&mut self, db: &sled::Db, ops: usize) -> Result<(), WriteError> {
        if self.ops > 0 && self.ops + ops > BATCH_OPS {
            self.apply(db)?;
        }
        Ok(())
    }

    fn insert(&mut self, db: &sled::Db, k: Vec<u8>, v: Vec<u8>) -> Result<(), WriteError> {
        self.open.insert(k, v);
        self.counted(db)
    }

    fn remove(&mut self, db: &sled::Db, k: Vec<u8>) -> Result<(), WriteError> {
        self.open.remove(k);
        self.counted(db)
    }

    fn counted(&mut self, db: &sled::Db) -> Result<(), WriteError> {
        self.ops += 1;
        if self.split && self.ops >= BATCH_OPS {
            // Only an epoch larger than a batch gets here: it is split.
            self.apply(db)?;
        }
        Ok(())
    }

    fn apply(&mut self, db: &sled::Db) -> Result<(), WriteError> {
        db.apply_batch(std::mem::take(&mut self.open))?;
        self.ops = 0;
        Ok(())
    }
}

/// sled operations of one epoch (an upper bound; the checkpoint counts as one).
fn epoch_ops(r: &CommitRecord) -> usize {
    r.writes.len() + r.messages.len() + 3 * r.completions.len() + 2
}

/// sled 0.34 reports a held lock as an `io::Error` of kind `Other` with this message
/// (`Config::try_lock`); nothing more structured is available.
fn map_open_error(e: sled::Error, dir: &Path) -> OpenError {
    match e {
        sled::Error::Io(io)
            if io.kind() == ErrorKind::Other
                && io.to_string().contains("could not acquire lock") =>
        {
            OpenError::Locked(PathBuf::from(dir))
        }
        other => OpenError::Backend(other.to_string()),
    }
}

impl StateStore for SledStore {
    fn checkpoint(&self) -> Result<Checkpoint, ReadError> {
        Ok(match self.db.get(CHECKPOINT)? {
            Some(v) => decode_checkpoint(&v)?,
            None => Checkpoint::default(),
        })
    }

    fn apply(&self, epochs: &[Arc<CommitRecord>]) -> Result<(), WriteError> {
        let Some(last) = epochs.last() else {
            return Ok(());
        };
        let mut cp = self.checkpoint()?;
        let mut b = Batches {
            split: !self.whole_epochs,
            ..Batches::default()
        };
        let mut claimed = BTreeSet::new();
        for r in epochs {
            if r.epoch <= cp.epoch {
                return Err(WriteError::Corrupt(format!(
                    "epoch {} applied after epoch {}",
                    r.epoch, cp.epoch
                )));
            }
            b.fit(&self.db, epoch_ops(r))?;
            self.apply_epoch(r, &mut b, &mut claimed)?;
            cp = Checkpoint {
                epoch: r.epoch,
                next_seq: cp.next_seq.max(r.next_seq),
                next_order: cp.next_order.max(r.next_order),
            };
        }
        debug_assert_eq!(cp.epoch, last.epoch);
        b.insert(
            &self.db,
            CHECKPOINT.to_vec(),
            encode_checkpoint(cp).to_vec(),
        )?;
        b.apply(&self.db)
    }

    fn flush(&self) -> Result<(), WriteError> {
        self.db.flush()?;
        self.sync_files()?;
        Ok(())
    }

    fn get(&self, lambda: u16, group: KeyGroup, key: &[u8]) -> Result<Option<Vec<u8>>, ReadError> {
        read::get(&self.db, lambda, group, key)
    }

    fn get_stamped(
        &self,
        lambda: u16,
        group: KeyGroup,
        key: &[u8],
    ) -> Result<Option<(u64, Vec<u8>)>, ReadError> {
        read::get_stamped(&self.db, lambda, group, key)
    }

    fn get_at(
        &self,
        lambda: u16,
        group: KeyGroup,
        key: &[u8],
        epoch: u64,
    ) -> Result<Option<Vec<u8>>, ReadError> {
        read::get_at(&self.db, lambda, group, key, epoch)
    }

    fn history(&self, lambda: u16, group: KeyGroup, key: &[u8]) -> Result<Vec<Version>, ReadError> {
        read::history(&self.db, lambda, group, key)
    }

    fn writers(
        &self,
        lambda: u16,
        group: KeyGroup,
        key: &[u8],
        epoch: u64,
    ) -> Result<Vec<u64>, ReadError> {
        read::writers(&self.db, lambda, group, key, epoch)
    }

    fn horizon(&self) -> Result<Horizon, ReadError> {
        read::horizon(&self.db)
    }

    fn compact(&self, up_to: u64) -> Result<Compacted, CompactError> {
        let applied = Some(self.checkpoint()?.epoch).filter(|e| *e > 0);
        compact::compact(&self.db, self.horizon()?, applied, up_to)
    }

    fn expire(&self, lambda: u16, written_before: u64) -> Result<u64, CompactError> {
        compact::expire(&self.db, lambda, written_before)
    }

    fn size_on_disk(&self) -> Result<u64, ReadError> {
        Ok(self.db.size_on_disk()?)
    }

    fn completion(&self, seq: u64) -> Result<Option<Completion>, ReadError> {
        read::completion(&self.db, seq)
    }

    fn completion_by_idempotency_key(&self, key: &str) -> Result<Option<Completion>, ReadError> {
        match self.db.get(idempotency_key(key))? {
            Some(v) => self.completion(decode_u64(&v)?),
            None => Ok(None),
        }
    }

    fn completions_from(&self, from_seq: u64, limit: usize) -> Result<Vec<Completion>, ReadError> {
        read::completions_from(&self.db, from_seq, limit)
    }

    fn keys(&self, lambda: u16) -> Result<Vec<(KeyGroup, Vec<u8>)>, ReadError> {
        read::keys(&self.db, lambda)
    }

    fn pending_messages(&self) -> Result<Vec<MessageRecord>, ReadError> {
        let mut out = Vec::new();
        for item in self.db.scan_prefix([MESSAGE]) {
            let (_, v) = item?;
            out.push(
                stateful_core::records::decode::<MessageRecord>(&v)
                    .map_err(|e| ReadError::Corrupt(e.to_string()))?,
            );
        }
        Ok(out)
    }

    fn check_app(&self, app_name: &str) -> Result<(), OpenError> {
        match self.db.get(APP)? {
            Some(found) if found.as_ref() == app_name.as_bytes() => Ok(()),
            Some(found) => Err(OpenError::WrongApp {
                found: String::from_utf8_lossy(&found).into_owned(),
                expected: app_name.to_owned(),
            }),
            None => {
                self.db.insert(APP, app_name.as_bytes())?;
                self.db.flush()?;
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_open_of_a_dir_is_locked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = SledStore::open(dir.path()).expect("first open");
        let second = SledStore::open(dir.path());
        assert!(
            matches!(&second, Err(OpenError::Locked(p)) if p == dir.path()),
            "{second:?}"
        );
        if let Err(e) = second {
            assert!(e.to_string().contains("another process uses this data dir"));
        }
        drop(first);
        super::super::model_tests::reopen(dir.path()).expect("reopens after the first is dropped");
    }
}
