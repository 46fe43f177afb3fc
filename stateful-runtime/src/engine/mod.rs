//! The engine: an app's lambdas as keyed operators in a cyclic timely dataflow.
//!
//! ```text
//! Handle::invoke ─log─▶ worker channel ─▶ input[L] (epoch = unix ms) ─Pipeline─▶ operator L
//!                                                                      │  ▲
//!   every operator's output ─concat─▶ partition by target lambda ─feedback (0,+1)─Exchange(worker)
//!   every operator's ack output (holds the pending commit epoch) ─leave─▶ probe
//! ```
//!
//! - [`instance`]: what one lambda does on one worker: state table, lock table (strict 2PL per
//!   root, wound-wait), invocations polled as futures, undo logs, root coordination.
//! - [`worker`]: the dataflow, the stash of later epochs, commit epochs and the driver loop
//!   that advances epochs and releases responses once their epoch is durable.
//! - [`runtime`]: starting, the in-process [`Handle`] to invoke handlers, shutdown.

pub mod cluster;
pub(crate) mod commit;
pub(crate) mod instance;
pub mod runtime;
pub(crate) mod worker;

use serde::{Deserialize, Serialize};

use crate::lambda::{CallError, Lambda, Outcome};

pub use runtime::{
    Config, Durability, Handle, HistoryRetention, InvokeError, JsonResponse, Metrics,
    OperatorMetrics, Response, Runtime, StartError,
};

/// The address of one lambda instance.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Addr {
    /// Lambda id.
    pub lambda: u16,
    /// Encoded key.
    pub key: Vec<u8>,
}

/// One attempt of one root invocation (a request and its whole call tree).
///
/// `root` is the request's ingress sequence number: smaller is older. Wound-wait uses it as
/// the age, and a retried attempt keeps it, so a retried request only gets older.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(crate) struct Txn {
    pub root: u64,
    pub attempt: u32,
    /// Where the root coordinator lives.
    pub worker: u32,
    pub lambda: u16,
}

/// Where the result of a call goes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum ReplyTo {
    /// To the client: this invocation is the root. `ingress` is the worker whose gateway
    /// accepted the request: it holds the client's responder and records the completion.
    Root {
        idempotency_key: Option<String>,
        ingress: u32,
    },
    /// To a suspended invocation.
    Caller {
        worker: u32,
        lambda: u16,
        inv: u64,
        slot: u32,
    },
}

/// A call of one handler of one instance.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Call {
    pub txn: Txn,
    pub key: Vec<u8>,
    pub handler: u16,
    pub args: Vec<u8>,
    /// Transaction scope path the call was made in.
    pub scope: Vec<u64>,
    pub reply: ReplyTo,
}

/// One invocation of a request's call tree, as recorded for `trace`.
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

/// What travels between operators.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum Body {
    Call(Call),
    Reply {
        inv: u64,
        slot: u32,
        result: Result<Outcome, CallError>,
        participants: Vec<Addr>,
        trace: Option<Box<TraceNode>>,
    },
    /// Undo the writes of `txn` at `key` made under `scope`, then ack.
    Rollback {
        txn: Txn,
        key: Vec<u8>,
        scope: Vec<u64>,
        ack_worker: u32,
        ack_lambda: u16,
        inv: u64,
        slot: u32,
    },
    RollbackAck {
        inv: u64,
        slot: u32,
    },
    /// The root attempt ended: keep (commit) or undo its writes at `key`, then unlock.
    Release {
        txn: Txn,
        key: Vec<u8>,
        commit: bool,
    },
    /// To a root coordinator: an older request needs a lock this attempt holds.
    Wound {
        txn: Txn,
    },
    /// Broadcast: this attempt is aborted; fail its waiting and future calls.
    Wounded {
        txn: Txn,
    },
    /// A root that ended on another worker than the one that accepted its request (a cluster
    /// process): record the completion and release the response there.
    Completed(Box<RemoteCompletion>),
}

/// What travels in [`Body::Completed`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RemoteCompletion {
    /// The request's sequence number in its ingress log.
    pub seq: u64,
    pub idempotency_key: Option<String>,
    pub result: Result<Outcome, CallError>,
    pub order: u64,
    pub trace: Vec<u8>,
}

/// A message with its destination operator instance.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Msg {
    pub worker: u32,
    pub lambda: u16,
    pub body: Body,
}

/// The per-worker, type-erased part of one lambda (see [`instance`]).
pub trait LambdaRuntime {
    /// Prepares the instance for worker `worker` (called once per worker).
    #[doc(hidden)]
    fn init(&mut self, env: instance::Env);
    /// Handles one message; `cap` is the capability it arrived with.
    #[doc(hidden)]
    fn handle(&mut self, work: instance::Work, cap: &instance::Cap<'_>, fx: &mut instance::Effects);
    /// Takes the changes since the last snapshot (all of them belong to committed roots).
    #[doc(hidden)]
    fn snapshot(
        &mut self,
        epoch: u64,
    ) -> (Vec<crate::store::StateWrite>, Vec<crate::store::Completion>);
    /// Calls waiting in lock queues now.
    #[doc(hidden)]
    fn waiting(&self) -> usize;
    /// The lock table and the roots coordinated here, for a stall report.
    #[doc(hidden)]
    fn describe(&self) -> String {
        String::new()
    }
}

pub(crate) fn lambda_runtime<L: Lambda>() -> Box<dyn LambdaRuntime> {
    Box::new(instance::Instance::<L>::new())
}
