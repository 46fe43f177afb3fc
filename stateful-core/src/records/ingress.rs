//! A logged request: what the gateway accepted, before it runs.

use serde::{Deserialize, Serialize};

use super::Record;

/// One logged request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngressRecord {
    /// Sequence number: strictly increasing through the log, starting at 1.
    pub seq: u64,
    /// Wall-clock time the gateway accepted the request, in ms since the Unix epoch.
    pub timestamp_ms: u64,
    /// Target lambda (its id).
    pub lambda: u16,
    /// Encoded key of the target instance.
    pub key: Vec<u8>,
    /// Handler index.
    pub handler: u16,
    /// Encoded arguments (the postcard tuple of the handler's parameters).
    pub args: Vec<u8>,
    /// Idempotency key the client sent, if any.
    pub idempotency_key: Option<String>,
}

impl Record for IngressRecord {
    const KIND: &'static str = "ingress record";
    const VERSION: u8 = 1;
}
