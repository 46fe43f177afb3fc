//! Replay a data dir's logged requests with the current binary into a new data dir.
//!
//! ```text
//! OLD completion records ──sort by completion order (a serial order consistent with every
//!                          conflict of the original run)──▶ one at a time ──▶ Runtime on NEW
//!                                                     (Idempotency-Key "replay:<old seq>")
//! ```
//!
//! Requests ran concurrently in the original run, but under strict two-phase locking the order
//! in which their roots completed is a serial order consistent with every conflict: replaying
//! them one after another in that order with unchanged, deterministic handlers reproduces the
//! original states and responses exactly. The log holds every request that changed state,
//! was rejected or failed, or carried an idempotency key; successful reads are not kept (they
//! changed nothing, so the states replay the same without them).
//!
//! A cluster's processes each log their own requests, with orders from a Lamport clock
//! (`engine::shard::clock`): replaying the data dirs of all its processes merges their logs
//! by (order, process), a serial order consistent with every conflict of the whole cluster,
//! into one single-process data dir.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::at::{AtError, parse_at};
use super::open::{OpenForReadingError, open_for_reading};
use crate::engine::load::{LOAD_HANDLER, entries_set};
use crate::engine::{Config, Program, Runtime};
use crate::storage::ReadError;
use stateful_core::records::ingress::IngressRecord;

/// Why a replay failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayError {
    /// A data dir cannot be read (missing, locked, another app's).
    #[error(transparent)]
    DataDir(#[from] OpenForReadingError),
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
    Read(#[from] ReadError),
    /// The dirs given are not every process of one cluster, each once.
    #[error("{0}")]
    NotOneCluster(String),
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
    /// Requests accepted up to this time (unix µs, like epochs).
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
        parse_at(s)
            .map(Until::Time)
            .map_err(|e: AtError| ReplayError::Until(format!("{e}; or use seq:N or epoch:N")))
    }

    fn keeps(&self, r: &IngressRecord) -> bool {
        match self {
            Until::Seq(s) => r.seq <= *s,
            Until::Time(t) => r.timestamp_ms.saturating_mul(1000) <= *t,
        }
    }
}

/// What a replay did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayReport {
    /// Requests replayed.
    pub replayed: u64,
    /// Requests after `--until`, not replayed.
    pub skipped: u64,
}

/// Whether `dir` exists and holds anything.
pub(crate) fn not_empty(dir: &Path) -> bool {
    dir.exists()
        && std::fs::read_dir(dir)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
}

/// Completion records read per step.
const STEP: usize = 4096;

/// The logged requests of `old` in replay order (by completion order, then process), each
/// with the idempotency key it is replayed with; and the dirs' key groups.
fn replay_order(
    program: &Program,
    old: &[PathBuf],
    until: Option<Until>,
    report: &mut ReplayReport,
) -> Result<(Vec<(String, IngressRecord)>, u16), ReplayError> {
    if until.is_some() && old.len() > 1 {
        return Err(ReplayError::NotOneCluster(
            "--until cuts one process's log (its seqs and clocks are its own): replay a cluster's dirs whole".into(),
        ));
    }
    let mut done = Vec::new();
    let mut processes = Vec::new();
    let mut groups = Vec::new();
    for dir in old {
        let (data, store) = open_for_reading(program.name(), dir)?;
        let process = data.meta().cluster.map_or(0, |l| l.process);
        processes.push((data.meta().cluster.map_or(1, |l| l.processes), process));
        groups.push(data.key_groups());
        read_log(store.as_ref(), process, until, report, &mut done)?;
    }
    check_one_cluster(old, &processes, &groups)?;
    let groups = groups[0];
    done.sort_by_key(|(order, process, r)| (*order, *process, r.seq));
    let cluster = old.len() > 1;
    let keyed = done
        .into_iter()
        .map(|(_, p, r)| (replay_key_in(cluster.then_some(p), r.seq), r))
        .collect();
    Ok((keyed, groups))
}

/// Appends the logged requests of one process's store to `done`, with their order.
fn read_log(
    store: &dyn crate::storage::StateStore,
    process: usize,
    until: Option<Until>,
    report: &mut ReplayReport,
    done: &mut Vec<(u64, usize, IngressRecord)>,
) -> Result<(), ReplayError> {
    let below = store.horizon()?.forgotten_below_seq;
    if below > 1 {
        return Err(ReplayError::Compacted(below));
    }
    let mut from = 0;
    loop {
        let step = store.completions_from(from, STEP)?;
        let Some(last) = step.last() else { break };
        from = last.request.seq + 1;
        let more = step.len() == STEP;
        for mut c in step {
            if until.is_some_and(|u| !u.keeps(&c.request)) {
                report.skipped += 1;
                continue;
            }
            if c.request.handler == LOAD_HANDLER {
                // Only what the load set then (its busy entries came in later requests).
                c.request.args = entries_set(&c.request.args, &c.response).map_err(|e| {
                    ReplayError::Runtime(format!("load request {}: {e}", c.request.seq))
                })?;
            }
            done.push((c.order, process, c.request));
        }
        if !more {
            break;
        }
    }
    Ok(())
}

/// One dir of a single process, or one dir of each process of one cluster: (processes of its
/// cluster, its process) and the key groups of every dir. Two clusters of one shape are not
/// told apart (a data dir records no cluster id).
pub(crate) fn check_one_cluster(
    old: &[PathBuf],
    dirs: &[(usize, usize)],
    groups: &[u16],
) -> Result<(), ReplayError> {
    let mut seen: Vec<usize> = dirs.iter().map(|d| d.1).collect();
    seen.sort_unstable();
    let processes = dirs.first().map_or(0, |d| d.0);
    let whole = processes > 0
        && dirs.iter().all(|d| d.0 == processes)
        && seen == (0..processes).collect::<Vec<_>>()
        && groups.iter().all(|g| Some(g) == groups.first());
    if whole {
        return Ok(());
    }
    let given: Vec<String> = old.iter().map(|p| p.display().to_string()).collect();
    Err(ReplayError::NotOneCluster(format!(
        "replay needs the data dir of one process, or those of every process of one cluster, each once; \
         {} were given ({}), of processes {:?} of clusters of {:?} processes, with {:?} key groups",
        old.len(),
        given.join(", "),
        dirs.iter().map(|d| d.1).collect::<Vec<_>>(),
        dirs.iter().map(|d| d.0).collect::<Vec<_>>(),
        groups
    )))
}

/// Replays the logged requests of `old` into the new data dir `new` with `program`.
pub fn replay(
    program: Arc<Program>,
    old: &Path,
    new: &Path,
    until: Option<Until>,
) -> Result<ReplayReport, ReplayError> {
    replay_all(program, &[old.to_owned()], new, until)
}

/// Replays the logged requests of the data dirs `old` (one process's, or those of every
/// process of a cluster) into the new single-process data dir `new` with `program`.
pub fn replay_all(
    program: Arc<Program>,
    old: &[PathBuf],
    new: &Path,
    until: Option<Until>,
) -> Result<ReplayReport, ReplayError> {
    if not_empty(new) {
        return Err(ReplayError::TargetExists(new.display().to_string()));
    }
    let mut report = ReplayReport::default();
    let (requests, groups) = replay_order(&program, old, until, &mut report)?;
    let mut config = Config::durable(new, 1);
    config.commit_interval_ms = 1;
    config.key_groups = groups;
    let rt = Runtime::start(program, config).map_err(|e| ReplayError::Runtime(e.to_string()))?;
    let h = rt.handle();
    for (key, r) in requests {
        let load = r.handler == LOAD_HANDLER;
        let (seq, key) = (r.seq, Some(key));
        let rx = if load {
            h.submit_load(r.lambda, r.key, r.args, key)
        } else {
            h.submit(r.lambda, r.key, r.handler, r.args, key)
        };
        let rx = rx.map_err(|e| ReplayError::Runtime(format!("request {seq}: {e}")))?;
        let resp = rx
            .blocking_recv()
            .map_err(|_| ReplayError::Runtime(format!("request {seq} was not answered")))?;
        if load {
            check_load_replayed(seq, &resp.result)?;
        }
        report.replayed += 1;
    }
    drop(h);
    rt.shutdown();
    Ok(report)
}

/// A replayed load must set everything it is given (one request at a time, nothing holds an
/// instance; a message delivery of the replay's own could).
fn check_load_replayed(
    seq: u64,
    result: &Result<crate::sdk::Outcome, crate::sdk::CallError>,
) -> Result<(), ReplayError> {
    let busy = match result {
        Ok(o) => crate::engine::load::busy_entries(&o.bytes)
            .map_err(|e| ReplayError::Runtime(format!("load request {seq}: {e}")))?,
        Err(e) => return Err(ReplayError::Runtime(format!("load request {seq}: {e}"))),
    };
    if busy > 0 {
        return Err(ReplayError::Runtime(format!(
            "load request {seq}: {busy} instances were held during the replay; it would not be exact"
        )));
    }
    Ok(())
}

/// The idempotency key a replayed request carries in the new data dir.
pub fn replay_key(old_seq: u64) -> String {
    format!("replay:{old_seq}")
}

/// [`replay_key`] of a request of `process` when a cluster's dirs are replayed (each
/// process numbers its requests on its own).
pub fn replay_key_in(process: Option<usize>, old_seq: u64) -> String {
    match process {
        None => replay_key(old_seq),
        Some(p) => format!("replay:{p}/{old_seq}"),
    }
}
