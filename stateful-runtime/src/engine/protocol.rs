//! The message protocol between the operators of the dataflow: one file, every message.
//!
//! ```text
//! Call ──▶ callee          Reply ──▶ caller                  (a call edge and its reply)
//! Release / Rollback ──▶ participant   RollbackAck ──▶ block owner
//! Wound ──▶ root coordinator   Wounded ──▶ every operator the root reaches
//! Completed ──▶ the ingress worker (same lambda)
//! ```
//!
//! Every message names the worker it is for ([`Msg::worker`]): the exchange routes by it. The
//! lambda it is for picks the channel (see `dataflow`).

use serde::{Deserialize, Serialize};
use stateful_core::records::ingress::IngressRecord;
use stateful_core::records::trace::TraceNode;

pub use crate::sdk::Addr;
use crate::sdk::{CallError, Outcome};

/// The id of a root invocation (a request and its whole call tree): unique across the ingress
/// logs of a cluster, and ordered like the requests' ages (smaller is older).
///
/// `id = seq * processes + process`: request `seq` of process `process`'s log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RootId(pub u64);

impl RootId {
    /// The root of request `seq` logged by `process` of `processes`.
    pub fn new(seq: u64, process: usize, processes: usize) -> RootId {
        RootId(seq * processes.max(1) as u64 + process as u64)
    }

    /// The request's sequence number in its ingress log.
    pub fn seq(self, processes: usize) -> u64 {
        self.0 / processes.max(1) as u64
    }
}

/// One attempt of one root invocation.
///
/// Wound-wait uses the root id as the age, and a retried attempt keeps it, so a retried
/// request only gets older.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Txn {
    /// The root.
    pub root: RootId,
    /// Attempt number (0 first).
    pub attempt: u32,
    /// Where the root coordinator lives.
    pub worker: u32,
    /// The lambda of the root coordinator.
    pub lambda: u16,
}

impl Txn {
    /// `(root, attempt)`: ordered by age, then attempt.
    pub fn age(&self) -> (RootId, u32) {
        (self.root, self.attempt)
    }
}

/// Where the result of a call goes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ReplyTo {
    /// To the client: this invocation is the root. `ingress` is the worker whose gateway
    /// accepted the request: it holds the client's responder and records the completion.
    Root {
        /// The client's idempotency key.
        idempotency_key: Option<String>,
        /// The ingress worker.
        ingress: u32,
        /// When the gateway accepted the request (unix ms).
        at_ms: u64,
    },
    /// To a suspended invocation.
    Caller {
        /// The caller's worker.
        worker: u32,
        /// The caller's lambda.
        lambda: u16,
        /// The caller's invocation.
        inv: u64,
        /// The slot the caller waits on.
        slot: u32,
    },
}

/// A call of one handler of one instance.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Call {
    /// The root attempt it works for.
    pub txn: Txn,
    /// Encoded key.
    pub key: Vec<u8>,
    /// Handler index.
    pub handler: u16,
    /// Encoded arguments.
    pub args: Vec<u8>,
    /// Transaction scope path the call was made in.
    pub scope: Vec<u64>,
    /// Where the answer goes.
    pub reply: ReplyTo,
}

/// What travels between operators.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Body {
    /// Run a handler.
    Call(Call),
    /// The answer to a call.
    Reply {
        /// The caller's invocation.
        inv: u64,
        /// The slot it waits on.
        slot: u32,
        /// The callee's encoded result, or the runtime's failure.
        result: Result<Outcome, CallError>,
        /// Instances the call reached (for locks and rollbacks).
        participants: Vec<Addr>,
        /// The callee's call tree (when traces are recorded).
        trace: Option<Box<TraceNode>>,
        /// In a cluster: the order counters of the callee's process and of its own callees'
        /// (the largest; each is one past every order released there): a Lamport clock, so
        /// that the root's order comes after every conflicting one. 0 in one process, where
        /// the order counter is shared.
        clock: u64,
    },
    /// Undo the writes of `txn` at `key` made under `scope`, then ack.
    Rollback {
        /// The attempt.
        txn: Txn,
        /// Encoded key.
        key: Vec<u8>,
        /// Scope path of the failed block.
        scope: Vec<u64>,
        /// Where the ack goes.
        ack_worker: u32,
        /// The lambda of the block owner.
        ack_lambda: u16,
        /// The block owner's invocation.
        inv: u64,
        /// Its slot.
        slot: u32,
    },
    /// A participant undid its part of a rollback.
    RollbackAck {
        /// The block owner's invocation.
        inv: u64,
        /// Its slot.
        slot: u32,
    },
    /// The root attempt ended: keep (commit) or undo its writes at `key`, then unlock.
    Release {
        /// The attempt.
        txn: Txn,
        /// Encoded key.
        key: Vec<u8>,
        /// Keep (true) or undo the attempt's writes.
        commit: bool,
        /// The request's completion order (0 for an undone attempt): in a cluster the owner's
        /// order counter moves past it, so that a later conflicting request orders after it.
        order: u64,
    },
    /// To a root coordinator: an older request needs a lock this attempt holds.
    Wound {
        /// The attempt to abort.
        txn: Txn,
    },
    /// To every operator the root reaches: this attempt is aborted; fail its waiting and
    /// future calls.
    Wounded {
        /// The aborted attempt.
        txn: Txn,
    },
    /// A root that ended on another worker than the one that accepted its request (a cluster
    /// process): record the completion and release the response there.
    Completed(Box<RemoteCompletion>),
}

/// What travels in [`Body::Completed`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RemoteCompletion {
    /// The request, as the gateway accepted it.
    pub request: IngressRecord,
    /// The answer.
    pub result: Result<Outcome, CallError>,
    /// Its place in the completion order.
    pub order: u64,
    /// The encoded call tree (empty when traces are off).
    pub trace: Vec<u8>,
}

/// A message with its destination operator instance.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Msg {
    /// Destination worker (global index).
    pub worker: u32,
    /// Destination lambda.
    pub lambda: u16,
    /// The message.
    pub body: Body,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_ids_are_unique_across_processes_and_ordered_by_seq() {
        let a = RootId::new(7, 0, 3);
        let b = RootId::new(7, 2, 3);
        let c = RootId::new(8, 0, 3);
        assert!(a < b && b < c);
        assert_eq!((a.seq(3), b.seq(3), c.seq(3)), (7, 7, 8));
        assert_eq!(RootId::new(5, 0, 1), RootId(5));
    }
}

/// The encoding of a request's answer, as completions store it and traces record it.
///
/// It cannot fail: postcard writes the booleans, integers, byte vectors and strings of
/// [`Outcome`] and [`CallError`] without error (the test below covers every variant).
pub(crate) fn response_bytes(r: &Result<Outcome, CallError>) -> Vec<u8> {
    postcard::to_stdvec(r).unwrap_or_default()
}

/// The encoding of a call tree, as completions store it (a versioned record).
pub(crate) fn trace_bytes(t: &stateful_core::records::trace::RootTrace) -> Vec<u8> {
    stateful_core::records::encode(t).unwrap_or_default()
}

#[cfg(test)]
mod encoding_tests {
    use super::*;

    #[test]
    fn every_answer_encodes_and_decodes() {
        let answers: Vec<Result<Outcome, CallError>> = vec![
            Ok(Outcome {
                ok: true,
                bytes: vec![1, 2, 3],
            }),
            Err(CallError::Panicked("p".into())),
            Err(CallError::Aborted),
            Err(CallError::Codec("c".into())),
            Err(CallError::Deadlocked(64)),
            Err(CallError::NoSuchTarget("t".into())),
            Err(CallError::Storage("s".into())),
            Err(CallError::Stopped),
        ];
        for a in answers {
            let bytes = response_bytes(&a);
            assert!(!bytes.is_empty());
            assert_eq!(
                postcard::from_bytes::<Result<Outcome, CallError>>(&bytes),
                Ok(a)
            );
        }
    }
}
