//! What a rescale carries besides the state: the answers kept for idempotency keys and the
//! messages not yet delivered (timers included), each to its owner in the new shape.
//!
//! ```text
//! completion with a client's idempotency key -> process idempotency_owner(key, processes')
//!                                               (new seq: the new dir numbers its own)
//! pending message                            -> the process owning its sender's key group
//!                                               (new id: old ids repeat across processes)
//! ```
//!
//! Deliveries' own completions are not carried: a pending message is either delivered (and no
//! longer pending) or not, so nothing needs their dedupe after the move.

use std::sync::Arc;

use stateful_core::keys::{idempotency_owner, key_group, worker_of};
use stateful_core::records::commit::CompletionEntry;
use stateful_core::records::message::{DELIVERY_PREFIX, MessageId, MessageRecord};

use crate::storage::{ReadError, StateStore};

/// Completions read per store call.
const PAGE: usize = 1024;

/// The answers and messages a new shape of `processes` processes (`workers` each) takes over.
#[derive(Debug, Default)]
pub(super) struct Carried {
    /// Per new process: answers of requests with a client's idempotency key.
    pub completions: Vec<Vec<CompletionEntry>>,
    /// Per new process: messages not yet delivered.
    pub messages: Vec<Vec<MessageRecord>>,
}

impl Carried {
    /// Reads them from `sources` (completed by `epoch`, the state's cut).
    pub(super) fn read(
        sources: &[Arc<dyn StateStore>],
        groups: u16,
        epoch: u64,
        (processes, workers): (usize, usize),
    ) -> Result<Carried, ReadError> {
        let mut carried = Carried {
            completions: vec![Vec::new(); processes],
            messages: vec![Vec::new(); processes],
        };
        for store in sources {
            carried.take_completions(store.as_ref(), epoch, processes)?;
            carried.take_messages(store.as_ref(), groups, epoch, (processes, workers))?;
        }
        carried.renumber(epoch);
        Ok(carried)
    }

    fn take_completions(
        &mut self,
        store: &dyn StateStore,
        epoch: u64,
        processes: usize,
    ) -> Result<(), ReadError> {
        let mut from = 0;
        loop {
            let page = store.completions_from(from, PAGE)?;
            let Some(last) = page.last() else {
                return Ok(());
            };
            from = last.request.seq + 1;
            for c in page {
                let Some(key) = c.request.idempotency_key.as_deref() else {
                    continue;
                };
                if c.epoch > epoch || key.starts_with(DELIVERY_PREFIX) {
                    continue;
                }
                let owner = idempotency_owner(key.as_bytes(), processes);
                self.completions[owner].push(CompletionEntry {
                    request: c.request,
                    ok: c.ok,
                    response: c.response,
                    order: c.order,
                    trace: c.trace,
                });
            }
        }
    }

    fn take_messages(
        &mut self,
        store: &dyn StateStore,
        groups: u16,
        epoch: u64,
        (processes, workers): (usize, usize),
    ) -> Result<(), ReadError> {
        for m in store.pending_messages()? {
            if m.id.epoch > epoch {
                continue;
            }
            let group = key_group(&m.from_key, groups);
            let owner = worker_of(group, groups, processes * workers) / workers;
            self.messages[owner].push(m);
        }
        Ok(())
    }

    /// New seqs (from 1 in each new dir, in the old completion order) and new message ids
    /// (`epoch`, the cut, and an index unique over the new dirs, oldest first; the new dirs'
    /// own messages come from later epochs).
    fn renumber(&mut self, epoch: u64) {
        for dir in &mut self.completions {
            dir.sort_by_key(|c| (c.order, c.request.seq));
            for (i, c) in dir.iter_mut().enumerate() {
                c.request.seq = i as u64 + 1;
                c.order = i as u64;
            }
        }
        let mut index = 0u32;
        for dir in &mut self.messages {
            dir.sort_by_key(|m| (m.id.epoch, m.id.index));
            for m in dir.iter_mut() {
                m.id = MessageId { epoch, index };
                index = index.wrapping_add(1);
            }
        }
    }

    /// The next seq of new dir `p`.
    pub(super) fn next_seq(&self, p: usize) -> u64 {
        self.completions.get(p).map_or(0, Vec::len) as u64 + 1
    }
}
