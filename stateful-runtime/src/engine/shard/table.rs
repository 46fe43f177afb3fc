//! The state table of one lambda on one worker: the instances it has loaded, the before-images
//! of the writes of each instance's current lock holder (the undo table), and what changed in
//! the open commit epoch.
//!
//! ```text
//! write(k, v, scope)   values[k] = v; undo[k] += (scope, old value); dirty[k] += writer
//! undo(k, scope)       restore, newest first, every write under `scope` (a path prefix)
//! release(k)           the holder ended: its undo entries go (committed or undone by then)
//! take_dirty()         the epoch's changes, encoded, for the commit
//! ```
//!
//! A key is written only by the holder of its lock, so the undo entries of a key all belong
//! to one attempt. Values are `None` when the instance is known to be absent.

use std::cell::RefCell;
use std::collections::HashMap;

use stateful_core::records::state::encode_state;

use super::cache::CacheBook;
use crate::sdk::ctx::StateAccess;
use crate::sdk::send::Outgoing;

/// One write of the current holder: the scope path it was made under and the value before.
struct UndoEntry<S> {
    scope: Vec<u64>,
    before: Option<S>,
}

/// A key changed in the open epoch.
#[derive(Default)]
struct Dirty {
    /// The encoding of the current value, when the last change was a write (an undo clears
    /// it: the restored value is encoded when the epoch is taken).
    encoded: Option<Vec<u8>>,
    /// Requests that wrote it (root ids), in order.
    writers: Vec<u64>,
}

struct Inner<S> {
    values: HashMap<Vec<u8>, Option<S>>,
    undo: HashMap<Vec<u8>, Vec<UndoEntry<S>>>,
    dirty: HashMap<Vec<u8>, Dirty>,
    /// Messages sent in the open epoch, in order.
    outbox: Vec<Sent>,
    /// Bytes and recency of the loaded instances, for eviction.
    book: CacheBook,
    /// When each instance was last written, unix µs (lambdas with a TTL only): from the
    /// commit that took the change, or the epoch of the version loaded from the store.
    stamps: HashMap<Vec<u8>, u64>,
}

/// A message sent from an instance, undone with the sender's writes.
struct Sent {
    key: Vec<u8>,
    scope: Vec<u64>,
    writer: u64,
    message: Outgoing,
}

/// A message of the open epoch, as the commit takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SentMessage {
    /// The sending instance's key.
    pub from_key: Vec<u8>,
    /// The sending request (root id).
    pub sender: u64,
    pub message: Outgoing,
}

/// One epoch's change of one key, as the commit takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Change {
    pub key: Vec<u8>,
    /// The encoded value (`None`: the instance is absent).
    pub value: Option<Vec<u8>>,
    pub writers: Vec<u64>,
}

/// The state table (shared with the contexts of the invocations on this worker).
pub(crate) struct StateTable<S> {
    inner: RefCell<Inner<S>>,
    /// The schema fingerprint values are encoded under.
    schema: u32,
    /// Whether write times are kept (the lambda has a TTL).
    stamped: bool,
}

impl<S: Clone + serde::Serialize> StateTable<S> {
    /// An empty table whose values encode under schema fingerprint `schema`.
    #[cfg(test)]
    pub(crate) fn new(schema: u32) -> Self {
        Self::with_stamps(schema, false)
    }

    /// An empty table that also keeps each instance's last write time when `stamped`.
    pub(crate) fn with_stamps(schema: u32, stamped: bool) -> Self {
        StateTable {
            schema,
            stamped,
            inner: RefCell::new(Inner {
                values: HashMap::new(),
                undo: HashMap::new(),
                dirty: HashMap::new(),
                outbox: Vec::new(),
                stamps: HashMap::new(),
                book: CacheBook::default(),
            }),
        }
    }

    /// Whether `key` is loaded (present or known absent).
    pub(crate) fn is_loaded(&self, key: &[u8]) -> bool {
        self.inner.borrow().values.contains_key(key)
    }

    /// Caches a value read from the store.
    #[cfg(test)]
    pub(crate) fn load(&self, key: &[u8], value: Option<S>) {
        self.load_stamped(key, value, None, 0);
    }

    /// Caches a value read from the store (`encoded` bytes), written at epoch `stamp`.
    pub(crate) fn load_stamped(
        &self,
        key: &[u8],
        value: Option<S>,
        stamp: Option<u64>,
        encoded: usize,
    ) {
        let mut t = self.inner.borrow_mut();
        t.values.insert(key.to_vec(), value);
        t.book.record(key, encoded, 0);
        if let Some(e) = stamp.filter(|_| self.stamped) {
            t.stamps.insert(key.to_vec(), e);
        }
    }

    /// Whether `key` is present, unchanged in the open epoch, unheld, and last written more
    /// than `ttl_us` before `now_us`.
    pub(crate) fn expired(&self, key: &[u8], now_us: u64, ttl_us: u64) -> bool {
        let t = self.inner.borrow();
        matches!(t.values.get(key), Some(Some(_)))
            && !t.dirty.contains_key(key)
            && t.undo.get(key).is_none_or(Vec::is_empty)
            && t.stamps
                .get(key)
                .is_some_and(|s| s.saturating_add(ttl_us) <= now_us)
    }

    /// Forgets an expired instance: it reads as absent from now on (the store's copy is
    /// expired too, by the same rule).
    pub(crate) fn expire(&self, key: &[u8]) {
        let mut t = self.inner.borrow_mut();
        t.values.insert(key.to_vec(), None);
        t.stamps.remove(key);
    }

    /// The current value (`None`: absent or not loaded).
    pub(crate) fn get(&self, key: &[u8]) -> Option<S> {
        self.inner.borrow().values.get(key).cloned().flatten()
    }

    /// Records a write by `writer` under `scope`.
    pub(crate) fn write(&self, key: &[u8], value: S, encoded: Vec<u8>, scope: &[u64], writer: u64) {
        let mut t = self.inner.borrow_mut();
        let t = &mut *t;
        let before = t.values.insert(key.to_vec(), Some(value)).flatten();
        t.undo.entry(key.to_vec()).or_default().push(UndoEntry {
            scope: scope.to_vec(),
            before,
        });
        let d = t.dirty.entry(key.to_vec()).or_default();
        d.encoded = Some(encoded);
        if !d.writers.contains(&writer) {
            d.writers.push(writer);
        }
    }

    /// Sets `key` to `value` outside any lock holder (a bulk load): no undo entry, so the
    /// change stays and commits with the open epoch. Only for a key no attempt holds.
    pub(crate) fn put(&self, key: &[u8], value: S, encoded: Vec<u8>, writer: u64) {
        let mut t = self.inner.borrow_mut();
        let t = &mut *t;
        t.values.insert(key.to_vec(), Some(value));
        let d = t.dirty.entry(key.to_vec()).or_default();
        d.encoded = Some(encoded);
        if !d.writers.contains(&writer) {
            d.writers.push(writer);
        }
    }

    /// Records a delete by `writer` under `scope`: the instance is absent from now on.
    pub(crate) fn write_absent(&self, key: &[u8], scope: &[u64], writer: u64) {
        let mut t = self.inner.borrow_mut();
        let t = &mut *t;
        let before = t.values.insert(key.to_vec(), None).flatten();
        t.undo.entry(key.to_vec()).or_default().push(UndoEntry {
            scope: scope.to_vec(),
            before,
        });
        let d = t.dirty.entry(key.to_vec()).or_default();
        d.encoded = None;
        if !d.writers.contains(&writer) {
            d.writers.push(writer);
        }
    }

    /// Undoes, newest first, every write of the holder of `key` made under `scope` (every
    /// write when `scope` is empty). Once all of its writes are undone, `writer` is no longer
    /// a writer of the key in this epoch.
    pub(crate) fn undo(&self, key: &[u8], scope: &[u64], writer: u64) {
        let mut t = self.inner.borrow_mut();
        let t = &mut *t;
        t.outbox
            .retain(|m| !(m.writer == writer && m.key == key && m.scope.starts_with(scope)));
        let Some(entries) = t.undo.get_mut(key) else {
            return;
        };
        let mut i = entries.len();
        let mut undone = false;
        while i > 0 {
            i -= 1;
            if entries[i].scope.starts_with(scope) {
                let e = entries.remove(i);
                t.values.insert(key.to_vec(), e.before);
                undone = true;
            }
        }
        let all_undone = entries.is_empty();
        if undone {
            let d = t.dirty.entry(key.to_vec()).or_default();
            d.encoded = None;
            if all_undone {
                d.writers.retain(|w| *w != writer);
            }
        }
    }

    /// Records a message sent from `key` by `writer` under `scope`.
    pub(crate) fn send(&self, key: &[u8], message: Outgoing, scope: &[u64], writer: u64) {
        self.inner.borrow_mut().outbox.push(Sent {
            key: key.to_vec(),
            scope: scope.to_vec(),
            writer,
            message,
        });
    }

    /// Takes the messages of the open epoch, in the order they were sent.
    pub(crate) fn take_outbox(&self) -> Vec<SentMessage> {
        std::mem::take(&mut self.inner.borrow_mut().outbox)
            .into_iter()
            .map(|m| SentMessage {
                from_key: m.key,
                sender: m.writer,
                message: m.message,
            })
            .collect()
    }

    /// The holder of `key` ended: its writes stay (they were committed or undone before).
    pub(crate) fn release(&self, key: &[u8]) {
        self.inner.borrow_mut().undo.remove(key);
    }

    /// Takes the changes of the open epoch, stamping them written at `now_us` (for a TTL).
    /// Fails only if a value that encoded when it was written (or came from the store) no
    /// longer encodes.
    pub(crate) fn take_dirty(&self, now_us: u64, epoch: u64) -> Result<Vec<Change>, String> {
        let mut t = self.inner.borrow_mut();
        let t = &mut *t;
        let mut out = Vec::with_capacity(t.dirty.len());
        for (key, d) in t.dirty.drain() {
            if self.stamped && !d.writers.is_empty() {
                t.stamps.insert(key.clone(), now_us);
            }
            let value = match (d.encoded, t.values.get(&key)) {
                (Some(bytes), _) => Some(bytes),
                (None, Some(Some(v))) => {
                    Some(encode_state(self.schema, v).map_err(|e| e.to_string())?)
                }
                (None, _) => None,
            };
            t.book
                .record(&key, value.as_ref().map_or(0, Vec::len), epoch);
            out.push(Change {
                key,
                value,
                writers: d.writers,
            });
        }
        Ok(out)
    }

    /// `key` was used by an invocation (it stays cached longer).
    pub(crate) fn touch(&self, key: &[u8]) {
        self.inner.borrow_mut().book.touch(key);
    }

    /// Bytes the loaded instances take, as the cache counts them.
    pub(crate) fn cached_bytes(&self) -> usize {
        self.inner.borrow().book.bytes()
    }

    /// Evicts loaded instances until at most `budget` bytes are cached: only clean ones
    /// (unchanged in the open epoch, no undo entries, not `locked`) whose last commit is at
    /// most `materialized` (so that a reload from the store reads them back). How many went.
    pub(crate) fn evict(
        &self,
        budget: usize,
        materialized: u64,
        locked: impl Fn(&[u8]) -> bool,
    ) -> usize {
        let mut t = self.inner.borrow_mut();
        let t = &mut *t;
        let (dirty, undo) = (&t.dirty, &t.undo);
        let gone = t.book.evict(budget, materialized, |k| {
            !dirty.contains_key(k) && undo.get(k).is_none_or(Vec::is_empty) && !locked(k)
        });
        for k in &gone {
            t.values.remove(k);
            t.stamps.remove(k);
            t.undo.remove(k);
        }
        gone.len()
    }

    /// Keys changed in the open epoch.
    #[cfg(test)]
    pub(crate) fn dirty_len(&self) -> usize {
        self.inner.borrow().dirty.len()
    }
}

impl<S: Clone + Default + serde::Serialize> StateAccess<S> for StateTable<S> {
    fn load(&self, key: &[u8]) -> Option<S> {
        self.get(key)
    }

    fn store(&self, key: &[u8], value: S, encoded: Vec<u8>, scope: &[u64], root: u64) {
        self.write(key, value, encoded, scope, root);
    }

    fn remove(&self, key: &[u8], scope: &[u64], root: u64) {
        self.write_absent(key, scope, root);
    }

    fn send(&self, key: &[u8], message: Outgoing, scope: &[u64], root: u64) {
        StateTable::send(self, key, message, scope, root);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> StateTable<i64> {
        let t = StateTable::new(0);
        t.load(b"k", Some(10));
        t
    }

    fn put(t: &StateTable<i64>, v: i64, scope: &[u64], writer: u64) {
        t.write(
            b"k",
            v,
            encode_state(0, &v).expect("encodes"),
            scope,
            writer,
        );
    }

    #[test]
    fn undo_restores_nested_scopes_newest_first() {
        let t = table();
        put(&t, 11, &[], 1);
        put(&t, 12, &[5], 1);
        put(&t, 13, &[5, 6], 1);
        // Rolling back the inner block [5, 6] undoes only its write.
        t.undo(b"k", &[5, 6], 1);
        assert_eq!(t.get(b"k"), Some(12));
        put(&t, 14, &[5], 1);
        t.undo(b"k", &[5], 1);
        assert_eq!(t.get(b"k"), Some(11), "the writes of block 5 are gone");
        t.undo(b"k", &[], 1);
        assert_eq!(t.get(b"k"), Some(10), "back to the loaded value");
    }

    #[test]
    fn a_fully_undone_writer_is_not_a_writer_and_the_value_is_reencoded() {
        let t = table();
        put(&t, 11, &[], 1);
        t.release(b"k");
        put(&t, 20, &[], 2);
        t.undo(b"k", &[], 2);
        let changes = t.take_dirty(1, 1).expect("takes");
        assert_eq!(
            changes,
            [Change {
                key: b"k".to_vec(),
                value: Some(encode_state(0, &11i64).expect("encodes")),
                writers: vec![1],
            }]
        );
        assert_eq!(t.dirty_len(), 0, "taken");
    }

    #[test]
    fn undo_to_absent_takes_a_tombstone_and_release_keeps_the_writes() {
        let t: StateTable<i64> = StateTable::new(0);
        t.load(b"n", None);
        t.write(b"n", 1, encode_state(0, &1i64).expect("encodes"), &[], 3);
        t.undo(b"n", &[], 3);
        assert_eq!(t.get(b"n"), None);
        assert_eq!(t.take_dirty(1, 1).expect("takes")[0].value, None);
        t.write(b"n", 2, encode_state(0, &2i64).expect("encodes"), &[], 4);
        t.release(b"n");
        t.undo(b"n", &[], 4);
        assert_eq!(
            t.get(b"n"),
            Some(2),
            "a released holder's writes cannot be undone"
        );
        assert_eq!(StateAccess::load(&t, b"missing"), None, "absent");
        t.load(b"d", Some(5));
        t.write_absent(b"d", &[], 6);
        assert_eq!(t.get(b"d"), None);
        t.undo(b"d", &[], 6);
        assert_eq!(t.get(b"d"), Some(5), "a delete is undone like a write");
    }
}
