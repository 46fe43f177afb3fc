//! The [`StateStore`] contract: the state of all lambdas materialised from the commit log,
//! versioned by epoch, with the completed requests, and history compaction.
//!
//! ```text
//! commit log (durable truth) ──committed epochs, in order──▶ StateStore::apply ──▶ flush
//!   recovery: the store's checkpoint epoch C, then the log's records after C are applied
//! ```
//!
//! State is stored by `(lambda, key group, key)` and versioned by epoch, so that a run with a
//! different worker count loads the same data and history can be read back for time travel.
//! An epoch is applied only once it is durable in the log (in a cluster: committed on every
//! process), so the store never needs to roll anything back: the checkpoint moves past an
//! epoch only once all of it is applied, and an epoch a crash cut short is applied again from
//! the log on start-up (every write of an epoch can be applied twice with the same result).

use stateful_core::keys::KeyGroup;

use super::error::{CompactError, OpenError, ReadError, WriteError};

pub use stateful_core::records::commit::{CommitRecord, CompletionEntry, WriteRecord};
/// A completed request as the store gives it back (with the epoch it committed in).
pub use stateful_core::records::completion::CompletionRecord as Completion;
pub use stateful_core::records::message::{MessageId, MessageRecord};

/// What the store holds: the last epoch applied to it, and the counters a run resumes from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Checkpoint {
    /// The last epoch applied (0: nothing yet).
    pub epoch: u64,
    /// Larger than every request sequence number of the applied epochs.
    pub next_seq: u64,
    /// Larger than every completion order of the applied epochs.
    pub next_order: u64,
}

/// One committed version of an instance: `(epoch, value)`, `None` for a delete.
pub type Version = (u64, Option<Vec<u8>>);

/// How far back history reaches after compaction (see [`StateStore::compact`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Horizon {
    /// The oldest epoch whose state can still be read; 0 when nothing was compacted.
    /// [`StateStore::get_at`] before it fails with [`ReadError::Compacted`].
    pub epoch: u64,
    /// Larger than the sequence number of every completion record compaction deleted: a
    /// request below it that has no record may have been forgotten (one at or above it never
    /// wrote anything, or never completed).
    pub forgotten_below_seq: u64,
}

impl Default for Horizon {
    fn default() -> Self {
        Horizon {
            epoch: 0,
            forgotten_below_seq: 1,
        }
    }
}

/// What one compaction did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Compacted {
    /// The horizon after it.
    pub horizon: Horizon,
    /// Superseded state versions deleted.
    pub versions: u64,
    /// Completion records deleted (requests completed before the horizon without an
    /// idempotency key).
    pub completions: u64,
    /// Traces dropped from completion records that stay (for idempotency or recovery).
    pub stripped: u64,
}

/// Durable, versioned state of all lambdas.
pub trait StateStore: Send + Sync + 'static {
    /// The last epoch applied and the counters to resume from (all 0 for a new store).
    fn checkpoint(&self) -> Result<Checkpoint, ReadError>;
    /// Applies committed epochs (after the checkpoint, in order) and moves the checkpoint to
    /// the last of them. Durable after [`StateStore::flush`]. A crash may leave part of an
    /// epoch after the checkpoint applied; applying it again (recovery) completes it.
    fn apply(&self, epochs: &[std::sync::Arc<CommitRecord>]) -> Result<(), WriteError>;
    /// Makes everything applied durable, against a power cut too.
    fn flush(&self) -> Result<(), WriteError>;
    /// The latest committed value of an instance.
    fn get(&self, lambda: u16, group: KeyGroup, key: &[u8]) -> Result<Option<Vec<u8>>, ReadError>;
    /// The current value with the epoch that wrote it (`None`: absent).
    fn get_stamped(
        &self,
        lambda: u16,
        group: KeyGroup,
        key: &[u8],
    ) -> Result<Option<(u64, Vec<u8>)>, ReadError>;
    /// The value of an instance as of epoch `epoch` (latest version at or before it).
    fn get_at(
        &self,
        lambda: u16,
        group: KeyGroup,
        key: &[u8],
        epoch: u64,
    ) -> Result<Option<Vec<u8>>, ReadError>;
    /// Every committed version of an instance: `(epoch, value)`, oldest first.
    fn history(&self, lambda: u16, group: KeyGroup, key: &[u8]) -> Result<Vec<Version>, ReadError>;
    /// A completed request by sequence number.
    fn completion(&self, seq: u64) -> Result<Option<Completion>, ReadError>;
    /// The completed request with this idempotency key (the first one that used it).
    fn completion_by_idempotency_key(&self, key: &str) -> Result<Option<Completion>, ReadError>;
    /// Up to `limit` completed requests with a sequence number `>= from_seq`, ascending.
    fn completions_from(&self, from_seq: u64, limit: usize) -> Result<Vec<Completion>, ReadError>;
    /// Every key of one lambda whose latest version is not a delete: `(group, key)`, sorted.
    fn keys(&self, lambda: u16) -> Result<Vec<(KeyGroup, Vec<u8>)>, ReadError>;
    /// Messages committed and not yet delivered (a delivery's completion removes its message),
    /// in id order.
    fn pending_messages(&self) -> Result<Vec<MessageRecord>, ReadError>;
    /// The requests (root ids) that wrote the version of an instance committed at `epoch`
    /// (empty when unknown: before the horizon).
    fn writers(
        &self,
        lambda: u16,
        group: KeyGroup,
        key: &[u8],
        epoch: u64,
    ) -> Result<Vec<u64>, ReadError>;
    /// How far back history reaches.
    fn horizon(&self) -> Result<Horizon, ReadError>;
    /// Compacts history before `up_to` (clamped to the checkpoint): deletes every state
    /// version that no read at or after the new horizon can see, the traces of requests
    /// completed before it, and the completion records of those requests that have no
    /// idempotency key (those with one stay, so that retries still get their answer). Reads before the horizon then fail with
    /// [`ReadError::Compacted`]. Durable when it returns, with everything applied before it.
    fn compact(&self, up_to: u64) -> Result<Compacted, CompactError>;
    /// Deletes every instance of `lambda` whose latest version was written before epoch
    /// `written_before` (a TTL ran out), all its versions; how many. A version written after
    /// the scan saw the instance stays.
    fn expire(&self, lambda: u16, written_before: u64) -> Result<u64, CompactError>;
    /// Bytes the store takes on disk (0 in memory).
    fn size_on_disk(&self) -> Result<u64, ReadError> {
        Ok(0)
    }
    /// Records `app_name` in a new store; fails with [`OpenError::WrongApp`] when the store
    /// belongs to another app.
    fn check_app(&self, app_name: &str) -> Result<(), OpenError>;
}
