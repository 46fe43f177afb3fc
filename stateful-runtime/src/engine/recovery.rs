//! Opening the storage of a run and recovering: back to the last epoch every committer of the
//! previous run made durable (in a cluster: the epoch committed everywhere), then the logged
//! requests that did not complete run again, in log order.
//!
//! ```text
//! data dir ── meta check ── store (recover_to ceiling) ── ingress log (torn tail cut)
//!          └─ requests in the log without a completion ──▶ replay lists, per local worker
//! ```

use std::sync::Arc;

use super::admission::Request;
use super::config::{Config, Durability, StartError};
use super::placement::Placement;
use crate::storage::ingress::IngressLog;
use crate::storage::{CommitterId, DataDir, MemoryStore, StateStore};

/// The storage of a run.
pub(crate) struct Storage {
    pub store: Arc<dyn StateStore>,
    pub ingress: Option<Arc<IngressLog>>,
    /// Key groups (of the data dir, when there is one).
    pub groups: u16,
}

/// Opens (or creates) the data dir of `config` for app `app`, or memory.
pub(crate) fn open_storage(app: &str, config: &Config) -> Result<Storage, StartError> {
    if config.durability == Durability::InMemory {
        return Ok(Storage {
            store: Arc::new(MemoryStore::new()),
            ingress: None,
            groups: config.key_groups,
        });
    }
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
    let dir = DataDir::open_or_create(&root, app, config.key_groups, layout)?;
    let store = dir.open_store()?;
    store.check_app(app)?;
    let (log, report) = dir.open_log()?;
    if report.truncated_bytes > 0 {
        tracing::warn!(
            bytes = report.truncated_bytes,
            "ingress log had a torn tail; truncated it"
        );
    }
    Ok(Storage {
        store: Arc::new(store),
        ingress: Some(Arc::new(log)),
        groups: dir.key_groups(),
    })
}

/// What recovery found.
pub(crate) struct Recovery {
    pub committed_epoch: u64,
    /// Per local worker, the logged requests to run again.
    pub replay: Vec<Vec<Request>>,
    /// The seq of the next request (in memory, where there is no log).
    pub next_seq: u64,
}

/// Recovers the store to `ceiling` (or the last epoch committed by every committer), registers
/// `committers`, and lists the logged requests that did not complete.
pub(crate) fn recover(
    storage: &Storage,
    placement: &Placement,
    committers: &[CommitterId],
    ceiling: Option<u64>,
    lambdas: usize,
) -> Result<Recovery, StartError> {
    let store = storage.store.as_ref();
    let recovered = store.recover_to(committers, ceiling)?;
    tracing::info!(
        committed_epoch = recovered.committed_epoch,
        discarded = recovered.discarded_versions,
        "recovered state"
    );
    let mut replay: Vec<Vec<Request>> = (0..placement.workers).map(|_| Vec::new()).collect();
    let mut next_seq = 1;
    if let Some(log) = &storage.ingress {
        // Below the watermark every request completed (and may have been compacted).
        let below = store.horizon()?.complete_below_seq;
        next_seq = next_seq.max(below);
        let records = log.read_from(below)?;
        if let Some(last) = records.last() {
            next_seq = next_seq.max(last.seq + 1);
        }
        for r in crate::storage::ingress::incomplete(store, records)? {
            if usize::from(r.lambda) >= lambdas {
                continue;
            }
            replay[placement.local_worker(&r.key)].push(Request {
                seq: r.seq,
                at_ms: 0,
                lambda: r.lambda,
                key: r.key,
                handler: r.handler,
                args: r.args,
                idempotency_key: r.idempotency_key,
                responder: None,
            });
        }
        let n: usize = replay.iter().map(Vec::len).sum();
        if n > 0 {
            tracing::info!(
                requests = n,
                "replaying logged requests that did not complete"
            );
        }
    }
    Ok(Recovery {
        committed_epoch: recovered.committed_epoch,
        replay,
        next_seq,
    })
}
