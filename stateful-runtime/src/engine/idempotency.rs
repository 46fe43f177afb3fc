//! Idempotency keys: a request with a key that is running makes its duplicates wait for its
//! answer; one that completed answers them with its answer; otherwise it runs.
//!
//! ```text
//! submit(key) ── running? ──▶ wait for its answer
//!             ├─ answered, not yet in the store? ──▶ that answer (kept until the store has it)
//!             ├─ completed in the store? ──▶ the stored answer
//!             └─ start it (the key counts as running until its answer is durable)
//! ```

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::sync::oneshot;

use super::config::InvokeError;
use super::handle::Response;
use crate::sdk::{CallError, Outcome};
use crate::storage::StateStore;

#[derive(Default)]
struct Table {
    /// Requests running: later duplicates wait for them.
    running: HashMap<String, Vec<oneshot::Sender<Response>>>,
    /// Answered requests whose completion the store may not have applied yet, with their
    /// epochs.
    recent: HashMap<String, (u64, Response)>,
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
        tx: oneshot::Sender<Response>,
        store: &dyn StateStore,
    ) -> Result<Join, InvokeError> {
        let mut t = self.lock();
        if let Some(waiters) = t.running.get_mut(key) {
            waiters.push(tx);
            return Ok(Join::Waiting);
        }
        if let Some((_, resp)) = t.recent.get(key) {
            return Ok(Join::Answered(tx, resp.clone()));
        }
        match store.completion_by_idempotency_key(key) {
            Ok(Some(done)) => {
                let result =
                    match postcard::from_bytes::<Result<Outcome, CallError>>(&done.response) {
                        Ok(r) => r,
                        Err(e) => Err(CallError::Codec(format!("stored response: {e}"))),
                    };
                let seq = done.request.seq;
                Ok(Join::Answered(tx, Response { seq, result }))
            }
            Ok(None) => {
                t.running.insert(key.to_owned(), Vec::new());
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
            t.recent.insert(key.to_owned(), (epoch, response.clone()));
            t.running.remove(key).unwrap_or_default()
        };
        for w in waiters {
            let _ = w.send(response.clone());
        }
    }

    /// The store has applied every epoch up to `epoch`: its answers are found there now.
    pub(crate) fn applied(&self, epoch: u64) {
        let mut t = self.lock();
        if !t.recent.is_empty() {
            t.recent.retain(|_, (e, _)| *e > epoch);
        }
    }
}
