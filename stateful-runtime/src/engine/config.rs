//! The engine's configuration, what an acknowledgement means, and the engine's errors at
//! start and at admission.

use std::path::PathBuf;

use stateful_core::keys::DEFAULT_KEY_GROUPS;

use crate::storage::{HistoryRetention, OpenError, ReadError};

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

/// The default number of requests admitted at once.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 100_000;
/// The default milliseconds between commit epochs.
pub const DEFAULT_COMMIT_INTERVAL_MS: u64 = 5;

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

/// The number of cores, the default worker count.
pub fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

impl Default for Config {
    fn default() -> Self {
        Config {
            workers: default_workers(),
            data_dir: None,
            durability: Durability::Durable,
            commit_interval_ms: DEFAULT_COMMIT_INTERVAL_MS,
            key_groups: DEFAULT_KEY_GROUPS,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
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
    /// The ingress log could not be written.
    #[error("cannot log the request: {0}")]
    Log(String),
    /// The store could not be read (the idempotency lookup).
    #[error("the state store could not be read: {0}")]
    Storage(String),
    /// A process of the cluster is lost: nothing can commit until the cluster restarts.
    #[error(
        "the cluster lost a process: no request can commit until the whole cluster is restarted (it then recovers)"
    )]
    ClusterFailed,
}
