//! Admission: a request is checked, deduplicated by its idempotency key, bounded by the
//! in-flight limit, numbered and handed to the worker of its key. It is written to disk with
//! its epoch's commit, once it has run (a request lost with a crash was never answered).
//!
//! ```text
//! submit ─ stopping? ─ known target? ─ idempotency ─ in-flight < max ─ seq ─ channel + wake
//!          503          404             wait/answer   503 (Overloaded)        503 (full)
//!                                       422 (the key names another request)
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};

use stateful_core::records::message::DELIVERY_PREFIX;
use tokio::sync::oneshot;

use super::clock::EpochClock;
use super::config::InvokeError;
use super::handle::{Handle, Response};
use super::idempotency::{Fingerprint, Idempotency, Join};

/// A request on its way to a worker.
pub(crate) struct Request {
    pub seq: u64,
    /// When the request was accepted (unix ms).
    pub at_ms: u64,
    pub lambda: u16,
    pub key: Vec<u8>,
    pub handler: u16,
    pub args: Vec<u8>,
    pub idempotency_key: Option<String>,
    pub responder: Option<oneshot::Sender<Response>>,
}

/// The admission state shared by every handle.
pub(crate) struct Admission {
    pub in_flight: AtomicUsize,
    pub stopping: AtomicBool,
    pub max_in_flight: usize,
    /// The next request's sequence number.
    pub next_seq: Arc<AtomicU64>,
    pub idempotency: Arc<Idempotency>,
    /// One channel per local worker.
    pub senders: Vec<SyncSender<Request>>,
    /// Wakes the workers.
    pub clock: Arc<EpochClock>,
}

impl Admission {
    /// A request left the engine (answered or refused after being counted).
    pub(crate) fn leave(&self) {
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Handle {
    /// Submits a request: handler `handler` of instance `key` (encoded) of lambda `lambda`
    /// with encoded arguments. The receiver yields the response once it is durable. An
    /// idempotency key may not start with the prefix the engine's message deliveries use.
    pub fn submit(
        &self,
        lambda: u16,
        key: Vec<u8>,
        handler: u16,
        args: Vec<u8>,
        idempotency_key: Option<String>,
    ) -> Result<oneshot::Receiver<Response>, InvokeError> {
        if let Some(k) = &idempotency_key
            && k.starts_with(DELIVERY_PREFIX)
        {
            return Err(InvokeError::BadRequest(format!(
                "idempotency keys starting with `{DELIVERY_PREFIX}` are the engine's own"
            )));
        }
        if handler == super::load::LOAD_HANDLER {
            return Err(InvokeError::UnknownHandler {
                lambda: lambda.to_string(),
                handler: handler.to_string(),
            });
        }
        self.submit_internal(lambda, key, handler, args, idempotency_key)
    }

    /// [`Handle::submit`] with any idempotency key (the postman's deliveries).
    pub(crate) fn submit_internal(
        &self,
        lambda: u16,
        key: Vec<u8>,
        handler: u16,
        args: Vec<u8>,
        idempotency_key: Option<String>,
    ) -> Result<oneshot::Receiver<Response>, InvokeError> {
        let shared = &self.shared;
        if shared.admission.stopping.load(Ordering::Acquire) {
            return Err(InvokeError::ShuttingDown);
        }
        let entry = shared
            .program
            .lambda(lambda)
            .ok_or_else(|| InvokeError::UnknownLambda(lambda.to_string()))?;
        let load = handler == super::load::LOAD_HANDLER;
        if usize::from(handler) >= entry.handlers.len() && !load {
            return Err(InvokeError::UnknownHandler {
                lambda: entry.name.to_owned(),
                handler: handler.to_string(),
            });
        }
        let (tx, rx) = oneshot::channel();
        let Some(k) = &idempotency_key else {
            self.admit(lambda, key, handler, args, None, tx)?;
            return Ok(rx);
        };
        let request = Fingerprint::of(lambda, &key, handler, &args);
        match shared
            .admission
            .idempotency
            .join(k, request, tx, shared.store.as_ref())?
        {
            Join::Waiting => Ok(rx),
            Join::Answered(tx, resp) => {
                let _ = tx.send(resp);
                Ok(rx)
            }
            Join::Start(tx) => {
                if let Err(e) = self.admit(lambda, key, handler, args, idempotency_key.clone(), tx)
                {
                    shared.admission.idempotency.abandon(k);
                    return Err(e);
                }
                Ok(rx)
            }
        }
    }

    /// A bulk load's request (see `engine::load`): `key` is the first of its keys, `args` a
    /// `LoadChunk` whose keys all have the same owner.
    pub(crate) fn submit_load(
        &self,
        lambda: u16,
        key: Vec<u8>,
        args: Vec<u8>,
        idempotency_key: Option<String>,
    ) -> Result<oneshot::Receiver<Response>, InvokeError> {
        self.submit_internal(
            lambda,
            key,
            super::load::LOAD_HANDLER,
            args,
            idempotency_key,
        )
    }

    /// Logs the request and hands it to the worker that takes its key.
    fn admit(
        &self,
        lambda: u16,
        key: Vec<u8>,
        handler: u16,
        args: Vec<u8>,
        idempotency_key: Option<String>,
        tx: oneshot::Sender<Response>,
    ) -> Result<(), InvokeError> {
        let shared = &self.shared;
        let adm = &shared.admission;
        if shared.placement.processes > 1 && super::cluster::has_failed() {
            return Err(InvokeError::ClusterFailed);
        }
        let admitted = adm.in_flight.fetch_add(1, Ordering::AcqRel);
        if admitted >= adm.max_in_flight {
            adm.leave();
            return Err(InvokeError::Overloaded(admitted));
        }
        let at_ms = crate::storage::unix_ms();
        let seq = adm.next_seq.fetch_add(1, Ordering::AcqRel);
        shared.metrics.requests.fetch_add(1, Ordering::Relaxed);
        let w = shared.placement.local_worker(&key);
        let req = Request {
            seq,
            at_ms,
            lambda,
            key,
            handler,
            args,
            idempotency_key,
            responder: Some(tx),
        };
        match adm.senders[w].try_send(req) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                adm.leave();
                return Err(InvokeError::Overloaded(adm.max_in_flight));
            }
            Err(TrySendError::Disconnected(_)) => {
                adm.leave();
                // A worker lost with its peer process is gone too.
                if shared.placement.processes > 1 && super::cluster::has_failed() {
                    return Err(InvokeError::ClusterFailed);
                }
                return Err(InvokeError::ShuttingDown);
            }
        }
        adm.clock.wake(w);
        Ok(())
    }
}
