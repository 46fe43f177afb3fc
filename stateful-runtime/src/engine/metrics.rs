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
}

impl Metrics {
    pub(crate) fn new(operators: usize) -> Self {
        Metrics {
            operators: (0..operators).map(|_| OperatorMetrics::default()).collect(),
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
