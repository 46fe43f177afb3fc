//! What one committer wrote in one epoch: what recovery deletes when it rolls the epoch back,
//! and what compaction walks.

use serde::{Deserialize, Serialize};

use super::Record;

/// The epoch index entry of one committer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexEntry {
    /// The store's keys of the state versions written.
    pub versions: Vec<Vec<u8>>,
    /// Completed sequence numbers with their idempotency keys.
    pub completions: Vec<(u64, Option<String>)>,
}

impl Record for IndexEntry {
    const KIND: &'static str = "epoch index entry";
    const VERSION: u8 = 1;
}
