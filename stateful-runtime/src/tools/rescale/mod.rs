//! Rescaling: moving state between data dirs when the shape of the deployment changes
//! (one process to a cluster, a cluster to more or fewer processes or workers).
//!
//! ```text
//! stopped service/cluster:  OLD_0 .. OLD_n   (each holds the key groups its workers owned)
//!     rescale: every instance as of the epoch committed in every OLD dir
//!              -> the new owner of its key group: worker_of(group, groups, processes' * workers')
//! new dirs:                 NEW_0 .. NEW_m   (one commit each; meta.json records the shape)
//! ```
//!
//! State moves as of the epoch every old dir holds (the cluster's recovery point), and with it
//! what a client or a timer still counts on (`carried`): the answers kept for idempotency keys
//! (to the key's owner) and the messages not yet delivered (to their sender's owner). What
//! does not move: history (old versions, traces) and the other completion records: the new
//! dirs start their history at the rescale.

mod carried;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use stateful_core::keys::worker_of;
use stateful_core::records::meta::Layout;

use super::open::{OpenForReadingError, open_for_reading};
use crate::engine::Program;
use crate::storage::{
    CommitRecord, DataDir, OpenError, ReadError, StateStore, WriteError, WriteRecord,
};

/// Why a rescale failed (nothing is written to the old dirs in any case).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RescaleError {
    /// A source dir cannot be used.
    #[error("{0}")]
    Source(String),
    /// A target dir exists and is not empty, or the shape is invalid.
    #[error("{0}")]
    Target(String),
    /// A source dir cannot be opened.
    #[error(transparent)]
    Open(#[from] OpenForReadingError),
    /// A new dir cannot be created.
    #[error(transparent)]
    Create(#[from] OpenError),
    /// A source store cannot be read.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// A new store cannot be written.
    #[error(transparent)]
    Write(#[from] WriteError),
}

/// What a rescale moved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RescaleReport {
    /// The epoch the state was taken at.
    pub epoch: u64,
    /// Instances moved, per new dir.
    pub instances: Vec<u64>,
    /// Answers kept for idempotency keys, moved (all new dirs).
    pub answers: u64,
    /// Messages not yet delivered, moved (all new dirs).
    pub messages: u64,
}

/// Moves the state of the data dirs `from` (a stopped single process, or every process of a
/// stopped cluster) into the new dirs `into`: one dir is a single-process data dir, several are
/// the processes of a cluster with `workers` workers each.
pub fn rescale(
    program: &Program,
    from: &[PathBuf],
    into: &[PathBuf],
    workers: usize,
) -> Result<RescaleReport, RescaleError> {
    if from.is_empty() || into.is_empty() {
        return Err(RescaleError::Target(
            "give at least one --from and one --into data dir".into(),
        ));
    }
    if workers == 0 {
        return Err(RescaleError::Target("--workers must be at least 1".into()));
    }
    for d in into {
        if d.exists()
            && std::fs::read_dir(d)
                .map(|mut e| e.next().is_some())
                .unwrap_or(true)
        {
            return Err(RescaleError::Target(format!(
                "{} already exists and is not empty: rescale into new directories",
                d.display()
            )));
        }
    }
    // Open every source and check that they belong together.
    let mut sources: Vec<(Arc<dyn StateStore>, Option<Layout>)> = Vec::new();
    let mut groups = None::<u16>;
    for d in from {
        let (data, store) = open_for_reading(program.name(), d)?;
        let meta = data.meta();
        if groups.is_some_and(|g| g != meta.key_groups) {
            return Err(RescaleError::Source(format!(
                "{} has {} key groups, the other dirs {}",
                d.display(),
                meta.key_groups,
                groups.unwrap_or(0)
            )));
        }
        groups = Some(meta.key_groups);
        sources.push((store, meta.cluster));
    }
    let groups = groups.unwrap_or(1);
    check_complete(from, &sources)?;
    // The epoch every source holds: a cluster's recovery point.
    let mut epoch = u64::MAX;
    for (s, _) in &sources {
        epoch = epoch.min(s.checkpoint()?.epoch);
    }
    let epoch = if epoch == u64::MAX { 0 } else { epoch };

    let writes = writes_by_process(program, &sources, groups, epoch, into.len(), workers)?;
    let stores: Vec<Arc<dyn StateStore>> = sources.iter().map(|(s, _)| s.clone()).collect();
    let carried = carried::Carried::read(&stores, groups, epoch, (into.len(), workers))?;
    let mut report = RescaleReport {
        epoch,
        instances: Vec::new(),
        answers: carried.completions.iter().map(|c| c.len() as u64).sum(),
        messages: carried.messages.iter().map(|m| m.len() as u64).sum(),
    };
    let next_seqs: Vec<u64> = (0..into.len()).map(|p| carried.next_seq(p)).collect();
    let parts = writes
        .into_iter()
        .zip(carried.completions)
        .zip(carried.messages);
    for (p, (dir, ((writes, completions), messages))) in into.iter().zip(parts).enumerate() {
        report.instances.push(writes.len() as u64);
        let record = CommitRecord {
            epoch: epoch.max(1),
            prev_epoch: 0,
            writes,
            completions,
            messages,
            next_seq: next_seqs[p],
            next_order: next_seqs[p] - 1,
        };
        write_target(
            program.name(),
            dir,
            groups,
            (p, into.len(), workers),
            record,
        )?;
    }
    Ok(report)
}

/// Every instance of every source as of `epoch`, by the process that owns it in the new shape.
fn writes_by_process(
    program: &Program,
    sources: &[(Arc<dyn StateStore>, Option<Layout>)],
    groups: u16,
    epoch: u64,
    processes: usize,
    workers: usize,
) -> Result<Vec<Vec<WriteRecord>>, RescaleError> {
    let total = processes * workers;
    let mut writes: Vec<Vec<WriteRecord>> = (0..processes).map(|_| Vec::new()).collect();
    for entry in program.lambdas() {
        for (store, _) in sources {
            for (group, key) in store.keys(entry.id)? {
                let Some(value) = store.get_at(entry.id, group, &key, epoch)? else {
                    continue;
                };
                let owner = worker_of(group, groups, total) / workers;
                writes[owner].push(WriteRecord {
                    lambda: entry.id,
                    group,
                    key,
                    value: Some(value),
                    writers: Vec::new(),
                });
            }
        }
    }
    Ok(writes)
}

/// Creates the data dir of process `p` of `processes` (`workers` each) holding `record`, its
/// one commit.
fn write_target(
    app: &str,
    dir: &std::path::Path,
    groups: u16,
    (p, processes, workers): (usize, usize, usize),
    record: CommitRecord,
) -> Result<(), RescaleError> {
    let layout = (processes > 1).then_some(Layout {
        processes,
        process: p,
        workers,
    });
    // Written beside the target and renamed into place once flushed: the store applies a
    // large record in several batches, and a crash must not leave a half-written target.
    let staging = staging_path(dir);
    if staging.exists() {
        std::fs::remove_dir_all(&staging).map_err(OpenError::from)?;
    }
    let data = DataDir::create(&staging, app, groups, layout)?;
    let store = data.open_store()?;
    store.check_app(app)?;
    store.apply(&[Arc::new(record)])?;
    store.flush()?;
    drop(store);
    drop(data);
    std::fs::rename(&staging, dir).map_err(OpenError::from)?;
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::File::open(parent)
            .and_then(|d| d.sync_all())
            .map_err(OpenError::from)?;
    }
    Ok(())
}

/// Where a target dir is written before it is renamed into place.
fn staging_path(dir: &Path) -> PathBuf {
    let mut name = dir.file_name().unwrap_or_default().to_os_string();
    name.push(".rescaling");
    dir.with_file_name(name)
}

/// The sources are one single-process dir, or every process of one cluster.
fn check_complete(
    from: &[PathBuf],
    sources: &[(Arc<dyn StateStore>, Option<Layout>)],
) -> Result<(), RescaleError> {
    let layouts: Vec<Option<Layout>> = sources.iter().map(|(_, l)| *l).collect();
    match layouts.first().copied().flatten() {
        None if layouts.len() == 1 => Ok(()),
        None => Err(RescaleError::Source(
            "several --from dirs must be the processes of one cluster; a single process's dir comes alone".into(),
        )),
        Some(first) => {
            let mut seen: Vec<usize> = Vec::new();
            for (d, l) in from.iter().zip(&layouts) {
                match l {
                    Some(l) if l.processes == first.processes && l.workers == first.workers => {
                        seen.push(l.process);
                    }
                    _ => {
                        return Err(RescaleError::Source(format!(
                            "{} is not a process of the same cluster as {}",
                            d.display(),
                            from[0].display()
                        )));
                    }
                }
            }
            seen.sort_unstable();
            seen.dedup();
            if seen.len() != first.processes {
                return Err(RescaleError::Source(format!(
                    "the cluster had {} processes, but --from gives the dirs of processes {seen:?}: give all of them",
                    first.processes
                )));
            }
            Ok(())
        }
    }
}
