//! Replay a data dir's logged requests with the current binary, and diff two data dirs.
//!
//! ```text
//! OLD/ingress.log ──every request──▶ sort by completion order (a serial order consistent
//!   OLD completions (order) ─────────▶ with every conflict of the original run)
//!                                      ──one at a time──▶ Runtime on NEW (Idempotency-Key
//!                                                          "replay:<old seq>")
//! diff OLD NEW: every instance of every lambda (committed state), every response by old seq
//! ```
//!
//! Requests ran concurrently in the original run, but under strict two-phase locking the order
//! in which their roots completed is a serial order consistent with every conflict: replaying
//! them one after another in that order with unchanged, deterministic handlers reproduces the
//! original states and responses exactly. Requests that were logged but never completed (a
//! crash) come last, in log order, as recovery would run them.

use std::path::Path;
use std::sync::Arc;

use serde::Serialize;

use crate::app::App;
use crate::engine::runtime::open_for_reading;
use crate::engine::{Config, Runtime};
use crate::ingress::read_log;

/// Why a replay or diff failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayError {
    /// A data dir cannot be read (missing, locked, another app's).
    #[error("{0}")]
    DataDir(String),
    /// The target of a replay is not a new, empty directory.
    #[error("{0} already exists and is not empty: replay into a new directory")]
    TargetExists(String),
    /// `--until` does not parse.
    #[error("{0}")]
    Until(String),
    /// The runtime on the new dir failed.
    #[error("replay failed: {0}")]
    Runtime(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// History was compacted: the commit order of early requests is gone.
    #[error(
        "the history of this data dir is compacted (requests below {0} are forgotten), so it cannot be replayed exactly; replay needs a service run with --history-retention forever"
    )]
    Compacted(u64),
}

/// Where a replay stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Until {
    /// Requests up to this ingress sequence number.
    Seq(u64),
    /// Requests accepted up to this time (unix ms; also what epochs are).
    Time(u64),
}

impl Until {
    /// Parses `seq:N`, `epoch:N` or an RFC 3339 time.
    pub fn parse(s: &str) -> Result<Until, ReplayError> {
        if let Some(n) = s.strip_prefix("seq:") {
            return n
                .parse()
                .map(Until::Seq)
                .map_err(|e| ReplayError::Until(format!("`{s}`: {e}")));
        }
        if let Some(n) = s.strip_prefix("epoch:") {
            return n
                .parse()
                .map(Until::Time)
                .map_err(|e| ReplayError::Until(format!("`{s}`: {e}")));
        }
        crate::inspect::parse_at(s)
            .map(Until::Time)
            .map_err(|e| ReplayError::Until(format!("{e}; or use seq:N or epoch:N")))
    }
}

/// What a replay did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReplayReport {
    /// Requests replayed.
    pub replayed: u64,
    /// Of those, requests that had never completed in the original run.
    pub never_completed: u64,
    /// Requests after `--until`, not replayed.
    pub skipped: u64,
}

/// Replays the logged requests of `old` into the new data dir `new` with `app`.
pub fn replay(
    app: Arc<App>,
    old: &Path,
    new: &Path,
    until: Option<Until>,
) -> Result<ReplayReport, ReplayError> {
    if new.exists()
        && std::fs::read_dir(new)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        return Err(ReplayError::TargetExists(new.display().to_string()));
    }
    let (old_store, _) = open_for_reading(&app, old).map_err(ReplayError::DataDir)?;
    let below = old_store.horizon()?.complete_below_seq;
    if below > 1 {
        return Err(ReplayError::Compacted(below));
    }
    let records = read_log(&old.join("ingress.log"))?;
    let mut done = Vec::new();
    let mut open = Vec::new();
    let mut report = ReplayReport::default();
    for r in records {
        let keep = match until {
            None => true,
            Some(Until::Seq(s)) => r.seq <= s,
            Some(Until::Time(t)) => r.timestamp_ms <= t,
        };
        if !keep {
            report.skipped += 1;
            continue;
        }
        match old_store.completion(r.seq)? {
            Some(c) => done.push((c.order, r)),
            None => open.push(r),
        }
    }
    drop(old_store);
    done.sort_by_key(|(order, r)| (*order, r.seq));
    report.never_completed = open.len() as u64;
    let mut config = Config::durable(new, 1);
    config.commit_interval_ms = 1;
    let rt = Runtime::start(app, config).map_err(|e| ReplayError::Runtime(e.to_string()))?;
    let h = rt.handle();
    for r in done.into_iter().map(|(_, r)| r).chain(open) {
        let rx = h
            .submit(r.lambda, r.key, r.handler, r.args, Some(replay_key(r.seq)))
            .map_err(|e| ReplayError::Runtime(format!("request {}: {e}", r.seq)))?;
        rx.blocking_recv()
            .map_err(|_| ReplayError::Runtime(format!("request {} was not answered", r.seq)))?;
        report.replayed += 1;
    }
    drop(h);
    rt.shutdown();
    Ok(report)
}

/// The idempotency key a replayed request carries in the new data dir.
pub fn replay_key(old_seq: u64) -> String {
    format!("replay:{old_seq}")
}

/// One instance whose committed state differs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InstanceDiff {
    /// Lambda.
    pub lambda: String,
    /// Key.
    pub key: serde_json::Value,
    /// State in the old dir (`null`: absent).
    pub old: serde_json::Value,
    /// State in the new dir (`null`: absent).
    pub new: serde_json::Value,
}

/// One request whose response differs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResponseDiff {
    /// Sequence number in the old dir.
    pub seq: u64,
    /// `lambda.handler(key)`.
    pub target: String,
    /// The old response.
    pub old: serde_json::Value,
    /// The new response (`null`: the request was not replayed).
    pub new: serde_json::Value,
}

/// What differs between two data dirs.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DiffReport {
    /// Instances with different committed states.
    pub instances: Vec<InstanceDiff>,
    /// Requests with different responses.
    pub responses: Vec<ResponseDiff>,
}

/// Compares the committed state of every instance and the response of every request of `old`
/// with `new` (a replay of it).
pub fn diff(app: &App, old: &Path, new: &Path) -> Result<DiffReport, ReplayError> {
    diff_at(app, old, new, None)
}

/// [`diff`] as of request `at` (an old sequence number): the states right after it committed
/// in `old` and right after its replay (and that of every request committed with or before it)
/// in `new`, and the responses of the requests up to it.
pub fn diff_at(
    app: &App,
    old: &Path,
    new: &Path,
    at: Option<u64>,
) -> Result<DiffReport, ReplayError> {
    let (a, _) = open_for_reading(app, old).map_err(ReplayError::DataDir)?;
    let (b, _) = open_for_reading(app, new).map_err(ReplayError::DataDir)?;
    let log = read_log(&old.join("ingress.log"))?;
    let epochs = match at {
        None => None,
        Some(seq) => {
            let old_epoch = a
                .completion(seq)?
                .ok_or_else(|| {
                    ReplayError::Until(format!(
                        "request {seq} did not complete in the old data dir"
                    ))
                })?
                .epoch;
            let mut new_epoch = None::<u64>;
            for r in &log {
                if a.completion(r.seq)?.is_some_and(|c| c.epoch <= old_epoch)
                    && let Some(c) = b.completion_by_idempotency_key(&replay_key(r.seq))?
                {
                    new_epoch = Some(new_epoch.map_or(c.epoch, |e| e.max(c.epoch)));
                }
            }
            let new_epoch = new_epoch.ok_or_else(|| {
                ReplayError::Until(format!(
                    "request {seq} was not replayed into the new data dir"
                ))
            })?;
            Some((old_epoch, new_epoch))
        }
    };
    let mut report = DiffReport::default();
    for entry in &app.lambdas {
        let mut keys = a.keys(entry.id)?;
        keys.extend(b.keys(entry.id)?);
        keys.sort();
        keys.dedup();
        for (group, key) in keys {
            let (x, y) = match epochs {
                None => (a.get(entry.id, group, &key)?, b.get(entry.id, group, &key)?),
                Some((ea, eb)) => (
                    a.get_at(entry.id, group, &key, ea)?,
                    b.get_at(entry.id, group, &key, eb)?,
                ),
            };
            if x != y {
                let json = |v: Option<Vec<u8>>| {
                    v.map_or(serde_json::Value::Null, |bytes| {
                        (entry.state_to_json)(&bytes).unwrap_or(serde_json::Value::Null)
                    })
                };
                report.instances.push(InstanceDiff {
                    lambda: entry.name.to_owned(),
                    key: (entry.key_to_json)(&key),
                    old: json(x),
                    new: json(y),
                });
            }
        }
    }
    for r in log {
        let Some(was) = a.completion(r.seq)? else {
            continue;
        };
        if epochs.is_some_and(|(ea, _)| was.epoch > ea) {
            continue;
        }
        if was.epoch < a.horizon()?.epoch {
            // Its response was compacted away.
            continue;
        }
        let now = b.completion_by_idempotency_key(&replay_key(r.seq))?;
        let old_json = crate::inspect::result_json(app, r.lambda, r.handler, &was.response);
        let new_json = now.map_or(serde_json::Value::Null, |c| {
            crate::inspect::result_json(app, r.lambda, r.handler, &c.response)
        });
        if old_json != new_json {
            let target = crate::inspect::target_name(app, &r)
                .unwrap_or_else(|| format!("lambda {}", r.lambda));
            report.responses.push(ResponseDiff {
                seq: r.seq,
                target,
                old: old_json,
                new: new_json,
            });
        }
    }
    Ok(report)
}
