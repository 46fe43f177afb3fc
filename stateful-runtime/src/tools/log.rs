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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::ingress::{IngressLog, NewRecord};
    use crate::storage::{CommitBatch, CommitterId, MemoryStore};

    #[test]
    fn pages_follow_after_and_limit_and_filters_apply() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ingress.log");
        let (log, _) = IngressLog::open(&path).expect("opens");
        for i in 0..10u8 {
            log.append(NewRecord {
                timestamp_ms: 1,
                lambda: u16::from(i % 2),
                key: vec![i % 3],
                handler: 0,
                args: vec![],
                idempotency_key: None,
            })
            .expect("appends");
        }
        log.sync().expect("syncs");
        let store = MemoryStore::new();
        let c = CommitterId {
            worker: 0,
            lambda: 0,
        };
        store.recover(&[c]).expect("recovers");
        let ok = postcard::to_stdvec(&Ok::<Outcome, CallError>(Outcome {
            ok: true,
            bytes: vec![],
        }))
        .expect("encodes");
        store
            .commit(CommitBatch {
                committer: c,
                epoch: 5,
                writes: vec![],
                completed: vec![crate::storage::Completion {
                    seq: 2,
                    idempotency_key: None,
                    ok: true,
                    response: ok,
                    order: 0,
                    epoch: 0,
                    trace: vec![],
                }],
            })
            .expect("commits");
        let seqs = |q: &LogQuery| -> Vec<u64> {
            page(&store, &path, q)
                .expect("reads")
                .iter()
                .map(|e| e.record.seq)
                .collect()
        };
        let first = LogQuery {
            limit: Some(4),
            ..LogQuery::default()
        };
        assert_eq!(seqs(&first), [1, 2, 3, 4]);
        let next = LogQuery {
            after: Some(4),
            ..first.clone()
        };
        assert_eq!(seqs(&next), [5, 6, 7, 8]);
        let last = LogQuery {
            after: Some(8),
            ..first.clone()
        };
        assert_eq!(seqs(&last), [9, 10]);
        let ones = LogQuery {
            lambda: Some(1),
            key: Some(vec![0]),
            ..LogQuery::default()
        };
        assert_eq!(seqs(&ones), [4, 10], "lambda 1 and key 0");
        let outcomes: Vec<RequestOutcome> = page(&store, &path, &first)
            .expect("reads")
            .iter()
            .map(|e| e.outcome)
            .collect();
        assert_eq!(outcomes[1], RequestOutcome::Ok);
        assert_eq!(outcomes[0], RequestOutcome::NotCompleted);
        assert!(
            page(&store, &dir.path().join("none"), &first)
                .expect("an absent log is empty")
                .is_empty()
        );
    }
}
