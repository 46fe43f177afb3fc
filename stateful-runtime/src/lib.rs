//! `stateful`: stateful functions compiled into dataflow graphs.
//!
//! Users depend on this crate alone: it re-exports the macros and a [`prelude`].

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;
pub mod app;
pub mod cli;
pub mod codec;
pub mod engine;
pub mod gateway;
pub mod ingress;
pub mod inspect;
pub mod lambda;
mod launcher;
pub mod replay;
pub mod rescale;
pub mod store;

pub use app::{App, LambdaEntry};
pub use cli::{Service, serve_main};
pub use engine::{
    Config, Durability, Handle, HistoryRetention, InvokeError, JsonResponse, Response, Runtime,
};
pub use futures_util::join;
pub use lambda::{CallError, CallFuture, Ctx, HandlerResult, Key, Keyed, Lambda, Rejection, State};
pub use stateful_macros::{Keyed, app, lambda, transaction};

#[doc = include_str!("../../docs/writing-lambdas.md")]
pub mod guide {}

/// Everything a module of lambdas usually needs.
pub mod prelude {
    pub use crate::lambda::{CallError, Ctx, Keyed, Rejection};
    pub use futures_util::join;
    pub use serde::{Deserialize, Serialize};
    pub use stateful_macros::{Keyed, app, lambda, transaction};
}
