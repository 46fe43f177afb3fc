//! The errors of the storage layer, one enum per operation: opening (and recovering) a data
//! dir, reading, writing (commits and log appends) and compacting.

use std::path::PathBuf;

use stateful_core::records::RecordError;

/// Why a data dir, its store or its log could not be opened (or recovered).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// Another process holds the data dir open.
    #[error(
        "data dir {} is locked: another process uses this data dir (stop it or use another --data-dir)",
        .0.display()
    )]
    Locked(PathBuf),
    /// The data dir belongs to another app.
    #[error("data dir belongs to app `{found}`, not `{expected}`: use another --data-dir")]
    WrongApp {
        /// App name recorded in the data dir.
        found: String,
        /// This binary's app.
        expected: String,
    },
    /// The data dir was written in another on-disk format.
    #[error(
        "data dir {} has on-disk format {found}, this build reads format {expected}: it was made by another version of stateful (replay its log with that version, or use a new --data-dir)",
        .dir.display()
    )]
    Format {
        /// The data dir.
        dir: PathBuf,
        /// The format it records.
        found: u32,
        /// The format this build reads.
        expected: u32,
    },
    /// The dir holds the state of a deployment of another shape.
    #[error("{0}")]
    Shape(String),
    /// The path is not a data dir (no `meta.json`).
    #[error("{} is not a data dir of this app (no meta.json)", .0.display())]
    NotADataDir(PathBuf),
    /// A file of the data dir could not be read or written.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The storage engine failed.
    #[error("storage error: {0}")]
    Backend(String),
    /// Stored data is not what this build expects.
    #[error("corrupt data: {0}")]
    Corrupt(String),
    /// The store could not be brought up to date from the commit log.
    #[error("recovery from the commit log failed: {0}")]
    Recovery(String),
}

impl From<WriteError> for OpenError {
    fn from(e: WriteError) -> Self {
        OpenError::Recovery(e.to_string())
    }
}

/// Why a read of stored data failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// The storage engine failed.
    #[error("storage error: {0}")]
    Backend(String),
    /// A file could not be read.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// Stored data is not what this build expects.
    #[error("corrupt data: {0}")]
    Corrupt(String),
    /// History before the retention horizon was compacted away.
    #[error(
        "history before epoch {horizon} ({}) was compacted by the retention setting; epoch {asked} ({}) is out of reach",
        super::epoch_time(*.horizon),
        super::epoch_time(*.asked)
    )]
    Compacted {
        /// The epoch asked for.
        asked: u64,
        /// The oldest readable epoch.
        horizon: u64,
    },
}

/// Why a commit or a log append failed. Nothing of a failed commit is visible.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WriteError {
    /// The storage engine failed.
    #[error("storage error: {0}")]
    Backend(String),
    /// A file could not be written or synced.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// A record does not encode, or stored data read during the write is corrupt.
    #[error("corrupt data: {0}")]
    Corrupt(String),
    /// A key or record is larger than the layout can store.
    #[error("{what} of {len} bytes is too large")]
    TooLarge {
        /// What was too large.
        what: &'static str,
        /// Its size.
        len: usize,
    },
    /// An earlier write to the log failed: the log must be reopened.
    #[error("an earlier write to the log failed; reopen it")]
    Failed,
}

/// Why a compaction failed (it is retried later; what it did so far stays consistent).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CompactError {
    /// The storage engine failed.
    #[error("storage error: {0}")]
    Backend(String),
    /// Stored data is not what this build expects.
    #[error("corrupt data: {0}")]
    Corrupt(String),
}

macro_rules! from_record {
    ($($t:ty),*) => {$(
        impl From<RecordError> for $t {
            fn from(e: RecordError) -> Self {
                Self::Corrupt(e.to_string())
            }
        }
    )*};
}
from_record!(OpenError, ReadError, WriteError, CompactError);

macro_rules! from_sled {
    ($($t:ty),*) => {$(
        impl From<sled::Error> for $t {
            fn from(e: sled::Error) -> Self {
                Self::Backend(e.to_string())
            }
        }
    )*};
}
from_sled!(OpenError, ReadError, WriteError, CompactError);

impl From<ReadError> for WriteError {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Backend(m) => WriteError::Backend(m),
            ReadError::Io(io) => WriteError::Io(io),
            other => WriteError::Corrupt(other.to_string()),
        }
    }
}

impl From<ReadError> for OpenError {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Backend(m) => OpenError::Backend(m),
            ReadError::Io(io) => OpenError::Io(io),
            other => OpenError::Corrupt(other.to_string()),
        }
    }
}

impl From<ReadError> for CompactError {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Backend(m) => CompactError::Backend(m),
            other => CompactError::Corrupt(other.to_string()),
        }
    }
}
