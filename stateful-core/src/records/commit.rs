//! One epoch's commit, as the commit log holds it: every state change of the epoch, every
//! request that completed in it (with the request itself, its answer, its place in the commit
//! order and its call tree) and the messages its requests sent. It is all that recovery needs
//! to reproduce the epoch.

use serde::{Deserialize, Serialize};

use super::Record;
use super::ingress::IngressRecord;
use super::message::MessageRecord;

/// One state change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteRecord {
    /// Lambda id.
    pub lambda: u16,
    /// Key group of the key.
    pub group: u16,
    /// Encoded key.
    pub key: Vec<u8>,
    /// The new encoded value (a [`super::state`] record), `None`: the instance was deleted.
    pub value: Option<Vec<u8>>,
    /// The requests (root ids) that changed it in this epoch.
    pub writers: Vec<u64>,
}

/// A request that completed in the epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompletionEntry {
    /// The request as the gateway accepted it.
    pub request: IngressRecord,
    /// Whether the handler returned `Ok`.
    pub ok: bool,
    /// The answer: postcard of the runtime's `Result<Outcome, CallError>`.
    pub response: Vec<u8>,
    /// Position in the total order in which requests completed (a serial order consistent
    /// with every conflict: replaying in it reproduces every state).
    pub order: u64,
    /// The encoded call tree ([`super::trace::RootTrace`]); empty when traces are off.
    pub trace: Vec<u8>,
}

/// One commit of one process: an epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitRecord {
    /// The epoch (microseconds since the Unix epoch when it opened; strictly increasing).
    pub epoch: u64,
    /// The epoch of the record before it in the log (0 for the first): a gap means a missing
    /// segment.
    pub prev_epoch: u64,
    /// State changes, one per instance (its value at the end of the epoch).
    pub writes: Vec<WriteRecord>,
    /// Requests that completed in the epoch.
    pub completions: Vec<CompletionEntry>,
    /// Messages the epoch's requests sent (delivered once the epoch is durable, or when due).
    pub messages: Vec<MessageRecord>,
    /// Larger than every request sequence number handed out so far.
    pub next_seq: u64,
    /// Larger than every completion order handed out so far.
    pub next_order: u64,
}

impl Record for CommitRecord {
    const KIND: &'static str = "commit record";
    const VERSION: u8 = 1;
}
