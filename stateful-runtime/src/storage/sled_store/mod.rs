//! The sled implementation of [`StateStore`]: one tree, keys laid out for prefix scans.
//!
//! ```text
//! 'v' lambda:u16 group:u16 keylen:u32 key epoch:u64   -> 0 (tombstone) | 1 ++ value
//!                                                         | 2/3 n:u32 writer seqs:u64*n (++ value)
//! 'm' worker:u32 lambda:u16                            -> last committed epoch:u64
//! 'e' epoch:u64 worker:u32 lambda:u16                  -> IndexEntry record
//! 'c' seq:u64                                          -> CompletionRecord (response, order,
//!                                                         epoch, call tree)
//! 'i' idempotency key                                  -> seq:u64
//! 'h'                                                  -> horizon epoch:u64 complete_below_seq:u64
//! 'a'                                                  -> app name
//! (all integers big-endian, so byte order is numeric order)
//! ```
//!
//! A commit is one `sled::Batch` (versions, epoch index entry, completions, marker) followed
//! by `Db::flush`. The `'m'` entries are the committers of the current run; recovery takes
//! the minimum of their markers and walks the `'e'` index from there on to delete what later
//! epochs wrote, without scanning the versions. Compaction walks the `'e'` index from the
//! oldest entry up to the new horizon, deleting superseded versions (after raising `'h'`, so
//! that no read can see them go) and then the index entries themselves.

mod compact;
mod layout;
mod recover;

use std::collections::BTreeSet;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use stateful_core::keys::KeyGroup;
use stateful_core::records::completion::CompletionRecord;
use stateful_core::records::index::IndexEntry;
use stateful_core::records::{decode, encode};

use super::error::{CompactError, OpenError, ReadError, WriteError};
use super::store::{
    CommitBatch, CommitterId, Compacted, Completion, Horizon, Recovered, StateStore, Version,
};
use layout::*;

/// [`StateStore`] on a sled database in a data dir.
///
/// # Examples
///
/// ```
/// use stateful_runtime::storage::{CommitBatch, CommitterId, SledStore, StateStore, StateWrite};
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// let store = SledStore::open(dir.path())?;
/// let committer = CommitterId { worker: 0, lambda: 1 };
/// store.recover(&[committer])?;
/// let write = StateWrite {
///     lambda: 1, group: 7, key: b"k".to_vec(), value: Some(b"v".to_vec()), writers: vec![1],
/// };
/// store.commit(CommitBatch { committer, epoch: 10, writes: vec![write], completed: vec![] })?;
/// assert_eq!(store.get(1, 7, b"k")?, Some(b"v".to_vec()));
/// assert_eq!(store.get_at(1, 7, b"k", 9)?, None);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct SledStore {
    db: sled::Db,
}

impl SledStore {
    /// Writes one committer's epoch as one atomic sled batch, without flushing.
    fn apply(&self, batch: CommitBatch) -> Result<(), WriteError> {
        let CommitBatch {
            committer,
            epoch,
            writes,
            completed,
        } = batch;
        let last = self
            .marker(committer)?
            .ok_or(WriteError::UnknownCommitter(committer))?;
        if epoch <= last {
            return Err(WriteError::StaleEpoch {
                committer,
                epoch,
                committed: last,
            });
        }
        let mut b = sled::Batch::default();
        let mut entry = IndexEntry::default();
        for w in writes {
            let k = version_key(w.lambda, w.group, &w.key, epoch)?;
            b.insert(k.clone(), encode_value(w.value.as_deref(), &w.writers));
            entry.versions.push(k);
        }
        let mut claimed = BTreeSet::new();
        for c in completed {
            if let Some(idem) = &c.idempotency_key {
                let ik = idempotency_key(idem);
                if !self.db.contains_key(&ik)? && claimed.insert(ik.clone()) {
                    b.insert(ik, &c.seq.to_be_bytes());
                }
            }
            let stored = CompletionRecord {
                ok: c.ok,
                idempotency_key: c.idempotency_key,
                response: c.response,
                order: c.order,
                epoch,
                trace: c.trace,
            };
            let bytes = encode(&stored)?;
            b.insert(completion_key(c.seq), bytes);
            entry.completions.push((c.seq, stored.idempotency_key));
        }
        if !entry.versions.is_empty() || !entry.completions.is_empty() {
            let bytes = encode(&entry)?;
            b.insert(index_key(epoch, committer), bytes);
        }
        b.insert(marker_key(committer), &epoch.to_be_bytes());
        self.db.apply_batch(b)?;
        Ok(())
    }

    /// Opens (or creates) the store in `dir`.
    ///
    /// Fails with [`OpenError::Locked`] when another process (or another open handle in this
    /// process) holds the dir.
    pub fn open(dir: &Path) -> Result<Self, OpenError> {
        let db = sled::Config::new()
            .path(dir)
            // Every commit flushes explicitly; no background flusher thread.
            .flush_every_ms(None)
            // sled's default page cache is 1 GiB; the engine keeps live state in memory
            // itself, so a small cache keeps the whole service well under 1 GiB.
            .cache_capacity(128 << 20)
            .open()
            .map_err(|e| map_open_error(e, dir))?;
        Ok(Self { db })
    }

    fn marker(&self, committer: CommitterId) -> Result<Option<u64>, ReadError> {
        self.db
            .get(marker_key(committer))?
            .map(|v| decode_u64(&v))
            .transpose()
            .map_err(Into::into)
    }
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
    fn committed_epoch(&self) -> Result<Option<u64>, ReadError> {
        let mut committed = None::<u64>;
        for item in self.db.scan_prefix([MARKER]) {
            let epoch = decode_u64(&item?.1)?;
            committed = Some(committed.map_or(epoch, |c| c.min(epoch)));
        }
        Ok(committed)
    }

    fn recover_to(
        &self,
        committers: &[CommitterId],
        ceiling: Option<u64>,
    ) -> Result<Recovered, OpenError> {
        recover::recover_to(&self.db, committers, ceiling)
    }

    fn get(&self, lambda: u16, group: KeyGroup, key: &[u8]) -> Result<Option<Vec<u8>>, ReadError> {
        match self
            .db
            .scan_prefix(instance_prefix(lambda, group, key)?)
            .next_back()
        {
            Some(item) => Ok(decode_value(&item?.1)?),
            None => Ok(None),
        }
    }

    fn get_at(
        &self,
        lambda: u16,
        group: KeyGroup,
        key: &[u8],
        epoch: u64,
    ) -> Result<Option<Vec<u8>>, ReadError> {
        let horizon = self.horizon()?.epoch;
        if epoch < horizon {
            return Err(ReadError::Compacted {
                asked: epoch,
                horizon,
            });
        }
        let start = version_key(lambda, group, key, 0)?;
        let end = version_key(lambda, group, key, epoch)?;
        match self.db.range(start..=end).next_back() {
            Some(item) => Ok(decode_value(&item?.1)?),
            None => Ok(None),
        }
    }

    fn history(&self, lambda: u16, group: KeyGroup, key: &[u8]) -> Result<Vec<Version>, ReadError> {
        let prefix = instance_prefix(lambda, group, key)?;
        let mut out = Vec::new();
        for item in self.db.scan_prefix(&prefix) {
            let (k, v) = item?;
            let epoch = decode_u64(&k[prefix.len()..])?;
            out.push((epoch, decode_value(&v)?));
        }
        Ok(out)
    }

    fn writers(
        &self,
        lambda: u16,
        group: KeyGroup,
        key: &[u8],
        epoch: u64,
    ) -> Result<Vec<u64>, ReadError> {
        // Before the horizon, writers are part of the compacted history.
        if epoch < self.horizon()?.epoch {
            return Ok(Vec::new());
        }
        Ok(
            match self.db.get(version_key(lambda, group, key, epoch)?)? {
                Some(v) => decode_version(&v)?.1,
                None => Vec::new(),
            },
        )
    }

    fn horizon(&self) -> Result<Horizon, ReadError> {
        Ok(match self.db.get(HORIZON)? {
            Some(v) if v.len() == 16 => Horizon {
                epoch: decode_u64(&v[..8])?,
                complete_below_seq: decode_u64(&v[8..])?,
            },
            Some(_) => return Err(ReadError::Corrupt("horizon record".into())),
            None => Horizon::default(),
        })
    }

    fn compact(&self, up_to: u64) -> Result<Compacted, CompactError> {
        let committed = self.committed_epoch()?;
        compact::compact(&self.db, self.horizon()?, committed, up_to)
    }

    fn size_on_disk(&self) -> Result<u64, ReadError> {
        Ok(self.db.size_on_disk()?)
    }

    fn commit(&self, batch: CommitBatch) -> Result<(), WriteError> {
        self.apply(batch)?;
        self.db.flush()?;
        Ok(())
    }

    fn commit_group(&self, batches: Vec<CommitBatch>) -> Result<(), WriteError> {
        for b in batches {
            self.apply(b)?;
        }
        self.db.flush()?;
        Ok(())
    }

    fn completion(&self, seq: u64) -> Result<Option<Completion>, ReadError> {
        let Some(v) = self.db.get(completion_key(seq))? else {
            return Ok(None);
        };
        let s: CompletionRecord = decode(&v)?;
        // Before the horizon, the call tree is part of the compacted history.
        let trace = if s.epoch < self.horizon()?.epoch {
            Vec::new()
        } else {
            s.trace
        };
        Ok(Some(Completion {
            seq,
            idempotency_key: s.idempotency_key,
            ok: s.ok,
            response: s.response,
            order: s.order,
            epoch: s.epoch,
            trace,
        }))
    }

    fn completion_by_idempotency_key(&self, key: &str) -> Result<Option<Completion>, ReadError> {
        match self.db.get(idempotency_key(key))? {
            Some(v) => self.completion(decode_u64(&v)?),
            None => Ok(None),
        }
    }

    fn keys(&self, lambda: u16) -> Result<Vec<(KeyGroup, Vec<u8>)>, ReadError> {
        let mut prefix = vec![VERSION];
        prefix.extend_from_slice(&lambda.to_be_bytes());
        let mut out = Vec::new();
        // The latest version of the instance being scanned: (group, key, live).
        let mut current: Option<(KeyGroup, Vec<u8>, bool)> = None;
        for item in self.db.scan_prefix(&prefix) {
            let (k, v) = item?;
            let (group, key, _) = parse_version_key(&k)?;
            let live = decode_value(&v)?.is_some();
            match &mut current {
                Some((g, cur, l)) if *g == group && cur.as_slice() == key => *l = live,
                _ => {
                    if let Some((g, cur, true)) = current.take() {
                        out.push((g, cur));
                    }
                    current = Some((group, key.to_vec(), live));
                }
            }
        }
        if let Some((g, cur, true)) = current {
            out.push((g, cur));
        }
        // The layout orders by key length first; the contract orders by (group, key).
        out.sort_unstable();
        Ok(out)
    }

    fn completed_seqs_from(&self, from_seq: u64) -> Result<Vec<u64>, ReadError> {
        let mut out = Vec::new();
        for item in self
            .db
            .range(completion_key(from_seq)..[COMPLETION + 1].to_vec())
        {
            let (k, _) = item?;
            out.push(decode_u64(&k[1..])?);
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
