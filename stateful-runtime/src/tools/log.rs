//! The request log, paged: the completed requests that changed state (or carried an
//! idempotency key) after a sequence number, optionally only those of one lambda or instance,
//! each with its outcome. It reads the completion records the commit log materialised into
//! the store; reads, which change nothing, are not kept.

use crate::sdk::{CallError, Outcome};
use crate::storage::{Completion, ReadError, StateStore};
use stateful_core::records::ingress::IngressRecord;

/// What became of a logged request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestOutcome {
    /// The handler returned `Ok`.
    Ok,
    /// The handler returned `Err` (a business rejection).
    Rejected,
    /// The runtime could not run it to completion.
    Failed,
}

impl std::str::FromStr for RequestOutcome {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "ok" => Ok(RequestOutcome::Ok),
            "rejected" => Ok(RequestOutcome::Rejected),
            "failed" => Ok(RequestOutcome::Failed),
            other => Err(format!("unknown outcome `{other}`: ok, rejected or failed")),
        }
    }
}

impl RequestOutcome {
    /// `ok`, `rejected` or `failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            RequestOutcome::Ok => "ok",
            RequestOutcome::Rejected => "rejected",
            RequestOutcome::Failed => "failed",
        }
    }

    /// The outcome a completion records.
    pub fn of(c: &Completion) -> RequestOutcome {
        if c.ok {
            return RequestOutcome::Ok;
        }
        match postcard::from_bytes::<Result<Outcome, CallError>>(&c.response) {
            Ok(Ok(_)) => RequestOutcome::Rejected,
            _ => RequestOutcome::Failed,
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
    /// Only requests with this outcome.
    pub outcome: Option<RequestOutcome>,
    /// The last `limit` of the matching requests, not the first (reads the whole log after
    /// `after`).
    pub last: bool,
}

/// One logged request with its outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// The request as the gateway accepted it.
    pub record: IngressRecord,
    /// What became of it.
    pub outcome: RequestOutcome,
    /// The commit epoch it completed in.
    pub epoch: u64,
}

/// Completion records read per step while filtering.
const STEP: usize = 1024;

/// A page of the request log (read in steps, never whole).
pub fn page(store: &dyn StateStore, q: &LogQuery) -> Result<Vec<LogEntry>, ReadError> {
    let limit = q.limit.unwrap_or(usize::MAX);
    let mut from = q.after.map_or(0, |a| a.saturating_add(1));
    let mut out = Vec::new();
    while q.last || out.len() < limit {
        let step = store.completions_from(from, STEP)?;
        let Some(last) = step.last() else { break };
        from = last.request.seq + 1;
        let done = step.len() < STEP;
        for c in step {
            let r = &c.request;
            let wanted = q.lambda.is_none_or(|l| l == r.lambda)
                && q.key.as_ref().is_none_or(|k| *k == r.key);
            if !wanted {
                continue;
            }
            let outcome = RequestOutcome::of(&c);
            if q.outcome.is_some_and(|o| o != outcome) {
                continue;
            }
            if q.last && out.len() == limit && limit > 0 {
                out.remove(0);
            }
            if out.len() < limit {
                out.push(LogEntry {
                    outcome,
                    epoch: c.epoch,
                    record: c.request,
                });
            }
        }
        if q.last {
            if done {
                break;
            }
            continue;
        }
        if done {
            break;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::storage::{CommitRecord, CompletionEntry, MemoryStore};

    fn completion(
        seq: u64,
        lambda: u16,
        key: u8,
        result: Result<Outcome, CallError>,
    ) -> CompletionEntry {
        CompletionEntry {
            request: IngressRecord {
                seq,
                timestamp_ms: 1,
                lambda,
                key: vec![key],
                handler: 0,
                args: vec![],
                idempotency_key: None,
            },
            ok: matches!(&result, Ok(o) if o.ok),
            response: postcard::to_stdvec(&result).expect("encodes"),
            order: seq,
            trace: vec![],
        }
    }

    #[test]
    fn pages_follow_after_and_limit_and_filters_apply() {
        let store = MemoryStore::new();
        let ok = || {
            Ok(Outcome {
                ok: true,
                bytes: vec![],
            })
        };
        let mut completions: Vec<CompletionEntry> = (1..=10u64)
            .map(|i| completion(i, (i % 2) as u16, (i % 3) as u8, ok()))
            .collect();
        completions[0] = completion(
            1,
            1,
            1,
            Ok(Outcome {
                ok: false,
                bytes: vec![],
            }),
        );
        completions[2] = completion(3, 1, 0, Err(CallError::Stopped));
        let record = CommitRecord {
            epoch: 5,
            prev_epoch: 0,
            writes: vec![],
            completions,
            messages: vec![],
            next_seq: 11,
            next_order: 11,
        };
        store.apply(&[Arc::new(record)]).expect("applies");
        let seqs = |q: &LogQuery| -> Vec<u64> {
            page(&store, q)
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
            key: Some(vec![1]),
            ..LogQuery::default()
        };
        assert_eq!(seqs(&ones), [1, 7], "lambda 1 and key 1");
        let entries = page(&store, &first).expect("reads");
        let outcomes: Vec<RequestOutcome> = entries.iter().map(|e| e.outcome).collect();
        assert_eq!(
            outcomes,
            [
                RequestOutcome::Rejected,
                RequestOutcome::Ok,
                RequestOutcome::Failed,
                RequestOutcome::Ok
            ]
        );
        assert!(entries.iter().all(|e| e.epoch == 5));
    }
}
