//! A completed request as the state store keeps it: the request, its response, its place in
//! the commit order, the epoch it committed in and its call tree.

use serde::{Deserialize, Serialize};

use super::Record;
use super::ingress::IngressRecord;

/// What is stored of a completed request (its sequence number is the key it is stored under).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompletionRecord {
    /// The request as the gateway accepted it (its seq, target, arguments, idempotency key).
    pub request: IngressRecord,
    /// Whether the handler returned `Ok`.
    pub ok: bool,
    /// The response: postcard of the runtime's `Result<Outcome, CallError>`.
    pub response: Vec<u8>,
    /// Position in the total order in which requests completed.
    pub order: u64,
    /// The commit epoch it completed in.
    pub epoch: u64,
    /// The encoded call tree ([`super::trace::RootTrace`]); empty when traces are off.
    pub trace: Vec<u8>,
}

impl Record for CompletionRecord {
    const KIND: &'static str = "completion record";
    const VERSION: u8 = 2;
}
