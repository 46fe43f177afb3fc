//! An in-memory [`StateStore`] with the semantics of the sled one, for tests.
//!
//! ```text
//! Mutex<Inner>
//!   versions     (lambda, group, key, epoch) -> Option<value>
//!   checkpoint   the last epoch applied, and the counters to resume from
//!   index        epoch -> what that epoch wrote
//!   completions  seq -> Completion
//!   idempotency  key -> seq
//!   writers      (lambda, group, key, epoch) -> seqs of the requests that wrote it
//!   horizon      how far back history reaches (see `compact`)
//! ```
//!
//! Nothing survives the process; every epoch applied is "durable" at once.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use stateful_core::keys::KeyGroup;

use std::sync::Arc;

use super::error::{CompactError, OpenError, ReadError, WriteError};
use super::store::{
    Checkpoint, CommitRecord, Compacted, Completion, Horizon, MessageId, MessageRecord, StateStore,
    Version,
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
    checkpoint: Checkpoint,
    index: BTreeMap<u64, IndexEntry>,
    completions: BTreeMap<u64, Completion>,
    idempotency: BTreeMap<String, u64>,
    writers: BTreeMap<VersionKey, Vec<u64>>,
    horizon: Horizon,
    app: Option<String>,
    messages: BTreeMap<MessageId, MessageRecord>,
}

/// [`StateStore`] in memory.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use stateful_runtime::storage::{CommitRecord, MemoryStore, StateStore};
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let store = MemoryStore::new();
/// assert_eq!(store.checkpoint()?.epoch, 0);
/// let epoch = CommitRecord {
///     epoch: 3, prev_epoch: 0, writes: vec![], completions: vec![], messages: vec![], next_seq: 1, next_order: 0,
/// };
/// store.apply(&[Arc::new(epoch)])?;
/// assert_eq!(store.checkpoint()?.epoch, 3);
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
    fn checkpoint(&self) -> Result<Checkpoint, ReadError> {
        Ok(self.lock().checkpoint)
    }

    fn apply(&self, epochs: &[Arc<CommitRecord>]) -> Result<(), WriteError> {
        let mut inner = self.lock();
        for r in epochs {
            apply_epoch(&mut inner, r)?;
        }
        Ok(())
    }

    fn flush(&self) -> Result<(), WriteError> {
        Ok(())
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

    fn expire(&self, lambda: u16, written_before: u64) -> Result<u64, CompactError> {
        let mut inner = self.lock();
        let mut latest: BTreeMap<(KeyGroup, Vec<u8>), u64> = BTreeMap::new();
        for (l, g, k, e) in inner.versions.keys() {
            if *l == lambda {
                latest.insert((*g, k.clone()), *e);
            }
        }
        let gone: Vec<(KeyGroup, Vec<u8>)> = latest
            .into_iter()
            .filter(|(_, e)| *e < written_before)
            .map(|(id, _)| id)
            .collect();
        for (g, k) in &gone {
            inner
                .versions
                .retain(|(l, g2, k2, _), _| !(*l == lambda && g2 == g && k2 == k));
        }
        Ok(gone.len() as u64)
    }

    fn pending_messages(&self) -> Result<Vec<MessageRecord>, ReadError> {
        Ok(self.lock().messages.values().cloned().collect())
    }

    fn compact(&self, up_to: u64) -> Result<Compacted, CompactError> {
        let mut inner = self.lock();
        let inner = &mut *inner;
        let old = inner.horizon;
        let committed = inner.checkpoint.epoch;
        if committed == 0 {
            return Ok(Compacted {
                horizon: old,
                ..Compacted::default()
            });
        }
        let h = up_to.min(committed);
        let mut done = Compacted {
            horizon: old,
            ..Compacted::default()
        };
        if h <= old.epoch {
            return Ok(done);
        }
        let mut below = old.forgotten_below_seq;
        // Every index entry up to the horizon: each of its versions supersedes every older
        // version of the same instance (the survivors of earlier compactions among them).
        let kept = inner.index.split_off(&(h + 1));
        let old_entries = std::mem::replace(&mut inner.index, kept);
        for (entry_epoch, entry) in old_entries {
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
                inner.index.insert(entry_epoch, entry);
                continue;
            }
            for (seq, idem) in entry.completions {
                if idem.is_some() {
                    if let Some(c) = inner.completions.get_mut(&seq) {
                        c.trace = Vec::new();
                        done.stripped += 1;
                    }
                } else if inner.completions.remove(&seq).is_some() {
                    done.completions += 1;
                    below = below.max(seq + 1);
                }
            }
        }
        inner.horizon = Horizon {
            epoch: h,
            forgotten_below_seq: below,
        };
        done.horizon = inner.horizon;
        Ok(done)
    }

    fn get_stamped(
        &self,
        lambda: u16,
        group: KeyGroup,
        key: &[u8],
    ) -> Result<Option<(u64, Vec<u8>)>, ReadError> {
        let inner = self.lock();
        Ok(inner
            .versions
            .range(instance_range(lambda, group, key, u64::MAX))
            .next_back()
            .and_then(|((.., epoch), v)| v.clone().map(|v| (*epoch, v))))
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

    fn completions_from(&self, from_seq: u64, limit: usize) -> Result<Vec<Completion>, ReadError> {
        Ok(self
            .lock()
            .completions
            .range(from_seq..)
            .take(limit)
            .map(|(_, c)| c.clone())
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

/// Applies one epoch to the maps.
fn apply_epoch(inner: &mut Inner, r: &CommitRecord) -> Result<(), WriteError> {
    if r.epoch <= inner.checkpoint.epoch {
        return Err(WriteError::Corrupt(format!(
            "epoch {} applied after epoch {}",
            r.epoch, inner.checkpoint.epoch
        )));
    }
    if let Some(w) = r
        .writes
        .iter()
        .find(|w| u32::try_from(w.key.len()).is_err())
    {
        return Err(WriteError::TooLarge {
            what: "a key",
            len: w.key.len(),
        });
    }
    let mut entry = IndexEntry::default();
    for w in &r.writes {
        let k = (w.lambda, w.group, w.key.clone(), r.epoch);
        if !w.writers.is_empty() {
            inner.writers.insert(k.clone(), w.writers.clone());
        }
        inner.versions.insert(k.clone(), w.value.clone());
        entry.versions.push(k);
    }
    for m in &r.messages {
        inner.messages.insert(m.id, m.clone());
    }
    for c in &r.completions {
        let req = &c.request;
        if let Some(idem) = &req.idempotency_key {
            inner.idempotency.entry(idem.clone()).or_insert(req.seq);
            if let Some(id) = MessageId::from_idempotency_key(idem) {
                inner.messages.remove(&id);
            }
        }
        entry
            .completions
            .push((req.seq, req.idempotency_key.clone()));
        inner.completions.insert(
            req.seq,
            Completion {
                request: req.clone(),
                ok: c.ok,
                response: c.response.clone(),
                order: c.order,
                epoch: r.epoch,
                trace: c.trace.clone(),
            },
        );
    }
    if !entry.versions.is_empty() || !entry.completions.is_empty() {
        inner.index.insert(r.epoch, entry);
    }
    inner.checkpoint = Checkpoint {
        epoch: r.epoch,
        next_seq: inner.checkpoint.next_seq.max(r.next_seq),
        next_order: inner.checkpoint.next_order.max(r.next_order),
    };
    Ok(())
}
