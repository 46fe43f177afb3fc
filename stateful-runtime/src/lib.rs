//! `stateful`: stateful functions compiled into dataflow graphs.
//!
//! Users depend on this crate alone: it re-exports the macros and a [`prelude`].
//!
//! ```text
//! service (HTTP gateway, CLI, launcher)      tools (inspect, history, log, trace, replay, diff, rescale)
//! testing (TestApp: the engine in memory for tests, beside the service)
//!       │                                          │
//!       ▼                                          ▼
//! engine (protocol, shards, operators, dataflow from the IR, commit, recovery, cluster)
//!       │                          │
//!       ▼                          ▼
//!      sdk (Ctx, typed calls)     storage (data dir, StateStore: sled + memory, ingress log)
//!                 stateful-core (IR, keys, record formats)
//! ```
//!
//! Imports point down only (a test reads the `use crate::` lines to keep it so). The public API
//! is this facade: the prelude and macros, [`App`], [`Service`], [`Runtime`], [`Handle`], the
//! [`storage`] and [`tools`] layers for offline use, [`testing`] for tests; generated code goes through a hidden
//! `__private` module. See `docs/architecture.md` for the path of one request.

// The crate's own unit tests use `#[app]`, whose code names `::stateful_runtime`.
#[cfg(test)]
extern crate self as stateful_runtime;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;
pub(crate) mod engine;
pub mod sdk;
pub(crate) mod service;
pub mod storage;
pub mod testing;
pub mod tools;

pub use engine::cluster::ClusterConfig;
pub use engine::{
    Config, Durability, ExternalCall, Handle, HandleCall, InvokeError, LambdaDef, LoadError,
    Loaded, Metrics, OperatorMetrics, Program, Recovered, Response, Runtime, SchemaError,
    SchemaReport, StartError,
};
pub use futures_util::join;
pub use sdk::{
    CallBackend, CallError, CallFuture, Ctx, HandlerResult, Key, Keyed, Lambda, Rejection, State,
};
pub use service::console::{LoadMix, LoadRequest};
pub use service::{
    App, AppBuilder, CodecError, JsonClient, JsonResponse, Service, serve_main, views,
};
pub use stateful_core::mix;
pub use stateful_macros::{Keyed, app, app_modules, lambda, transaction};
pub use storage::HistoryRetention;

#[doc = include_str!("../../docs/writing-lambdas.md")]
pub mod guide {}

/// Everything a module of lambdas usually needs.
pub mod prelude {
    pub use crate::sdk::{CallError, Ctx, Keyed, Rejection};
    pub use futures_util::join;
    pub use serde::{Deserialize, Serialize};
    pub use stateful_macros::{Keyed, app, app_modules, lambda, transaction};
}
