//! The sled implementation of [`StateStore`]: one tree, keys laid out for prefix scans.
//!
//! ```text
//! 'v' lambda:u16 group:u16 keylen:u32 key epoch:u64   -> 0 (tombstone) | 1 ++ value
//!                                                         | 2/3 n:u32 writer seqs:u64*n (++ value)
//! 'm' worker:u32 lambda:u16                            -> last committed epoch:u64
//! 'e' epoch:u64 worker:u32 lambda:u16                  -> postcard(IndexEntry)
//! 'c' seq:u64                                          -> postcard(ok, idempotency key, response,
//!                                                         order, epoch, call tree)
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

use std::collections::BTreeSet;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use stateful_core::keys::KeyGroup;

use super::{
    CommitBatch, CommitterId, Compacted, Completion, Horizon, Recovered, StateStore, StoreError,
    Version,
};

const VERSION: u8 = b'v';
const MARKER: u8 = b'm';
const INDEX: u8 = b'e';
const COMPLETION: u8 = b'c';
const IDEMPOTENCY: u8 = b'i';
const HORIZON: &[u8] = b"h";
/// Index entries compacted per sled batch.
const COMPACT_CHUNK: usize = 256;
const APP: &[u8] = b"a";

const TOMBSTONE: u8 = 0;
const LIVE: u8 = 1;
/// A tombstone / a live value, preceded by the seqs of the requests that wrote it.
const TOMBSTONE_BY: u8 = 2;
const LIVE_BY: u8 = 3;

/// Length of `'v' lambda group keylen`.
const VERSION_HEADER: usize = 1 + 2 + 2 + 4;

/// What one committer wrote in one epoch: what recovery deletes when it rolls that epoch back.
#[derive(Debug, Default, Serialize, Deserialize)]
struct IndexEntry {
    /// Full `'v'` keys.
    versions: Vec<Vec<u8>>,
    /// Completed seqs with their idempotency keys.
    completions: Vec<(u64, Option<String>)>,
}

/// A stored completion (the seq is the key).
#[derive(Debug, Serialize, Deserialize)]
struct StoredCompletion {
    ok: bool,
    idempotency_key: Option<String>,
    response: Vec<u8>,
    order: u64,
    epoch: u64,
    trace: Vec<u8>,
}

/// [`StateStore`] on a sled database in a data dir.
///
/// # Examples
///
/// ```
/// use stateful_runtime::store::{CommitBatch, CommitterId, SledStore, StateStore, StateWrite};
/// # fn main() -> Result<(), stateful_runtime::store::StoreError> {
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
    fn apply(&self, batch: CommitBatch) -> Result<(), StoreError> {
        let CommitBatch {
            committer,
            epoch,
            writes,
            completed,
        } = batch;
        let last = self
            .marker(committer)?
            .ok_or(StoreError::UnknownCommitter(committer))?;
        if epoch <= last {
            return Err(StoreError::StaleEpoch {
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
            let stored = StoredCompletion {
                ok: c.ok,
                idempotency_key: c.idempotency_key,
                response: c.response,
                order: c.order,
                epoch,
                trace: c.trace,
            };
            let bytes = postcard::to_stdvec(&stored).map_err(|e| corrupt("completion", e))?;
            b.insert(completion_key(c.seq), bytes);
            entry.completions.push((c.seq, stored.idempotency_key));
        }
        if !entry.versions.is_empty() || !entry.completions.is_empty() {
            let bytes = postcard::to_stdvec(&entry).map_err(|e| corrupt("epoch index", e))?;
            b.insert(index_key(epoch, committer), bytes);
        }
        b.insert(marker_key(committer), &epoch.to_be_bytes());
        self.db.apply_batch(b)?;
        Ok(())
    }

    /// Opens (or creates) the store in `dir`.
    ///
    /// Fails with [`StoreError::Locked`] when another process (or another open handle in this
    /// process) holds the dir.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
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

    fn marker(&self, committer: CommitterId) -> Result<Option<u64>, StoreError> {
        self.db
            .get(marker_key(committer))?
            .map(|v| decode_u64(&v))
            .transpose()
    }
}

/// sled 0.34 reports a held lock as an `io::Error` of kind `Other` with this message
/// (`Config::try_lock`); nothing more structured is available.
fn map_open_error(e: sled::Error, dir: &Path) -> StoreError {
    match e {
        sled::Error::Io(io)
            if io.kind() == ErrorKind::Other
                && io.to_string().contains("could not acquire lock") =>
        {
            StoreError::Locked(PathBuf::from(dir))
        }
        other => StoreError::Sled(other),
    }
}

fn instance_prefix(lambda: u16, group: KeyGroup, key: &[u8]) -> Result<Vec<u8>, StoreError> {
    let len = u32::try_from(key.len()).map_err(|_| StoreError::KeyTooLong(key.len()))?;
    let mut k = Vec::with_capacity(VERSION_HEADER + key.len() + 8);
    k.push(VERSION);
    k.extend_from_slice(&lambda.to_be_bytes());
    k.extend_from_slice(&group.to_be_bytes());
    k.extend_from_slice(&len.to_be_bytes());
    k.extend_from_slice(key);
    Ok(k)
}

fn version_key(
    lambda: u16,
    group: KeyGroup,
    key: &[u8],
    epoch: u64,
) -> Result<Vec<u8>, StoreError> {
    let mut k = instance_prefix(lambda, group, key)?;
    k.extend_from_slice(&epoch.to_be_bytes());
    Ok(k)
}

/// Splits a `'v'` key into `(group, key, epoch)`.
fn parse_version_key(k: &[u8]) -> Result<(KeyGroup, &[u8], u64), StoreError> {
    let corrupt = || StoreError::Corrupt(format!("malformed version key {k:?}"));
    if k.len() < VERSION_HEADER + 8 || k[0] != VERSION {
        return Err(corrupt());
    }
    let group = u16::from_be_bytes([k[3], k[4]]);
    let len = u32::from_be_bytes([k[5], k[6], k[7], k[8]]) as usize;
    if k.len() != VERSION_HEADER + len + 8 {
        return Err(corrupt());
    }
    let key = &k[VERSION_HEADER..VERSION_HEADER + len];
    let epoch = decode_u64(&k[VERSION_HEADER + len..])?;
    Ok((group, key, epoch))
}

fn encode_value(value: Option<&[u8]>, writers: &[u64]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.map_or(0, <[u8]>::len) + 5 + 8 * writers.len());
    if writers.is_empty() {
        out.push(if value.is_some() { LIVE } else { TOMBSTONE });
    } else {
        out.push(if value.is_some() {
            LIVE_BY
        } else {
            TOMBSTONE_BY
        });
        out.extend_from_slice(&(writers.len() as u32).to_be_bytes());
        for s in writers {
            out.extend_from_slice(&s.to_be_bytes());
        }
    }
    if let Some(v) = value {
        out.extend_from_slice(v);
    }
    out
}

/// A version's value and the seqs of its writers.
fn decode_version(bytes: &[u8]) -> Result<(Option<Vec<u8>>, Vec<u64>), StoreError> {
    let malformed = || StoreError::Corrupt(format!("malformed version value {bytes:?}"));
    let (&tag, rest) = bytes.split_first().ok_or_else(malformed)?;
    let (writers, rest) = match tag {
        TOMBSTONE | LIVE => (Vec::new(), rest),
        TOMBSTONE_BY | LIVE_BY => {
            let n = rest
                .get(..4)
                .and_then(|b| <[u8; 4]>::try_from(b).ok())
                .map(u32::from_be_bytes)
                .ok_or_else(malformed)? as usize;
            let end = n
                .checked_mul(8)
                .and_then(|l| l.checked_add(4))
                .filter(|e| *e <= rest.len())
                .ok_or_else(malformed)?;
            let seqs = rest[4..end]
                .chunks(8)
                .map(decode_u64)
                .collect::<Result<_, _>>()?;
            (seqs, &rest[end..])
        }
        _ => return Err(malformed()),
    };
    match tag {
        TOMBSTONE | TOMBSTONE_BY if rest.is_empty() => Ok((None, writers)),
        LIVE | LIVE_BY => Ok((Some(rest.to_vec()), writers)),
        _ => Err(malformed()),
    }
}

fn decode_value(bytes: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
    decode_version(bytes).map(|(v, _)| v)
}

fn decode_u64(bytes: &[u8]) -> Result<u64, StoreError> {
    let arr: [u8; 8] = bytes
        .try_into()
        .map_err(|_| StoreError::Corrupt(format!("expected 8 bytes, found {bytes:?}")))?;
    Ok(u64::from_be_bytes(arr))
}

fn committer_bytes(c: CommitterId) -> [u8; 6] {
    let mut b = [0; 6];
    b[..4].copy_from_slice(&c.worker.to_be_bytes());
    b[4..].copy_from_slice(&c.lambda.to_be_bytes());
    b
}

fn encode_horizon(h: Horizon) -> [u8; 16] {
    let mut b = [0; 16];
    b[..8].copy_from_slice(&h.epoch.to_be_bytes());
    b[8..].copy_from_slice(&h.complete_below_seq.to_be_bytes());
    b
}

fn marker_key(c: CommitterId) -> Vec<u8> {
    let mut k = vec![MARKER];
    k.extend_from_slice(&committer_bytes(c));
    k
}

fn index_key(epoch: u64, c: CommitterId) -> Vec<u8> {
    let mut k = vec![INDEX];
    k.extend_from_slice(&epoch.to_be_bytes());
    k.extend_from_slice(&committer_bytes(c));
    k
}

fn completion_key(seq: u64) -> Vec<u8> {
    let mut k = vec![COMPLETION];
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

fn idempotency_key(key: &str) -> Vec<u8> {
    let mut k = vec![IDEMPOTENCY];
    k.extend_from_slice(key.as_bytes());
    k
}

fn corrupt(what: &str, e: postcard::Error) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

impl StateStore for SledStore {
    fn committed_epoch(&self) -> Result<Option<u64>, StoreError> {
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
    ) -> Result<Recovered, StoreError> {
        let mut batch = sled::Batch::default();
        let mut committed = None::<u64>;
        for item in self.db.scan_prefix([MARKER]) {
            let (k, v) = item?;
            let epoch = decode_u64(&v)?;
            committed = Some(committed.map_or(epoch, |c| c.min(epoch)));
            batch.remove(k);
        }
        let committed = match (committed.unwrap_or(0), ceiling) {
            (c, Some(ceiling)) => c.min(ceiling),
            (c, None) => c,
        };

        let mut versions = BTreeSet::new();
        if let Some(first) = committed.checked_add(1) {
            let start = index_key(
                first,
                CommitterId {
                    worker: 0,
                    lambda: 0,
                },
            );
            for item in self.db.range(start..[INDEX + 1].to_vec()) {
                let (k, v) = item?;
                let entry: IndexEntry =
                    postcard::from_bytes(&v).map_err(|e| corrupt("epoch index entry", e))?;
                versions.extend(entry.versions);
                for (seq, idem) in entry.completions {
                    batch.remove(completion_key(seq));
                    if let Some(idem) = idem {
                        let ik = idempotency_key(&idem);
                        let points_here = match self.db.get(&ik)? {
                            Some(v) => decode_u64(&v)? == seq,
                            None => false,
                        };
                        if points_here {
                            batch.remove(ik);
                        }
                    }
                }
                batch.remove(k);
            }
        }
        let mut discarded_versions = 0;
        for v in versions {
            if self.db.contains_key(&v)? {
                discarded_versions += 1;
            }
            batch.remove(v);
        }
        for c in committers {
            batch.insert(marker_key(*c), &committed.to_be_bytes());
        }
        self.db.apply_batch(batch)?;
        self.db.flush()?;
        Ok(Recovered {
            committed_epoch: committed,
            discarded_versions,
        })
    }

    fn get(&self, lambda: u16, group: KeyGroup, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        match self
            .db
            .scan_prefix(instance_prefix(lambda, group, key)?)
            .next_back()
        {
            Some(item) => decode_value(&item?.1),
            None => Ok(None),
        }
    }

    fn get_at(
        &self,
        lambda: u16,
        group: KeyGroup,
        key: &[u8],
        epoch: u64,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let horizon = self.horizon()?.epoch;
        if epoch < horizon {
            return Err(StoreError::Compacted {
                asked: epoch,
                horizon,
            });
        }
        let start = version_key(lambda, group, key, 0)?;
        let end = version_key(lambda, group, key, epoch)?;
        match self.db.range(start..=end).next_back() {
            Some(item) => decode_value(&item?.1),
            None => Ok(None),
        }
    }

    fn history(
        &self,
        lambda: u16,
        group: KeyGroup,
        key: &[u8],
    ) -> Result<Vec<Version>, StoreError> {
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
    ) -> Result<Vec<u64>, StoreError> {
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

    fn horizon(&self) -> Result<Horizon, StoreError> {
        Ok(match self.db.get(HORIZON)? {
            Some(v) if v.len() == 16 => Horizon {
                epoch: decode_u64(&v[..8])?,
                complete_below_seq: decode_u64(&v[8..])?,
            },
            Some(_) => return Err(StoreError::Corrupt("horizon record".into())),
            None => Horizon::default(),
        })
    }

    fn compact(&self, up_to: u64) -> Result<Compacted, StoreError> {
        let old = self.horizon()?;
        let mut done = Compacted {
            horizon: old,
            ..Compacted::default()
        };
        let Some(h) = self.committed_epoch()?.map(|c| c.min(up_to)) else {
            return Ok(done);
        };
        if h <= old.epoch {
            return Ok(done);
        }
        // Raise the horizon first: from now on no read can ask for what gets deleted.
        self.db.insert(
            HORIZON,
            &encode_horizon(Horizon {
                epoch: h,
                complete_below_seq: old.complete_below_seq,
            }),
        )?;
        // Every index entry up to the horizon: each of its versions supersedes every older
        // version of the same instance (the survivors of earlier compactions among them).
        let end = index_key(
            h + 1,
            CommitterId {
                worker: 0,
                lambda: 0,
            },
        );
        // An entry at the horizon itself stays (its writers and completions are still in
        // reach), so that the next compaction finds it again; the chunks walk past it.
        let mut from = [INDEX].to_vec();
        loop {
            let chunk = self
                .db
                .range(from.clone()..end.clone())
                .take(COMPACT_CHUNK)
                .collect::<Result<Vec<_>, _>>()?;
            let Some((last, _)) = chunk.last() else {
                break;
            };
            from = last.to_vec();
            from.push(0);
            let mut b = sled::Batch::default();
            let mut removed = BTreeSet::new();
            for (k, v) in chunk {
                let entry: IndexEntry =
                    postcard::from_bytes(&v).map_err(|e| corrupt("epoch index entry", e))?;
                let before_horizon = decode_u64(&k[1..9])? < h;
                for vk in entry.versions {
                    let (group, key, _) = parse_version_key(&vk)?;
                    let lambda = u16::from_be_bytes([vk[1], vk[2]]);
                    let first = version_key(lambda, group, key, 0)?;
                    for item in self.db.range(first..vk.clone()) {
                        let (old, _) = item?;
                        if removed.insert(old.to_vec()) {
                            b.remove(old);
                            done.versions += 1;
                        }
                    }
                }
                if !before_horizon {
                    continue;
                }
                // Traces before the horizon are hidden when read; most records go whole
                // once the watermark passes them. Those kept for their idempotency key lose
                // their trace now.
                for (seq, idem) in entry.completions {
                    if idem.is_none() {
                        continue;
                    }
                    let ck = completion_key(seq);
                    let Some(bytes) = self.db.get(&ck)? else {
                        continue;
                    };
                    let mut s: StoredCompletion = postcard::from_bytes(&bytes)
                        .map_err(|e| corrupt("stored completion", e))?;
                    if !s.trace.is_empty() {
                        s.trace = Vec::new();
                        let bytes =
                            postcard::to_stdvec(&s).map_err(|e| corrupt("completion", e))?;
                        b.insert(ck, bytes);
                        done.stripped += 1;
                    }
                }
                b.remove(k);
            }
            self.db.apply_batch(b)?;
            // Leave the workers and the committer the cores between chunks.
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        // Requests completed before the horizon, in an unbroken run from the old watermark.
        // Each batch also moves the watermark, so that the horizon record always matches what
        // was deleted. No flush: the next commit's flush makes it durable (sled's log keeps
        // batches in order).
        let mut below = old.complete_below_seq;
        loop {
            let mut b = sled::Batch::default();
            let mut n = 0;
            let mut more = false;
            for item in self
                .db
                .range(completion_key(below)..[COMPLETION + 1].to_vec())
            {
                let (k, v) = item?;
                if decode_u64(&k[1..])? != below {
                    break;
                }
                let s: StoredCompletion =
                    postcard::from_bytes(&v).map_err(|e| corrupt("stored completion", e))?;
                if s.epoch >= h {
                    break;
                }
                if s.idempotency_key.is_none() {
                    b.remove(k);
                    done.completions += 1;
                }
                below += 1;
                n += 1;
                if n == COMPACT_CHUNK * 16 {
                    more = true;
                    break;
                }
            }
            done.horizon = Horizon {
                epoch: h,
                complete_below_seq: below,
            };
            b.insert(HORIZON, &encode_horizon(done.horizon));
            self.db.apply_batch(b)?;
            if !more {
                return Ok(done);
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }

    fn size_on_disk(&self) -> Result<u64, StoreError> {
        Ok(self.db.size_on_disk()?)
    }

    fn commit(&self, batch: CommitBatch) -> Result<(), StoreError> {
        self.apply(batch)?;
        self.db.flush()?;
        Ok(())
    }

    fn commit_group(&self, batches: Vec<CommitBatch>) -> Result<(), StoreError> {
        for b in batches {
            self.apply(b)?;
        }
        self.db.flush()?;
        Ok(())
    }

    fn completion(&self, seq: u64) -> Result<Option<Completion>, StoreError> {
        let Some(v) = self.db.get(completion_key(seq))? else {
            return Ok(None);
        };
        let s: StoredCompletion =
            postcard::from_bytes(&v).map_err(|e| corrupt("stored completion", e))?;
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

    fn completion_by_idempotency_key(&self, key: &str) -> Result<Option<Completion>, StoreError> {
        match self.db.get(idempotency_key(key))? {
            Some(v) => self.completion(decode_u64(&v)?),
            None => Ok(None),
        }
    }

    fn keys(&self, lambda: u16) -> Result<Vec<(KeyGroup, Vec<u8>)>, StoreError> {
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

    fn completed_seqs_from(&self, from_seq: u64) -> Result<Vec<u64>, StoreError> {
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

    fn check_app(&self, app_name: &str) -> Result<(), StoreError> {
        match self.db.get(APP)? {
            Some(found) if found.as_ref() == app_name.as_bytes() => Ok(()),
            Some(found) => Err(StoreError::WrongApp {
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
    fn version_keys_sort_by_instance_then_epoch() {
        let a = version_key(1, 2, b"ab", 5).expect("key");
        let b = version_key(1, 2, b"ab", 300).expect("key");
        let longer = version_key(1, 2, b"abc", 0).expect("key");
        assert!(a < b);
        // The key length sits before the key, so "ab" is never a prefix scan hit for "abc".
        assert!(!longer.starts_with(&instance_prefix(1, 2, b"ab").expect("prefix")));
        assert_eq!(parse_version_key(&b).expect("parses"), (2, &b"ab"[..], 300));
        assert!(parse_version_key(&b[..b.len() - 1]).is_err());
    }

    #[test]
    fn version_values_carry_their_writers_and_malformed_ones_are_errors() {
        for (value, writers) in [
            (None, vec![]),
            (Some(b"abc".to_vec()), vec![]),
            (None, vec![7]),
            (Some(Vec::new()), vec![1, u64::MAX]),
            (Some(b"xyz".to_vec()), vec![3, 4, 5]),
        ] {
            let bytes = encode_value(value.as_deref(), &writers);
            assert_eq!(
                decode_version(&bytes).expect("decodes"),
                (value.clone(), writers)
            );
        }
        for bad in [
            &[][..],
            &[9],
            &[TOMBSTONE, 1],
            &[LIVE_BY, 0, 0],
            &[LIVE_BY, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 1],
            &[TOMBSTONE_BY, 0, 0, 0, 0, 5],
        ] {
            assert!(decode_version(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn second_open_of_a_dir_is_locked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = SledStore::open(dir.path()).expect("first open");
        let second = SledStore::open(dir.path());
        assert!(
            matches!(&second, Err(StoreError::Locked(p)) if p == dir.path()),
            "{second:?}"
        );
        if let Err(e) = second {
            assert!(e.to_string().contains("another process uses this data dir"));
        }
        drop(first);
        super::super::model_tests::reopen(dir.path()).expect("reopens after the first is dropped");
    }
}
