//! The completion order across processes: a Lamport clock on the order counter (engine layer,
//! used by the shard's coordinator and executor).
//!
//! Replay runs the logged requests one at a time in completion order, which must be a serial
//! order consistent with every conflict. In one process the workers share one counter and a
//! request takes its order as it completes, before its locks are released, so a conflicting
//! request completes, and takes its order, later. A cluster has one counter per process, so:
//!
//! ```text
//! participant ──Reply{clock: its counter, max of its callees' clocks}──▶ caller ─ … ─▶ root
//! root: order = max(own counter, every clock it was answered with); counter = order + 1
//! root ──Release{order}──▶ each participant: its counter moves past `order`
//! ```
//!
//! A request that uses an instance after another released it is answered, by that instance's
//! process, with a clock past the first one's order, so its own order is larger: the order
//! (ties between processes broken by process, see `tools::replay`) is consistent with every
//! conflict in the cluster too.

use std::sync::atomic::Ordering::{AcqRel, Acquire};

use super::Env;

impl Env {
    /// The clock a reply carries: this process's order counter (0 in one process, where the
    /// counter is shared and a reply need not carry it).
    pub(super) fn clock(&self) -> u64 {
        if self.processes > 1 {
            self.order.load(Acquire)
        } else {
            0
        }
    }

    /// The completion order of a request that ends now, after every order in `clock`.
    pub(super) fn next_order(&self, clock: u64) -> u64 {
        if self.processes == 1 {
            return self.order.fetch_add(1, AcqRel);
        }
        let before = self
            .order
            .fetch_update(AcqRel, Acquire, |c| Some(c.max(clock) + 1))
            .unwrap_or_else(|c| c);
        before.max(clock)
    }

    /// A request with completion order `order` released an instance here: later orders of
    /// this process come after it.
    pub(super) fn observed(&self, order: u64) {
        if self.processes > 1 {
            self.order.fetch_max(order + 1, AcqRel);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::super::Env;
    use super::super::fixture::env;
    use crate::storage::MemoryStore;

    fn env_for_tests(processes: usize) -> Env {
        Env {
            processes,
            ..env(Arc::new(MemoryStore::new()))
        }
    }

    #[test]
    fn in_one_process_orders_count_up_and_ignore_clocks() {
        let env = env_for_tests(1);
        assert_eq!(env.next_order(0), 0);
        assert_eq!(env.next_order(100), 1);
        env.observed(50);
        assert_eq!(env.clock(), 0);
        assert_eq!(env.next_order(0), 2);
    }

    #[test]
    fn in_a_cluster_an_order_follows_every_clock_and_release_it_saw() {
        let env = env_for_tests(3);
        assert_eq!(env.next_order(0), 0);
        // Answered by a process whose counter was at 10: after it.
        assert_eq!(env.next_order(10), 10);
        assert_eq!(env.clock(), 11);
        // A release of order 40 from another process's request moves the counter past it.
        env.observed(40);
        assert_eq!(env.clock(), 41);
        assert_eq!(env.next_order(0), 41);
        // An older release changes nothing.
        env.observed(5);
        assert_eq!(env.next_order(0), 42);
    }
}
