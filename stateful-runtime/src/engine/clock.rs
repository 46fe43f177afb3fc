//! When epochs close. Alone, by group commit: an epoch closes as soon as the previous commit
//! is durable and a request waits in it (the first request after a quiet spell closes its
//! epoch at once, so it is answered after one flush of its own; under load, epochs fill while
//! a commit runs); nothing ticks while nothing arrives. In a cluster, by the clock: every
//! process closes the same interval-aligned epochs.
//!
//! ```text
//! driver: request in epoch E ─ entered(E): work = E; idle? ─▶ close(E)
//! committer: durable(E) ─▶ work in the open epoch? close it : idle (the next request closes)
//! close(E): open = max(E + 1, now µs); wake every worker (it advances its inputs)
//! ```

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::thread::Thread;
use std::time::Duration;

use crate::storage::unix_us;

/// How epochs close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Policy {
    /// Group commit, with a bound on how long an epoch with work stays open (µs).
    Adaptive { max_open_us: u64 },
    /// Every `interval_us`, aligned to it (cluster mode).
    Periodic { interval_us: u64 },
}

/// The epochs of one process.
pub(crate) struct EpochClock {
    policy: Policy,
    /// The epoch new requests enter.
    open: AtomicU64,
    /// The last epoch a request entered.
    work: AtomicU64,
    /// When the open epoch got its first request (µs).
    first_work_us: AtomicU64,
    /// The committer found no work to close: the next request closes its epoch itself.
    idle: AtomicBool,
    /// Every epoch opened, oldest first (adaptive): each operator snapshots each of them, so
    /// the committer gets one batch per operator per epoch. Trimmed below the durable epoch.
    opened: Mutex<std::collections::VecDeque<u64>>,
    /// The last epoch made durable here.
    durable: AtomicU64,
    threads: Mutex<Vec<Option<Thread>>>,
}

impl EpochClock {
    /// A clock whose first epoch is `start` (after every epoch of earlier runs).
    pub(crate) fn new(policy: Policy, start: u64, workers: usize, durable: u64) -> EpochClock {
        let start = match policy {
            Policy::Adaptive { .. } => start,
            Policy::Periodic { interval_us } => align(start, interval_us),
        };
        EpochClock {
            policy,
            open: AtomicU64::new(start),
            work: AtomicU64::new(0),
            first_work_us: AtomicU64::new(0),
            idle: AtomicBool::new(true),
            opened: Mutex::new(std::collections::VecDeque::from([start])),
            durable: AtomicU64::new(durable),
            threads: Mutex::new(vec![None; workers]),
        }
    }

    /// The worker thread `w` to wake when an epoch closes.
    pub(crate) fn register(&self, w: usize, t: Thread) {
        if let Some(slot) = self.lock_threads().get_mut(w) {
            *slot = Some(t);
        }
    }

    fn lock_threads(&self) -> std::sync::MutexGuard<'_, Vec<Option<Thread>>> {
        self.threads.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Wakes every worker.
    pub(crate) fn wake_all(&self) {
        for t in self.lock_threads().iter().flatten() {
            t.unpark();
        }
    }

    /// Wakes worker `w`.
    pub(crate) fn wake(&self, w: usize) {
        if let Some(Some(t)) = self.lock_threads().get(w) {
            t.unpark();
        }
    }

    /// The epoch requests enter now (periodic: the current interval).
    pub(crate) fn open(&self) -> u64 {
        match self.policy {
            Policy::Adaptive { .. } => self.open.load(Ordering::Acquire),
            Policy::Periodic { interval_us } => {
                let now = align(unix_us(), interval_us);
                self.open.fetch_max(now, Ordering::AcqRel).max(now)
            }
        }
    }

    /// How long a driver may park: until the next interval (periodic), or until woken.
    pub(crate) fn park_for(&self) -> Option<Duration> {
        match self.policy {
            Policy::Adaptive { .. } => None,
            Policy::Periodic { interval_us } => {
                let now = unix_us();
                let next = align(now, interval_us) + interval_us;
                Some(Duration::from_micros(next.saturating_sub(now).max(100)))
            }
        }
    }

    /// The epoch requests arriving now enter: the open one; but when the clock is idle, the
    /// open epoch (opened when the last commit finished, maybe long ago) is closed first and
    /// a fresh one opened now, so that an epoch's number never predates its requests by
    /// more than one commit.
    pub(crate) fn epoch_for_arrival(&self) -> u64 {
        if let Policy::Adaptive { .. } = self.policy
            && self.idle.load(Ordering::Acquire)
        {
            let open = self.open.load(Ordering::Acquire);
            if unix_us() > open {
                self.close(open);
            }
        }
        self.open()
    }

    /// A request entered epoch `epoch`: if the committer is idle, or the epoch has waited
    /// longer than the bound, it closes now.
    pub(crate) fn entered(&self, epoch: u64) {
        let Policy::Adaptive { max_open_us } = self.policy else {
            return;
        };
        let prev = self.work.fetch_max(epoch, Ordering::AcqRel);
        if prev < epoch {
            self.first_work_us.store(unix_us(), Ordering::Release);
        }
        if self.idle.swap(false, Ordering::AcqRel) {
            self.close(epoch);
            return;
        }
        let waited = unix_us().saturating_sub(self.first_work_us.load(Ordering::Acquire));
        if waited > max_open_us && self.open.load(Ordering::Acquire) == epoch {
            self.close(epoch);
        }
    }

    /// Closes `epoch` (a no-op if it is closed already): requests enter a later one.
    fn close(&self, epoch: u64) {
        let next = (epoch + 1).max(unix_us());
        let mut opened = self.opened.lock().unwrap_or_else(PoisonError::into_inner);
        if self.open.load(Ordering::Acquire) != epoch {
            return;
        }
        opened.push_back(next);
        self.open.store(next, Ordering::Release);
        drop(opened);
        self.wake_all();
    }

    /// The first epoch, the one operators snapshot first.
    pub(crate) fn first_epoch(&self) -> u64 {
        let opened = self.opened.lock().unwrap_or_else(PoisonError::into_inner);
        opened.front().copied().unwrap_or(0)
    }

    /// The epoch opened right after `epoch` (`None`: it is the open one).
    pub(crate) fn next_after(&self, epoch: u64) -> Option<u64> {
        match self.policy {
            Policy::Periodic { interval_us } => Some(align(epoch, interval_us) + interval_us),
            Policy::Adaptive { .. } => {
                let opened = self.opened.lock().unwrap_or_else(PoisonError::into_inner);
                let i = opened.partition_point(|e| *e <= epoch);
                opened.get(i).copied()
            }
        }
    }

    /// The committer made `epoch` durable: close the open epoch if a request waits in it,
    /// else the clock goes idle and the next request closes its epoch.
    pub(crate) fn durable(&self, epoch: u64) {
        self.durable.fetch_max(epoch, Ordering::AcqRel);
        {
            let mut opened = self.opened.lock().unwrap_or_else(PoisonError::into_inner);
            while opened.len() > 1 && opened.front().is_some_and(|e| *e < epoch) {
                opened.pop_front();
            }
        }
        let Policy::Adaptive { .. } = self.policy else {
            self.wake_all();
            return;
        };
        let open = self.open.load(Ordering::Acquire);
        if self.work.load(Ordering::Acquire) >= open {
            self.close(open);
        } else {
            // Publish idleness, then look again: a request that entered in between sees
            // `idle` (and closes), or is seen here.
            self.idle.store(true, Ordering::Release);
            if self.work.load(Ordering::Acquire) >= open && self.idle.swap(false, Ordering::AcqRel)
            {
                self.close(open);
            }
            // Answers of `epoch` wait in the drivers.
            self.wake_all();
        }
    }

    /// The last epoch made durable here.
    pub(crate) fn durable_epoch(&self) -> u64 {
        self.durable.load(Ordering::Acquire)
    }
}

/// `t` rounded down to a multiple of `interval`.
pub(crate) fn align(t: u64, interval: u64) -> u64 {
    let interval = interval.max(1);
    t / interval * interval
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_after_a_quiet_spell_closes_its_epoch_and_load_waits_for_the_commit() {
        let c = EpochClock::new(
            Policy::Adaptive {
                max_open_us: 60_000_000,
            },
            100,
            1,
            0,
        );
        assert_eq!((c.open(), c.first_epoch()), (100, 100));
        assert_eq!(c.next_after(100), None, "100 is open");
        c.entered(100);
        let e1 = c.open();
        assert!(e1 > 100, "the idle clock closed epoch 100 at once");
        assert_eq!(c.next_after(100), Some(e1));
        // The commit of 100 runs; requests pile up in e1 and it stays open.
        c.entered(e1);
        c.entered(e1);
        assert_eq!(c.open(), e1);
        c.durable(100);
        let e2 = c.open();
        assert!(e2 > e1, "the durable commit closed the epoch that had work");
        // Nothing entered e2: the clock goes idle and the next request closes e2.
        c.durable(e1);
        assert_eq!(c.open(), e2);
        c.entered(e2);
        assert!(c.open() > e2);
        assert_eq!(c.durable_epoch(), e1);
        assert_eq!(
            c.next_after(e1),
            Some(e2),
            "the sequence stays from the durable epoch on"
        );
    }

    #[test]
    fn an_epoch_open_longer_than_the_bound_closes_without_the_commit() {
        let c = EpochClock::new(Policy::Adaptive { max_open_us: 0 }, 10, 1, 0);
        c.entered(10);
        let e = c.open();
        c.entered(e);
        std::thread::sleep(Duration::from_millis(2));
        c.entered(e);
        assert!(c.open() > e, "closed by the bound");
    }

    #[test]
    fn periodic_epochs_follow_the_clock() {
        let c = EpochClock::new(Policy::Periodic { interval_us: 5_000 }, 12_345, 1, 0);
        let e = c.open();
        assert_eq!(e % 5_000, 0);
        assert!(e >= unix_us() - 5_000);
        assert!(c.park_for().is_some_and(|d| d <= Duration::from_millis(5)));
        assert_eq!(c.next_after(10_001), Some(15_000));
    }
}
