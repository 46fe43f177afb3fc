//! Opening the storage of a run and recovering: the state store is back at its checkpoint,
//! the commit log's records after it are applied (in a cluster: only up to the epoch every
//! process committed; later records are cut), and the counters resume after them.
//!
//! ```text
//! data dir ── meta check ── store (checkpoint C) ── log: records after C (torn tail cut)
//!   cluster: agree on the ceiling (min over processes of their last durable epoch), cut
//!   apply the records ≤ ceiling ── flush ── cut the log behind the checkpoint
//!   check the stored state against the build's lambdas (schema_check)
//! ```
//!
//! Nothing is run again: every request in the log completed in its epoch, and a request that
//! was not in a durable epoch was never answered.

use std::sync::{Arc, Mutex};

use super::cluster::Agreed;
use super::config::{Config, Durability, StartError};
use super::program::Program;
use super::schema_check::SchemaReport;
use crate::storage::log::fs::LogFs;
use crate::storage::log::{CommitLog, SyncMode};
use crate::storage::{Checkpoint, CommitRecord, DataDir, MemoryStore, OpenError, StateStore};

/// The storage of a run.
pub(crate) struct Storage {
    pub store: Arc<dyn StateStore>,
    /// The commit log (`None`: in memory).
    pub log: Option<Arc<Mutex<CommitLog>>>,
    /// Key groups (of the data dir, when there is one).
    pub groups: u16,
    /// The last epoch durable (in the store or the log).
    pub durable_epoch: u64,
    pub next_seq: u64,
    pub next_order: u64,
    /// Epochs applied from the log at start.
    pub replayed: usize,
    /// What the schema check read.
    pub schema: SchemaReport,
    /// Messages committed and not delivered yet.
    pub pending_messages: Vec<crate::storage::MessageRecord>,
}

/// Opens (or creates) the data dir of `config` for `program` (or memory), its log on `fs`,
/// recovers, and checks the stored state against the program's lambdas; in a cluster `agree`
/// turns this process's last durable epoch (and a bound on the completion orders it handed
/// out) into the agreement of all.
pub(crate) fn open(
    program: &Program,
    config: &Config,
    fs: Arc<dyn LogFs>,
    agree: impl FnOnce(Option<u64>, u64, bool) -> Result<Option<Agreed>, StartError>,
) -> Result<(Storage, Option<Agreed>), StartError> {
    let sync = match config.durability {
        Durability::None => {
            let agreed = agree(None, 0, false)?;
            return Ok((in_memory(config), agreed));
        }
        Durability::Fsync => SyncMode::Fsync,
        Durability::ProcessCrash => SyncMode::ProcessCrash,
    };
    let root = config
        .data_dir
        .clone()
        .ok_or_else(|| StartError::Config("a durable runtime needs a data dir".into()))?;
    let layout = config
        .cluster
        .as_ref()
        .map(|c| stateful_core::records::meta::Layout {
            processes: c.processes(),
            process: c.process,
            workers: config.workers,
        });
    let app = program.name();
    let dir = DataDir::open_or_create(&root, app, config.key_groups, layout)?;
    let store = dir.open_store_with_cache(config.store_cache_bytes)?;
    // A cluster may agree on an epoch below one this store holds part of: never split one.
    let store = if config.cluster.is_some() {
        store.with_whole_epochs()
    } else {
        store
    };
    store.check_app(app)?;
    let cp = store.checkpoint()?;
    let (mut log, mut after, report) = dir.open_log_on(fs, sync, cp.epoch)?;
    let last = report.last_epoch.max(cp.epoch);
    // Past every order this process handed out or saw released here (its counter at its last
    // record), cut epochs included; the cluster's bound is the max over processes.
    let orders = after
        .last()
        .map_or(cp.next_order, |r| r.next_order.max(cp.next_order));
    let clean = crate::storage::clean_stop::stopped_cleanly_at(&root, last);
    let agreed = agree((last > 0).then_some(last), orders, clean)?;
    if let Some(a) = &agreed {
        align_with_cluster(&root, &mut log, &mut after, &cp, a)?;
    }
    let replayed = after.len();
    let durable_epoch = after.last().map_or(cp.epoch, |r| r.epoch);
    let next_seq = after
        .last()
        .map_or(cp.next_seq, |r| r.next_seq.max(cp.next_seq));
    // In a cluster, past every order any process logged: requests after a restart order
    // after all before it.
    let next_order = agreed.as_ref().map_or(orders, |a| a.next_order.max(orders));
    let store = Arc::new(store);
    crate::storage::apply_tail(store.as_ref(), &mut log, after)?;
    let schema = super::schema_check::check(&dir, store.as_ref(), program.lambdas())?;
    for (lambda, n) in &schema.scanned {
        tracing::info!(
            lambda,
            instances = n,
            "read the stored state of a changed schema"
        );
    }
    let pending_messages = store.pending_messages()?;
    let storage = Storage {
        pending_messages,
        store,
        log: Some(Arc::new(Mutex::new(log))),
        groups: dir.key_groups(),
        durable_epoch,
        next_seq: next_seq.max(1),
        next_order,
        replayed,
        schema,
    };
    Ok((storage, agreed))
}

/// Brings this process's log to the epoch the cluster agreed on: cuts what lies beyond it,
/// or (a process that stopped cleanly before the others' last epoch) appends an empty record
/// at it, so that every log ends there; then the clean-stop marker is spent (it vouches for
/// the run that wrote it only: a crash of the next run is judged by the logs).
fn align_with_cluster(
    root: &std::path::Path,
    log: &mut CommitLog,
    after: &mut Vec<CommitRecord>,
    cp: &Checkpoint,
    a: &Agreed,
) -> Result<(), StartError> {
    if a.committed < cp.epoch {
        return Err(StartError::Open(OpenError::Corrupt(format!(
            "the cluster agreed on epoch {}, but this process's store holds epoch {}",
            a.committed, cp.epoch
        ))));
    }
    let cut = log
        .cut_after(a.committed, cp.epoch)
        .map_err(OpenError::from)?;
    after.retain(|r| r.epoch <= a.committed);
    if cut > 0 {
        tracing::info!(epochs = cut, "cut epochs not committed on every process");
    }
    let last = log.last_epoch().max(cp.epoch);
    if last < a.committed {
        let record = CommitRecord {
            epoch: a.committed,
            prev_epoch: log.last_epoch(),
            writes: Vec::new(),
            completions: Vec::new(),
            messages: Vec::new(),
            next_seq: after
                .last()
                .map_or(cp.next_seq, |r| r.next_seq.max(cp.next_seq)),
            next_order: a.next_order,
        };
        log.append(&record).map_err(OpenError::from)?;
        log.sync().map_err(OpenError::from)?;
        after.push(record);
    }
    crate::storage::clean_stop::spend(root).map_err(OpenError::from)?;
    Ok(())
}

fn in_memory(config: &Config) -> Storage {
    Storage {
        store: Arc::new(MemoryStore::new()),
        log: None,
        groups: config.key_groups,
        durable_epoch: 0,
        next_seq: 1,
        next_order: 0,
        replayed: 0,
        schema: SchemaReport::default(),
        pending_messages: Vec::new(),
    }
}
