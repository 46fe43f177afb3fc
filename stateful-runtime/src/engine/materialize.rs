//! The materialiser: applies durable epochs to the state store off the answer's path, and
//! checkpoints — flushes the store, then cuts the commit log behind it.
//!
//! ```text
//! committer ─ durable records ─▶ queue ─▶ store.apply (a group at a time)   applied = E
//!   every second (and at the end): store.flush (sled + fsync) ─▶ log.truncate_through(E)
//! cluster: an epoch is applied only once every process committed it
//! ```
//!
//! Reads of the store on a running service (the tools, idempotent retries) wait until it has
//! applied everything durable when they start.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::idempotency::Idempotency;
use crate::storage::log::CommitLog;
use crate::storage::{CommitRecord, StateStore};

/// How often the store is flushed and the log cut behind it.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);
/// Records queued before the committer waits for the materialiser (backpressure).
const MAX_QUEUED: usize = 4096;
/// Instance writes queued before the committer waits (bulk loads make few, large records).
const MAX_QUEUED_WRITES: usize = 500_000;

/// Instance writes applied to the store in one batch.
const MAX_APPLY_WRITES: usize = 50_000;

struct Queue {
    records: VecDeque<Arc<CommitRecord>>,
    /// The instance writes of `records`.
    writes: usize,
    /// The last epoch the committer made durable (with or without a record).
    through: u64,
    stopping: bool,
}

/// The materialiser thread and its queue.
pub(crate) struct Materializer {
    queue: Mutex<Queue>,
    changed: Condvar,
    /// The last epoch applied to the store.
    applied: AtomicU64,
    applied_lock: Mutex<()>,
    applied_changed: Condvar,
    /// In a cluster: the last epoch committed on every process (nothing later is applied).
    ceiling: Option<Arc<AtomicU64>>,
    /// Told each epoch applied: its answers to idempotent requests are in the store now.
    idempotency: Arc<Idempotency>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    failed: AtomicBool,
}

impl Materializer {
    /// Starts the thread: it applies to `store` and cuts `log` (when there is one).
    pub(crate) fn start(
        store: Arc<dyn StateStore>,
        log: Option<Arc<Mutex<CommitLog>>>,
        applied: u64,
        ceiling: Option<Arc<AtomicU64>>,
        idempotency: Arc<Idempotency>,
    ) -> Arc<Materializer> {
        let m = Arc::new(Materializer {
            queue: Mutex::new(Queue {
                records: VecDeque::new(),
                writes: 0,
                through: applied,
                stopping: false,
            }),
            changed: Condvar::new(),
            applied: AtomicU64::new(applied),
            applied_lock: Mutex::new(()),
            applied_changed: Condvar::new(),
            ceiling,
            idempotency,
            thread: Mutex::new(None),
            failed: AtomicBool::new(false),
        });
        let me = m.clone();
        let spawned = std::thread::Builder::new()
            .name("stateful-materialize".into())
            .spawn(move || me.run(store.as_ref(), log.as_deref()));
        match spawned {
            Ok(h) => *m.thread.lock().unwrap_or_else(PoisonError::into_inner) = Some(h),
            Err(e) => super::commit::fatal(&format!("cannot start the materialiser: {e}")),
        }
        m
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues durable records, the last of the epochs up to `through` that have one (an
    /// epoch with nothing to keep has no record); waits while the store is far behind.
    pub(crate) fn enqueue(&self, records: Vec<Arc<CommitRecord>>, through: u64) {
        let mut q = self.lock();
        while (q.records.len() > MAX_QUEUED || q.writes > MAX_QUEUED_WRITES)
            && !self.failed.load(Ordering::Acquire)
        {
            q = self
                .changed
                .wait_timeout(q, Duration::from_millis(10))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        q.writes += records.iter().map(|r| r.writes.len()).sum::<usize>();
        q.records.extend(records);
        q.through = q.through.max(through);
        self.changed.notify_all();
    }

    /// Wakes the thread (the cluster's ceiling moved).
    pub(crate) fn poke(&self) {
        self.changed.notify_all();
    }

    /// Instance writes queued, not yet applied.
    pub(crate) fn queued_writes(&self) -> usize {
        self.lock().writes
    }

    /// The last epoch applied to the store.
    pub(crate) fn applied(&self) -> u64 {
        self.applied.load(Ordering::Acquire)
    }

    /// Waits until the store has applied `epoch` (or `timeout` passed); whether it has.
    pub(crate) fn wait_applied(&self, epoch: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut g = self
            .applied_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        while self.applied() < epoch {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            g = self
                .applied_changed
                .wait_timeout(g, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        true
    }

    /// Applies what is queued, checkpoints, and stops the thread.
    pub(crate) fn stop(&self) {
        self.lock().stopping = true;
        self.changed.notify_all();
        let h = self
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(h) = h {
            let _ = h.join();
        }
    }

    /// The records that may be applied now (all of them, or up to the cluster's ceiling),
    /// and how far `applied` reaches once they are.
    fn take(&self, q: &mut Queue) -> (Vec<Arc<CommitRecord>>, u64) {
        let limit = self
            .ceiling
            .as_ref()
            .map_or(u64::MAX, |c| c.load(Ordering::Acquire));
        // At most MAX_APPLY_WRITES writes at once (at least one record): one store batch
        // stays small however large the epochs.
        let mut writes = 0;
        let n = q
            .records
            .iter()
            .take_while(|r| {
                let take = r.epoch <= limit
                    && (writes == 0 || writes + r.writes.len() <= MAX_APPLY_WRITES);
                writes += r.writes.len().max(1);
                take
            })
            .count();
        let batch: Vec<_> = q.records.drain(..n).collect();
        q.writes -= batch.iter().map(|r| r.writes.len()).sum::<usize>();
        let last = batch.last().map_or(0, |r| r.epoch);
        let reach = if q.records.is_empty() {
            q.through.min(limit).max(last)
        } else {
            last
        };
        (batch, reach)
    }

    fn run(&self, store: &dyn StateStore, log: Option<&Mutex<CommitLog>>) {
        let mut last_checkpoint = Instant::now();
        let mut unflushed = false;
        loop {
            let (batch, reach, stopping) = {
                let mut q = self.lock();
                let (mut batch, mut reach) = self.take(&mut q);
                while batch.is_empty() && reach <= self.applied() && !q.stopping {
                    let wait = if unflushed {
                        CHECKPOINT_EVERY.saturating_sub(last_checkpoint.elapsed())
                    } else if self.ceiling.is_some() && !q.records.is_empty() {
                        Duration::from_millis(2)
                    } else {
                        Duration::from_secs(3600)
                    };
                    if wait.is_zero() {
                        break;
                    }
                    q = self
                        .changed
                        .wait_timeout(q, wait)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                    (batch, reach) = self.take(&mut q);
                }
                (batch, reach, q.stopping)
            };
            self.changed.notify_all();
            if !batch.is_empty() {
                if let Err(e) = store.apply(&batch) {
                    self.failed.store(true, Ordering::Release);
                    super::commit::fatal(&format!(
                        "cannot apply committed epochs to the state store: {e}"
                    ));
                }
                unflushed = true;
            }
            if reach > self.applied() {
                self.applied.store(reach, Ordering::Release);
                self.idempotency.applied(reach);
                let _g = self
                    .applied_lock
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                self.applied_changed.notify_all();
            }
            let due = last_checkpoint.elapsed() >= CHECKPOINT_EVERY;
            if unflushed && (due || stopping) {
                unflushed = !self.checkpoint(store, log);
                last_checkpoint = Instant::now();
            }
            if stopping && batch.is_empty() {
                return;
            }
        }
    }

    /// Flushes the store, then cuts the log behind what it holds. A failed flush cuts
    /// nothing (the log still holds every epoch) and is tried again at the next checkpoint.
    fn checkpoint(&self, store: &dyn StateStore, log: Option<&Mutex<CommitLog>>) -> bool {
        let applied = self.applied();
        if let Err(e) = store.flush() {
            tracing::warn!(error = %e, "cannot flush the state store; the commit log keeps everything, retrying at the next checkpoint");
            return false;
        }
        if let Some(log) = log {
            let cut = log
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .truncate_through(applied);
            if let Err(e) = cut {
                tracing::warn!(error = %e, "cannot cut the commit log behind the checkpoint; retrying at the next one");
            }
        }
        true
    }
}
