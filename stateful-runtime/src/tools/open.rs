//! Opening the data dir of a stopped service for the tools.

use std::path::Path;
use std::sync::Arc;

use crate::storage::{DataDir, OpenError, StateStore};

/// Why a data dir could not be opened by a tool.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenForReadingError {
    /// A running service holds the dir.
    #[error(
        "{} is in use by a running service; ask it instead (GET /state/{{lambda}}/{{key}}, /debug/..), or stop it first",
        .0.display()
    )]
    InUse(std::path::PathBuf),
    /// The dir cannot be used.
    #[error(transparent)]
    Open(#[from] OpenError),
}

/// The data dir of `app` at `dir` and its store, up to date with its commit log (the service
/// must be stopped).
pub fn open_for_reading(
    app: &str,
    dir: &Path,
) -> Result<(DataDir, Arc<dyn StateStore>), OpenForReadingError> {
    let data = DataDir::open_existing(dir, app)?;
    match data.open_store_recovered() {
        Ok(store) => Ok((data, Arc::new(store))),
        Err(OpenError::Locked(_)) => Err(OpenForReadingError::InUse(dir.to_owned())),
        Err(e) => Err(e.into()),
    }
}
