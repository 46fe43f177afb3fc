//! A bulk load's part on one shard: many instances set in one message, committed with the
//! open epoch (see `engine::load` for the way in).
//!
//! ```text
//! Call{handler: LOAD} ─ decode every entry (one bad: nothing set) ─ per key:
//!     held by an attempt ─▶ busy (the loader sends it again)
//!     else                ─▶ table.put (no lock, no undo: it commits with the epoch)
//! ─▶ answer the root: the indices of the busy entries
//! ```
//!
//! A put never waits and never holds a lock, so a load takes part in no deadlock; each
//! instance is set atomically between the transactions that use it.

use std::sync::atomic::Ordering::Relaxed;

use super::{Effects, Shard};
use crate::engine::load::{LoadAnswer, LoadChunk};
use crate::engine::protocol::Call;
use crate::sdk::{CallError, Lambda, Outcome};

impl<L: Lambda> Shard<L> {
    /// Handles a bulk load's chunk and answers its root.
    pub(super) fn on_load(&mut self, call: Call, fx: &mut Effects) {
        let result = self.put_chunk(&call.args, call.txn.root.0).and_then(|a| {
            Ok(Outcome {
                ok: true,
                bytes: postcard::to_stdvec(&a).map_err(|e| CallError::Codec(e.to_string()))?,
            })
        });
        self.reply(&call.reply, call.txn, result, Vec::new(), None, fx);
    }

    /// Sets every entry no attempt holds; the rest are busy. Decodes all of them first, so
    /// a chunk with one bad entry sets nothing.
    fn put_chunk(&self, args: &[u8], writer: u64) -> Result<LoadAnswer, CallError> {
        let chunk: LoadChunk = postcard::from_bytes(args)
            .map_err(|e| CallError::Codec(format!("a bulk load of {}: {e}", L::NAME)))?;
        let env = self.env();
        let mut values = Vec::with_capacity(chunk.entries.len());
        for (key, bytes) in &chunk.entries {
            if env.owner(key) != env.worker {
                return Err(CallError::Codec(format!(
                    "a bulk load of {} sent a key to the wrong worker",
                    L::NAME
                )));
            }
            let v = crate::sdk::schema::decode::<L>(bytes)
                .map_err(|e| CallError::Codec(format!("a loaded state of {}: {e}", L::NAME)))?;
            values.push(v);
        }
        let total = chunk.entries.len();
        let mut busy = Vec::new();
        for (i, ((key, bytes), value)) in chunk.entries.into_iter().zip(values).enumerate() {
            if self.locks.is_locked(&key) {
                busy.push(i as u32);
                continue;
            }
            self.table.put(&key, value, bytes, writer);
        }
        if let Some(m) = env.op_metrics() {
            m.loaded.fetch_add((total - busy.len()) as u64, Relaxed);
        }
        Ok(LoadAnswer { busy })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::super::ShardRuntime;
    use super::super::fixture::{env, one::Cell};
    use super::super::locks::Acquire;
    use super::*;
    use crate::engine::load::LoadChunk;
    use crate::engine::protocol::{RootId, Txn};
    use crate::sdk::wire;
    use crate::storage::MemoryStore;

    fn shard() -> Shard<Cell> {
        let mut s = Shard::<Cell>::new();
        s.init(env(Arc::new(MemoryStore::new())));
        s
    }

    fn key(k: &str) -> Vec<u8> {
        wire::encode("key", &k.to_owned()).expect("encodes")
    }

    fn chunk(entries: &[(&str, Vec<u8>)]) -> Vec<u8> {
        let entries = entries.iter().map(|(k, v)| (key(k), v.clone())).collect();
        postcard::to_stdvec(&LoadChunk { entries }).expect("encodes")
    }

    fn state(v: i64) -> Vec<u8> {
        crate::sdk::schema::encode::<Cell>(&v).expect("encodes")
    }

    #[test]
    fn a_held_instance_is_busy_and_the_others_are_set_in_the_open_epoch() {
        let mut s = shard();
        let holder = Txn {
            root: RootId(1),
            attempt: 0,
            worker: 0,
            lambda: 0,
        };
        assert!(matches!(
            s.locks.acquire(&key("b"), holder, true),
            Acquire::Granted
        ));
        let answer = s
            .put_chunk(
                &chunk(&[("a", state(1)), ("b", state(2)), ("c", state(3))]),
                9,
            )
            .expect("loads");
        assert_eq!(answer.busy, vec![1], "b is held");
        assert_eq!(s.table.get(&key("a")), Some(1));
        assert_eq!(s.table.get(&key("b")), None, "not set while held");
        assert_eq!(s.table.get(&key("c")), Some(3));
        let mut changed: Vec<_> = s
            .table
            .take_dirty(0, 1)
            .expect("takes")
            .into_iter()
            .map(|c| (c.key, c.writers))
            .collect();
        changed.sort();
        assert_eq!(changed, vec![(key("a"), vec![9]), (key("c"), vec![9])]);
    }

    #[test]
    fn a_chunk_with_one_bad_state_sets_nothing() {
        let s = shard();
        let bad = chunk(&[("a", state(1)), ("b", vec![0xff, 1, 2])]);
        match s.put_chunk(&bad, 9) {
            Err(CallError::Codec(m)) => assert!(m.contains("Cell"), "{m}"),
            other => panic!("expected a codec error, got {other:?}"),
        }
        assert_eq!(s.table.get(&key("a")), None, "nothing was set");
        assert!(s.put_chunk(&[1, 2, 3], 9).is_err(), "an undecodable chunk");
    }
}
