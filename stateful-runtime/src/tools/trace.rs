//! One request's recorded call tree, with each participant's committed state before and after
//! the commit epoch of the request.

use stateful_core::keys::key_group;
use stateful_core::records::decode;
use stateful_core::records::trace::{RootTrace, TraceNode};

use crate::storage::{ReadError, StateStore, epoch_time};

/// Why a request cannot be traced.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TraceError {
    /// No completed request has this sequence number.
    #[error(
        "request {0} is unknown or did not complete (see the `log` command for request numbers)"
    )]
    UnknownRequest(u64),
    /// The request completed, but its call tree was not recorded.
    #[error("request {0} completed, but no trace was recorded for it")]
    NotRecorded(u64),
    /// The request completed before the history horizon; its trace was compacted.
    #[error(
        "request {seq} completed before the history horizon (epoch {horizon}, {}); its trace was compacted by the retention setting",
        epoch_time(*.horizon)
    )]
    Compacted {
        /// The request.
        seq: u64,
        /// The oldest epoch still in reach.
        horizon: u64,
    },
    /// The stored trace does not decode.
    #[error("the trace of request {seq} does not decode: {message}")]
    Decode {
        /// The request.
        seq: u64,
        /// What the decoder said.
        message: String,
    },
    /// Reading failed.
    #[error(transparent)]
    Read(#[from] ReadError),
}

/// A committed state in a trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateAt {
    /// The encoded state (`None`: absent).
    Value(Option<Vec<u8>>),
    /// Before the history horizon.
    Compacted,
}

/// One invocation of the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceTree {
    /// The invocation (its `children` are in `calls`).
    pub node: TraceNode,
    /// The instance's state at the epoch before the request's commit.
    pub state_before: StateAt,
    /// The instance's state right after it.
    pub state_after: StateAt,
    /// The calls it made, in the order their answers arrived.
    pub calls: Vec<TraceTree>,
}

/// A traced request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceRecord {
    /// Its sequence number.
    pub seq: u64,
    /// The epoch it committed in.
    pub epoch: u64,
    /// Whether the handler returned `Ok`.
    pub ok: bool,
    /// Attempts it took (more than one: it was a deadlock victim and was retried).
    pub attempts: u32,
    /// The root invocation.
    pub root: TraceTree,
}

fn state_at(
    store: &dyn StateStore,
    groups: u16,
    node: &TraceNode,
    epoch: u64,
) -> Result<StateAt, ReadError> {
    match store.get_at(node.lambda, key_group(&node.key, groups), &node.key, epoch) {
        Ok(v) => Ok(StateAt::Value(v)),
        Err(ReadError::Compacted { .. }) => Ok(StateAt::Compacted),
        Err(e) => Err(e),
    }
}

fn tree(
    store: &dyn StateStore,
    groups: u16,
    epoch: u64,
    mut node: TraceNode,
) -> Result<TraceTree, ReadError> {
    let children = std::mem::take(&mut node.children);
    Ok(TraceTree {
        state_before: state_at(store, groups, &node, epoch.saturating_sub(1))?,
        state_after: state_at(store, groups, &node, epoch)?,
        calls: children
            .into_iter()
            .map(|c| tree(store, groups, epoch, c))
            .collect::<Result<_, _>>()?,
        node,
    })
}

/// The recorded call tree of request `seq`: every invocation (lambda, key, handler,
/// arguments, result), rolled-back blocks, timings, and each participant's committed state
/// before and after the commit epoch of the request (which may include other requests of the
/// same epoch).
pub fn trace(store: &dyn StateStore, groups: u16, seq: u64) -> Result<TraceRecord, TraceError> {
    let horizon = store.horizon()?;
    let compacted = TraceError::Compacted {
        seq,
        horizon: horizon.epoch,
    };
    let Some(c) = store.completion(seq)? else {
        return Err(if seq < horizon.forgotten_below_seq {
            compacted
        } else {
            TraceError::UnknownRequest(seq)
        });
    };
    if c.trace.is_empty() {
        return Err(if c.epoch < horizon.epoch {
            compacted
        } else {
            TraceError::NotRecorded(seq)
        });
    }
    let t: RootTrace = decode(&c.trace).map_err(|e| TraceError::Decode {
        seq,
        message: e.to_string(),
    })?;
    Ok(TraceRecord {
        seq,
        epoch: c.epoch,
        ok: c.ok,
        attempts: t.attempts,
        root: tree(store, groups, c.epoch, t.root)?,
    })
}
