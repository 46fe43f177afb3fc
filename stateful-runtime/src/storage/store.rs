//! The [`StateStore`] contract: durable, versioned state of all lambdas, with completions,
//! the commit markers recovery works from, and history compaction.
//!
//! ```text
//! operator (lambda L on worker w) ──CommitBatch{committer, epoch, writes, completed}──▶ StateStore
//!                                                     one atomic batch + flush per call
//! recovery: committed epoch C = min over the last run's committers of their marker;
//!           every version and completion written at an epoch > C is discarded.
//! ```
//!
//! State is stored by `(lambda, key group, key)` and versioned by commit epoch, so that a run
//! with a different worker count loads the same data, a partially written commit epoch (some
//! committers wrote it, others crashed first) can be rolled back on recovery, and history can
//! be read back for time travel.

use stateful_core::keys::KeyGroup;

use super::error::{CompactError, OpenError, ReadError, WriteError};

/// Identifies one committer: one lambda operator on one worker. Each writes its own marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CommitterId {
    /// Worker index.
    pub worker: u32,
    /// Lambda id.
    pub lambda: u16,
}

/// One state change in a commit batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateWrite {
    /// Lambda id.
    pub lambda: u16,
    /// Key group of the key.
    pub group: KeyGroup,
    /// Encoded key.
    pub key: Vec<u8>,
    /// New encoded value (a state record of `stateful_core::records::state`), `None` to delete.
    pub value: Option<Vec<u8>>,
    /// Sequence numbers of the requests that changed it in this epoch (for `history`).
    pub writers: Vec<u64>,
}

/// A request that completed in a commit epoch, with its response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    /// Ingress sequence number.
    pub seq: u64,
    /// Idempotency key the client sent, if any.
    pub idempotency_key: Option<String>,
    /// Whether the handler returned `Ok`.
    pub ok: bool,
    /// Encoded response.
    pub response: Vec<u8>,
    /// Position in the total order in which requests completed (a serial order consistent with
    /// every conflict, used to replay a log exactly).
    pub order: u64,
    /// The commit epoch it completed in (set by the store when read back; ignored on commit).
    pub epoch: u64,
    /// The encoded call tree (empty when traces are off).
    pub trace: Vec<u8>,
}

/// Everything one committer changed in one commit epoch. Written atomically.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitBatch {
    /// Who commits.
    pub committer: CommitterId,
    /// The commit epoch.
    pub epoch: u64,
    /// State changes (latest value per key).
    pub writes: Vec<StateWrite>,
    /// Requests completed (only by the committer that holds their root).
    pub completed: Vec<Completion>,
}

/// One committed version of an instance: `(epoch, value)`, `None` for a delete.
pub type Version = (u64, Option<Vec<u8>>);

/// What recovery found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Last epoch committed by every committer of the previous run (0 when new).
    pub committed_epoch: u64,
    /// Number of state versions discarded because their epoch was after it.
    pub discarded_versions: u64,
}

/// How far back history reaches after compaction (see [`StateStore::compact`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Horizon {
    /// The oldest epoch whose state can still be read; 0 when nothing was compacted.
    /// [`StateStore::get_at`] before it fails with [`ReadError::Compacted`].
    pub epoch: u64,
    /// Every request with a smaller sequence number has completed, and those without an
    /// idempotency key are forgotten: recovery reads the ingress log from here.
    pub complete_below_seq: u64,
}

impl Default for Horizon {
    fn default() -> Self {
        Horizon {
            epoch: 0,
            complete_below_seq: 1,
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
    /// Completion records deleted (requests below the new `complete_below_seq` without an
    /// idempotency key).
    pub completions: u64,
    /// Traces dropped from completion records that stay (for idempotency or recovery).
    pub stripped: u64,
}

/// Durable, versioned state of all lambdas.
pub trait StateStore: Send + Sync + 'static {
    /// Recovers after a (clean or unclean) stop and registers the committers of this run:
    /// discards everything written after the last epoch every previous committer reached.
    fn recover(&self, committers: &[CommitterId]) -> Result<Recovered, OpenError> {
        self.recover_to(committers, None)
    }
    /// [`StateStore::recover`], keeping nothing after `ceiling` either: in a cluster, the last
    /// epoch committed on every process (a process may have written later epochs that others
    /// did not; those were never acknowledged and are rolled back).
    fn recover_to(
        &self,
        committers: &[CommitterId],
        ceiling: Option<u64>,
    ) -> Result<Recovered, OpenError>;
    /// What [`StateStore::recover`] would keep: the last epoch every committer of the previous
    /// run committed; `None` when nothing was ever committed.
    fn committed_epoch(&self) -> Result<Option<u64>, ReadError>;
    /// The latest committed value of an instance.
    fn get(&self, lambda: u16, group: KeyGroup, key: &[u8]) -> Result<Option<Vec<u8>>, ReadError>;
    /// The value of an instance as of commit epoch `epoch` (latest version at or before it).
    fn get_at(
        &self,
        lambda: u16,
        group: KeyGroup,
        key: &[u8],
        epoch: u64,
    ) -> Result<Option<Vec<u8>>, ReadError>;
    /// Every committed version of an instance: `(epoch, value)`, oldest first.
    fn history(&self, lambda: u16, group: KeyGroup, key: &[u8]) -> Result<Vec<Version>, ReadError>;
    /// Writes one committer's epoch atomically and durably (returns after the flush).
    ///
    /// The committer must have been registered by [`StateStore::recover`]
    /// ([`WriteError::UnknownCommitter`]) and `epoch` must be after its last committed
    /// epoch ([`WriteError::StaleEpoch`]). An idempotency key keeps pointing at the first
    /// committed completion that used it; it is forgotten when recovery discards that
    /// completion.
    fn commit(&self, batch: CommitBatch) -> Result<(), WriteError>;
    /// Writes several commits (each atomic, in order) and makes them all durable with one
    /// flush: the group commit of a commit epoch's batches from every committer.
    fn commit_group(&self, batches: Vec<CommitBatch>) -> Result<(), WriteError> {
        for b in batches {
            self.commit(b)?;
        }
        Ok(())
    }
    /// A completed request by sequence number.
    fn completion(&self, seq: u64) -> Result<Option<Completion>, ReadError>;
    /// The completed request with this idempotency key.
    fn completion_by_idempotency_key(&self, key: &str) -> Result<Option<Completion>, ReadError>;
    /// Every key of one lambda whose latest version is not a delete: `(group, key)`, sorted.
    fn keys(&self, lambda: u16) -> Result<Vec<(KeyGroup, Vec<u8>)>, ReadError>;
    /// Sequence numbers `>= from_seq` of every committed completion, ascending: recovery
    /// replays the logged requests that are not among them.
    fn completed_seqs_from(&self, from_seq: u64) -> Result<Vec<u64>, ReadError>;
    /// The requests (seqs) that wrote the version of an instance committed at `epoch`
    /// (empty when unknown: before the horizon, or written before this was recorded).
    fn writers(
        &self,
        lambda: u16,
        group: KeyGroup,
        key: &[u8],
        epoch: u64,
    ) -> Result<Vec<u64>, ReadError>;
    /// How far back history reaches.
    fn horizon(&self) -> Result<Horizon, ReadError>;
    /// Compacts history before `up_to` (clamped to the last epoch every committer of this
    /// run committed): deletes every state version that no read at or after the new horizon
    /// can see, the traces of requests completed before it, and the completion records of
    /// requests below the new `complete_below_seq` that have no idempotency key (those
    /// with one stay, so that retries still get their answer). Reads before the
    /// horizon then fail with [`ReadError::Compacted`].
    fn compact(&self, up_to: u64) -> Result<Compacted, CompactError>;
    /// Bytes the store takes on disk (0 in memory).
    fn size_on_disk(&self) -> Result<u64, ReadError> {
        Ok(0)
    }
    /// Records `app_name` in a new data dir; fails with [`OpenError::WrongApp`] when the
    /// dir belongs to another app.
    fn check_app(&self, app_name: &str) -> Result<(), OpenError>;
}
