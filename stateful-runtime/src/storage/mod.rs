//! Storage: the data dir, the commit log (the durable truth), the state store materialised
//! from it (sled, and an in-memory one with the same semantics), and history compaction.
//!
//! ```text
//! DataDir ── meta.json (app, key groups, format, layout)
//!         ├─ log/    CommitLog: one checksummed record per epoch, fsync'ed before answers go
//!         └─ state/  StateStore: versions by (lambda, key group, key, epoch), completions,
//!                    epoch index, checkpoint; SledStore (default) or MemoryStore
//! Compactor: drops history older than the retention horizon
//! ```
//!
//! A layer of its own below the engine: it knows records and bytes, never lambdas' types.
//! Errors are per operation: [`OpenError`], [`ReadError`], [`WriteError`], [`CompactError`].

pub(crate) mod clean_stop;
mod compactor;
#[cfg(test)]
mod crash_tests;
mod crc;
mod datadir;
mod error;
pub mod log;
pub mod memory;
#[cfg(test)]
mod model_tests;
pub mod sled_store;
mod store;

pub use compactor::HistoryRetention;
pub(crate) use compactor::{Compactor, Expiry};
pub use datadir::DataDir;
pub(crate) use datadir::apply_tail;
pub use error::{CompactError, OpenError, ReadError, WriteError};
pub use memory::MemoryStore;
pub use sled_store::{DEFAULT_PAGE_CACHE_BYTES, SledStore};
pub use store::{
    Checkpoint, CommitRecord, Compacted, Completion, CompletionEntry, Horizon, MessageId,
    MessageRecord, StateStore, Version, WriteRecord,
};

/// Milliseconds since the Unix epoch (request timestamps).
pub(crate) fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Microseconds since the Unix epoch (what epochs are: the time an epoch opened).
pub(crate) fn unix_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// Formats an epoch (unix µs) as an RFC 3339 time.
pub fn epoch_time(epoch: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_micros(epoch);
    humantime::format_rfc3339_micros(t).to_string()
}
