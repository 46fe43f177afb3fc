//! The exchange area between a handler's future and the engine that polls it (both on one
//! worker thread): the calls and rollbacks the handler issued, the replies that arrived, the
//! `transaction!` blocks that are open.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::contract::Outcome;
use super::error::CallError;

/// The address of one lambda instance.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Addr {
    /// Lambda id.
    pub lambda: u16,
    /// Encoded key.
    pub key: Vec<u8>,
}

/// A call issued by a handler and not yet sent.
#[derive(Debug)]
pub(crate) struct OutCall {
    pub slot: u32,
    pub lambda: u16,
    pub key: Vec<u8>,
    pub handler: u16,
    pub args: Vec<u8>,
    /// Transaction scope path at the time of the call.
    pub scope: Vec<u64>,
}

/// The answer to a call or to a rollback request.
#[derive(Debug, Clone)]
pub(crate) enum Reply {
    /// The callee finished; postcard bytes of its `Result`.
    Done(Outcome),
    /// The call failed in the runtime.
    Failed(CallError),
    /// A rollback finished on every participant.
    RolledBack,
}

/// An open `transaction!` block of an invocation.
#[derive(Debug, Default)]
pub(crate) struct Block {
    /// Block id, unique within the root.
    pub id: u64,
    /// Instances reached inside the block, from the replies of its calls.
    pub participants: Vec<Addr>,
}

/// A rollback request issued by a failed block.
#[derive(Debug)]
pub(crate) struct RollbackRequest {
    pub slot: u32,
    /// Scope path of the block: writes under it are undone.
    pub scope: Vec<u64>,
    /// Instances to roll back.
    pub participants: Vec<Addr>,
}

/// Per-invocation exchange area between a handler and the engine.
#[derive(Debug, Default)]
pub(crate) struct Io {
    pub calls: RefCell<Vec<OutCall>>,
    pub rollbacks: RefCell<Vec<RollbackRequest>>,
    pub replies: RefCell<HashMap<u32, Reply>>,
    pub next_slot: Cell<u32>,
    /// Scope path inherited from the caller (root blocks first).
    pub base_scope: Vec<u64>,
    /// Open blocks of this invocation, innermost last.
    pub blocks: RefCell<Vec<Block>>,
    /// Next block id (unique per root: seeded from the invocation id).
    pub next_block: Cell<u64>,
    /// Set when the root was wounded; every later call fails with [`CallError::Aborted`].
    pub aborted: Cell<bool>,
    /// Set when the handler panicked: its unflushed changes are dropped.
    pub failed: Cell<bool>,
    /// Set when a state value did not encode: the invocation fails with it, whatever the
    /// handler returns.
    pub failure: RefCell<Option<CallError>>,
    /// Sequence number of the request this invocation works for (names the writer of state).
    pub root: u64,
    /// How far the engine's clock of timers and TTLs is ahead of the wall clock (µs; tests
    /// step it).
    pub clock_offset_us: u64,
}

impl Io {
    pub(crate) fn slot(&self) -> u32 {
        let s = self.next_slot.get();
        self.next_slot.set(s.wrapping_add(1));
        s
    }

    /// The current scope path: base scope plus open blocks.
    pub(crate) fn scope(&self) -> Vec<u64> {
        let mut s = self.base_scope.clone();
        s.extend(self.blocks.borrow().iter().map(|b| b.id));
        s
    }

    /// Records the first failure of the invocation.
    pub(crate) fn fail_with(&self, e: CallError) {
        let mut f = self.failure.borrow_mut();
        if f.is_none() {
            *f = Some(e);
        }
    }
}
