//! The lock table of one lambda on one worker: strict two-phase locking per instance, held by
//! root attempts until their roots end, with a queue of waiting calls. A call of a handler
//! that writes (`&mut Ctx`) takes the lock exclusively; a read (`&Ctx`) shares it with other
//! reads.
//!
//! ```text
//! acquire(k, txn, mode)  free: granted | txn holds it (as strong): re-entry
//!                        read, held by readers, no writer queued: granted (shared)
//!                        write, txn the only reader: upgraded | else: busy (enqueue the call)
//! release(k, txn)        the lock goes to the oldest waiting attempt (with all its calls),
//!                        and, while it is read, to every reader waiting after it;
//!                        waiters of attempts known to be aborted are failed instead
//! ```
//!
//! Deadlocks cannot form: the caller of `acquire` wounds every younger holder (wound-wait on
//! the root's age), so an older request never waits for a younger one for long.

use std::collections::HashMap;

use crate::engine::protocol::{RootId, Txn};

/// What waits for a lock: anything that knows the attempt it works for and how it locks.
pub(crate) trait Waiter {
    /// The attempt.
    fn txn(&self) -> Txn;
    /// Whether it writes (takes the lock exclusively).
    fn exclusive(&self) -> bool;
}

/// Who holds a lock.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Holders {
    /// One attempt that may write.
    Exclusive(Txn),
    /// Attempts that read (never empty while the lock exists).
    Shared(Vec<Txn>),
}

struct Lock<W> {
    holders: Holders,
    waiters: Vec<W>,
}

impl<W: Waiter> Lock<W> {
    fn holds(&self, txn: Txn) -> bool {
        match &self.holders {
            Holders::Exclusive(h) => *h == txn,
            Holders::Shared(hs) => hs.contains(&txn),
        }
    }

    fn holder_list(&self) -> Vec<Txn> {
        match &self.holders {
            Holders::Exclusive(h) => vec![*h],
            Holders::Shared(hs) => hs.clone(),
        }
    }
}

/// The answer of [`LockTable::acquire`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Acquire {
    /// The lock is now held (it was free, shared with readers, or upgraded).
    Granted,
    /// The attempt already holds it strongly enough (a re-entrant call).
    Reentrant,
    /// Other attempts hold it: the call must wait ([`LockTable::enqueue`]) behind `holders`.
    Busy {
        /// The current holders (the caller wounds the younger ones).
        holders: Vec<Txn>,
    },
}

/// What a release hands on.
pub(crate) struct Released<W> {
    /// Waiters that now hold the lock.
    pub granted: Vec<W>,
    /// Waiters of aborted attempts, to fail.
    pub failed: Vec<W>,
}

/// One lock, for a stall report.
pub(crate) struct LockReport {
    pub key: Vec<u8>,
    pub holders: Vec<Txn>,
    /// `(root, attempt)` of the waiting calls.
    pub waiters: Vec<(RootId, u32)>,
}

/// The locks of one lambda on one worker.
pub(crate) struct LockTable<W> {
    locks: HashMap<Vec<u8>, Lock<W>>,
    /// Holders that a waiting older attempt must wound (see [`LockTable::take_wounds`]).
    wounds: Vec<Txn>,
}

impl<W: Waiter> LockTable<W> {
    pub(crate) fn new() -> Self {
        LockTable {
            locks: HashMap::new(),
            wounds: Vec::new(),
        }
    }

    /// The holders to wound after the last operations: wound-wait keeps "no attempt waits for
    /// a younger one" whenever the holders or the waiters of a lock change (a call queues, or
    /// the lock goes on to younger attempts while older ones still wait).
    pub(crate) fn take_wounds(&mut self) -> Vec<Txn> {
        let mut w = std::mem::take(&mut self.wounds);
        w.sort_unstable_by_key(|t| t.age());
        w.dedup();
        w
    }

    /// Every holder that a waiting older attempt conflicts with is to be wounded (a reader
    /// waiting while readers hold does not conflict with them: it waits for an older writer).
    fn note_wounds(&mut self, key: &[u8]) {
        let Some(l) = self.locks.get(key) else {
            return;
        };
        let held_exclusive = matches!(l.holders, Holders::Exclusive(_));
        let oldest = l
            .waiters
            .iter()
            .filter(|w| held_exclusive || w.exclusive())
            .map(|w| w.txn().root)
            .min();
        let Some(oldest) = oldest else {
            return;
        };
        for h in l.holder_list() {
            if oldest < h.root {
                self.wounds.push(h);
            }
        }
    }

    /// Takes the lock of `key` for `txn` (exclusively when `exclusive`) if it can.
    pub(crate) fn acquire(&mut self, key: &[u8], txn: Txn, exclusive: bool) -> Acquire {
        let Some(l) = self.locks.get_mut(key) else {
            let holders = if exclusive {
                Holders::Exclusive(txn)
            } else {
                Holders::Shared(vec![txn])
            };
            self.locks.insert(
                key.to_vec(),
                Lock {
                    holders,
                    waiters: Vec::new(),
                },
            );
            return Acquire::Granted;
        };
        // A reader queues only behind a writer older than itself (which goes first anyway);
        // otherwise it joins the readers.
        let older_writer = l
            .waiters
            .iter()
            .any(|w| w.exclusive() && w.txn().age() < txn.age());
        let answer = match &mut l.holders {
            Holders::Exclusive(h) if *h == txn => return Acquire::Reentrant,
            Holders::Shared(hs) if hs.contains(&txn) && !exclusive => return Acquire::Reentrant,
            Holders::Shared(hs) if exclusive && hs.as_slice() == [txn] => {
                l.holders = Holders::Exclusive(txn);
                Acquire::Granted
            }
            Holders::Shared(hs) if !exclusive && !older_writer => {
                hs.push(txn);
                Acquire::Granted
            }
            _ => Acquire::Busy {
                holders: l.holder_list().into_iter().filter(|h| *h != txn).collect(),
            },
        };
        if answer == Acquire::Granted {
            // Older waiters may conflict with the new hold.
            self.note_wounds(key);
        }
        answer
    }

    /// Queues `waiter` for the lock of `key` (after [`Acquire::Busy`]).
    pub(crate) fn enqueue(&mut self, key: &[u8], waiter: W) {
        match self.locks.get_mut(key) {
            Some(l) => l.waiters.push(waiter),
            // Not reached: `Busy` means the lock is held, and nothing runs in between.
            None => unreachable!("a call queued behind a free lock"),
        }
        self.note_wounds(key);
    }

    /// Whether `txn` holds `key`'s lock exclusively (may have written it).
    pub(crate) fn holds_exclusive(&self, key: &[u8], txn: Txn) -> bool {
        self.locks
            .get(key)
            .is_some_and(|l| l.holders == Holders::Exclusive(txn))
    }

    /// Whether anyone holds or waits for `key`'s lock.
    pub(crate) fn is_locked(&self, key: &[u8]) -> bool {
        self.locks.contains_key(key)
    }

    /// Whether `txn` holds `key`'s lock at all.
    pub(crate) fn holds(&self, key: &[u8], txn: Txn) -> bool {
        self.locks.get(key).is_some_and(|l| l.holds(txn))
    }

    /// `txn` ends its hold on `key` (nothing happens if it holds none): the lock goes on to
    /// the waiters it can (see the module doc), skipping attempts `aborted` names.
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
        let Some(lock) = self.locks.get_mut(key) else {
            return out;
        };
        if !lock.holds(txn) {
            return out;
        }
        if let Holders::Shared(hs) = &mut lock.holders
            && hs.len() > 1
        {
            hs.retain(|h| *h != txn);
            // The last reader may be waiting to write: it can now.
            if let [only] = hs.as_slice() {
                let only = *only;
                if lock.waiters.iter().any(|w| w.txn() == only) {
                    let (mine, rest) = std::mem::take(&mut lock.waiters)
                        .into_iter()
                        .partition(|w| w.txn() == only);
                    lock.waiters = rest;
                    lock.holders = Holders::Exclusive(only);
                    out.granted = mine;
                }
            }
            self.note_wounds(key);
            return out;
        }
        let Some(lock) = self.locks.remove(key) else {
            return out;
        };
        self.hand_on(key, lock.waiters, aborted, &mut out);
        out
    }

    /// A free lock goes to the oldest waiting attempt (with all its calls); if it reads,
    /// every later reader joins it, up to the first writer.
    fn hand_on(
        &mut self,
        key: &[u8],
        waiters: Vec<W>,
        aborted: impl Fn((RootId, u32)) -> bool,
        out: &mut Released<W>,
    ) {
        let (failed, waiters): (Vec<W>, Vec<W>) =
            waiters.into_iter().partition(|w| aborted(w.txn().age()));
        out.failed.extend(failed);
        let mut ages: Vec<(RootId, u32)> = waiters.iter().map(|w| w.txn().age()).collect();
        ages.sort_unstable();
        ages.dedup();
        let writes = |age: (RootId, u32)| {
            waiters
                .iter()
                .any(|w| w.txn().age() == age && w.exclusive())
        };
        let mut take = Vec::new();
        let mut exclusive = false;
        for age in ages {
            if writes(age) {
                if take.is_empty() {
                    take.push(age);
                    exclusive = true;
                }
                break;
            }
            take.push(age);
        }
        let (mine, rest): (Vec<W>, Vec<W>) = waiters
            .into_iter()
            .partition(|w| take.contains(&w.txn().age()));
        let mut txns: Vec<Txn> = mine.iter().map(Waiter::txn).collect();
        txns.sort_unstable_by_key(|t| t.age());
        txns.dedup();
        let holders = match (exclusive, txns.first()) {
            (_, None) => return,
            (true, Some(t)) => Holders::Exclusive(*t),
            (false, Some(_)) => Holders::Shared(txns),
        };
        self.locks.insert(
            key.to_vec(),
            Lock {
                holders,
                waiters: rest,
            },
        );
        self.note_wounds(key);
        out.granted = mine;
    }

    /// Takes every queued call of `txn` out of every queue (its attempt was aborted): returns
    /// them, and the readers that can now join the readers holding their lock (they waited
    /// only for a writer of `txn`).
    pub(crate) fn remove_waiters_of(&mut self, txn: Txn) -> (Vec<W>, Vec<W>) {
        let mut out = Vec::new();
        let mut granted = Vec::new();
        for lock in self.locks.values_mut() {
            let before = out.len();
            let mut i = 0;
            while i < lock.waiters.len() {
                if lock.waiters[i].txn() == txn {
                    out.push(lock.waiters.swap_remove(i));
                } else {
                    i += 1;
                }
            }
            if out.len() > before {
                granted.extend(join_readers(lock));
            }
        }
        (out, granted)
    }

    /// Calls waiting in queues.
    pub(crate) fn waiting(&self) -> usize {
        self.locks.values().map(|l| l.waiters.len()).sum()
    }

    /// Every lock with its holders and the attempts waiting, for a stall report.
    pub(crate) fn describe(&self) -> Vec<LockReport> {
        self.locks
            .iter()
            .map(|(k, l)| LockReport {
                key: k.clone(),
                holders: l.holder_list(),
                waiters: l.waiters.iter().map(|w| w.txn().age()).collect(),
            })
            .collect()
    }
}

/// The waiting readers of a read lock that no older writer precedes join its holders.
fn join_readers<W: Waiter>(lock: &mut Lock<W>) -> Vec<W> {
    let Holders::Shared(hs) = &mut lock.holders else {
        return Vec::new();
    };
    let oldest_writer = lock
        .waiters
        .iter()
        .filter(|w| w.exclusive())
        .map(|w| w.txn().age())
        .min();
    let (join, wait): (Vec<W>, Vec<W>) = std::mem::take(&mut lock.waiters)
        .into_iter()
        .partition(|w| !w.exclusive() && oldest_writer.is_none_or(|o| w.txn().age() < o));
    lock.waiters = wait;
    for w in &join {
        if !hs.contains(&w.txn()) {
            hs.push(w.txn());
        }
    }
    join
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, PartialEq)]
    struct W(Txn, &'static str, bool);

    impl Waiter for W {
        fn txn(&self) -> Txn {
            self.0
        }
        fn exclusive(&self) -> bool {
            self.2
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

    fn w(root: u64, name: &'static str) -> W {
        W(txn(root, 0), name, true)
    }

    fn r(root: u64, name: &'static str) -> W {
        W(txn(root, 0), name, false)
    }

    fn names(ws: &[W]) -> Vec<&'static str> {
        ws.iter().map(|w| w.1).collect()
    }

    #[test]
    fn acquire_grants_reenters_and_queues() {
        let mut t = LockTable::<W>::new();
        assert_eq!(t.acquire(b"k", txn(5, 0), true), Acquire::Granted);
        assert_eq!(t.acquire(b"k", txn(5, 0), true), Acquire::Reentrant);
        assert_eq!(t.acquire(b"k", txn(5, 0), false), Acquire::Reentrant);
        assert_eq!(
            t.acquire(b"k", txn(3, 0), true),
            Acquire::Busy {
                holders: vec![txn(5, 0)]
            }
        );
        t.enqueue(b"k", w(3, "c"));
        assert_eq!(t.waiting(), 1);
        assert!(t.holds_exclusive(b"k", txn(5, 0)));
        assert!(!t.holds(b"k", txn(3, 0)));
    }

    #[test]
    fn readers_share_and_a_writer_waits_for_all_of_them() {
        let mut t = LockTable::<W>::new();
        assert_eq!(t.acquire(b"k", txn(5, 0), false), Acquire::Granted);
        assert_eq!(t.acquire(b"k", txn(6, 0), false), Acquire::Granted);
        assert_eq!(t.acquire(b"k", txn(6, 0), false), Acquire::Reentrant);
        assert!(t.holds(b"k", txn(6, 0)) && !t.holds_exclusive(b"k", txn(6, 0)));
        let busy = t.acquire(b"k", txn(2, 0), true);
        assert_eq!(
            busy,
            Acquire::Busy {
                holders: vec![txn(5, 0), txn(6, 0)]
            }
        );
        t.enqueue(b"k", w(2, "writer"));
        assert_eq!(
            t.take_wounds(),
            [txn(5, 0), txn(6, 0)],
            "the writer wounds the younger"
        );
        // A reader older than the waiting writer joins; a younger one queues behind it.
        assert_eq!(t.acquire(b"k", txn(1, 0), false), Acquire::Granted);
        assert!(matches!(
            t.acquire(b"k", txn(7, 0), false),
            Acquire::Busy { .. }
        ));
        t.enqueue(b"k", r(7, "younger reader"));
        assert_eq!(
            t.take_wounds(),
            [txn(5, 0), txn(6, 0)],
            "only the writer wounds, and not the older reader 1"
        );
        for h in [1, 5] {
            assert!(t.release(b"k", txn(h, 0), |_| false).granted.is_empty());
        }
        let g = t.release(b"k", txn(6, 0), |_| false);
        assert_eq!(names(&g.granted), ["writer"]);
        assert!(t.holds_exclusive(b"k", txn(2, 0)));
        let g = t.release(b"k", txn(2, 0), |_| false);
        assert_eq!(names(&g.granted), ["younger reader"]);
    }

    #[test]
    fn the_only_reader_upgrades_and_a_sharing_one_waits_to() {
        let mut t = LockTable::<W>::new();
        t.acquire(b"k", txn(5, 0), false);
        assert_eq!(
            t.acquire(b"k", txn(5, 0), true),
            Acquire::Granted,
            "upgraded"
        );
        assert!(t.holds_exclusive(b"k", txn(5, 0)));
        t.release(b"k", txn(5, 0), |_| false);
        t.acquire(b"k", txn(5, 0), false);
        t.acquire(b"k", txn(6, 0), false);
        assert_eq!(
            t.acquire(b"k", txn(5, 0), true),
            Acquire::Busy {
                holders: vec![txn(6, 0)]
            }
        );
        t.enqueue(b"k", w(5, "upgrade"));
        let g = t.release(b"k", txn(6, 0), |_| false);
        assert_eq!(names(&g.granted), ["upgrade"]);
        assert!(t.holds_exclusive(b"k", txn(5, 0)));
    }

    #[test]
    fn release_hands_the_lock_to_the_oldest_attempt_and_readers_after_it() {
        let mut t = LockTable::<W>::new();
        t.acquire(b"k", txn(9, 0), true);
        t.enqueue(b"k", r(7, "7a"));
        t.enqueue(b"k", r(4, "4a"));
        t.enqueue(b"k", r(7, "7b"));
        t.enqueue(b"k", w(8, "8w"));
        t.enqueue(b"k", r(10, "10r"));
        let g = t.release(b"k", txn(9, 0), |_| false);
        assert_eq!(
            names(&g.granted),
            ["7a", "4a", "7b"],
            "readers up to the writer"
        );
        assert!(g.failed.is_empty());
        assert_eq!(t.waiting(), 2, "the writer and the reader after it wait");
        // Root 7 released once, even with two of its calls granted.
        assert!(t.release(b"k", txn(7, 0), |_| false).granted.is_empty());
        assert!(t.holds(b"k", txn(4, 0)) && !t.holds(b"k", txn(7, 0)));
    }

    #[test]
    fn aborted_waiters_fail_and_a_non_holder_releases_nothing() {
        let mut t = LockTable::<W>::new();
        t.acquire(b"k", txn(9, 0), true);
        t.enqueue(b"k", w(2, "aborted"));
        t.enqueue(b"k", w(6, "next"));
        let nothing = t.release(b"k", txn(6, 0), |_| false);
        assert!(nothing.granted.is_empty() && nothing.failed.is_empty());
        let g = t.release(b"k", txn(9, 0), |age| age == (RootId(2), 0));
        assert_eq!(g.failed, [w(2, "aborted")]);
        assert_eq!(g.granted, [w(6, "next")]);
        let g = t.release(b"k", txn(6, 0), |_| false);
        assert!(g.granted.is_empty());
        assert!(!t.holds(b"k", txn(6, 0)), "free again");
    }

    #[test]
    fn an_aborted_attempt_leaves_every_queue() {
        let mut t = LockTable::<W>::new();
        t.acquire(b"a", txn(1, 0), true);
        t.acquire(b"b", txn(1, 0), true);
        t.enqueue(b"a", w(8, "a"));
        t.enqueue(b"b", w(8, "b"));
        t.enqueue(b"b", w(9, "other"));
        let (mut gone, granted) = t.remove_waiters_of(txn(8, 0));
        gone.sort_by_key(|w| w.1);
        assert_eq!(gone, [w(8, "a"), w(8, "b")]);
        assert!(granted.is_empty());
        assert_eq!(t.waiting(), 1);
    }

    #[test]
    fn readers_waiting_for_an_aborted_writer_join_the_readers() {
        let mut t = LockTable::<W>::new();
        t.acquire(b"k", txn(5, 0), false);
        t.enqueue(b"k", w(3, "writer"));
        t.enqueue(b"k", r(4, "reader behind the writer"));
        let (gone, granted) = t.remove_waiters_of(txn(3, 0));
        assert_eq!(names(&gone), ["writer"]);
        assert_eq!(names(&granted), ["reader behind the writer"]);
        assert!(t.holds(b"k", txn(4, 0)) && t.holds(b"k", txn(5, 0)));
    }
}
