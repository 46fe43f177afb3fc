//! Counters and gauges of the engine: totals, and per operator (one lambda on one worker).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Counters shared by the workers, the committer and the gateway.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Commits written.
    pub commits: AtomicU64,
    /// Total microseconds spent in commits (assembling the records, appending, syncing).
    pub commit_us: AtomicU64,
    /// Requests written by commits (a commit's batch size is this over `commits`).
    pub committed_requests: AtomicU64,
    /// Requests admitted.
    pub requests: AtomicU64,
    /// Handler invocations started (roots and calls).
    pub invocations: AtomicU64,
    /// Calls that waited for a lock held by another request.
    pub lock_waits: AtomicU64,
    /// Root attempts aborted (deadlock victims) and retried.
    pub aborts: AtomicU64,
    /// `transaction!` blocks rolled back.
    pub rollbacks: AtomicU64,
    /// Messages (and timers) committed.
    pub messages_sent: AtomicU64,
    /// Messages delivered (their delivery answered).
    pub messages_delivered: AtomicU64,
    /// Per operator (one lambda on one worker), indexed `worker * lambdas + lambda`.
    pub operators: Vec<OperatorMetrics>,
}

/// Counters and gauges of one operator: one lambda on one worker.
#[derive(Debug, Default)]
pub struct OperatorMetrics {
    /// Messages handled (calls, replies, control).
    pub messages: AtomicU64,
    /// Handler invocations started.
    pub invocations: AtomicU64,
    /// Calls that queued behind another request's lock.
    pub lock_waits: AtomicU64,
    /// Microseconds spent handling messages.
    pub busy_us: AtomicU64,
    /// Gauge: calls waiting in lock queues now.
    pub waiting: AtomicU64,
    /// Gauge: messages of later epochs held until the current epoch is snapshotted.
    pub stashed: AtomicU64,
    /// Calls whose instance was in the cache.
    pub cache_hits: AtomicU64,
    /// Calls whose instance was read from the store.
    pub cache_misses: AtomicU64,
    /// Instances evicted from the cache.
    pub evictions: AtomicU64,
    /// Gauge: bytes of the instances cached (their encoding, key and overhead).
    pub cached_bytes: AtomicU64,
    /// Invocations that failed (the handler's `Err`, or a runtime failure).
    pub failed: AtomicU64,
    /// Instances set by bulk loads ([`crate::Handle::load`]).
    pub loaded: AtomicU64,
    /// Invocation times from start to answer (callees included), in powers of two:
    /// bucket `i` counts those under 2^i µs (the last, the rest).
    pub durations: [AtomicU64; DURATION_BUCKETS],
    /// Invocations started by whom: index 0 a request from outside (a root), `1 + l` a call
    /// from lambda `l`.
    pub calls_from: Box<[AtomicU64]>,
}

/// Buckets of [`OperatorMetrics::durations`]: the last starts at 2^22 µs (4.2 s).
pub const DURATION_BUCKETS: usize = 24;

impl OperatorMetrics {
    fn new(lambdas: usize) -> Self {
        OperatorMetrics {
            calls_from: (0..=lambdas).map(|_| AtomicU64::new(0)).collect(),
            ..OperatorMetrics::default()
        }
    }

    /// Counts an invocation started by a root (`None`) or a call from lambda `caller`.
    pub(crate) fn started_by(&self, caller: Option<u16>) {
        let i = caller.map_or(0, |l| usize::from(l) + 1);
        if let Some(c) = self.calls_from.get(i) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts an invocation that ended after `took`, failed or not.
    pub(crate) fn ended(&self, took: Duration, failed: bool) {
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        let bucket = (64 - us.leading_zeros() as usize).min(DURATION_BUCKETS - 1);
        self.durations[bucket].fetch_add(1, Ordering::Relaxed);
        if failed {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Metrics {
    /// Metrics of `workers` workers running `lambdas` lambdas.
    pub(crate) fn new(workers: usize, lambdas: usize) -> Self {
        Metrics {
            operators: (0..workers * lambdas)
                .map(|_| OperatorMetrics::new(lambdas))
                .collect(),
            ..Metrics::default()
        }
    }

    pub(crate) fn record_commit(&self, d: Duration, requests: u64) {
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.committed_requests
            .fetch_add(requests, Ordering::Relaxed);
        self.commit_us
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_fall_in_power_of_two_buckets() {
        let m = Metrics::new(1, 2);
        let op = &m.operators[0];
        for us in [0, 1, 3, 1000, 10_000_000] {
            op.ended(Duration::from_micros(us), us == 3);
        }
        let got: Vec<u64> = op
            .durations
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        // 0 µs in bucket 0, 1 in 1 (< 2), 3 in 2 (< 4), 1000 in 10 (< 1024), 10 s in the last.
        for (i, n) in got.iter().enumerate() {
            let want = u64::from([0, 1, 2, 10, DURATION_BUCKETS - 1].contains(&i));
            assert_eq!(*n, want, "bucket {i}: {got:?}");
        }
        assert_eq!(op.failed.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn calls_are_counted_by_caller() {
        let m = Metrics::new(2, 3);
        assert_eq!(m.operators.len(), 6);
        let op = &m.operators[4];
        op.started_by(None);
        op.started_by(Some(2));
        op.started_by(Some(2));
        op.started_by(Some(9)); // not a lambda of the app: not counted
        let got: Vec<u64> = op
            .calls_from
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect();
        assert_eq!(got, [1, 0, 0, 2]);
    }
}
