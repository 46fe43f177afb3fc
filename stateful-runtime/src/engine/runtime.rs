//! Starting the engine and stopping it.
//!
//! ```text
//! start: topology from the IR ─ open storage ─ (cluster: agree on the epoch) ─ recover
//!        ─ committer thread ─ compactor ─ timely workers (each builds the dataflow)
//! stop:  refuse new requests ─ close the inputs ─ last epochs commit ─ join
//! ```

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use stateful_core::ir::Topology;

use super::admission::{Admission, Request};
use super::commit::CommitPipeline;
use super::config::{Config, StartError};
use super::handle::Handle;
use super::idempotency::Idempotency;
use super::metrics::Metrics;
use super::placement::Placement;
use super::program::Program;
use super::recovery::{Recovery, Storage, open_storage, recover};
use crate::storage::{CommitterId, Compactor, StateStore};

/// State shared by the handles and the workers of one engine.
pub(crate) struct Shared {
    pub program: Arc<Program>,
    pub config: Config,
    pub placement: Placement,
    pub topology: Topology,
    pub store: Arc<dyn StateStore>,
    pub pipeline: Arc<CommitPipeline>,
    pub metrics: Arc<Metrics>,
    pub admission: Admission,
    /// Per local worker: its request channel (taken by the worker) and its replay list.
    pub receivers: Mutex<Vec<Option<Receiver<Request>>>>,
    pub replay: Mutex<Vec<Vec<Request>>>,
    /// The first epoch of this run (after the last committed one).
    pub start_epoch: u64,
    /// The next position in the completion order.
    pub order: Arc<AtomicU64>,
    /// The last commit epoch every operator of every process has made durable (what
    /// compaction may reach: recovery never rolls back below it).
    pub committed_everywhere: Arc<AtomicU64>,
}

impl Shared {
    pub(crate) fn take_receiver(&self, worker: usize) -> Option<Receiver<Request>> {
        self.receivers.lock().ok()?.get_mut(worker)?.take()
    }

    pub(crate) fn register_thread(&self, worker: usize, t: std::thread::Thread) {
        if let Ok(mut ts) = self.admission.threads.lock()
            && let Some(slot) = ts.get_mut(worker)
        {
            *slot = Some(t);
        }
    }

    pub(crate) fn take_replay(&self, worker: usize) -> Vec<Request> {
        self.replay
            .lock()
            .ok()
            .and_then(|mut r| r.get_mut(worker).map(std::mem::take))
            .unwrap_or_default()
    }
}

/// The running engine.
pub struct Runtime {
    handle: Handle,
    guards: Option<timely::communication::WorkerGuards<()>>,
    compactor: Option<Compactor>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("app", &self.handle.shared.program.name())
            .finish_non_exhaustive()
    }
}

fn check(program: &Program, config: &Config) -> Result<Topology, StartError> {
    if config.workers == 0 {
        return Err(StartError::Config("workers must be at least 1".into()));
    }
    if program.lambdas().is_empty() {
        return Err(StartError::Config("the app has no lambdas".into()));
    }
    program.topology()
}

/// One committer per lambda per local worker.
fn committers(program: &Program, placement: &Placement) -> Vec<CommitterId> {
    let base = placement.base() as u32;
    (base..base + placement.workers as u32)
        .flat_map(|w| {
            program.lambdas().iter().map(move |l| CommitterId {
                worker: w,
                lambda: l.id,
            })
        })
        .collect()
}

/// Recovers, agreeing with the other processes of a cluster first: returns the recovery and
/// the first epoch of the run.
fn recover_run(
    storage: &Storage,
    placement: &Placement,
    program: &Program,
    config: &Config,
) -> Result<(Recovery, u64), StartError> {
    let agreed = match &config.cluster {
        None => None,
        Some(c) => {
            super::cluster::watch_connections();
            Some(
                super::cluster::agree_on_committed(c, storage.store.committed_epoch()?)
                    .map_err(StartError::Engine)?,
            )
        }
    };
    let committers = committers(program, placement);
    let ceiling = agreed.as_ref().map(|a| a.committed);
    let recovery = recover(
        storage,
        placement,
        &committers,
        ceiling,
        program.lambdas().len(),
    )?;
    let start_epoch = match &agreed {
        Some(a) => a.start_epoch,
        None => crate::storage::unix_ms().max(recovery.committed_epoch + 1),
    };
    Ok((recovery, start_epoch))
}

impl Runtime {
    /// Opens (or creates) the state, recovers, replays the logged requests that never
    /// completed, and starts the workers.
    pub fn start(program: Arc<Program>, mut config: Config) -> Result<Runtime, StartError> {
        let topology = check(&program, &config)?;
        let storage = open_storage(program.name(), &config)?;
        config.key_groups = storage.groups;
        let (processes, process) = config
            .cluster
            .as_ref()
            .map_or((1, 0), |c| (c.processes(), c.process));
        let placement = Placement {
            groups: storage.groups,
            processes,
            process,
            workers: config.workers,
        };
        let (recovery, start_epoch) = recover_run(&storage, &placement, &program, &config)?;
        let shared = Arc::new(assemble(
            program,
            config,
            placement,
            topology,
            storage,
            recovery,
            start_epoch,
        ));
        let compactor = Compactor::start(
            shared.store.clone(),
            shared.config.history.clone(),
            shared.committed_everywhere.clone(),
        );
        let worker_shared = shared.clone();
        let timely_config = match &shared.config.cluster {
            Some(c) => c.timely(shared.placement.workers),
            None => timely::Config::process(shared.placement.workers),
        };
        let guards = timely::execute(timely_config, move |worker| {
            super::driver::run(worker, worker_shared.clone());
        })
        .map_err(StartError::Engine)?;
        // Connected to every process now: from here on commits complete every few ms.
        if let Some(c) = &shared.config.cluster {
            super::cluster::watch_commits(
                shared.committed_everywhere.clone(),
                Duration::from_millis(c.stall_timeout_ms),
                shared.metrics.clone(),
            );
        }
        Ok(Runtime {
            handle: Handle { shared },
            guards: Some(guards),
            compactor,
        })
    }

    /// A handle to invoke handlers.
    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }

    /// Stops accepting requests, lets in-flight work finish and commit, and joins the workers.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let shared = &self.handle.shared;
        shared.admission.stopping.store(true, Ordering::Release);
        for w in 0..shared.placement.workers {
            shared.admission.unpark(w);
        }
        if let Some(c) = self.compactor.take() {
            c.stop();
        }
        if let Some(g) = self.guards.take() {
            drop(g.join());
            shared.pipeline.close();
        }
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The shared state of a run: channels, the committer thread, counters.
fn assemble(
    program: Arc<Program>,
    config: Config,
    placement: Placement,
    topology: Topology,
    storage: Storage,
    recovery: Recovery,
    start_epoch: u64,
) -> Shared {
    let workers = placement.workers;
    let lambdas = program.lambdas().len();
    // Replayed requests with an idempotency key count as running: a client retrying one
    // waits for its answer instead of running it again.
    let replaying = recovery
        .replay
        .iter()
        .flatten()
        .filter_map(|r| r.idempotency_key.clone())
        .collect::<Vec<_>>();
    let mut senders = Vec::with_capacity(workers);
    let mut receivers = Vec::with_capacity(workers);
    for _ in 0..workers {
        let (tx, rx) = sync_channel(config.max_in_flight.max(1));
        senders.push(tx);
        receivers.push(Some(rx));
    }
    let metrics = Arc::new(Metrics::new(workers * lambdas));
    let pipeline = CommitPipeline::start(
        workers * lambdas,
        storage.store.clone(),
        storage.ingress.clone(),
        metrics.clone(),
    );
    Shared {
        admission: Admission {
            in_flight: AtomicUsize::new(0),
            stopping: AtomicBool::new(false),
            max_in_flight: config.max_in_flight,
            ingress: storage.ingress,
            next_seq: AtomicU64::new(recovery.next_seq),
            idempotency: Idempotency::new(replaying),
            senders,
            threads: Mutex::new(vec![None; workers]),
        },
        program,
        config,
        placement,
        topology,
        store: storage.store,
        pipeline,
        metrics,
        receivers: Mutex::new(receivers),
        replay: Mutex::new(recovery.replay),
        start_epoch,
        // Increasing across runs too: a later run starts at a later epoch, and no run
        // completes 65,536 requests per millisecond of its lifetime.
        order: Arc::new(AtomicU64::new(start_epoch << 16)),
        committed_everywhere: Arc::new(AtomicU64::new(recovery.committed_epoch)),
    }
}
