//! The engine: an app's lambdas as keyed operators of a cyclic timely dataflow built from the
//! app's IR, with group commit, recovery and cluster mode.
//!
//! ```text
//! Handle::submit ─▶ admission (idempotency, in-flight) ─▶ worker channel
//!   driver: input[L] (epoch from the clock, unix µs) ─▶ operator L ─link─▶ operator T ─reply─▶ ..
//!   operator: shard (table, locks, executor, coordinator) ─snapshot─▶ committer
//!   committer: one log record per epoch, one fsync per group ⇒ answers released
//!   materialiser: durable epochs ─▶ state store (checkpoints cut the log)
//! ```
//!
//! - [`protocol`]: every message between operators; [`shard`]: one lambda on one worker;
//!   [`operator`]: its timely operator; [`dataflow`]: the graph of operators from the IR;
//!   [`driver`]: a worker's loop; `clock`: when epochs close; [`commit`]: the committer
//!   thread; `materialize`: the store behind the log; [`recovery`]: start-up;
//!   [`admission`], [`idempotency`], [`handle`]: the way in; [`cluster`]: many processes.
//!
//! The engine speaks bytes and typed calls: JSON is the service layer's business.

pub(crate) mod admission;
mod clock;
pub mod cluster;
pub(crate) mod commit;
mod config;
pub(crate) mod dataflow;
pub(crate) mod driver;
pub(crate) mod faults;
mod handle;
pub(crate) mod idempotency;
pub(crate) mod load;
mod materialize;
mod metrics;
mod now;
pub(crate) mod operator;
pub(crate) mod placement;
mod postman;
#[cfg(test)]
mod power_tests;
mod program;
pub(crate) mod protocol;
pub(crate) mod recovery;
mod runtime;
mod schema_check;
pub(crate) mod shard;

pub use config::{
    Config, DEFAULT_COMMIT_INTERVAL_MS, DEFAULT_MAX_IN_FLIGHT, Durability, InvokeError, StartError,
    default_workers,
};
pub use faults::Fault;
pub use handle::{ExternalCall, Handle, HandleCall, Response};
pub use load::{LoadError, Loaded};
pub use metrics::{DURATION_BUCKETS, Metrics, OperatorMetrics};
pub use program::{LambdaDef, Program, register};
pub use runtime::{Recovered, Runtime};
pub use schema_check::{SchemaError, SchemaReport};
