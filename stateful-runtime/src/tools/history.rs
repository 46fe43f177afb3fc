//! The committed versions of one instance, each with the requests that wrote it.

use stateful_core::keys::key_group;
use stateful_core::records::ingress::IngressRecord;

use crate::storage::{Horizon, ReadError, StateStore};

/// One committed version of an instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionRecord {
    /// The commit epoch.
    pub epoch: u64,
    /// The encoded state after that commit (`None`: deleted).
    pub value: Option<Vec<u8>>,
    /// The requests that changed it in that commit: each one's sequence number (on the
    /// process that accepted it) and the request, when this data dir has its completion
    /// (none before the history horizon; in a cluster, not those another process accepted).
    pub writers: Vec<(u64, Option<IngressRecord>)>,
}

/// The history of an instance and how far back history reaches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct History {
    /// Versions still in reach, oldest first.
    pub versions: Vec<VersionRecord>,
    /// The store's horizon.
    pub horizon: Horizon,
}

/// Every committed version of instance `key` of lambda `lambda` still in reach, with the
/// requests that wrote each. `place` is `(process, processes)` of the data dir (`(0, 1)`
/// alone): a root id names the process that accepted the request.
pub fn history(
    store: &dyn StateStore,
    groups: u16,
    lambda: u16,
    key: &[u8],
    place: (usize, usize),
) -> Result<History, ReadError> {
    let group = key_group(key, groups);
    let (process, processes) = (place.0 as u64, place.1.max(1) as u64);
    let mut versions = Vec::new();
    for (epoch, value) in store.history(lambda, group, key)? {
        let mut writers = Vec::new();
        for root in store.writers(lambda, group, key, epoch)? {
            let request = if root % processes == process {
                store.completion(root / processes)?.map(|c| c.request)
            } else {
                None
            };
            writers.push((root / processes, request));
        }
        versions.push(VersionRecord {
            epoch,
            value,
            writers,
        });
    }
    Ok(History {
        versions,
        horizon: store.horizon()?,
    })
}
