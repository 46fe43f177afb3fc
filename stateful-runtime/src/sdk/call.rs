//! Typed calls: the generated client of a lambda wraps a [`CallBackend`]; inside a handler the
//! backend is [`RawCall`] and a call is a [`CallFuture`] the engine resolves with the reply.

use std::fmt::Debug;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use serde::Serialize;

use super::contract::HandlerResult;
use super::error::CallError;
use super::io::{Io, OutCall, Reply};
use super::wire;

/// Where the typed client of a lambda sends its calls: a handler's context ([`RawCall`]) or,
/// outside handlers, the engine's handle.
pub trait CallBackend {
    /// What a call of a handler returning `R` gives.
    type Future<R: HandlerResult>;
    /// Calls handler `handler` with `args` (the tuple of its parameters).
    fn call<A: Serialize, R: HandlerResult>(self, handler: u16, args: &A) -> Self::Future<R>;
}

/// Something whose pending state changes must be written before a call leaves.
pub(crate) trait Flush {
    fn flush_before_call(&self);
}

/// The call target of a handler: an instance of a lambda, reached from this invocation.
pub struct RawCall<'c> {
    flush: &'c dyn Flush,
    io: &'c Rc<Io>,
    lambda: u16,
    key: Result<Vec<u8>, CallError>,
}

impl<'c> RawCall<'c> {
    pub(crate) fn new(
        flush: &'c dyn Flush,
        io: &'c Rc<Io>,
        lambda: u16,
        key: Result<Vec<u8>, CallError>,
    ) -> Self {
        RawCall {
            flush,
            io,
            lambda,
            key,
        }
    }
}

impl Debug for RawCall<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawCall")
            .field("lambda", &self.lambda)
            .finish_non_exhaustive()
    }
}

impl<'c> CallBackend for RawCall<'c> {
    type Future<R: HandlerResult> = CallFuture<'c, R>;

    fn call<A: Serialize, R: HandlerResult>(self, handler: u16, args: &A) -> CallFuture<'c, R> {
        let state = match (self.key, wire::encode("the arguments", args)) {
            (Ok(key), Ok(args)) => CallState::Unsent {
                flush: self.flush,
                call: Some((self.lambda, key, handler, args)),
            },
            (Err(e), _) | (_, Err(e)) => CallState::Failed(Some(e)),
        };
        CallFuture {
            io: self.io,
            state,
            _r: PhantomData,
        }
    }
}

enum CallState<'c> {
    Unsent {
        flush: &'c dyn Flush,
        call: Option<(u16, Vec<u8>, u16, Vec<u8>)>,
    },
    Waiting(u32),
    Failed(Option<CallError>),
    Done,
}

/// The future of a typed call; resolves to the callee's `Result` (or the runtime's failure
/// mapped through `From<CallError>`).
#[must_use = "a call does nothing unless awaited"]
pub struct CallFuture<'c, R> {
    io: &'c Rc<Io>,
    state: CallState<'c>,
    _r: PhantomData<fn() -> R>,
}

impl<R> Unpin for CallFuture<'_, R> {}

impl<R: HandlerResult> Future for CallFuture<'_, R> {
    type Output = R;
    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<R> {
        let this = self.get_mut();
        loop {
            match &mut this.state {
                CallState::Unsent { flush, call } => {
                    if this.io.aborted.get() {
                        this.state = CallState::Failed(Some(CallError::Aborted));
                        continue;
                    }
                    flush.flush_before_call();
                    let Some((lambda, key, handler, args)) = call.take() else {
                        this.state = CallState::Done;
                        continue;
                    };
                    let slot = this.io.slot();
                    let scope = this.io.scope();
                    this.io.calls.borrow_mut().push(OutCall {
                        slot,
                        lambda,
                        key,
                        handler,
                        args,
                        scope,
                    });
                    this.state = CallState::Waiting(slot);
                    return Poll::Pending;
                }
                CallState::Waiting(slot) => {
                    let Some(reply) = this.io.replies.borrow_mut().remove(slot) else {
                        return Poll::Pending;
                    };
                    this.state = CallState::Done;
                    return Poll::Ready(match reply {
                        Reply::Done(outcome) => {
                            wire::decode::<R>("the callee's result", &outcome.bytes)
                                .unwrap_or_else(R::from_call_error)
                        }
                        Reply::Failed(e) => R::from_call_error(e),
                        Reply::RolledBack => R::from_call_error(CallError::Codec(
                            "a rollback answer arrived for a call".into(),
                        )),
                    });
                }
                CallState::Failed(e) => {
                    let e = e.take().unwrap_or(CallError::Aborted);
                    this.state = CallState::Done;
                    return Poll::Ready(R::from_call_error(e));
                }
                CallState::Done => return Poll::Pending,
            }
        }
    }
}
