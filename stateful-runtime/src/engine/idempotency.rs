//! Idempotency keys: a request with a key that is running makes its duplicates wait for its
//! answer; one that completed answers them from the store; otherwise it runs.
//!
//! ```text
//! submit(key) ── running? ──▶ wait for its answer
//!             ├─ completed in the store? ──▶ the stored answer
//!             └─ start it (the key counts as running until its completion is durable)
//! ```

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::sync::oneshot;

use super::config::InvokeError;
use super::handle::Response;
use crate::sdk::{CallError, Outcome};
use crate::storage::{ReadError, StateStore};

/// The requests with an idempotency key that are running.
pub(crate) struct Idempotency {
    running: Mutex<HashMap<String, Vec<oneshot::Sender<Response>>>>,
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
    /// The table, with `keys` running (requests being replayed at start).
    pub(crate) fn new(keys: impl IntoIterator<Item = String>) -> Self {
        Idempotency {
            running: Mutex::new(keys.into_iter().map(|k| (k, Vec::new())).collect()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Vec<oneshot::Sender<Response>>>> {
        // Every operation leaves the map consistent before it can panic.
        self.running.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Joins the request with `key`, or looks its answer up in `store`, or starts it.
    ///
    /// Under the lock: a completion is committed before its key leaves the map, so a
    /// duplicate sees either the running request or the stored answer, never neither.
    pub(crate) fn join(
        &self,
        key: &str,
        tx: oneshot::Sender<Response>,
        store: &dyn StateStore,
    ) -> Result<Join, InvokeError> {
        let mut running = self.lock();
        if let Some(waiters) = running.get_mut(key) {
            waiters.push(tx);
            return Ok(Join::Waiting);
        }
        match store.completion_by_idempotency_key(key) {
            Ok(Some(done)) => {
                let result =
                    match postcard::from_bytes::<Result<Outcome, CallError>>(&done.response) {
                        Ok(r) => r,
                        Err(e) => Err(CallError::Codec(format!("stored response: {e}"))),
                    };
                Ok(Join::Answered(
                    tx,
                    Response {
                        seq: done.seq,
                        result,
                    },
                ))
            }
            Ok(None) => {
                running.insert(key.to_owned(), Vec::new());
                Ok(Join::Start(tx))
            }
            Err(e) => Err(storage_error(e)),
        }
    }

    /// The request with `key` was not admitted after all.
    pub(crate) fn abandon(&self, key: &str) {
        self.lock().remove(key);
    }

    /// The request with `key` committed: answer the duplicates that waited.
    pub(crate) fn done(&self, key: &str, response: &Response) {
        let waiters = self.lock().remove(key).unwrap_or_default();
        for w in waiters {
            let _ = w.send(response.clone());
        }
    }
}

fn storage_error(e: ReadError) -> InvokeError {
    InvokeError::Storage(e.to_string())
}
