//! The typed calls of [`TestApp::call`](super::TestApp::call): the generated client over the
//! engine's handle, answering the handler's `Result` (a refused request panics the test).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use serde::Serialize;

use crate::engine::{ExternalCall, HandleCall, InvokeError};
use crate::sdk::{CallBackend, HandlerResult};

/// The call target of [`TestApp::call`].
#[derive(Debug)]
pub struct TestCall<'t>(pub(super) HandleCall<'t>);

impl CallBackend for TestCall<'_> {
    type Future<R: HandlerResult> = TestCallFuture<R>;

    fn call<A: Serialize, R: HandlerResult>(self, handler: u16, args: &A) -> TestCallFuture<R> {
        TestCallFuture(self.0.call(handler, args))
    }
}

/// The answer of a [`TestApp::call`]: the handler's `Result`.
#[must_use = "a call's answer is lost unless waited for"]
pub struct TestCallFuture<R>(ExternalCall<R>);

impl<R> std::fmt::Debug for TestCallFuture<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCallFuture").finish_non_exhaustive()
    }
}

impl<R: HandlerResult> TestCallFuture<R> {
    /// Waits for the answer on this thread (outside an async context).
    pub fn wait(self) -> R {
        refused(self.0.wait())
    }
}

impl<R: HandlerResult> Future for TestCallFuture<R> {
    type Output = R;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<R> {
        Pin::new(&mut self.get_mut().0).poll(cx).map(refused)
    }
}

fn refused<R>(r: Result<R, InvokeError>) -> R {
    match r {
        Ok(r) => r,
        Err(e) => panic!("the engine did not take the request: {e}"),
    }
}
