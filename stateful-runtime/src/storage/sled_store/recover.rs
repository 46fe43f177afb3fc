//! Recovery of the sled store: back to the last epoch every committer of the previous run
//! reached (and no further than a cluster's ceiling), registering this run's committers.

use std::collections::BTreeSet;

use stateful_core::records::decode;
use stateful_core::records::index::IndexEntry;

use super::super::error::OpenError;
use super::super::store::{CommitterId, Recovered};
use super::layout::*;

/// See [`super::super::store::StateStore::recover_to`].
pub(super) fn recover_to(
    db: &sled::Db,
    committers: &[CommitterId],
    ceiling: Option<u64>,
) -> Result<Recovered, OpenError> {
    let mut batch = sled::Batch::default();
    let mut committed = None::<u64>;
    for item in db.scan_prefix([MARKER]) {
        let (k, v) = item?;
        let epoch = decode_u64(&v)?;
        committed = Some(committed.map_or(epoch, |c| c.min(epoch)));
        batch.remove(k);
    }
    let committed = match (committed.unwrap_or(0), ceiling) {
        (c, Some(ceiling)) => c.min(ceiling),
        (c, None) => c,
    };

    let mut versions = BTreeSet::new();
    if let Some(first) = committed.checked_add(1) {
        let start = index_key(
            first,
            CommitterId {
                worker: 0,
                lambda: 0,
            },
        );
        for item in db.range(start..[INDEX + 1].to_vec()) {
            let (k, v) = item?;
            let entry: IndexEntry = decode(&v)?;
            versions.extend(entry.versions);
            for (seq, idem) in entry.completions {
                batch.remove(completion_key(seq));
                if let Some(idem) = idem {
                    let ik = idempotency_key(&idem);
                    let points_here = match db.get(&ik)? {
                        Some(v) => decode_u64(&v)? == seq,
                        None => false,
                    };
                    if points_here {
                        batch.remove(ik);
                    }
                }
            }
            batch.remove(k);
        }
    }
    let mut discarded_versions = 0;
    for v in versions {
        if db.contains_key(&v)? {
            discarded_versions += 1;
        }
        batch.remove(v);
    }
    for c in committers {
        batch.insert(marker_key(*c), &committed.to_be_bytes());
    }
    db.apply_batch(batch)?;
    db.flush()?;
    Ok(Recovered {
        committed_epoch: committed,
        discarded_versions,
    })
}
