//! The recorded call tree of a request, stored with its completion.

use serde::{Deserialize, Serialize};

use super::Record;

/// One invocation of a request's call tree.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceNode {
    /// Lambda id.
    pub lambda: u16,
    /// Encoded key.
    pub key: Vec<u8>,
    /// Handler index.
    pub handler: u16,
    /// Encoded arguments.
    pub args: Vec<u8>,
    /// Encoded `Result<Outcome, CallError>` of the invocation.
    pub result: Vec<u8>,
    /// `transaction!` blocks of this invocation that were rolled back.
    pub rollbacks: u32,
    /// Microseconds from start to answer.
    pub micros: u64,
    /// The calls it made, in the order their answers arrived.
    pub children: Vec<TraceNode>,
}

/// The call tree of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootTrace {
    /// Attempts it took (more than one: it was a deadlock victim and was retried).
    pub attempts: u32,
    /// The root invocation.
    pub root: TraceNode,
}

impl Record for RootTrace {
    const KIND: &'static str = "trace";
    const VERSION: u8 = 1;
}
