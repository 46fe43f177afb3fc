//! The lock table of one lambda on one worker: strict two-phase locking per instance, held by a
//! root attempt until the root ends, with a queue of waiting calls.
//!
//! ```text
//! acquire(k, txn)   free: granted | held by txn: re-entry | else: busy (then enqueue the call)
//! release(k, txn)   the lock goes to the oldest waiting attempt, whose calls all wake;
//!                   waiters of attempts known to be aborted are failed instead
//! ```
//!
//! Deadlocks cannot form: the caller of `acquire` wounds a younger holder (wound-wait on the
//! root's age), so an older request never waits for a younger one for long.

use std::collections::HashMap;

use crate::engine::protocol::{RootId, Txn};

/// What waits for a lock: anything that knows the attempt it works for.
pub(crate) trait Waiter {
    /// The attempt.
    fn txn(&self) -> Txn;
}

struct Lock<W> {
    holder: Txn,
    waiters: Vec<W>,
}

/// The answer of [`LockTable::acquire`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Acquire {
    /// The lock was free and is now held.
    Granted,
    /// The attempt already holds it (a re-entrant call).
    Reentrant,
    /// Another attempt holds it: the call must wait behind `holder` ([`LockTable::enqueue`]).
    Busy {
        /// The current holder.
        holder: Txn,
    },
}

/// What a release hands on.
pub(crate) struct Released<W> {
    /// Waiters that now hold the lock (all of one attempt).
    pub granted: Vec<W>,
    /// Waiters of aborted attempts, to fail.
    pub failed: Vec<W>,
}

/// One lock, for a stall report.
pub(crate) struct LockReport {
    pub key: Vec<u8>,
    pub holder: Txn,
    /// `(root, attempt)` of the waiting calls.
    pub waiters: Vec<(RootId, u32)>,
}

/// The locks of one lambda on one worker.
pub(crate) struct LockTable<W> {
    locks: HashMap<Vec<u8>, Lock<W>>,
}

impl<W: Waiter> LockTable<W> {
    pub(crate) fn new() -> Self {
        LockTable {
            locks: HashMap::new(),
        }
    }

    /// Takes the lock of `key` for `txn` if it is free (or already `txn`'s).
    pub(crate) fn acquire(&mut self, key: &[u8], txn: Txn) -> Acquire {
        match self.locks.get_mut(key) {
            None => {
                self.locks.insert(
                    key.to_vec(),
                    Lock {
                        holder: txn,
                        waiters: Vec::new(),
                    },
                );
                Acquire::Granted
            }
            Some(l) if l.holder == txn => Acquire::Reentrant,
            Some(l) => Acquire::Busy { holder: l.holder },
        }
    }

    /// Queues `waiter` behind the holder of `key` (after [`Acquire::Busy`]); a free lock is
    /// taken by it instead, and `false` returned.
    pub(crate) fn enqueue(&mut self, key: &[u8], waiter: W) -> bool {
        match self.locks.get_mut(key) {
            Some(l) => {
                l.waiters.push(waiter);
                true
            }
            None => {
                self.locks.insert(
                    key.to_vec(),
                    Lock {
                        holder: waiter.txn(),
                        waiters: Vec::new(),
                    },
                );
                false
            }
        }
    }

    /// The holder of `key`'s lock.
    pub(crate) fn holder(&self, key: &[u8]) -> Option<Txn> {
        self.locks.get(key).map(|l| l.holder)
    }

    /// `txn` ends its hold on `key` (nothing happens if it does not hold it): the lock goes to
    /// the oldest waiting attempt that `aborted` does not name.
    pub(crate) fn release(
        &mut self,
        key: &[u8],
        txn: Txn,
        aborted: impl Fn((RootId, u32)) -> bool,
    ) -> Released<W> {
        let mut out = Released {
            granted: Vec::new(),
            failed: Vec::new(),
        };
        if self.holder(key) != Some(txn) {
            return out;
        }
        let Some(lock) = self.locks.remove(key) else {
            return out;
        };
        let mut waiters = lock.waiters;
        while let Some(oldest) = waiters.iter().map(|w| w.txn().age()).min() {
            let (mine, rest): (Vec<W>, Vec<W>) =
                waiters.into_iter().partition(|w| w.txn().age() == oldest);
            waiters = rest;
            if aborted(oldest) {
                out.failed.extend(mine);
                continue;
            }
            if let Some(holder) = mine.first().map(Waiter::txn) {
                self.locks.insert(key.to_vec(), Lock { holder, waiters });
            }
            out.granted = mine;
            return out;
        }
        out
    }

    /// Takes every queued call of `txn` out of every queue (its attempt was aborted).
    pub(crate) fn remove_waiters_of(&mut self, txn: Txn) -> Vec<W> {
        let mut out = Vec::new();
        for lock in self.locks.values_mut() {
            let mut i = 0;
            while i < lock.waiters.len() {
                if lock.waiters[i].txn() == txn {
                    out.push(lock.waiters.swap_remove(i));
                } else {
                    i += 1;
                }
            }
        }
        out
    }

    /// Calls waiting in queues.
    pub(crate) fn waiting(&self) -> usize {
        self.locks.values().map(|l| l.waiters.len()).sum()
    }

    /// Every lock with its holder and the attempts waiting, for a stall report.
    pub(crate) fn describe(&self) -> Vec<LockReport> {
        self.locks
            .iter()
            .map(|(k, l)| LockReport {
                key: k.clone(),
                holder: l.holder,
                waiters: l.waiters.iter().map(|w| w.txn().age()).collect(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, PartialEq)]
    struct W(Txn, &'static str);

    impl Waiter for W {
        fn txn(&self) -> Txn {
            self.0
        }
    }

    fn txn(root: u64, attempt: u32) -> Txn {
        Txn {
            root: RootId(root),
            attempt,
            worker: 0,
            lambda: 0,
        }
    }

    #[test]
    fn acquire_grants_reenters_and_queues() {
        let mut t = LockTable::<W>::new();
        assert_eq!(t.acquire(b"k", txn(5, 0)), Acquire::Granted);
        assert_eq!(t.acquire(b"k", txn(5, 0)), Acquire::Reentrant);
        assert_eq!(
            t.acquire(b"k", txn(3, 0)),
            Acquire::Busy { holder: txn(5, 0) }
        );
        assert!(t.enqueue(b"k", W(txn(3, 0), "c")));
        assert_eq!(t.waiting(), 1);
        assert!(
            !t.enqueue(b"free", W(txn(3, 0), "d")),
            "a free lock is taken"
        );
        assert_eq!(t.holder(b"free"), Some(txn(3, 0)));
        assert_eq!(t.holder(b"k"), Some(txn(5, 0)));
    }

    #[test]
    fn release_hands_the_lock_to_the_oldest_attempt_with_all_its_calls() {
        let mut t = LockTable::<W>::new();
        t.acquire(b"k", txn(9, 0));
        t.enqueue(b"k", W(txn(7, 0), "7a"));
        t.enqueue(b"k", W(txn(4, 1), "4a"));
        t.enqueue(b"k", W(txn(7, 0), "7b"));
        t.enqueue(b"k", W(txn(4, 1), "4b"));
        let r = t.release(b"k", txn(9, 0), |_| false);
        let names: Vec<&str> = r.granted.iter().map(|w| w.1).collect();
        assert_eq!(names, ["4a", "4b"]);
        assert!(r.failed.is_empty());
        assert_eq!(t.holder(b"k"), Some(txn(4, 1)));
        assert_eq!(t.waiting(), 2, "root 7 still waits");
    }

    #[test]
    fn aborted_waiters_fail_and_a_non_holder_releases_nothing() {
        let mut t = LockTable::<W>::new();
        t.acquire(b"k", txn(9, 0));
        t.enqueue(b"k", W(txn(2, 0), "aborted"));
        t.enqueue(b"k", W(txn(6, 0), "next"));
        let nothing = t.release(b"k", txn(6, 0), |_| false);
        assert!(nothing.granted.is_empty() && nothing.failed.is_empty());
        let r = t.release(b"k", txn(9, 0), |age| age == (RootId(2), 0));
        assert_eq!(r.failed, [W(txn(2, 0), "aborted")]);
        assert_eq!(r.granted, [W(txn(6, 0), "next")]);
        let r = t.release(b"k", txn(6, 0), |_| false);
        assert!(r.granted.is_empty());
        assert_eq!(t.holder(b"k"), None, "free again");
    }

    #[test]
    fn an_aborted_attempt_leaves_every_queue() {
        let mut t = LockTable::<W>::new();
        t.acquire(b"a", txn(1, 0));
        t.acquire(b"b", txn(1, 0));
        t.enqueue(b"a", W(txn(8, 0), "a"));
        t.enqueue(b"b", W(txn(8, 0), "b"));
        t.enqueue(b"b", W(txn(9, 0), "other"));
        let mut gone = t.remove_waiters_of(txn(8, 0));
        gone.sort_by_key(|w| w.1);
        assert_eq!(gone, [W(txn(8, 0), "a"), W(txn(8, 0), "b")]);
        assert_eq!(t.waiting(), 1);
    }
}
