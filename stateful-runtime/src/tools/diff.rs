//! What differs between two data dirs (a run and its replay): the committed state of every
//! instance, and the response of every request.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::open::open_for_reading;
use super::replay::{ReplayError, replay_key_in};
use crate::engine::Program;
use crate::storage::{Completion, StateStore};
use stateful_core::records::ingress::IngressRecord;

/// One instance whose committed state differs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceDiff {
    /// Lambda id.
    pub lambda: u16,
    /// Encoded key.
    pub key: Vec<u8>,
    /// Encoded state in the old dir (`None`: absent).
    pub old: Option<Vec<u8>>,
    /// Encoded state in the new dir (`None`: absent).
    pub new: Option<Vec<u8>>,
}

/// One request whose response differs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseDiff {
    /// The request as logged in the old dir.
    pub request: IngressRecord,
    /// The old encoded response.
    pub old: Vec<u8>,
    /// The new encoded response (`None`: the request was not replayed).
    pub new: Option<Vec<u8>>,
}

/// What differs between two data dirs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiffReport {
    /// Instances with different committed states.
    pub instances: Vec<InstanceDiff>,
    /// Requests with different responses.
    pub responses: Vec<ResponseDiff>,
}

/// The stores of the old run: one process's, or those of every process of a cluster (each
/// instance and each request is in one of them).
struct Old(Vec<Arc<dyn StateStore>>);

impl Old {
    fn completion(&self, seq: u64) -> Result<Option<Completion>, ReplayError> {
        for s in &self.0 {
            if let Some(c) = s.completion(seq)? {
                return Ok(Some(c));
            }
        }
        Ok(None)
    }

    fn get(&self, lambda: u16, group: u16, key: &[u8], at: Option<u64>) -> StateResult {
        for s in &self.0 {
            let v = match at {
                None => s.get(lambda, group, key)?,
                Some(e) => s.get_at(lambda, group, key, e)?,
            };
            if v.is_some() {
                return Ok(v);
            }
        }
        Ok(None)
    }
}

type StateResult = Result<Option<Vec<u8>>, ReplayError>;

/// The epochs to compare at for request `seq` of the old run: right after it committed there,
/// and right after the replay of every request committed with or before it in the new one.
fn epochs_at(
    a: &Old,
    b: &dyn StateStore,
    log: &[(String, Completion, u64)],
    seq: u64,
) -> Result<(u64, u64), ReplayError> {
    let old_epoch = a
        .completion(seq)?
        .ok_or_else(|| {
            ReplayError::Until(format!(
                "request {seq} did not complete in the old data dir"
            ))
        })?
        .epoch;
    let mut new_epoch = None::<u64>;
    for (key, r, _) in log {
        if r.epoch <= old_epoch
            && let Some(c) = b.completion_by_idempotency_key(key)?
        {
            new_epoch = Some(new_epoch.map_or(c.epoch, |e| e.max(c.epoch)));
        }
    }
    let new_epoch = new_epoch.ok_or_else(|| {
        ReplayError::Until(format!(
            "request {seq} was not replayed into the new data dir"
        ))
    })?;
    Ok((old_epoch, new_epoch))
}

fn instance_diffs(
    program: &Program,
    a: &Old,
    b: &dyn StateStore,
    epochs: Option<(u64, u64)>,
) -> Result<Vec<InstanceDiff>, ReplayError> {
    let mut out = Vec::new();
    for entry in program.lambdas() {
        let mut keys = b.keys(entry.id)?;
        for s in &a.0 {
            keys.extend(s.keys(entry.id)?);
        }
        keys.sort();
        keys.dedup();
        for (group, key) in keys {
            let (x, y) = match epochs {
                None => (
                    a.get(entry.id, group, &key, None)?,
                    b.get(entry.id, group, &key)?,
                ),
                Some((ea, eb)) => (
                    a.get(entry.id, group, &key, Some(ea))?,
                    b.get_at(entry.id, group, &key, eb)?,
                ),
            };
            if x != y {
                out.push(InstanceDiff {
                    lambda: entry.id,
                    key,
                    old: x,
                    new: y,
                });
            }
        }
    }
    Ok(out)
}

/// Compares `old` with `new` (a replay of it): every instance's committed state and every
/// request's response; as of request `at` (an old sequence number) when given.
pub fn diff_at(
    program: &Program,
    old: &Path,
    new: &Path,
    at: Option<u64>,
) -> Result<DiffReport, ReplayError> {
    diff_all(program, &[old.to_owned()], new, at)
}

/// [`diff_at`] for a run whose data dirs are `old` (those of every process of a cluster, or
/// one process's) against `new`, the single-process replay of them all.
pub fn diff_all(
    program: &Program,
    old: &[PathBuf],
    new: &Path,
    at: Option<u64>,
) -> Result<DiffReport, ReplayError> {
    if at.is_some() && old.len() > 1 {
        return Err(ReplayError::NotOneCluster(
            "--at seq:N names a request of one process: diff a cluster's dirs as of now".into(),
        ));
    }
    let mut stores = Vec::new();
    let (mut shapes, mut groups) = (Vec::new(), Vec::new());
    // Each old request with the key its replay carries, and its store's horizon.
    let mut log = Vec::new();
    for dir in old {
        let (data, store) = open_for_reading(program.name(), dir)?;
        let place = data
            .meta()
            .cluster
            .map_or((1, 0), |l| (l.processes, l.process));
        shapes.push(place);
        groups.push(data.key_groups());
        let process = (old.len() > 1).then_some(place.1);
        let horizon = store.horizon()?.epoch;
        for c in store.completions_from(0, usize::MAX)? {
            log.push((replay_key_in(process, c.request.seq), c, horizon));
        }
        stores.push(store);
    }
    super::replay::check_one_cluster(old, &shapes, &groups)?;
    let a = Old(stores);
    let (_, b) = open_for_reading(program.name(), new)?;
    let epochs = at
        .map(|seq| epochs_at(&a, b.as_ref(), &log, seq))
        .transpose()?;
    let mut report = DiffReport {
        instances: instance_diffs(program, &a, b.as_ref(), epochs)?,
        responses: Vec::new(),
    };
    for (key, was, horizon) in log {
        // After `at`, or with a response compacted away: not compared.
        if epochs.is_some_and(|(ea, _)| was.epoch > ea) || was.epoch < horizon {
            continue;
        }
        // A bulk load's answer names the entries that were busy then; a replay, one request
        // at a time, finds none busy. Its effect is compared in the instances.
        if was.request.handler == crate::engine::load::LOAD_HANDLER {
            continue;
        }
        let now = b.completion_by_idempotency_key(&key)?.map(|c| c.response);
        if now.as_ref() != Some(&was.response) {
            report.responses.push(ResponseDiff {
                request: was.request,
                old: was.response,
                new: now,
            });
        }
    }
    Ok(report)
}
