//! The in-process handle of a running engine: submit encoded requests, or call handlers with
//! the same typed clients handlers use (`handle.call::<Stock>(&key).subtract(2).await`).
//!
//! ```text
//! Handle::submit ── idempotency ── seq ── worker channel + unpark ──▶ dataflow
//!        ▲                                                                    │
//!        └──────── oneshot: released once the request's epoch is committed ◀──┘
//! ```

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use serde::Serialize;
use tokio::sync::oneshot;

use super::config::{Durability, InvokeError};
use super::metrics::Metrics;
use super::program::Program;
use super::runtime::Shared;
use crate::sdk::{CallBackend, CallError, HandlerResult, Lambda, Outcome, wire};
use crate::storage::StateStore;

/// The answer to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Ingress sequence number of the request.
    pub seq: u64,
    /// The handler's encoded result, or why the runtime could not produce one.
    pub result: Result<Outcome, CallError>,
}

impl Response {
    /// The answer of a request the runtime could not finish before it stopped.
    pub(crate) fn stopped() -> Self {
        Response {
            seq: 0,
            result: Err(CallError::Stopped),
        }
    }
}

/// Invokes handlers of a running engine; cheap to clone, usable from any thread.
#[derive(Clone)]
pub struct Handle {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle")
            .field("app", &self.shared.program.name())
            .finish_non_exhaustive()
    }
}

impl Handle {
    /// The app this engine runs.
    pub fn program(&self) -> &Arc<Program> {
        &self.shared.program
    }

    /// The state store (read-only use: inspection), once it holds every epoch whose answers
    /// may have been released when this is called (it is materialised from the commit log
    /// behind the answers; this waits for it, up to 10 s).
    pub fn store(&self) -> &Arc<dyn StateStore> {
        let acknowledged = self.shared.acknowledged_epoch();
        if !self
            .shared
            .materializer
            .wait_applied(acknowledged, std::time::Duration::from_secs(10))
        {
            tracing::warn!(
                epoch = acknowledged,
                "the state store is more than 10 s behind the commit log; reading it anyway"
            );
        }
        &self.shared.store
    }

    /// This process's place in a cluster (`None`: alone).
    pub fn cluster(&self) -> Option<&super::cluster::ClusterConfig> {
        self.shared.config.cluster.as_ref()
    }

    /// The data dir (durable runtimes only).
    pub fn data_dir(&self) -> Option<&std::path::Path> {
        match self.shared.config.durability {
            Durability::Fsync | Durability::ProcessCrash => self.shared.config.data_dir.as_deref(),
            Durability::None => None,
        }
    }

    /// What start-up recovered.
    pub fn recovered(&self) -> super::runtime::Recovered {
        self.shared.recovered
    }

    /// Key groups of the data dir.
    pub fn key_groups(&self) -> u16 {
        self.shared.placement.groups
    }

    /// Engine counters.
    pub fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }

    /// Requests currently in flight.
    pub fn in_flight(&self) -> usize {
        self.shared.admission.in_flight.load(Ordering::Relaxed)
    }

    /// A typed call of a handler of instance `key` of lambda `T`, from outside any handler:
    /// `handle.call::<Stock>(&key).subtract(2).await` gives `Ok(the handler's result)`, or why
    /// the request was not accepted or answered.
    pub fn call<T: Lambda>(&self, key: &T::Key) -> T::Client<HandleCall<'_>> {
        T::client(HandleCall::of::<T>(self, key))
    }

    /// The next invocation of `T`'s handler `handler` fails with `fault` (tests).
    pub(crate) fn inject<T: Lambda>(
        &self,
        handler: &str,
        fault: super::Fault,
    ) -> Result<(), InvokeError> {
        let idx = T::HANDLERS
            .iter()
            .position(|h| h.name == handler)
            .and_then(|i| u16::try_from(i).ok())
            .ok_or_else(|| InvokeError::UnknownHandler {
                lambda: T::NAME.to_owned(),
                handler: handler.to_owned(),
            })?;
        self.shared.faults.inject(T::ID, idx, fault);
        Ok(())
    }

    /// What the postman has to do (tests).
    pub(crate) fn mail(&self) -> &super::postman::MailStatus {
        &self.shared.mail
    }

    /// Moves the clock of timers and TTLs forward (tests).
    pub(crate) fn advance_clock(&self, by: std::time::Duration) {
        self.shared
            .now
            .advance(u64::try_from(by.as_micros()).unwrap_or(u64::MAX));
    }
}

impl<'h> HandleCall<'h> {
    /// The target of a call of instance `key` of lambda `T` (for other backends on `Handle`).
    pub(crate) fn of<T: Lambda>(handle: &'h Handle, key: &T::Key) -> Self {
        HandleCall {
            handle,
            lambda: T::ID,
            name: T::NAME,
            key: wire::encode("the key", key),
        }
    }
}

/// The call target of [`Handle::call`].
pub struct HandleCall<'h> {
    handle: &'h Handle,
    lambda: u16,
    name: &'static str,
    key: Result<Vec<u8>, CallError>,
}

impl std::fmt::Debug for HandleCall<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HandleCall")
            .field("lambda", &self.name)
            .finish_non_exhaustive()
    }
}

impl CallBackend for HandleCall<'_> {
    type Future<R: HandlerResult> = ExternalCall<R>;

    fn call<A: Serialize, R: HandlerResult>(self, handler: u16, args: &A) -> ExternalCall<R> {
        let submitted = self.submit(handler, args);
        ExternalCall {
            state: match submitted {
                Ok(rx) => ExternalState::Waiting(rx),
                Err(e) => ExternalState::Failed(Some(e)),
            },
            _r: PhantomData,
        }
    }
}

impl HandleCall<'_> {
    fn submit<A: Serialize>(
        self,
        handler: u16,
        args: &A,
    ) -> Result<oneshot::Receiver<Response>, InvokeError> {
        let same = self
            .handle
            .program()
            .lambda(self.lambda)
            .is_some_and(|l| l.name == self.name);
        if !same {
            return Err(InvokeError::UnknownLambda(self.name.to_owned()));
        }
        let bad = |e: CallError| InvokeError::BadRequest(e.to_string());
        let key = self.key.map_err(bad)?;
        let args = wire::encode("the arguments", args).map_err(bad)?;
        self.handle.submit(self.lambda, key, handler, args, None)
    }
}

enum ExternalState {
    Waiting(oneshot::Receiver<Response>),
    Failed(Option<InvokeError>),
}

/// The future of a typed call from outside handlers: the handler's result once it is
/// durable, or why the runtime did not run it.
#[must_use = "a call's answer is lost unless awaited"]
pub struct ExternalCall<R> {
    state: ExternalState,
    _r: PhantomData<fn() -> R>,
}

impl<R> Unpin for ExternalCall<R> {}

impl<R: HandlerResult> Future for ExternalCall<R> {
    type Output = Result<R, InvokeError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        match &mut this.state {
            ExternalState::Failed(e) => {
                Poll::Ready(Err(e.take().unwrap_or(InvokeError::ShuttingDown)))
            }
            ExternalState::Waiting(rx) => match Pin::new(rx).poll(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(Err(_)) => Poll::Ready(Err(InvokeError::ShuttingDown)),
                Poll::Ready(Ok(resp)) => Poll::Ready(Ok(match resp.result {
                    Ok(o) => {
                        wire::decode::<R>("the result", &o.bytes).unwrap_or_else(R::from_call_error)
                    }
                    Err(e) => R::from_call_error(e),
                })),
            },
        }
    }
}

impl<R> ExternalCall<R> {
    /// Waits for the answer on this thread (not inside an async context).
    pub fn wait(self) -> Result<R, InvokeError>
    where
        R: HandlerResult,
    {
        match self.state {
            ExternalState::Failed(e) => Err(e.unwrap_or(InvokeError::ShuttingDown)),
            ExternalState::Waiting(rx) => {
                let resp = rx.blocking_recv().map_err(|_| InvokeError::ShuttingDown)?;
                Ok(match resp.result {
                    Ok(o) => {
                        wire::decode::<R>("the result", &o.bytes).unwrap_or_else(R::from_call_error)
                    }
                    Err(e) => R::from_call_error(e),
                })
            }
        }
    }
}
