//! Starting the engine and stopping it.
//!
//! ```text
//! start: topology from the IR ─ open storage and recover (cluster: agree on the epoch first)
//!        ─ epoch clock ─ materialiser ─ committer ─ compactor ─ timely workers (each builds
//!        the dataflow)
//! stop:  refuse new requests ─ close the inputs ─ last epochs commit ─ materialiser
//!        checkpoints ─ join
//! ```

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use stateful_core::ir::Topology;

use super::admission::{Admission, Request};
use super::clock::{EpochClock, Policy};
use super::cluster::Agreed;
use super::commit::{CommitPipeline, CommitTarget};
use super::config::{Config, StartError};
use super::handle::Handle;
use super::idempotency::Idempotency;
use super::materialize::Materializer;
use super::metrics::Metrics;
use super::placement::Placement;
use super::program::Program;
use super::recovery::Storage;
use crate::storage::log::fs::{LogFs, OsFs};
use crate::storage::{Compactor, StateStore};

/// State shared by the handles and the workers of one engine.
pub(crate) struct Shared {
    pub program: Arc<Program>,
    pub config: Config,
    pub placement: Placement,
    pub topology: Topology,
    pub store: Arc<dyn StateStore>,
    pub clock: Arc<EpochClock>,
    pub pipeline: Arc<CommitPipeline>,
    pub materializer: Arc<Materializer>,
    pub metrics: Arc<Metrics>,
    pub admission: Admission,
    /// Per local worker: its request channel (taken by the worker).
    pub receivers: Mutex<Vec<Option<Receiver<Request>>>>,
    /// The next position in the completion order.
    pub order: Arc<AtomicU64>,
    /// In a cluster: the last epoch every operator of every process has made durable (what
    /// the materialiser may apply: recovery never rolls back below it).
    pub committed_everywhere: Arc<AtomicU64>,
    /// What start-up recovered.
    pub recovered: Recovered,
    /// Failures injected by tests.
    pub faults: Arc<super::faults::Faults>,
    /// The postman's work.
    pub mail: Arc<super::postman::MailStatus>,
    /// The clock of timers and TTLs.
    pub now: Arc<super::now::Now>,
}

/// What a start recovered from the data dir.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recovered {
    /// The last durable epoch found (0: a new data dir, or in memory).
    pub epoch: u64,
    /// Epochs applied from the commit log on top of the state store's checkpoint.
    pub replayed_epochs: usize,
    /// Stored instances read through at start-up because their lambda's state schema changed.
    pub schema_checked: usize,
}

impl Shared {
    pub(crate) fn take_receiver(&self, worker: usize) -> Option<Receiver<Request>> {
        self.receivers.lock().ok()?.get_mut(worker)?.take()
    }

    /// The cache budget of one shard (one lambda on one worker): the configured bytes shared
    /// evenly (`usize::MAX`: no bound).
    pub(crate) fn cache_budget_per_shard(&self) -> usize {
        let shards = (self.placement.workers * self.program.lambdas().len()).max(1) as u64;
        self.config.cache_bytes.map_or(usize::MAX, |b| {
            usize::try_from(b / shards).unwrap_or(usize::MAX)
        })
    }

    /// The last epoch whose answers may have been released.
    pub(crate) fn acknowledged_epoch(&self) -> u64 {
        let durable = self.clock.durable_epoch();
        if self.placement.processes > 1 {
            durable.min(self.committed_everywhere.load(Ordering::Acquire))
        } else {
            durable
        }
    }
}

/// The running engine.
pub struct Runtime {
    handle: Handle,
    guards: Option<timely::communication::WorkerGuards<()>>,
    compactor: Option<Compactor>,
    postman: Option<std::thread::JoinHandle<()>>,
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
    if config.commit_interval_ms == 0 {
        return Err(StartError::Config(
            "the commit interval must be at least 1 ms".into(),
        ));
    }
    program.topology()
}

/// Opens the storage and recovers; in a cluster, agrees with the other processes first.
fn open_storage(
    program: &Program,
    config: &Config,
    fs: Arc<dyn LogFs>,
) -> Result<(Storage, Option<Agreed>), StartError> {
    let cluster = config.cluster.clone();
    super::recovery::open(program, config, fs, |last, orders, clean| match &cluster {
        None => Ok(None),
        Some(c) => {
            super::cluster::watch_connections();
            super::cluster::agree_on_committed(c, last, orders, clean)
                .map(Some)
                .map_err(StartError::Engine)
        }
    })
}

impl Runtime {
    /// Opens (or creates) the state, recovers it from the commit log, and starts the workers.
    pub fn start(program: Arc<Program>, config: Config) -> Result<Runtime, StartError> {
        Runtime::start_on(program, config, Arc::new(OsFs))
    }

    /// [`Runtime::start`] with the commit log on the files of `fs` (tests: a simulated disk).
    pub(crate) fn start_on(
        program: Arc<Program>,
        mut config: Config,
        fs: Arc<dyn LogFs>,
    ) -> Result<Runtime, StartError> {
        let topology = check(&program, &config)?;
        let (mut storage, agreed) = open_storage(&program, &config, fs)?;
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
        if storage.replayed > 0 {
            tracing::info!(
                epochs = storage.replayed,
                "recovered epochs from the commit log"
            );
        }
        let mail = Arc::new(super::postman::MailStatus::default());
        let (outbox, mailbags) = super::postman::channel(mail.clone());
        let pending = std::mem::take(&mut storage.pending_messages);
        let shared = Arc::new(assemble(
            program, config, placement, topology, storage, agreed, outbox,
        ));
        let now = shared.now.clone();
        let expiry = crate::storage::Expiry {
            ttls: shared
                .program
                .lambdas()
                .iter()
                .filter_map(|l| l.ttl_us.map(|t| (l.id, t)))
                .collect(),
            now: Box::new(move || now.us()),
        };
        let compactor =
            Compactor::start(shared.store.clone(), shared.config.history.clone(), expiry);
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
        let handle = Handle { shared };
        let postman = super::postman::start(handle.clone(), pending, mailbags)
            .map_err(|e| StartError::Engine(format!("the postman thread did not start: {e}")))?;
        Ok(Runtime {
            handle,
            guards: Some(guards),
            compactor,
            postman: Some(postman),
        })
    }

    /// A handle to invoke handlers.
    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }

    /// Stops accepting requests, lets in-flight work finish and commit, checkpoints the
    /// store, and joins the threads.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let shared = &self.handle.shared;
        // The postman first: nothing it submits may race the workers' shutdown.
        shared.mail.stop.store(true, Ordering::Release);
        shared.mail.wake.notify_one();
        if let Some(p) = self.postman.take() {
            let _ = p.join();
        }
        shared.admission.stopping.store(true, Ordering::Release);
        shared.clock.wake_all();
        if let Some(c) = self.compactor.take() {
            c.stop();
        }
        if let Some(g) = self.guards.take() {
            let finished = g.join().iter().all(Result::is_ok);
            shared.pipeline.close();
            shared.materializer.stop();
            if finished {
                mark_clean_stop(shared);
            } else if shared.placement.processes > 1 {
                tracing::warn!("a worker failed: no clean stop recorded");
            }
        }
    }
}

/// A cluster process whose dataflow ran to its end with every peer: records its last epoch
/// as a clean stop (`storage::clean_stop`).
fn mark_clean_stop(shared: &Shared) {
    let durable = shared.config.durability != super::config::Durability::None;
    if shared.placement.processes == 1 || !durable {
        return;
    }
    if super::cluster::has_failed() {
        tracing::warn!(
            "the cluster lost a process: no clean stop recorded; the restart recovers to the epoch committed everywhere"
        );
        return;
    }
    let Some(dir) = &shared.config.data_dir else {
        return;
    };
    let epoch = shared.clock.durable_epoch();
    if let Err(e) = crate::storage::clean_stop::mark(dir, epoch) {
        tracing::warn!(error = %e, "cannot record the clean stop; the restart recovers as after a crash");
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.stop();
    }
}

/// How epochs close: alone, group commit bounded by the commit interval; in a cluster, on
/// the clock (every process closes the same epochs).
fn policy(config: &Config) -> Policy {
    let us = config.commit_interval_ms.saturating_mul(1000);
    match config.cluster {
        Some(_) => Policy::Periodic { interval_us: us },
        None => Policy::Adaptive { max_open_us: us },
    }
}

/// The shared state of a run: channels, clock, committer and materialiser, counters.
fn assemble(
    program: Arc<Program>,
    config: Config,
    placement: Placement,
    topology: Topology,
    storage: Storage,
    agreed: Option<Agreed>,
    postman: super::postman::Outbox,
) -> Shared {
    let mail = postman.status();
    let workers = placement.workers;
    let lambdas = program.lambdas().len();
    let durable = storage.durable_epoch;
    let recovered = Recovered {
        epoch: durable,
        replayed_epochs: storage.replayed,
        schema_checked: storage.schema.scanned.iter().map(|(_, n)| n).sum(),
    };
    let start = agreed.map_or_else(
        || crate::storage::unix_us().max(durable + 1),
        |a| a.start_epoch,
    );
    let clock = Arc::new(EpochClock::new(policy(&config), start, workers, durable));
    let mut senders = Vec::with_capacity(workers);
    let mut receivers = Vec::with_capacity(workers);
    for _ in 0..workers {
        let (tx, rx) = sync_channel(config.max_in_flight.max(1));
        senders.push(tx);
        receivers.push(Some(rx));
    }
    let metrics = Arc::new(Metrics::new(workers, lambdas));
    let cluster = placement.processes > 1;
    let committed_everywhere = Arc::new(AtomicU64::new(durable));
    let idempotency = Arc::new(Idempotency::default());
    let materializer = Materializer::start(
        storage.store.clone(),
        storage.log.clone(),
        durable,
        cluster.then(|| committed_everywhere.clone()),
        idempotency.clone(),
    );
    let next_seq = Arc::new(AtomicU64::new(storage.next_seq));
    let order = Arc::new(AtomicU64::new(storage.next_order));
    let target = CommitTarget {
        log: storage.log,
        committers: workers * lambdas,
        cluster,
        process: (placement.process, placement.processes),
        next_seq: next_seq.clone(),
        next_order: order.clone(),
        postman: Some(postman),
    };
    let pipeline =
        CommitPipeline::start(target, clock.clone(), materializer.clone(), metrics.clone());
    Shared {
        admission: Admission {
            in_flight: AtomicUsize::new(0),
            stopping: AtomicBool::new(false),
            max_in_flight: config.max_in_flight,
            next_seq,
            idempotency,
            senders,
            clock: clock.clone(),
        },
        program,
        config,
        placement,
        topology,
        store: storage.store,
        clock,
        pipeline,
        materializer,
        metrics,
        receivers: Mutex::new(receivers),
        order,
        committed_everywhere,
        recovered,
        faults: Arc::default(),
        mail,
        now: Arc::default(),
    }
}
