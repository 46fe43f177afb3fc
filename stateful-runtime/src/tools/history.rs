//! The committed versions of one instance, each with the requests that wrote it.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use stateful_core::keys::key_group;

use crate::storage::ingress::{IngressRecord, scan_log};
use crate::storage::{Horizon, ReadError, StateStore};

/// One committed version of an instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionRecord {
    /// The commit epoch.
    pub epoch: u64,
    /// The encoded state after that commit (`None`: deleted).
    pub value: Option<Vec<u8>>,
    /// The requests that changed it in that commit, with their logged request when the log
    /// has it (empty before the history horizon).
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
/// requests that wrote each (looked up in the ingress log at `log`, when given).
pub fn history(
    store: &dyn StateStore,
    groups: u16,
    lambda: u16,
    key: &[u8],
    log: Option<&Path>,
) -> Result<History, ReadError> {
    let group = key_group(key, groups);
    let mut versions = Vec::new();
    let mut wanted = HashSet::new();
    for (epoch, value) in store.history(lambda, group, key)? {
        let writers = store.writers(lambda, group, key, epoch)?;
        wanted.extend(writers.iter().copied());
        versions.push((epoch, value, writers));
    }
    let mut logged: HashMap<u64, IngressRecord> = HashMap::new();
    if let Some(path) = log.filter(|p| !wanted.is_empty() && p.exists()) {
        let from = wanted.iter().copied().min().unwrap_or(0);
        scan_log(path, from, |r| {
            if wanted.contains(&r.seq) {
                logged.insert(r.seq, r);
            }
            logged.len() < wanted.len()
        })?;
    }
    Ok(History {
        versions: versions
            .into_iter()
            .map(|(epoch, value, writers)| VersionRecord {
                epoch,
                value,
                writers: writers
                    .into_iter()
                    .map(|s| (s, logged.get(&s).cloned()))
                    .collect(),
            })
            .collect(),
        horizon: store.horizon()?,
    })
}
