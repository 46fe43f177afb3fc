//! The data dir: one type owns its paths, its meta and the checks that it fits this app and
//! this deployment.
//!
//! ```text
//! <dir>/meta.json     app, key groups, on-disk format, cluster layout (fixed at creation)
//! <dir>/schema.json   per lambda: position, key type, state schema (rewritten at start-up)
//! <dir>/state/        the sled store
//! <dir>/log/          the commit log
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use stateful_core::records::meta::{self, DataDirMeta, FORMAT, Layout};
use stateful_core::records::schema::StoredSchemas;

use super::error::OpenError;
use super::log::fs::{LogFs, OsFs};
use super::log::{CommitLog, LogReport, SyncMode};
use super::sled_store::SledStore;
use super::store::{CommitRecord, StateStore};

/// An opened data dir whose meta fits the app that opened it.
#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
    meta: DataDirMeta,
}

impl DataDir {
    /// Opens the dir of a service (creating it, with `groups` key groups and `layout`, when new).
    /// A dir of another app, another on-disk format or another cluster shape is refused.
    pub fn open_or_create(
        root: &Path,
        app: &str,
        groups: u16,
        layout: Option<Layout>,
    ) -> Result<DataDir, OpenError> {
        std::fs::create_dir_all(root)?;
        match Self::read_meta(root)? {
            Some(m) => {
                let dir = Self::checked(root, m, app)?;
                dir.check_layout(layout)?;
                Ok(dir)
            }
            None => Self::create(root, app, groups, layout),
        }
    }

    /// Opens an existing dir of `app` (for the tools): its meta must be there and fit.
    pub fn open_existing(root: &Path, app: &str) -> Result<DataDir, OpenError> {
        let m = Self::read_meta(root)?.ok_or_else(|| OpenError::NotADataDir(root.to_owned()))?;
        Self::checked(root, m, app)
    }

    /// Creates a new dir (its meta record) for `app`.
    pub fn create(
        root: &Path,
        app: &str,
        groups: u16,
        layout: Option<Layout>,
    ) -> Result<DataDir, OpenError> {
        std::fs::create_dir_all(root)?;
        let meta = DataDirMeta::new(app, groups, layout);
        let bytes = meta
            .to_json()
            .map_err(|e| OpenError::Corrupt(e.to_string()))?;
        let tmp = root.join("meta.json.tmp");
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, root.join(DataDirMeta::FILE))?;
        Ok(DataDir {
            root: root.to_owned(),
            meta,
        })
    }

    fn read_meta(root: &Path) -> Result<Option<DataDirMeta>, OpenError> {
        read_json(&root.join(DataDirMeta::FILE), DataDirMeta::from_json)
    }

    fn checked(root: &Path, meta: DataDirMeta, app: &str) -> Result<DataDir, OpenError> {
        if meta.app != app {
            return Err(OpenError::WrongApp {
                found: meta.app,
                expected: app.to_owned(),
            });
        }
        if meta.format != FORMAT {
            return Err(OpenError::Format {
                dir: root.to_owned(),
                found: meta.format,
                expected: FORMAT,
            });
        }
        Ok(DataDir {
            root: root.to_owned(),
            meta,
        })
    }

    /// A dir holding one process's part of a cluster opens only as that process of a cluster
    /// of the same shape (and a single process's dir only alone).
    fn check_layout(&self, layout: Option<Layout>) -> Result<(), OpenError> {
        if self.meta.cluster == layout {
            return Ok(());
        }
        Err(OpenError::Shape(format!(
            "{} holds the state of {}, but this is {}: start with the same shape, or move the state with `rescale`",
            self.root.display(),
            meta::describe(self.meta.cluster),
            meta::describe(layout)
        )))
    }

    /// The dir's root path.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// What the dir records about itself.
    pub fn meta(&self) -> &DataDirMeta {
        &self.meta
    }

    /// Key groups of the dir.
    pub fn key_groups(&self) -> u16 {
        self.meta.key_groups
    }

    /// Where the commit log is.
    pub fn log_dir(&self) -> PathBuf {
        self.root.join("log")
    }

    /// The lambda schemas the last start recorded (`None`: never recorded).
    pub fn read_schemas(&self) -> Result<Option<StoredSchemas>, OpenError> {
        read_json(
            &self.root.join(StoredSchemas::FILE),
            StoredSchemas::from_json,
        )
    }

    /// Records the lambda schemas durably (a temporary file, fsync'ed, renamed into place).
    pub fn write_schemas(&self, schemas: &StoredSchemas) -> Result<(), OpenError> {
        let bytes = schemas
            .to_json()
            .map_err(|e| OpenError::Corrupt(e.to_string()))?;
        let tmp = self.root.join("schema.json.tmp");
        {
            let mut f = std::fs::File::create(&tmp)?;
            std::io::Write::write_all(&mut f, &bytes)?;
            f.sync_data()?;
        }
        std::fs::rename(&tmp, self.root.join(StoredSchemas::FILE))?;
        std::fs::File::open(&self.root)?.sync_all()?;
        Ok(())
    }

    fn state_path(&self) -> PathBuf {
        self.root.join("state")
    }

    /// Opens the store, waiting up to a second for a lock that a store dropped a moment ago in
    /// this process still holds (sled releases it from a background thread).
    pub fn open_store(&self) -> Result<SledStore, OpenError> {
        self.open_store_with_cache(super::sled_store::DEFAULT_PAGE_CACHE_BYTES)
    }

    /// [`DataDir::open_store`] with a page cache of `bytes` for the store.
    pub fn open_store_with_cache(&self, bytes: u64) -> Result<SledStore, OpenError> {
        let deadline = std::time::Instant::now() + Duration::from_secs(1);
        loop {
            match SledStore::open_with_cache(&self.state_path(), bytes) {
                Err(OpenError::Locked(_)) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                other => return other,
            }
        }
    }

    /// Opens the store of a stopped service (a running one holds the lock: `Locked`).
    pub fn open_store_now(&self) -> Result<SledStore, OpenError> {
        SledStore::open(&self.state_path()).map_err(|e| match e {
            OpenError::Locked(_) => OpenError::Locked(self.root.clone()),
            other => other,
        })
    }

    /// Opens (or creates) the commit log, cutting a torn tail: returns it with the records
    /// after `checkpoint` (the store's), for recovery to apply.
    pub fn open_log(
        &self,
        sync: SyncMode,
        checkpoint: u64,
    ) -> Result<(CommitLog, Vec<CommitRecord>, LogReport), OpenError> {
        self.open_log_on(std::sync::Arc::new(OsFs), sync, checkpoint)
    }

    /// [`DataDir::open_log`] on the files of `fs` (tests: a simulated disk).
    pub fn open_log_on(
        &self,
        fs: std::sync::Arc<dyn LogFs>,
        sync: SyncMode,
        checkpoint: u64,
    ) -> Result<(CommitLog, Vec<CommitRecord>, LogReport), OpenError> {
        CommitLog::open(&self.log_dir(), fs, sync, checkpoint)
    }

    /// Opens the store of a stopped service brought up to date: the log's records after the
    /// checkpoint are applied. A cluster process's dir stays at its checkpoint (only the
    /// cluster knows which of its logged epochs every process committed; its next start
    /// decides).
    pub fn open_store_recovered(&self) -> Result<SledStore, OpenError> {
        let store = self.open_store_now()?;
        if self.meta.cluster.is_none() {
            let cp = store.checkpoint()?;
            let (mut log, after, _) = self.open_log(SyncMode::ProcessCrash, cp.epoch)?;
            apply_tail(&store, &mut log, after)?;
        }
        Ok(store)
    }
}

/// Reads and parses a JSON file of the dir (`None`: there is none).
fn read_json<T, E: std::fmt::Display>(
    path: &Path,
    parse: fn(&[u8]) -> Result<T, E>,
) -> Result<Option<T>, OpenError> {
    match std::fs::read(path) {
        Ok(bytes) => parse(&bytes).map(Some).map_err(|e| {
            let file = path
                .file_name()
                .map_or_else(String::new, |f| f.to_string_lossy().into_owned());
            OpenError::Corrupt(format!("{file}: {e}"))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Applies the log's records after the store's checkpoint, flushes the store and cuts the
/// log behind it; the last epoch applied (`None`: there were none).
pub(crate) fn apply_tail(
    store: &dyn StateStore,
    log: &mut CommitLog,
    records: Vec<CommitRecord>,
) -> Result<Option<u64>, OpenError> {
    let Some(last) = records.last().map(|r| r.epoch) else {
        return Ok(None);
    };
    let records: Vec<_> = records.into_iter().map(std::sync::Arc::new).collect();
    store.apply(&records)?;
    store.flush()?;
    log.truncate_through(last)?;
    Ok(Some(last))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn another_app_format_or_shape_is_refused() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().join("d");
        let dir = DataDir::open_or_create(&root, "shop", 16, None).expect("creates");
        assert_eq!(dir.key_groups(), 16);
        assert_eq!(
            DataDir::open_or_create(&root, "shop", 99, None)
                .expect("reopens")
                .key_groups(),
            16,
            "key groups are fixed at creation"
        );
        assert!(matches!(
            DataDir::open_existing(&root, "bank"),
            Err(OpenError::WrongApp { .. })
        ));
        let layout = Layout {
            processes: 2,
            process: 0,
            workers: 1,
        };
        let err = DataDir::open_or_create(&root, "shop", 16, Some(layout)).expect_err("shape");
        assert!(err.to_string().contains("a single process"), "{err}");
        let mut meta = dir.meta().clone();
        meta.format = 1;
        std::fs::write(root.join("meta.json"), meta.to_json().expect("json")).expect("writes");
        let err = DataDir::open_existing(&root, "shop").expect_err("old format");
        assert!(matches!(err, OpenError::Format { found: 1, .. }), "{err}");
        assert!(matches!(
            DataDir::open_existing(&tmp.path().join("none"), "shop"),
            Err(OpenError::NotADataDir(_))
        ));
    }
}
