//! Admission: a request is checked, deduplicated by its idempotency key, bounded by the
//! in-flight limit, logged (its sequence number) and handed to the worker of its key.
//!
//! ```text
//! submit ─ stopping? ─ known target? ─ idempotency ─ in-flight < max ─ log ─ channel + unpark
//!          503          404             wait/answer   503 (Overloaded)  500   503 (full)
//! ```

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::Thread;

use tokio::sync::oneshot;

use super::config::InvokeError;
use super::handle::{Handle, Response};
use super::idempotency::{Idempotency, Join};
use crate::storage::ingress::{IngressLog, NewRecord};

/// A request on its way to a worker.
pub(crate) struct Request {
    pub seq: u64,
    /// When the request was accepted (unix ms): it enters the dataflow at an epoch no earlier.
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
    /// The ingress log (durable runtimes); in memory, seqs come from `next_seq`.
    pub ingress: Option<Arc<IngressLog>>,
    pub next_seq: AtomicU64,
    pub idempotency: Idempotency,
    /// One channel per local worker, and the worker threads to wake.
    pub senders: Vec<SyncSender<Request>>,
    pub threads: Mutex<Vec<Option<Thread>>>,
}

impl Admission {
    /// Wakes local worker `w`.
    pub(crate) fn unpark(&self, w: usize) {
        if let Ok(ts) = self.threads.lock()
            && let Some(Some(t)) = ts.get(w)
        {
            t.unpark();
        }
    }

    /// A request left the engine (answered or refused after being counted).
    pub(crate) fn leave(&self) {
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Handle {
    /// Submits a request: handler `handler` of instance `key` (encoded) of lambda `lambda`
    /// with encoded arguments. The receiver yields the response once it is durable.
    pub fn submit(
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
        if usize::from(handler) >= entry.handlers.len() {
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
        match shared
            .admission
            .idempotency
            .join(k, tx, shared.store.as_ref())?
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
        let seq = match &adm.ingress {
            Some(log) => log
                .append(NewRecord {
                    timestamp_ms: at_ms,
                    lambda,
                    key: key.clone(),
                    handler,
                    args: args.clone(),
                    idempotency_key: idempotency_key.clone(),
                })
                .map_err(|e| {
                    adm.leave();
                    InvokeError::Log(e.to_string())
                })?,
            None => adm.next_seq.fetch_add(1, Ordering::Relaxed),
        };
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
        adm.unpark(w);
        Ok(())
    }
}
