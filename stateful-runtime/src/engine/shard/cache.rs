//! The bounded instance cache of one state table: how many bytes each loaded instance takes
//! (its encoding plus the key and a fixed overhead), a CLOCK ring for recency, and which
//! instances may be evicted: clean (unchanged in the open epoch), unheld (no lock, no undo
//! entries) and materialised (its last commit is in the store, so a reload reads it back).
//!
//! ```text
//! ring: keys in load order; evict: hand at the front — used? clear, to the back;
//!       evictable? drop; else to the back — until under budget or one full turn
//! ```

use std::collections::{HashMap, VecDeque};

/// Bytes an entry is counted for beyond its key and encoding (map slots, the decoded value).
const OVERHEAD: usize = 96;

#[derive(Debug, Clone, Copy)]
struct Entry {
    bytes: usize,
    used: bool,
    /// The epoch of its last commit (0: loaded, never written here).
    committed: u64,
}

/// The cache's book of loaded instances.
#[derive(Debug, Default)]
pub(crate) struct CacheBook {
    entries: HashMap<Vec<u8>, Entry>,
    ring: VecDeque<Vec<u8>>,
    total: usize,
}

impl CacheBook {
    /// `key` is loaded (or its value changed) with an encoding of `encoded` bytes, committed
    /// at `committed` (0: read from the store).
    pub(crate) fn record(&mut self, key: &[u8], encoded: usize, committed: u64) {
        let bytes = key.len() + encoded + OVERHEAD;
        match self.entries.get_mut(key) {
            Some(e) => {
                self.total = self.total - e.bytes + bytes;
                e.bytes = bytes;
                e.used = true;
                e.committed = e.committed.max(committed);
            }
            None => {
                self.total += bytes;
                self.entries.insert(
                    key.to_vec(),
                    Entry {
                        bytes,
                        used: true,
                        committed,
                    },
                );
                self.ring.push_back(key.to_vec());
            }
        }
    }

    /// `key` was used: it survives the next turn of the hand.
    pub(crate) fn touch(&mut self, key: &[u8]) {
        if let Some(e) = self.entries.get_mut(key) {
            e.used = true;
        }
    }

    /// Bytes cached.
    pub(crate) fn bytes(&self) -> usize {
        self.total
    }

    /// Evicts entries until at most `budget` bytes are cached (or one turn of the hand found
    /// nothing more to evict): an entry goes when it was not used since the last turn,
    /// `can_go(key)` (clean and unheld) and its last commit is at most `materialized`. The
    /// evicted keys, for the table to drop.
    pub(crate) fn evict(
        &mut self,
        budget: usize,
        materialized: u64,
        can_go: impl Fn(&[u8]) -> bool,
    ) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut turns = self.ring.len() * 2;
        while self.total > budget && turns > 0 {
            turns -= 1;
            let Some(key) = self.ring.pop_front() else {
                break;
            };
            let Some(e) = self.entries.get_mut(&key) else {
                continue;
            };
            if e.used {
                e.used = false;
            } else if e.committed <= materialized && can_go(&key) {
                self.total -= e.bytes;
                self.entries.remove(&key);
                out.push(key);
                continue;
            }
            self.ring.push_back(key);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_the_least_recently_used_clean_materialised_entries_first() {
        let mut c = CacheBook::default();
        for k in 0u8..4 {
            c.record(&[k], 4, 0);
        }
        let each = 1 + 4 + OVERHEAD;
        assert_eq!(c.bytes(), 4 * each);
        // First turn clears the used bits; key 1 is used again meanwhile.
        assert!(c.evict(0, 0, |_| false).is_empty(), "nothing may go");
        c.touch(&[1]);
        c.record(&[2], 4, 9); // written, committed at epoch 9, not yet in the store
        let gone = c.evict(2 * each, 5, |k| k != [3]);
        assert_eq!(
            gone,
            vec![vec![0], vec![1]],
            "0 first; 1 when the hand comes round again (its use bought it one turn); \
             never 2 (not in the store yet) or 3 (held)"
        );
        assert_eq!(c.bytes(), 2 * each);
        let gone = c.evict(each, 9, |_| true);
        assert_eq!(gone.len(), 1, "down to the budget: {gone:?}");
        assert_eq!(c.bytes(), each);
    }
}
