//! The data-dir meta (`meta.json`): what a data dir records about itself when it is created.

use serde::{Deserialize, Serialize};

/// The on-disk format this build reads and writes. A data dir of another format is refused
/// when it is opened.
pub const FORMAT: u32 = 4;

/// What a data dir records about itself: fixed at creation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataDirMeta {
    /// The app the data belongs to.
    pub app: String,
    /// Key groups (fixed for the life of the data).
    pub key_groups: u16,
    /// The on-disk format ([`FORMAT`] for a dir this build created).
    pub format: u32,
    /// Set when the dir is one process's part of a cluster's state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<Layout>,
}

/// The shape of the cluster a data dir belongs to: which key groups it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layout {
    /// Processes of the cluster.
    pub processes: usize,
    /// This dir's process.
    pub process: usize,
    /// Workers per process.
    pub workers: usize,
}

impl Layout {
    /// "process P of a cluster of N processes x W workers".
    pub fn describe(&self) -> String {
        format!(
            "process {} of a cluster of {} processes x {} workers",
            self.process, self.processes, self.workers
        )
    }
}

/// `describe` of an optional layout: a single process when `None`.
pub fn describe(layout: Option<Layout>) -> String {
    layout.map_or_else(|| "a single process".to_owned(), |l| l.describe())
}

impl DataDirMeta {
    /// The file name inside the data dir.
    pub const FILE: &'static str = "meta.json";

    /// The meta of a new dir in the current format.
    pub fn new(app: &str, key_groups: u16, cluster: Option<Layout>) -> Self {
        DataDirMeta {
            app: app.to_owned(),
            key_groups: key_groups.max(1),
            format: FORMAT,
            cluster,
        }
    }

    /// Parses `meta.json`.
    pub fn from_json(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// `meta.json`'s text.
    pub fn to_json(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec_pretty(self)
    }
}
