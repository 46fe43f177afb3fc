//! The request log, paged: the logged requests after a sequence number, optionally only those
//! of one lambda or instance, each with its outcome.

use std::path::Path;

use crate::sdk::{CallError, Outcome};
use crate::storage::ingress::{IngressRecord, scan_log};
use crate::storage::{ReadError, StateStore};

/// What became of a logged request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestOutcome {
    /// The handler returned `Ok`.
    Ok,
    /// The handler returned `Err` (a business rejection).
    Rejected,
    /// The runtime could not run it to completion.
    Failed,
    /// It has no completion (yet, or it was lost with a crash before its commit).
    NotCompleted,
}

impl RequestOutcome {
    /// `ok`, `rejected`, `failed` or `not completed`.
    pub fn as_str(self) -> &'static str {
        match self {
            RequestOutcome::Ok => "ok",
            RequestOutcome::Rejected => "rejected",
            RequestOutcome::Failed => "failed",
            RequestOutcome::NotCompleted => "not completed",
        }
    }
}

/// Which requests a page holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogQuery {
    /// Only requests to this lambda.
    pub lambda: Option<u16>,
    /// Only requests to this key (with `lambda`).
    pub key: Option<Vec<u8>>,
    /// Only requests with a larger sequence number.
    pub after: Option<u64>,
    /// At most this many (`None`: all).
    pub limit: Option<usize>,
}

/// One logged request with its outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// The request as logged.
    pub record: IngressRecord,
    /// What became of it.
    pub outcome: RequestOutcome,
}

/// A page of the request log at `path` (streamed, never read whole).
pub fn page(store: &dyn StateStore, path: &Path, q: &LogQuery) -> Result<Vec<LogEntry>, ReadError> {
    let mut records = Vec::new();
    if path.exists() {
        let from = q.after.map_or(0, |a| a.saturating_add(1));
        let limit = q.limit.unwrap_or(usize::MAX);
        scan_log(path, from, |r| {
            let wanted = q.lambda.is_none_or(|l| l == r.lambda)
                && q.key.as_ref().is_none_or(|k| *k == r.key);
            if wanted {
                records.push(r);
            }
            records.len() < limit
        })?;
    }
    records
        .into_iter()
        .map(|record| {
            let outcome = outcome(store, record.seq)?;
            Ok(LogEntry { record, outcome })
        })
        .collect()
}

fn outcome(store: &dyn StateStore, seq: u64) -> Result<RequestOutcome, ReadError> {
    Ok(match store.completion(seq)? {
        None => RequestOutcome::NotCompleted,
        Some(c) if c.ok => RequestOutcome::Ok,
        Some(c) => match postcard::from_bytes::<Result<Outcome, CallError>>(&c.response) {
            Ok(Ok(_)) => RequestOutcome::Rejected,
            _ => RequestOutcome::Failed,
        },
    })
}
