//! Starting the engine, invoking handlers in-process, and stopping.
//!
//! ```text
//! Handle::invoke ── idempotency check ── ingress log append (seq) ── worker channel + unpark
//!        ▲                                                                   │
//!        └──────── oneshot: released once the request's epoch is committed ◀─┘
//! ```

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::Thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use stateful_core::keys::{DEFAULT_KEY_GROUPS, key_group, worker_of};

use crate::app::App;
use crate::ingress::{IngressLog, NewRecord};
use crate::lambda::{CallError, Outcome};
use crate::store::memory::MemoryStore;
use crate::store::sled_store::SledStore;
use crate::store::{CommitterId, StateStore, StoreError};

/// What an acknowledgement means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// A response is released only after the state it depends on and the ingress log are
    /// flushed to disk (survives a process crash, `kill -9`). The default.
    #[default]
    Durable,
    /// State lives in memory only; responses are released at the same commit points, but
    /// nothing survives the process. For tests and for measuring what durability costs.
    InMemory,
}

/// Engine configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Worker threads (default: the number of cores).
    pub workers: usize,
    /// Data directory (required for [`Durability::Durable`]).
    pub data_dir: Option<PathBuf>,
    /// Durability mode.
    pub durability: Durability,
    /// Milliseconds between commit epochs.
    pub commit_interval_ms: u64,
    /// Key groups (fixed when a data dir is created).
    pub key_groups: u16,
    /// Requests admitted at once before [`InvokeError::Overloaded`].
    pub max_in_flight: usize,
    /// Record each request's call tree with its completion (for `trace`).
    pub record_traces: bool,
    /// How much history (old state versions, traces) to keep for time travel.
    pub history: HistoryRetention,
    /// Run as one process of a cluster (`None`: alone).
    pub cluster: Option<super::cluster::ClusterConfig>,
}

/// How much history to keep: older history is compacted (see [`StateStore::compact`]) by a
/// background thread once per [`HistoryRetention::check_every_ms`].
///
/// The current state, the ingress log, and the responses of requests that carried an
/// idempotency key are never compacted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryRetention {
    /// Keep the history of the last this many milliseconds (`None`: keep everything;
    /// `Some(0)`: history off, only the current state stays).
    pub keep_for_ms: Option<u64>,
    /// When the store takes more bytes on disk than this, the horizon moves halfway towards
    /// now on every check until it fits (or history is gone).
    pub max_bytes: Option<u64>,
    /// Milliseconds between two checks.
    pub check_every_ms: u64,
}

impl Default for HistoryRetention {
    fn default() -> Self {
        HistoryRetention {
            keep_for_ms: Some(24 * 3600 * 1000),
            max_bytes: None,
            check_every_ms: 1000,
        }
    }
}

impl HistoryRetention {
    /// Keeps everything (no compaction).
    pub fn forever() -> Self {
        HistoryRetention {
            keep_for_ms: None,
            max_bytes: None,
            ..HistoryRetention::default()
        }
    }

    /// Where the horizon should be now, given the current one and the store's size.
    fn target(&self, now_ms: u64, current: u64, size_on_disk: u64) -> Option<u64> {
        let by_age = self.keep_for_ms.map(|keep| now_ms.saturating_sub(keep));
        let by_size = self
            .max_bytes
            .filter(|max| size_on_disk > *max)
            .map(|_| current + (now_ms.saturating_sub(current)) / 2);
        match (by_age, by_size) {
            (None, None) => None,
            (a, b) => a.max(b).filter(|t| *t > current),
        }
    }
}

/// The background thread that compacts history.
struct Compactor {
    stop: std::sync::mpsc::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl Compactor {
    fn start(
        store: Arc<dyn StateStore>,
        retention: HistoryRetention,
        committed_everywhere: Arc<AtomicU64>,
    ) -> Option<Compactor> {
        if retention.keep_for_ms.is_none() && retention.max_bytes.is_none() {
            return None;
        }
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let every = Duration::from_millis(retention.check_every_ms.max(1));
        let thread = std::thread::Builder::new()
            .name("stateful-compactor".into())
            .spawn(move || {
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(every)
                {
                    let step = || -> Result<(), StoreError> {
                        let current = store.horizon()?.epoch;
                        let size = match retention.max_bytes {
                            Some(_) => store.size_on_disk()?,
                            None => 0,
                        };
                        let target = retention
                            .target(unix_ms(), current, size)
                            .map(|t| t.min(committed_everywhere.load(Ordering::Acquire)))
                            .filter(|t| *t > current);
                        if let Some(target) = target {
                            let done = store.compact(target)?;
                            tracing::debug!(?done, "compacted history");
                        }
                        Ok(())
                    };
                    if let Err(e) = step() {
                        tracing::warn!(error = %e, "history compaction failed; retrying later");
                    }
                }
            })
            .ok()?;
        Some(Compactor { stop, thread })
    }

    fn stop(self) {
        drop(self.stop);
        let _ = self.thread.join();
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            data_dir: None,
            durability: Durability::Durable,
            commit_interval_ms: 5,
            key_groups: DEFAULT_KEY_GROUPS,
            max_in_flight: 100_000,
            record_traces: true,
            history: HistoryRetention::default(),
            cluster: None,
        }
    }
}

impl Config {
    /// An in-memory configuration with `workers` workers (tests, benchmarks).
    pub fn in_memory(workers: usize) -> Self {
        Config {
            workers,
            durability: Durability::InMemory,
            ..Config::default()
        }
    }

    /// A durable configuration in `dir` with `workers` workers.
    pub fn durable(dir: impl Into<PathBuf>, workers: usize) -> Self {
        Config {
            workers,
            data_dir: Some(dir.into()),
            ..Config::default()
        }
    }
}

/// Why the engine did not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The data dir could not be used.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The configuration is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// timely did not start.
    #[error("the dataflow engine did not start: {0}")]
    Engine(String),
}

/// Why a request was not accepted or not answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvokeError {
    /// No lambda of that name or id.
    #[error("unknown lambda `{0}`")]
    UnknownLambda(String),
    /// No handler of that name or index.
    #[error("lambda `{lambda}` has no handler `{handler}`")]
    UnknownHandler {
        /// Lambda.
        lambda: String,
        /// Handler.
        handler: String,
    },
    /// The key or the arguments do not decode.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// Too many requests in flight; retry later.
    #[error("overloaded: {0} requests in flight; retry later")]
    Overloaded(usize),
    /// The engine is stopping or stopped.
    #[error("the runtime is shutting down")]
    ShuttingDown,
    /// The ingress log could not be written.
    #[error("cannot log the request: {0}")]
    Log(String),
    /// A process of the cluster is lost: nothing can commit until the cluster restarts.
    #[error(
        "the cluster lost a process: no request can commit until the whole cluster is restarted (it then recovers)"
    )]
    ClusterFailed,
}

/// The answer to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Ingress sequence number of the request.
    pub seq: u64,
    /// The handler's encoded result, or why the runtime could not produce one.
    pub result: Result<Outcome, CallError>,
}

impl Response {
    pub(crate) fn shutting_down() -> Self {
        Response {
            seq: 0,
            result: Err(CallError::NoSuchTarget("the runtime stopped".into())),
        }
    }
}

/// A request on its way to a worker.
pub(crate) struct Request {
    pub seq: u64,
    /// When the request was accepted (unix ms): it enters the dataflow at an epoch no earlier.
    pub at_ms: u64,
    pub lambda: u16,
    pub key: Vec<u8>,
    pub handler: u16,
    pub args: Vec<u8>,
    pub idempotency_key: Option<String>,
    pub responder: Option<tokio::sync::oneshot::Sender<Response>>,
}

/// Counters shared by workers and gateway.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Commits written.
    pub commits: AtomicU64,
    /// Total microseconds spent in commits (sync + batch + flush).
    pub commit_us: AtomicU64,
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
    /// Gauge: messages of later epochs held until the current commit epoch is snapshotted.
    pub stashed: AtomicU64,
}

impl Metrics {
    pub(crate) fn new(operators: usize) -> Self {
        Metrics {
            operators: (0..operators).map(|_| OperatorMetrics::default()).collect(),
            ..Metrics::default()
        }
    }

    pub(crate) fn record_commit(&self, d: Duration) {
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.commit_us
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }
}

/// State shared by the handle and the workers.
pub(crate) struct Shared {
    pub app: Arc<App>,
    pub config: Config,
    pub store: Arc<dyn StateStore>,
    pub ingress: Option<Arc<IngressLog>>,
    pub pipeline: Arc<super::commit::CommitPipeline>,
    pub metrics: Arc<Metrics>,
    /// The next position in the completion order.
    pub order: Arc<AtomicU64>,
    pub in_flight: AtomicUsize,
    pub stopping: AtomicBool,
    pub start_epoch: u64,
    next_seq: AtomicU64,
    /// Requests with an idempotency key that are running: later duplicates wait for them.
    idempotent: Mutex<HashMap<String, Vec<tokio::sync::oneshot::Sender<Response>>>>,
    receivers: Mutex<Vec<Option<Receiver<Request>>>>,
    threads: Mutex<Vec<Option<Thread>>>,
    replay: Mutex<Vec<Vec<Request>>>,
    /// Processes of the cluster (1 alone) and this one's index.
    pub processes: usize,
    pub process: usize,
    /// Global index of this process's first worker.
    pub base: usize,
    /// Workers of all processes.
    pub total_workers: usize,
    /// The last commit epoch every operator of every process has made durable (what
    /// compaction may reach: recovery never rolls back below it).
    pub committed_everywhere: Arc<AtomicU64>,
}

/// The local worker that takes a request for global worker `owner`: the owner itself when it
/// is local, otherwise one that forwards it through the dataflow.
fn local_worker(owner: usize, base: usize, workers: usize) -> usize {
    if (base..base + workers).contains(&owner) {
        owner - base
    } else {
        owner % workers.max(1)
    }
}

impl Shared {
    /// A request with idempotency key `key` committed: answer the duplicates that waited.
    pub(crate) fn idempotency_done(&self, key: &str, response: &Response) {
        let waiters = self
            .idempotent
            .lock()
            .map(|mut m| m.remove(key).unwrap_or_default())
            .unwrap_or_default();
        for w in waiters {
            let _ = w.send(response.clone());
        }
    }

    pub(crate) fn take_receiver(&self, worker: usize) -> Option<Receiver<Request>> {
        self.receivers.lock().ok()?.get_mut(worker)?.take()
    }

    pub(crate) fn register_thread(&self, worker: usize, t: Thread) {
        if let Ok(mut ts) = self.threads.lock()
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

    fn unpark(&self, worker: usize) {
        if let Ok(ts) = self.threads.lock()
            && let Some(Some(t)) = ts.get(worker)
        {
            t.unpark();
        }
    }
}

/// What a data dir records about itself (`meta.json`): fixed at creation.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct DataDirMeta {
    pub app: String,
    pub key_groups: u16,
    format: u32,
    /// Set when the dir is one process's part of a cluster's state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<Layout>,
}

/// The shape of the cluster a data dir belongs to: which key groups it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Layout {
    pub processes: usize,
    pub process: usize,
    pub workers: usize,
}

impl Layout {
    fn describe(&self) -> String {
        format!(
            "process {} of a cluster of {} processes x {} workers",
            self.process, self.processes, self.workers
        )
    }
}

impl DataDirMeta {
    const FILE: &'static str = "meta.json";

    pub(crate) fn load(dir: &std::path::Path) -> Result<Option<DataDirMeta>, StoreError> {
        match std::fs::read(dir.join(Self::FILE)) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| StoreError::Corrupt(format!("{}: {e}", Self::FILE))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The key groups of the dir (creating the record with `groups` for a new dir). A dir
    /// that holds one process's part of a cluster opens only as that process of a cluster of
    /// the same shape.
    fn load_or_create(
        dir: &std::path::Path,
        app: &str,
        groups: u16,
        layout: Option<Layout>,
    ) -> Result<u16, StoreError> {
        if let Some(m) = Self::load(dir)? {
            if m.app != app {
                return Err(StoreError::WrongApp {
                    found: m.app,
                    expected: app.to_owned(),
                });
            }
            let fits = match (m.cluster, layout) {
                (None, None) => true,
                (Some(was), Some(now)) => was == now,
                // A single process's dir holds every key group: not one process's part.
                (None, Some(_)) | (Some(_), None) => false,
            };
            if !fits {
                let was = m
                    .cluster
                    .map_or_else(|| "a single process".to_owned(), |l| l.describe());
                let now = layout.map_or_else(|| "a single process".to_owned(), |l| l.describe());
                return Err(StoreError::Corrupt(format!(
                    "{} holds the state of {was}, but this is {now}: start with the same shape, or move the state with `rescale`",
                    dir.display()
                )));
            }
            return Ok(m.key_groups);
        }
        Self::create(dir, app, groups, layout)
    }

    /// Writes the record of a new data dir.
    pub(crate) fn create(
        dir: &std::path::Path,
        app: &str,
        groups: u16,
        layout: Option<Layout>,
    ) -> Result<u16, StoreError> {
        let m = DataDirMeta {
            app: app.to_owned(),
            key_groups: groups.max(1),
            format: 1,
            cluster: layout,
        };
        let bytes =
            serde_json::to_vec_pretty(&m).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let tmp = dir.join("meta.json.tmp");
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, dir.join(Self::FILE))?;
        Ok(m.key_groups)
    }
}

/// Opens the sled store, waiting up to a second for a lock that a store dropped a moment ago
/// in this process still holds (sled releases it from a background thread).
fn open_sled_patiently(path: &std::path::Path) -> Result<SledStore, StoreError> {
    let deadline = std::time::Instant::now() + Duration::from_secs(1);
    loop {
        match SledStore::open(path) {
            Err(StoreError::Locked(_)) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

/// Opens a data dir for reading (inspection): its store and key groups.
pub(crate) fn open_for_reading(
    app: &App,
    dir: &std::path::Path,
) -> Result<(Arc<dyn StateStore>, u16), String> {
    let meta = DataDirMeta::load(dir)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| {
            format!(
                "{} is not a data dir of this app (no meta.json)",
                dir.display()
            )
        })?;
    if meta.app != app.name {
        return Err(format!(
            "{} belongs to app `{}`, not `{}`",
            dir.display(),
            meta.app,
            app.name
        ));
    }
    let store = SledStore::open(&dir.join("state")).map_err(|e| match e {
        StoreError::Locked(_) => format!(
            "{} is in use by a running service; ask it instead: GET /state/{{lambda}}/{{key}}, or stop it first",
            dir.display()
        ),
        other => other.to_string(),
    })?;
    Ok((Arc::new(store), meta.key_groups))
}

/// Milliseconds since the Unix epoch.
pub(crate) fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Invokes handlers of a running engine; cheap to clone, usable from any thread.
#[derive(Clone)]
pub struct Handle {
    shared: Arc<Shared>,
    senders: Arc<Vec<SyncSender<Request>>>,
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle")
            .field("app", &self.shared.app.name)
            .finish_non_exhaustive()
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
            .field("app", &self.handle.shared.app.name)
            .finish_non_exhaustive()
    }
}

impl Runtime {
    /// Opens (or creates) the state, recovers, replays the logged requests that never
    /// completed, and starts the workers.
    pub fn start(app: Arc<App>, mut config: Config) -> Result<Runtime, StartError> {
        if config.workers == 0 {
            return Err(StartError::Config("workers must be at least 1".into()));
        }
        if app.lambdas.is_empty() {
            return Err(StartError::Config("the app has no lambdas".into()));
        }
        let (store, ingress): (Arc<dyn StateStore>, Option<Arc<IngressLog>>) =
            match config.durability {
                Durability::InMemory => (Arc::new(MemoryStore::new()), None),
                Durability::Durable => {
                    let dir = config.data_dir.clone().ok_or_else(|| {
                        StartError::Config("a durable runtime needs a data dir".into())
                    })?;
                    std::fs::create_dir_all(&dir).map_err(StoreError::from)?;
                    let store = open_sled_patiently(&dir.join("state"))?;
                    store.check_app(app.name)?;
                    let layout = config.cluster.as_ref().map(|c| Layout {
                        processes: c.processes(),
                        process: c.process,
                        workers: config.workers,
                    });
                    config.key_groups =
                        DataDirMeta::load_or_create(&dir, app.name, config.key_groups, layout)?;
                    let (log, report) = IngressLog::open(&dir.join("ingress.log"))?;
                    if report.truncated_bytes > 0 {
                        tracing::warn!(
                            bytes = report.truncated_bytes,
                            "ingress log had a torn tail; truncated it"
                        );
                    }
                    (Arc::new(store), Some(Arc::new(log)))
                }
            };
        let workers = config.workers;
        let (processes, process) = config
            .cluster
            .as_ref()
            .map_or((1, 0), |c| (c.processes(), c.process));
        // Global worker indices of this process.
        let base = process * workers;
        let total_workers = processes * workers;
        let committers: Vec<CommitterId> = (base as u32..(base + workers) as u32)
            .flat_map(|w| {
                app.lambdas.iter().map(move |l| CommitterId {
                    worker: w,
                    lambda: l.id,
                })
            })
            .collect();
        let agreed = match &config.cluster {
            None => None,
            Some(c) => {
                super::cluster::watch_connections();
                Some(
                    super::cluster::agree_on_committed(c, store.committed_epoch()?)
                        .map_err(StartError::Engine)?,
                )
            }
        };
        let recovered = store.recover_to(&committers, agreed.as_ref().map(|a| a.committed))?;
        tracing::info!(
            committed_epoch = recovered.committed_epoch,
            discarded = recovered.discarded_versions,
            "recovered state"
        );
        // Requests that were logged but never completed run again, in log order.
        let mut replay: Vec<Vec<Request>> = (0..workers).map(|_| Vec::new()).collect();
        let mut next_seq = 1;
        if let Some(log) = &ingress {
            // Below the watermark every request completed (and may have been compacted).
            let below = store.horizon()?.complete_below_seq;
            next_seq = next_seq.max(below);
            let records = log.read_from(below)?;
            if let Some(last) = records.last() {
                next_seq = next_seq.max(last.seq + 1);
            }
            for r in crate::ingress::incomplete(store.as_ref(), records)? {
                if usize::from(r.lambda) >= app.lambdas.len() {
                    continue;
                }
                let g = key_group(&r.key, config.key_groups);
                let w = local_worker(
                    worker_of(g, config.key_groups, total_workers),
                    base,
                    workers,
                );
                replay[w].push(Request {
                    seq: r.seq,
                    at_ms: 0,
                    lambda: r.lambda,
                    key: r.key,
                    handler: r.handler,
                    args: r.args,
                    idempotency_key: r.idempotency_key,
                    responder: None,
                });
            }
            let n: usize = replay.iter().map(Vec::len).sum();
            if n > 0 {
                tracing::info!(
                    requests = n,
                    "replaying logged requests that did not complete"
                );
            }
        }
        // Replayed requests with an idempotency key count as running: a client retrying one
        // waits for its answer instead of running it again.
        let replaying_keys: HashMap<String, Vec<tokio::sync::oneshot::Sender<Response>>> = replay
            .iter()
            .flatten()
            .filter_map(|r| r.idempotency_key.clone())
            .map(|k| (k, Vec::new()))
            .collect();
        let mut senders = Vec::with_capacity(workers);
        let mut receivers = Vec::with_capacity(workers);
        for _ in 0..workers {
            let (tx, rx) = sync_channel(config.max_in_flight.max(1));
            senders.push(tx);
            receivers.push(Some(rx));
        }
        let start_epoch = match &agreed {
            Some(a) => a.start_epoch,
            None => unix_ms().max(recovered.committed_epoch + 1),
        };
        let metrics = Arc::new(Metrics::new(workers * app.lambdas.len()));
        let pipeline = super::commit::CommitPipeline::start(
            workers * app.lambdas.len(),
            store.clone(),
            ingress.clone(),
            metrics.clone(),
        );
        let shared = Arc::new(Shared {
            pipeline,
            app,
            config: config.clone(),
            store,
            ingress,
            metrics,
            // Increasing across runs too: a later run starts at a later epoch, and no run
            // completes 65,536 requests per millisecond of its lifetime.
            order: Arc::new(AtomicU64::new(start_epoch << 16)),
            in_flight: AtomicUsize::new(0),
            stopping: AtomicBool::new(false),
            start_epoch,
            next_seq: AtomicU64::new(next_seq),
            receivers: Mutex::new(receivers),
            idempotent: Mutex::new(replaying_keys),
            threads: Mutex::new(vec![None; workers]),
            replay: Mutex::new(replay),
            processes,
            process,
            base,
            total_workers,
            committed_everywhere: Arc::new(AtomicU64::new(recovered.committed_epoch)),
        });
        let compactor = Compactor::start(
            shared.store.clone(),
            shared.config.history.clone(),
            shared.committed_everywhere.clone(),
        );
        let worker_shared = shared.clone();
        let timely_config = match &shared.config.cluster {
            Some(c) => c.timely(workers),
            None => timely::Config::process(workers),
        };
        let guards = timely::execute(timely_config, move |worker| {
            super::worker::run(worker, worker_shared.clone());
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
            handle: Handle {
                shared,
                senders: Arc::new(senders),
            },
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
        self.handle.shared.stopping.store(true, Ordering::Release);
        for w in 0..self.handle.senders.len() {
            self.handle.shared.unpark(w);
        }
        if let Some(c) = self.compactor.take() {
            c.stop();
        }
        if let Some(g) = self.guards.take() {
            drop(g.join());
            self.handle.shared.pipeline.close();
        }
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Handle {
    /// The app this engine runs.
    pub fn app(&self) -> &App {
        &self.shared.app
    }

    /// The durable store (read-only use: inspection).
    pub fn store(&self) -> &Arc<dyn StateStore> {
        &self.shared.store
    }

    /// This process's place in a cluster (`None`: alone).
    pub fn cluster(&self) -> Option<&super::cluster::ClusterConfig> {
        self.shared.config.cluster.as_ref()
    }

    /// The data dir (durable runtimes only).
    pub fn data_dir(&self) -> Option<&std::path::Path> {
        match self.shared.config.durability {
            Durability::Durable => self.shared.config.data_dir.as_deref(),
            Durability::InMemory => None,
        }
    }

    /// Key groups of the data dir.
    pub fn key_groups(&self) -> u16 {
        self.shared.config.key_groups
    }

    /// Engine counters.
    pub fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }

    /// Requests currently in flight.
    pub fn in_flight(&self) -> usize {
        self.shared.in_flight.load(Ordering::Relaxed)
    }

    /// Submits a request: handler `handler` of instance `key` (encoded) of lambda `lambda`
    /// with encoded arguments. The receiver yields the response once it is durable.
    pub fn submit(
        &self,
        lambda: u16,
        key: Vec<u8>,
        handler: u16,
        args: Vec<u8>,
        idempotency_key: Option<String>,
    ) -> Result<tokio::sync::oneshot::Receiver<Response>, InvokeError> {
        let shared = &self.shared;
        if shared.stopping.load(Ordering::Acquire) {
            return Err(InvokeError::ShuttingDown);
        }
        let entry = shared
            .app
            .lambdas
            .get(usize::from(lambda))
            .ok_or_else(|| InvokeError::UnknownLambda(lambda.to_string()))?;
        if usize::from(handler) >= entry.handlers.len() {
            return Err(InvokeError::UnknownHandler {
                lambda: entry.name.to_owned(),
                handler: handler.to_string(),
            });
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        if let Some(k) = &idempotency_key {
            // Under the lock: a completion is committed before its key leaves the map, so a
            // duplicate sees either the running request or the stored answer, never neither.
            let mut running = shared
                .idempotent
                .lock()
                .map_err(|_| InvokeError::Log("idempotency table poisoned".into()))?;
            if let Some(waiters) = running.get_mut(k) {
                waiters.push(tx);
                return Ok(rx);
            }
            match shared.store.completion_by_idempotency_key(k) {
                Ok(Some(done)) => {
                    let result =
                        crate::lambda::decode::<Result<Outcome, CallError>>(&done.response)
                            .unwrap_or_else(|e| Err(CallError::Codec(e)));
                    let _ = tx.send(Response {
                        seq: done.seq,
                        result,
                    });
                    return Ok(rx);
                }
                Ok(None) => {}
                Err(e) => return Err(InvokeError::Log(e.to_string())),
            }
            running.insert(k.clone(), Vec::new());
        }
        let admitted = self.admit(lambda, key, handler, args, idempotency_key.clone(), tx);
        if let Err(e) = admitted {
            if let Some(k) = &idempotency_key
                && let Ok(mut running) = shared.idempotent.lock()
            {
                running.remove(k);
            }
            return Err(e);
        }
        Ok(rx)
    }

    /// Logs the request and hands it to the worker that owns its key.
    fn admit(
        &self,
        lambda: u16,
        key: Vec<u8>,
        handler: u16,
        args: Vec<u8>,
        idempotency_key: Option<String>,
        tx: tokio::sync::oneshot::Sender<Response>,
    ) -> Result<(), InvokeError> {
        let shared = &self.shared;
        if shared.processes > 1 && super::cluster::has_failed() {
            return Err(InvokeError::ClusterFailed);
        }
        let admitted = shared.in_flight.fetch_add(1, Ordering::AcqRel);
        if admitted >= shared.config.max_in_flight {
            shared.in_flight.fetch_sub(1, Ordering::AcqRel);
            return Err(InvokeError::Overloaded(admitted));
        }
        let at_ms = unix_ms();
        let seq = match &shared.ingress {
            Some(log) => log
                .append(NewRecord {
                    timestamp_ms: at_ms,
                    lambda,
                    key: key.clone(),
                    handler,
                    args: args.clone(),
                    idempotency_key: idempotency_key.clone(),
                })
                .map_err(|e| {
                    shared.in_flight.fetch_sub(1, Ordering::AcqRel);
                    InvokeError::Log(e.to_string())
                })?,
            None => shared.next_seq.fetch_add(1, Ordering::Relaxed),
        };
        shared.metrics.requests.fetch_add(1, Ordering::Relaxed);
        let g = key_group(&key, shared.config.key_groups);
        let w = local_worker(
            worker_of(g, shared.config.key_groups, shared.total_workers),
            shared.base,
            self.senders.len(),
        );
        let req = Request {
            seq,
            at_ms,
            lambda,
            key,
            handler,
            args,
            idempotency_key,
            responder: Some(tx),
        };
        match self.senders[w].try_send(req) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                shared.in_flight.fetch_sub(1, Ordering::AcqRel);
                return Err(InvokeError::Overloaded(shared.config.max_in_flight));
            }
            Err(TrySendError::Disconnected(_)) => {
                shared.in_flight.fetch_sub(1, Ordering::AcqRel);
                // A worker lost with its peer process is gone too.
                if shared.processes > 1 && super::cluster::has_failed() {
                    return Err(InvokeError::ClusterFailed);
                }
                return Err(InvokeError::ShuttingDown);
            }
        }
        shared.unpark(w);
        Ok(())
    }

    /// Invokes by names with JSON, waiting for the durable response: `Ok(json)` is the
    /// handler's `Result` as JSON (`{"Ok": ..}` or `{"Err": ..}`).
    pub async fn invoke_json(
        &self,
        lambda: &str,
        key: &str,
        handler: &str,
        args: serde_json::Value,
        idempotency_key: Option<String>,
    ) -> Result<JsonResponse, InvokeError> {
        let (l, h, key, args) = self.prepare_json(lambda, key, handler, args)?;
        let rx = self.submit(l, key, h, args, idempotency_key)?;
        let resp = rx.await.map_err(|_| InvokeError::ShuttingDown)?;
        Ok(self.to_json(l, h, resp))
    }

    /// Blocking variant of [`Handle::invoke_json`] (not for async contexts).
    pub fn invoke_json_blocking(
        &self,
        lambda: &str,
        key: &str,
        handler: &str,
        args: serde_json::Value,
    ) -> Result<JsonResponse, InvokeError> {
        let (l, h, key, args) = self.prepare_json(lambda, key, handler, args)?;
        let rx = self.submit(l, key, h, args, None)?;
        let resp = rx.blocking_recv().map_err(|_| InvokeError::ShuttingDown)?;
        Ok(self.to_json(l, h, resp))
    }

    /// Resolves names and converts JSON to the encoded key and arguments.
    pub fn prepare_json(
        &self,
        lambda: &str,
        key: &str,
        handler: &str,
        args: serde_json::Value,
    ) -> Result<(u16, u16, Vec<u8>, Vec<u8>), InvokeError> {
        let entry = self
            .shared
            .app
            .lambda(lambda)
            .ok_or_else(|| InvokeError::UnknownLambda(lambda.to_owned()))?;
        let h = entry
            .handler_index(handler)
            .ok_or_else(|| InvokeError::UnknownHandler {
                lambda: lambda.to_owned(),
                handler: handler.to_owned(),
            })?;
        let key = (entry.key_from_str)(key).map_err(|e| InvokeError::BadRequest(e.to_string()))?;
        let args =
            (entry.json_args)(h, args).map_err(|e| InvokeError::BadRequest(e.to_string()))?;
        Ok((entry.id, h, key, args))
    }

    /// Converts a response to JSON.
    pub fn to_json(&self, lambda: u16, handler: u16, resp: Response) -> JsonResponse {
        let Some(entry) = self.shared.app.lambdas.get(usize::from(lambda)) else {
            return JsonResponse::Failed(CallError::NoSuchTarget(lambda.to_string()));
        };
        match resp.result {
            Err(e) => JsonResponse::Failed(e),
            Ok(outcome) => match (entry.result_json)(handler, &outcome.bytes) {
                Err(e) => JsonResponse::Failed(CallError::Codec(e.to_string())),
                Ok(v) => {
                    let (inner, message) = match v {
                        serde_json::Value::Object(mut m) => {
                            let message = m
                                .remove("message")
                                .and_then(|v| v.as_str().map(str::to_owned));
                            let inner = m
                                .remove("Ok")
                                .or_else(|| m.remove("Err"))
                                .unwrap_or(serde_json::Value::Null);
                            (inner, message)
                        }
                        other => (other, None),
                    };
                    if outcome.ok {
                        JsonResponse::Ok(inner)
                    } else {
                        JsonResponse::Rejected {
                            message: message.unwrap_or_else(|| inner.to_string()),
                            detail: inner,
                        }
                    }
                }
            },
        }
    }
}

/// A response as JSON.
#[derive(Debug, Clone, PartialEq)]
pub enum JsonResponse {
    /// The handler returned `Ok(value)`.
    Ok(serde_json::Value),
    /// The handler returned `Err(value)` (a business rejection).
    Rejected {
        /// The error's `Display`.
        message: String,
        /// The error value as JSON.
        detail: serde_json::Value,
    },
    /// The runtime could not run the handler to completion.
    Failed(CallError),
}
