//! An in-memory [`StateStore`] with the semantics of the sled one, for tests.
//!
//! ```text
//! Mutex<Inner>
//!   versions     (lambda, group, key, epoch) -> Option<value>
//!   markers      committer -> last committed epoch     (the committers of the current run)
//!   index        (epoch, committer) -> what that commit wrote
//!   completions  seq -> Completion
//!   idempotency  key -> seq
//!   writers      (lambda, group, key, epoch) -> seqs of the requests that wrote it
//!   horizon      how far back history reaches (see `compact`)
//! ```
//!
//! Nothing survives the process; "recovery" on the same instance behaves like a restart of
//! the sled store after a crash (every commit is durable once it returned).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, MutexGuard, PoisonError};

use stateful_core::keys::KeyGroup;

use super::error::{CompactError, OpenError, ReadError, WriteError};
use super::store::{
    CommitBatch, CommitterId, Compacted, Completion, Horizon, Recovered, StateStore, Version,
};

type VersionKey = (u16, KeyGroup, Vec<u8>, u64);

#[derive(Debug, Default)]
struct IndexEntry {
    versions: Vec<VersionKey>,
    completions: Vec<(u64, Option<String>)>,
}

#[derive(Debug, Default)]
struct Inner {
    versions: BTreeMap<VersionKey, Option<Vec<u8>>>,
    markers: BTreeMap<CommitterId, u64>,
    index: BTreeMap<(u64, CommitterId), IndexEntry>,
    completions: BTreeMap<u64, Completion>,
    idempotency: BTreeMap<String, u64>,
    writers: BTreeMap<VersionKey, Vec<u64>>,
    horizon: Horizon,
    app: Option<String>,
}

/// [`StateStore`] in memory.
///
/// # Examples
///
/// ```
/// use stateful_runtime::storage::{CommitBatch, CommitterId, MemoryStore, StateStore};
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let store = MemoryStore::new();
/// let committer = CommitterId { worker: 0, lambda: 0 };
/// assert_eq!(store.recover(&[committer])?.committed_epoch, 0);
/// store.commit(CommitBatch { committer, epoch: 3, writes: vec![], completed: vec![] })?;
/// assert_eq!(store.recover(&[committer])?.committed_epoch, 3);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every operation leaves `Inner` consistent before it can panic, so a poisoned lock
        // still guards valid data.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn instance_range(
    lambda: u16,
    group: KeyGroup,
    key: &[u8],
    to_epoch: u64,
) -> std::ops::RangeInclusive<VersionKey> {
    (lambda, group, key.to_vec(), 0)..=(lambda, group, key.to_vec(), to_epoch)
}

impl StateStore for MemoryStore {
    fn committed_epoch(&self) -> Result<Option<u64>, ReadError> {
        Ok(self.lock().markers.values().copied().min())
    }

    fn recover_to(
        &self,
        committers: &[CommitterId],
        ceiling: Option<u64>,
    ) -> Result<Recovered, OpenError> {
        let mut inner = self.lock();
        let committed = inner.markers.values().copied().min().unwrap_or(0);
        let committed = ceiling.map_or(committed, |c| committed.min(c));
        let mut versions = BTreeSet::new();
        if let Some(first) = committed.checked_add(1) {
            let from = (
                first,
                CommitterId {
                    worker: 0,
                    lambda: 0,
                },
            );
            let later = inner.index.split_off(&from);
            for entry in later.into_values() {
                versions.extend(entry.versions);
                for (seq, idem) in entry.completions {
                    inner.completions.remove(&seq);
                    if let Some(idem) = idem.filter(|i| inner.idempotency.get(i) == Some(&seq)) {
                        inner.idempotency.remove(&idem);
                    }
                }
            }
        }
        let mut discarded_versions = 0;
        for v in versions {
            inner.writers.remove(&v);
            if inner.versions.remove(&v).is_some() {
                discarded_versions += 1;
            }
        }
        inner.markers = committers.iter().map(|c| (*c, committed)).collect();
        Ok(Recovered {
            committed_epoch: committed,
            discarded_versions,
        })
    }

    fn get(&self, lambda: u16, group: KeyGroup, key: &[u8]) -> Result<Option<Vec<u8>>, ReadError> {
        self.get_at(lambda, group, key, u64::MAX)
    }

    fn writers(
        &self,
        lambda: u16,
        group: KeyGroup,
        key: &[u8],
        epoch: u64,
    ) -> Result<Vec<u64>, ReadError> {
        Ok(self
            .lock()
            .writers
            .get(&(lambda, group, key.to_vec(), epoch))
            .cloned()
            .unwrap_or_default())
    }

    fn horizon(&self) -> Result<Horizon, ReadError> {
        Ok(self.lock().horizon)
    }

    fn compact(&self, up_to: u64) -> Result<Compacted, CompactError> {
        let mut inner = self.lock();
        let inner = &mut *inner;
        let old = inner.horizon;
        let Some(committed) = inner.markers.values().copied().min() else {
            return Ok(Compacted {
                horizon: old,
                ..Compacted::default()
            });
        };
        let h = up_to.min(committed);
        let mut done = Compacted {
            horizon: old,
            ..Compacted::default()
        };
        if h <= old.epoch {
            return Ok(done);
        }
        // Every index entry up to the horizon: each of its versions supersedes every older
        // version of the same instance (the survivors of earlier compactions among them).
        let start = (
            h + 1,
            CommitterId {
                worker: 0,
                lambda: 0,
            },
        );
        let kept = inner.index.split_off(&start);
        let old_entries = std::mem::replace(&mut inner.index, kept);
        for ((entry_epoch, committer), entry) in old_entries {
            for k in entry.versions.clone() {
                let (l, g, key, _) = &k;
                let older: Vec<VersionKey> = inner
                    .versions
                    .range((*l, *g, key.clone(), 0)..k.clone())
                    .map(|(v, _)| v.clone())
                    .collect();
                for v in older {
                    inner.versions.remove(&v);
                    inner.writers.remove(&v);
                    done.versions += 1;
                }
                if entry_epoch < h {
                    inner.writers.remove(&k);
                }
            }
            // An entry at the horizon itself stays (its writers and completions are still in
            // reach), so that the next compaction finds it again.
            if entry_epoch == h {
                inner.index.insert((entry_epoch, committer), entry);
                continue;
            }
            for (seq, _) in entry.completions {
                if let Some(c) = inner.completions.get_mut(&seq) {
                    c.trace = Vec::new();
                    done.stripped += 1;
                }
            }
        }
        let mut below = old.complete_below_seq;
        while let Some(c) = inner.completions.get(&below).filter(|c| c.epoch < h) {
            if c.idempotency_key.is_none() {
                inner.completions.remove(&below);
                done.completions += 1;
            }
            below += 1;
        }
        inner.horizon = Horizon {
            epoch: h,
            complete_below_seq: below,
        };
        done.horizon = inner.horizon;
        Ok(done)
    }

    fn get_at(
        &self,
        lambda: u16,
        group: KeyGroup,
        key: &[u8],
        epoch: u64,
    ) -> Result<Option<Vec<u8>>, ReadError> {
        let inner = self.lock();
        if epoch < inner.horizon.epoch {
            return Err(ReadError::Compacted {
                asked: epoch,
                horizon: inner.horizon.epoch,
            });
        }
        Ok(inner
            .versions
            .range(instance_range(lambda, group, key, epoch))
            .next_back()
            .and_then(|(_, v)| v.clone()))
    }

    fn history(&self, lambda: u16, group: KeyGroup, key: &[u8]) -> Result<Vec<Version>, ReadError> {
        let inner = self.lock();
        Ok(inner
            .versions
            .range(instance_range(lambda, group, key, u64::MAX))
            .map(|((_, _, _, epoch), v)| (*epoch, v.clone()))
            .collect())
    }

    fn commit(&self, batch: CommitBatch) -> Result<(), WriteError> {
        let CommitBatch {
            committer,
            epoch,
            writes,
            completed,
        } = batch;
        if let Some(w) = writes.iter().find(|w| u32::try_from(w.key.len()).is_err()) {
            return Err(WriteError::TooLarge {
                what: "a key",
                len: w.key.len(),
            });
        }
        let mut inner = self.lock();
        let last = *inner
            .markers
            .get(&committer)
            .ok_or(WriteError::UnknownCommitter(committer))?;
        if epoch <= last {
            return Err(WriteError::StaleEpoch {
                committer,
                epoch,
                committed: last,
            });
        }
        let mut entry = IndexEntry::default();
        for w in writes {
            let k = (w.lambda, w.group, w.key, epoch);
            if !w.writers.is_empty() {
                inner.writers.insert(k.clone(), w.writers);
            }
            inner.versions.insert(k.clone(), w.value);
            entry.versions.push(k);
        }
        for mut c in completed {
            c.epoch = epoch;
            if let Some(idem) = &c.idempotency_key {
                inner.idempotency.entry(idem.clone()).or_insert(c.seq);
            }
            entry.completions.push((c.seq, c.idempotency_key.clone()));
            inner.completions.insert(c.seq, c);
        }
        if !entry.versions.is_empty() || !entry.completions.is_empty() {
            inner.index.insert((epoch, committer), entry);
        }
        inner.markers.insert(committer, epoch);
        Ok(())
    }

    fn completion(&self, seq: u64) -> Result<Option<Completion>, ReadError> {
        Ok(self.lock().completions.get(&seq).cloned())
    }

    fn completion_by_idempotency_key(&self, key: &str) -> Result<Option<Completion>, ReadError> {
        let inner = self.lock();
        Ok(inner
            .idempotency
            .get(key)
            .and_then(|seq| inner.completions.get(seq))
            .cloned())
    }

    fn keys(&self, lambda: u16) -> Result<Vec<(KeyGroup, Vec<u8>)>, ReadError> {
        let inner = self.lock();
        let mut latest: BTreeMap<(KeyGroup, &[u8]), bool> = BTreeMap::new();
        for ((_, group, key, _), v) in inner
            .versions
            .range((lambda, 0, Vec::new(), 0)..)
            .take_while(|((l, ..), _)| *l == lambda)
        {
            // Versions come oldest first per instance: the last one seen is the latest.
            latest.insert((*group, key.as_slice()), v.is_some());
        }
        Ok(latest
            .into_iter()
            .filter(|(_, live)| *live)
            .map(|((g, k), _)| (g, k.to_vec()))
            .collect())
    }

    fn completed_seqs_from(&self, from_seq: u64) -> Result<Vec<u64>, ReadError> {
        Ok(self
            .lock()
            .completions
            .range(from_seq..)
            .map(|(s, _)| *s)
            .collect())
    }

    fn check_app(&self, app_name: &str) -> Result<(), OpenError> {
        let mut inner = self.lock();
        match &inner.app {
            Some(found) if found == app_name => Ok(()),
            Some(found) => Err(OpenError::WrongApp {
                found: found.clone(),
                expected: app_name.to_owned(),
            }),
            None => {
                inner.app = Some(app_name.to_owned());
                Ok(())
            }
        }
    }
}
