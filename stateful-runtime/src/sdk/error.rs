//! The errors handler code meets: a call that failed in the runtime, a ready-made rejection,
//! and why an invocation could not start.

use serde::{Deserialize, Serialize};

/// Why a call failed for a reason other than the callee's own answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// The callee panicked; the message is the panic payload.
    #[error("the callee panicked: {0}")]
    Panicked(String),
    /// The request was chosen as a deadlock victim (or its transaction was aborted) and will be
    /// retried by the runtime; code seeing this should return.
    #[error("the request was aborted by the runtime and will be retried")]
    Aborted,
    /// A key, arguments, a result or a state value could not be encoded or decoded.
    #[error("could not encode or decode a value: {0}")]
    Codec(String),
    /// The request was a deadlock victim too many times in a row and was given up.
    #[error("gave up after {0} attempts as a deadlock victim; retry later")]
    Deadlocked(u32),
    /// The target lambda or handler does not exist.
    #[error("no such lambda or handler: {0}")]
    NoSuchTarget(String),
    /// The instance does not exist (a `missing = not_found` lambda's handler that does not
    /// create).
    #[error("{0}")]
    NotFound(String),
    /// The state store could not be read.
    #[error("the state store could not be read: {0}")]
    Storage(String),
    /// The runtime stopped before the request was answered; it may be retried.
    #[error("the runtime stopped before answering; retry")]
    Stopped,
    /// A failure a test injected (`testing::TestApp::fail_next`).
    #[error("injected failure: {0}")]
    Injected(String),
}

/// A ready-made rejection type for handlers that need no error enum of their own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum Rejection {
    /// The handler rejected the request with this message.
    #[error("{0}")]
    Rejected(String),
    /// A call made by the handler failed in the runtime.
    #[error(transparent)]
    Call(#[from] CallError),
}

impl Rejection {
    /// A rejection with a message.
    pub fn new(msg: impl Into<String>) -> Self {
        Rejection::Rejected(msg.into())
    }
}

/// Why an invocation could not be started.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DispatchError {
    /// The lambda has no handler with this index or name.
    #[error("lambda `{lambda}` has no handler `{handler}`")]
    UnknownHandler {
        /// Lambda name.
        lambda: String,
        /// Handler name or index.
        handler: String,
    },
    /// The arguments did not decode as the handler's parameter types.
    #[error("arguments do not match the handler's parameters: {0}")]
    BadArguments(String),
    /// The key did not decode as the lambda's key type.
    #[error("the key does not match the lambda's key type: {0}")]
    BadKey(String),
}
