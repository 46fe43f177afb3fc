//! Group commit off the worker threads.
//!
//! ```text
//! operator (any worker) ──(committer, CommitBatch)──▶ committer thread
//!     snapshot at c, keeps processing later epochs          │ drain all queued batches
//!     holds its ack capability at c ◀── durable[c'tter] ─────┤ ingress log sync, apply all, ONE flush
//!                                  ◀── SyncActivator ────────┘ publish durable epochs, wake operators
//! ```
//!
//! A worker never waits for the disk: taking a snapshot only copies the changed values. The
//! capability that holds back the release of responses moves past a commit epoch only once
//! the committer thread has flushed that epoch, so "released" still means "durable".

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};

use timely::scheduling::SyncActivator;

use super::metrics::Metrics;
use crate::storage::ingress::IngressLog;
use crate::storage::{CommitBatch, StateStore};

/// Handle of the committer thread, shared by the operators.
pub(crate) struct CommitPipeline {
    sender: Mutex<Option<Sender<(usize, CommitBatch)>>>,
    /// Last durable commit epoch of each committer (index: worker * lambdas + lambda).
    durable: Vec<AtomicU64>,
    activators: Mutex<Vec<Option<SyncActivator>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl CommitPipeline {
    /// Starts the committer thread for `committers` committers.
    pub(crate) fn start(
        committers: usize,
        store: Arc<dyn StateStore>,
        ingress: Option<Arc<IngressLog>>,
        metrics: Arc<Metrics>,
    ) -> Arc<CommitPipeline> {
        let (tx, rx) = channel();
        let pipeline = Arc::new(CommitPipeline {
            sender: Mutex::new(Some(tx)),
            durable: (0..committers).map(|_| AtomicU64::new(0)).collect(),
            activators: Mutex::new((0..committers).map(|_| None).collect()),
            thread: Mutex::new(None),
        });
        let p = pipeline.clone();
        let handle = std::thread::Builder::new()
            .name("stateful-commit".into())
            .spawn(move || p.run(rx, store, ingress, metrics));
        match handle {
            Ok(h) => {
                if let Ok(mut t) = pipeline.thread.lock() {
                    *t = Some(h);
                }
            }
            Err(e) => fatal(&format!("cannot start the committer thread: {e}")),
        }
        pipeline
    }

    /// A sender for an operator.
    pub(crate) fn sender(&self) -> Option<Sender<(usize, CommitBatch)>> {
        self.sender.lock().ok()?.clone()
    }

    /// Registers the activator of committer `idx`'s operator.
    pub(crate) fn register(&self, idx: usize, activator: SyncActivator) {
        if let Ok(mut a) = self.activators.lock()
            && let Some(slot) = a.get_mut(idx)
        {
            *slot = Some(activator);
        }
    }

    /// The last durable commit epoch of committer `idx`.
    pub(crate) fn durable(&self, idx: usize) -> u64 {
        self.durable
            .get(idx)
            .map_or(0, |d| d.load(Ordering::Acquire))
    }

    /// Stops the thread once every operator's sender is gone (after the workers finished).
    pub(crate) fn close(&self) {
        if let Ok(mut s) = self.sender.lock() {
            s.take();
        }
        let handle = self.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(h) = handle {
            let _ = h.join();
        }
    }

    fn run(
        &self,
        rx: Receiver<(usize, CommitBatch)>,
        store: Arc<dyn StateStore>,
        ingress: Option<Arc<IngressLog>>,
        metrics: Arc<Metrics>,
    ) {
        while let Ok(first) = rx.recv() {
            let mut group = vec![first];
            while let Ok(more) = rx.try_recv() {
                group.push(more);
            }
            let t0 = std::time::Instant::now();
            // Requests are logged before their effects can be committed.
            if let Some(log) = &ingress
                && let Err(e) = log.sync()
            {
                fatal(&format!("cannot sync the ingress log: {e}"));
            }
            let done: Vec<(usize, u64)> = group.iter().map(|(i, b)| (*i, b.epoch)).collect();
            if let Err(e) = store.commit_group(group.into_iter().map(|(_, b)| b).collect()) {
                fatal(&format!("cannot commit: {e}"));
            }
            metrics.record_commit(t0.elapsed());
            let activators = self.activators.lock();
            for (idx, epoch) in done {
                if let Some(d) = self.durable.get(idx) {
                    d.fetch_max(epoch, Ordering::AcqRel);
                }
                if let Ok(a) = &activators
                    && let Some(Some(act)) = a.get(idx)
                {
                    let _ = act.activate();
                }
            }
        }
    }
}

/// Durability cannot be kept: stop the process rather than acknowledge anything more.
pub(crate) fn fatal(msg: &str) -> ! {
    tracing::error!("{msg}; stopping");
    eprintln!("stateful: fatal: {msg}");
    std::process::abort();
}
