//! Storage: the data dir, the state store (sled, and an in-memory one with the same
//! semantics), the ingress log, and history compaction.
//!
//! ```text
//! DataDir ── meta.json (app, key groups, format, layout)
//!         ├─ state/       StateStore: versions by (lambda, key group, key, epoch), completions,
//!         │               commit markers, epoch index; SledStore (default) or MemoryStore
//!         └─ ingress.log  IngressLog: every accepted request, framed and checksummed
//! Compactor: drops history older than the retention horizon
//! ```
//!
//! A layer of its own below the engine: it knows records and bytes, never lambdas' types.
//! Errors are per operation: [`OpenError`], [`ReadError`], [`WriteError`], [`CompactError`].

mod compactor;
#[cfg(test)]
mod crash_tests;
mod crc;
mod datadir;
mod error;
pub mod ingress;
pub mod memory;
#[cfg(test)]
mod model_tests;
pub mod sled_store;
mod store;

pub(crate) use compactor::Compactor;
pub use compactor::HistoryRetention;
pub use datadir::DataDir;
pub use error::{CompactError, OpenError, ReadError, WriteError};
pub use memory::MemoryStore;
pub use sled_store::SledStore;
pub use store::{
    CommitBatch, CommitterId, Compacted, Completion, Horizon, Recovered, StateStore, StateWrite,
    Version,
};

/// Milliseconds since the Unix epoch (what epochs are).
pub(crate) fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Formats an epoch (unix ms) as an RFC 3339 time.
pub fn epoch_time(epoch: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(epoch);
    humantime::format_rfc3339_millis(t).to_string()
}
