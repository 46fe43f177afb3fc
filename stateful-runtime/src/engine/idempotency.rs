//! Idempotency keys: a request with a key that is running makes its duplicates wait for its
//! answer; one that completed answers them with its answer; otherwise it runs. A key is bound
//! to its request (target, instance, handler, arguments): the same key with another request
//! is refused, never answered with the first one's answer.
//!
//! ```text
//! submit(key, request) ── running? ──▶ same request: wait for its answer | else: refused
//!             ├─ answered, not yet in the store? ──▶ that answer (kept until the store has it)
//!             ├─ completed in the store? ──▶ the stored answer (if the same request)
//!             └─ start it (the key counts as running until its answer is durable)
//! ```

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::sync::oneshot;

use super::config::InvokeError;
use super::handle::Response;
use crate::sdk::{CallError, Outcome};
use crate::storage::StateStore;

/// What an idempotency key is bound to: a hash of the request's target, handler and
/// arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Fingerprint(u64);

impl Fingerprint {
    /// The fingerprint of handler `handler` of instance `key` of lambda `lambda` with `args`.
    pub(crate) fn of(lambda: u16, key: &[u8], handler: u16, args: &[u8]) -> Fingerprint {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (lambda, key, handler, args).hash(&mut h);
        Fingerprint(h.finish())
    }
}

#[derive(Default)]
struct Table {
    /// Requests running: later duplicates wait for them.
    running: HashMap<String, (Fingerprint, Vec<oneshot::Sender<Response>>)>,
    /// Answered requests whose completion the store may not have applied yet, with their
    /// epochs.
    recent: HashMap<String, (u64, Fingerprint, Response)>,
}

/// The requests with an idempotency key that are running or just answered.
#[derive(Default)]
pub(crate) struct Idempotency {
    table: Mutex<Table>,
}

/// What a submission with an idempotency key does.
pub(crate) enum Join {
    /// A request with the key runs: the sender waits for its answer.
    Waiting,
    /// The key's request completed: answer the sender with its answer.
    Answered(oneshot::Sender<Response>, Response),
    /// No request with the key ran: start one that answers the sender (the key now counts
    /// as running).
    Start(oneshot::Sender<Response>),
}

impl Idempotency {
    fn lock(&self) -> MutexGuard<'_, Table> {
        // Every operation leaves the table consistent before it can panic.
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Joins the request with `key`, or answers with its answer, or starts it.
    ///
    /// Under the lock: an answer is recorded in `recent` before its key leaves `running`,
    /// and leaves `recent` only once the store has it, so a duplicate always finds it.
    pub(crate) fn join(
        &self,
        key: &str,
        request: Fingerprint,
        tx: oneshot::Sender<Response>,
        store: &dyn StateStore,
    ) -> Result<Join, InvokeError> {
        let reused = || InvokeError::IdempotencyKeyReused(key.to_owned());
        let mut t = self.lock();
        if let Some((fp, waiters)) = t.running.get_mut(key) {
            if *fp != request {
                return Err(reused());
            }
            waiters.push(tx);
            return Ok(Join::Waiting);
        }
        if let Some((_, fp, resp)) = t.recent.get(key) {
            if *fp != request {
                return Err(reused());
            }
            return Ok(Join::Answered(tx, resp.clone()));
        }
        match store.completion_by_idempotency_key(key) {
            Ok(Some(done)) => {
                let r = &done.request;
                if Fingerprint::of(r.lambda, &r.key, r.handler, &r.args) != request {
                    return Err(reused());
                }
                let result =
                    match postcard::from_bytes::<Result<Outcome, CallError>>(&done.response) {
                        Ok(r) => r,
                        Err(e) => Err(CallError::Codec(format!("stored response: {e}"))),
                    };
                let seq = done.request.seq;
                Ok(Join::Answered(tx, Response { seq, result }))
            }
            Ok(None) => {
                t.running.insert(key.to_owned(), (request, Vec::new()));
                Ok(Join::Start(tx))
            }
            Err(e) => Err(InvokeError::Storage(e.to_string())),
        }
    }

    /// The request with `key` was not admitted after all.
    pub(crate) fn abandon(&self, key: &str) {
        self.lock().running.remove(key);
    }

    /// The request with `key` is durably answered in `epoch`: answer the duplicates that
    /// waited, and keep the answer until the store has applied `epoch`.
    pub(crate) fn done(&self, key: &str, response: &Response, epoch: u64) {
        let waiters = {
            let mut t = self.lock();
            let Some((fp, waiters)) = t.running.remove(key) else {
                return;
            };
            t.recent
                .insert(key.to_owned(), (epoch, fp, response.clone()));
            waiters
        };
        for w in waiters {
            let _ = w.send(response.clone());
        }
    }

    /// The store has applied every epoch up to `epoch`: its answers are found there now.
    pub(crate) fn applied(&self, epoch: u64) {
        let mut t = self.lock();
        if !t.recent.is_empty() {
            t.recent.retain(|_, (e, _, _)| *e > epoch);
        }
    }
}
