//! `transaction!` support: a block whose state changes, here and in every instance its calls
//! reached, are undone when it ends in `Err`.
//!
//! ```text
//! enter: flush writes so far (they belong to the enclosing scope), push a Block
//! body:  calls carry the block's scope path; replies add their participants to the block
//! Ok:    pop; the participants stay reached by the enclosing block
//! Err:   ask every participant (and this instance) to undo the writes under the block's
//!        scope, wait until all answered, re-read the state, return the error
//! ```

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use super::contract::Lambda;
use super::ctx::Core;
use super::io::{Addr, Block, Io, RollbackRequest};

/// Waits for the answer to a rollback request.
struct RollbackWait<'a> {
    io: &'a Io,
    slot: u32,
}

impl Future for RollbackWait<'_> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
        if self.io.replies.borrow_mut().remove(&self.slot).is_some() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

/// Runs `body` as an atomic block: on `Err`, every state change made inside it (here and in
/// every instance its calls reached) is undone before the error is returned.
/// `ctx` is the handler context's shared part: the body borrows the context itself.
pub(crate) async fn run_transaction<L: Lambda, T, E, F>(
    ctx: std::rc::Rc<Core<L>>,
    body: F,
) -> Result<T, E>
where
    F: Future<Output = Result<T, E>>,
{
    // Writes before the block belong to the enclosing scope.
    ctx.flush();
    let io = ctx.io().clone();
    let id = io.next_block.get();
    io.next_block.set(id.wrapping_add(1));
    io.blocks.borrow_mut().push(Block {
        id,
        participants: Vec::new(),
    });
    let result = body.await;
    ctx.flush();
    let block = io.blocks.borrow_mut().pop().unwrap_or_default();
    if result.is_err() {
        let mut scope = io.scope();
        scope.push(block.id);
        let mut participants = block.participants.clone();
        participants.push(Addr {
            lambda: L::ID,
            key: ctx.key_bytes().to_vec(),
        });
        let slot = io.slot();
        io.rollbacks.borrow_mut().push(RollbackRequest {
            slot,
            scope,
            participants,
        });
        RollbackWait { io: &io, slot }.await;
        ctx.discard();
    }
    // Participants stay reached by the enclosing block (if any).
    if let Some(outer) = io.blocks.borrow_mut().last_mut() {
        outer.participants.extend(block.participants);
    }
    result
}
