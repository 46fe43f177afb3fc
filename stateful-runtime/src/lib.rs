//! `stateful`: stateful functions compiled into dataflow graphs.
//!
//! Users depend on this crate alone: it re-exports the macros and a [`prelude`].

pub mod app;
pub mod codec;
pub mod engine;
pub mod lambda;
#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

pub use app::{App, LambdaEntry};
pub use lambda::{CallError, CallFuture, Ctx, HandlerResult, Key, Keyed, Lambda, Rejection, State};
pub use stateful_macros::{Keyed, app, lambda, transaction};

pub use futures_util::join;

#[doc = include_str!("../../docs/writing-lambdas.md")]
pub mod guide {}

/// Everything a module of lambdas usually needs.
pub mod prelude {
    pub use crate::lambda::{CallError, Ctx, Keyed, Rejection};
    pub use futures_util::join;
    pub use serde::{Deserialize, Serialize};
    pub use stateful_macros::{Keyed, app, lambda, transaction};
}
