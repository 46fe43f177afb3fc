//! The committer thread: group commit of whole epochs into the commit log.
//!
//! ```text
//! operators (every worker) ──Snapshot{epoch, writes, completions}──▶ committer
//!   an epoch is complete when every operator sent its snapshot of it
//!   complete epochs ─▶ CommitRecord each (reads left out) ─▶ log append ─▶ ONE sync
//!   ─▶ clock.durable(E) (answers go, the next epoch may close) ─▶ materialiser ─▶ wake operators
//! ```
//!
//! A worker never waits for the disk: a snapshot only moves the changed values out. Answers
//! wait in the drivers until their epoch is durable.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use timely::scheduling::SyncActivator;

use super::clock::EpochClock;
use super::materialize::Materializer;
use super::metrics::Metrics;
use super::protocol::RootId;
use crate::storage::log::CommitLog;
use crate::storage::{CommitRecord, CompletionEntry, MessageId, MessageRecord, WriteRecord};

/// What one operator hands over for one epoch.
pub(crate) struct Snapshot {
    pub epoch: u64,
    pub writes: Vec<WriteRecord>,
    pub completions: Vec<CompletionEntry>,
    /// Messages sent, in order (numbered by the committer).
    pub messages: Vec<MessageRecord>,
    /// The operator's last snapshot: its inputs are done (shutdown), and later epochs are
    /// complete without it.
    pub last: bool,
}

/// Where and how the committer writes.
pub(crate) struct CommitTarget {
    /// The commit log (`None`: in memory, durable at once).
    pub log: Option<Arc<Mutex<CommitLog>>>,
    /// Operators of this process (each sends one snapshot per epoch).
    pub committers: usize,
    /// Write a record for every epoch, empty ones too (a cluster: the log then says how far
    /// this process was durable), and keep reads (their writes may be on other processes).
    pub cluster: bool,
    /// `(process, processes)`: how seqs map to root ids.
    pub process: (usize, usize),
    /// Larger than every seq / completion order handed out so far.
    pub next_seq: Arc<AtomicU64>,
    pub next_order: Arc<AtomicU64>,
    /// Where the messages of durable epochs go (`None`: nowhere, in tests).
    pub postman: Option<super::postman::Outbox>,
}

/// Handle of the committer thread, shared by the operators.
pub(crate) struct CommitPipeline {
    sender: Mutex<Option<Sender<(usize, Snapshot)>>>,
    activators: Mutex<Vec<Option<SyncActivator>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    clock: Arc<EpochClock>,
}

/// One epoch being assembled.
#[derive(Default)]
struct Parts {
    seen: usize,
    writes: Vec<WriteRecord>,
    completions: Vec<CompletionEntry>,
    messages: Vec<MessageRecord>,
}

impl CommitPipeline {
    /// Starts the committer thread.
    pub(crate) fn start(
        target: CommitTarget,
        clock: Arc<EpochClock>,
        materializer: Arc<Materializer>,
        metrics: Arc<Metrics>,
    ) -> Arc<CommitPipeline> {
        let (tx, rx) = channel();
        let pipeline = Arc::new(CommitPipeline {
            sender: Mutex::new(Some(tx)),
            activators: Mutex::new((0..target.committers).map(|_| None).collect()),
            thread: Mutex::new(None),
            clock,
        });
        let p = pipeline.clone();
        let handle = std::thread::Builder::new()
            .name("stateful-commit".into())
            .spawn(move || p.run(rx, target, materializer, metrics));
        match handle {
            Ok(h) => {
                *pipeline
                    .thread
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = Some(h)
            }
            Err(e) => fatal(&format!("cannot start the committer thread: {e}")),
        }
        pipeline
    }

    /// A sender for an operator.
    pub(crate) fn sender(&self) -> Option<Sender<(usize, Snapshot)>> {
        self.sender.lock().ok()?.clone()
    }

    /// Registers the activator of operator `idx`.
    pub(crate) fn register(&self, idx: usize, activator: SyncActivator) {
        if let Ok(mut a) = self.activators.lock()
            && let Some(slot) = a.get_mut(idx)
        {
            *slot = Some(activator);
        }
    }

    /// The last epoch durable here.
    pub(crate) fn durable(&self) -> u64 {
        self.clock.durable_epoch()
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
        rx: Receiver<(usize, Snapshot)>,
        target: CommitTarget,
        materializer: Arc<Materializer>,
        metrics: Arc<Metrics>,
    ) {
        let mut pending: BTreeMap<u64, Parts> = BTreeMap::new();
        // Per operator: the epoch of its last snapshot, once it sent that.
        let mut closed: Vec<Option<u64>> = vec![None; target.committers];
        let mut last_epoch = target.log.as_ref().map_or(0, |l| {
            l.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .last_epoch()
        });
        while let Ok(first) = rx.recv() {
            add(&mut pending, &mut closed, first);
            while let Ok(more) = rx.try_recv() {
                add(&mut pending, &mut closed, more);
            }
            let ready = take_complete(&mut pending, target.committers, &closed);
            if ready.is_empty() {
                continue;
            }
            let t0 = Instant::now();
            let newest = ready.last().map_or(0, |(e, _)| *e);
            let records = build(&target, ready, &mut last_epoch);
            if let Some(log) = &target.log {
                write(log, &records);
            }
            let requests: usize = records.iter().map(|r| r.completions.len()).sum();
            metrics.record_commit(t0.elapsed(), requests as u64);
            // Posted first, so that once an answer is out, its messages are counted as
            // outstanding (the postman still waits for the epoch to be acknowledged).
            post(&target, &records, &metrics);
            self.clock.durable(newest);
            materializer.enqueue(records, newest);
            self.wake_operators();
        }
    }

    fn wake_operators(&self) {
        if let Ok(a) = self.activators.lock() {
            for act in a.iter().flatten() {
                let _ = act.activate();
            }
        }
    }
}

/// Hands the messages of durable records to the postman.
fn post(target: &CommitTarget, records: &[Arc<CommitRecord>], metrics: &Metrics) {
    let bag: Vec<MessageRecord> = records
        .iter()
        .flat_map(|r| r.messages.iter().cloned())
        .collect();
    if bag.is_empty() {
        return;
    }
    metrics
        .messages_sent
        .fetch_add(bag.len() as u64, Ordering::Relaxed);
    if let Some(p) = &target.postman {
        p.post(bag);
    }
}

fn add(
    pending: &mut BTreeMap<u64, Parts>,
    closed: &mut [Option<u64>],
    (idx, s): (usize, Snapshot),
) {
    if s.last
        && let Some(c) = closed.get_mut(idx)
    {
        *c = Some(s.epoch);
    }
    let p = pending.entry(s.epoch).or_default();
    p.seen += 1;
    p.writes.extend(s.writes);
    p.completions.extend(s.completions);
    p.messages.extend(s.messages);
}

/// The oldest epochs that every operator has sent (every operator still running: one that
/// sent its last snapshot before an epoch has nothing for it), in order.
fn take_complete(
    pending: &mut BTreeMap<u64, Parts>,
    committers: usize,
    closed: &[Option<u64>],
) -> Vec<(u64, Parts)> {
    let mut out = Vec::new();
    while let Some(entry) = pending.first_entry() {
        let epoch = *entry.key();
        let gone = closed
            .iter()
            .filter(|c| c.is_some_and(|c| c < epoch))
            .count();
        if entry.get().seen + gone < committers {
            break;
        }
        out.push(entry.remove_entry());
    }
    out
}

/// The records of complete epochs: reads (requests that wrote nothing, succeeded and carry
/// no idempotency key) are left out, and so are epochs left with nothing (unless in a
/// cluster). A rejected or failed request stays: replaying it with a fixed binary may change
/// what it does.
fn build(
    target: &CommitTarget,
    ready: Vec<(u64, Parts)>,
    last: &mut u64,
) -> Vec<Arc<CommitRecord>> {
    let (process, processes) = target.process;
    let mut out = Vec::new();
    for (epoch, mut parts) in ready {
        for (i, m) in parts.messages.iter_mut().enumerate() {
            m.id = MessageId {
                epoch,
                index: u32::try_from(i).unwrap_or(u32::MAX),
            };
        }
        if !target.cluster {
            // A request that sent a message wrote something too.
            let wrote: HashSet<u64> = parts
                .writes
                .iter()
                .flat_map(|w| w.writers.iter().copied())
                .chain(parts.messages.iter().map(|m| m.sender))
                .collect();
            parts.completions.retain(|c| {
                c.request.idempotency_key.is_some()
                    || !c.ok
                    || wrote.contains(&RootId::new(c.request.seq, process, processes).0)
            });
        }
        if !target.cluster
            && parts.writes.is_empty()
            && parts.completions.is_empty()
            && parts.messages.is_empty()
        {
            continue;
        }
        let record = CommitRecord {
            epoch,
            prev_epoch: *last,
            writes: parts.writes,
            completions: parts.completions,
            messages: parts.messages,
            next_seq: target.next_seq.load(Ordering::Acquire),
            next_order: target.next_order.load(Ordering::Acquire),
        };
        *last = epoch;
        out.push(Arc::new(record));
    }
    out
}

/// Appends the records and makes them durable with one sync; a failure stops the process
/// (nothing more may be acknowledged).
fn write(log: &Mutex<CommitLog>, records: &[Arc<CommitRecord>]) {
    if records.is_empty() {
        return;
    }
    let mut log = log.lock().unwrap_or_else(PoisonError::into_inner);
    for r in records {
        if let Err(e) = log.append(r) {
            fatal(&format!("cannot append to the commit log: {e}"));
        }
    }
    if let Err(e) = log.sync() {
        fatal(&format!("cannot sync the commit log: {e}"));
    }
}

/// Durability cannot be kept: stop the process rather than acknowledge anything more.
pub(crate) fn fatal(msg: &str) -> ! {
    tracing::error!("{msg}; stopping");
    eprintln!("stateful: fatal: {msg}");
    std::process::abort();
}
