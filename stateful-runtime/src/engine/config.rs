//! The engine's configuration, what an acknowledgement means, and the engine's errors at
//! start and at admission.

use std::path::PathBuf;

use stateful_core::keys::DEFAULT_KEY_GROUPS;

use crate::storage::{HistoryRetention, OpenError, ReadError};

/// What an acknowledgement means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// An answer is sent only after its epoch's record in the commit log (its requests, state
    /// changes and answers, and everything they read) is `fdatasync`ed: it survives a power
    /// cut. The default.
    #[default]
    Fsync,
    /// An answer is sent once its epoch's record is written to the operating system: it
    /// survives a crash of the process (`kill -9`), not of the machine.
    ProcessCrash,
    /// State lives in memory only; answers are released at the same commit points, but
    /// nothing survives the process. For tests and for measuring what durability costs.
    None,
}

impl Durability {
    /// Whether anything is kept on disk.
    pub fn on_disk(self) -> bool {
        self != Durability::None
    }
}

/// The default number of requests admitted at once.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 100_000;
/// The default epoch length of a cluster, and the longest an epoch of a single process waits
/// for the previous commit before it closes anyway (milliseconds).
pub const DEFAULT_COMMIT_INTERVAL_MS: u64 = 5;

/// Engine configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Worker threads (default: the number of cores).
    pub workers: usize,
    /// Data directory (required unless [`Durability::None`]).
    pub data_dir: Option<PathBuf>,
    /// What an acknowledgement means.
    pub durability: Durability,
    /// Alone: an epoch closes as soon as the previous commit is durable and work waits (group
    /// commit); this bounds how long an epoch with work stays open while a slow commit runs.
    /// In a cluster: the length of an epoch (the processes close epochs on the clock).
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
    /// Bytes of instances kept in memory, over all workers and lambdas (`None`: no bound);
    /// clean instances beyond it are evicted and read back from the store when used.
    pub cache_bytes: Option<u64>,
    /// Bytes of the durable store's page cache (sled's; its memory grows somewhat past it
    /// with the size of the store).
    pub store_cache_bytes: u64,
}

/// The default cache: a quarter of the machine's memory (1 GiB where it cannot be read).
pub fn default_cache_bytes() -> u64 {
    let total_kb = std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| {
        m.lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|n| n.parse::<u64>().ok())
    });
    total_kb.map_or(1 << 30, |kb| kb * 1024 / 4)
}

/// The number of cores, the default worker count.
pub fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

impl Default for Config {
    fn default() -> Self {
        Config {
            workers: default_workers(),
            data_dir: None,
            durability: Durability::Fsync,
            commit_interval_ms: DEFAULT_COMMIT_INTERVAL_MS,
            key_groups: DEFAULT_KEY_GROUPS,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            record_traces: true,
            history: HistoryRetention::default(),
            cluster: None,
            cache_bytes: Some(default_cache_bytes()),
            store_cache_bytes: crate::storage::DEFAULT_PAGE_CACHE_BYTES,
        }
    }
}

impl Config {
    /// An in-memory configuration with `workers` workers (tests, benchmarks).
    pub fn in_memory(workers: usize) -> Self {
        Config {
            workers,
            durability: Durability::None,
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
    /// The data dir could not be opened or recovered.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// The data dir could not be read during recovery.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// The configuration is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The app's compiled graph does not match its lambdas.
    #[error("the app's graph is not usable: {0}")]
    Graph(String),
    /// timely did not start.
    #[error("the dataflow engine did not start: {0}")]
    Engine(String),
    /// The stored state does not fit the build's lambdas.
    #[error(transparent)]
    Schema(#[from] super::schema_check::SchemaError),
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
    /// The key or the arguments do not encode or decode.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// Too many requests in flight; retry later.
    #[error("overloaded: {0} requests in flight; retry later")]
    Overloaded(usize),
    /// The engine is stopping or stopped.
    #[error("the runtime is shutting down")]
    ShuttingDown,
    /// The idempotency key was used before with another request (target, handler or
    /// arguments): refused rather than answered with the other request's answer.
    #[error(
        "Idempotency-Key `{0}` was already used for another request (a different target, handler or arguments); use a new key for a new request"
    )]
    IdempotencyKeyReused(String),
    /// The store could not be read (the idempotency lookup).
    #[error("the state store could not be read: {0}")]
    Storage(String),
    /// A process of the cluster is lost: nothing can commit until the cluster restarts.
    #[error(
        "the cluster lost a process: no request can commit until the whole cluster is restarted (it then recovers)"
    )]
    ClusterFailed,
}
