//! The files under the commit log, behind a trait: the operating system's, or (in tests) a
//! simulated disk that forgets every write after the last sync when the power is cut.
//!
//! ```text
//! LogFs: list / read / open_append / remove / truncate / sync_dir
//! LogFile: write_all (buffered, volatile) ─ flush (to the OS: survives a process crash)
//!                                         ─ sync_data (fdatasync: survives a power cut)
//! ```

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

/// An open log file, appended to.
pub trait LogFile: Send {
    /// Appends bytes (buffered: neither in the OS nor on disk yet).
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()>;
    /// Hands the buffered bytes to the OS: they survive a crash of the process.
    fn flush(&mut self) -> io::Result<()>;
    /// `fdatasync`: everything written is on the disk and survives a power cut.
    fn sync_data(&mut self) -> io::Result<()>;
}

/// The directory of the log.
pub trait LogFs: Send + Sync + std::fmt::Debug {
    /// Names of the files in `dir` (an absent dir is empty).
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// A whole file.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// Opens `path` to append, creating it (and `dir`) if needed.
    fn open_append(&self, path: &Path) -> io::Result<Box<dyn LogFile>>;
    /// Deletes a file.
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// Cuts a file to `len` bytes, durably.
    fn truncate(&self, path: &Path, len: u64) -> io::Result<()>;
    /// Makes the directory's entries (created or removed files) durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Creates the directory (and its parents) if it is missing.
    fn create_dir(&self, dir: &Path) -> io::Result<()>;
}

/// The operating system's files.
#[derive(Debug, Default, Clone, Copy)]
pub struct OsFs;

struct OsFile(BufWriter<File>);

impl LogFile for OsFile {
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.0.write_all(bytes)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
    fn sync_data(&mut self) -> io::Result<()> {
        self.0.flush()?;
        self.0.get_ref().sync_data()
    }
}

impl LogFs for OsFs {
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        match std::fs::read_dir(dir) {
            Ok(entries) => Ok(entries
                .flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        std::fs::read(path)
    }
    fn open_append(&self, path: &Path) -> io::Result<Box<dyn LogFile>> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let f = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Box::new(OsFile(BufWriter::with_capacity(1 << 16, f))))
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }
    fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
        let f = OpenOptions::new().write(true).open(path)?;
        f.set_len(len)?;
        f.sync_data()
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }
    fn create_dir(&self, dir: &Path) -> io::Result<()> {
        if dir.is_dir() {
            return Ok(());
        }
        std::fs::create_dir_all(dir)?;
        // The new entry is durable in its parent too.
        match dir.parent() {
            Some(p) if !p.as_os_str().is_empty() => File::open(p)?.sync_all(),
            _ => Ok(()),
        }
    }
}

/// One simulated file: what is on the disk, and what was written since the last sync.
#[derive(Debug, Default, Clone)]
struct SimFile {
    durable: Vec<u8>,
    volatile: Vec<u8>,
    /// Its directory entry is durable (created before the last `sync_dir`).
    listed: bool,
}

/// A simulated disk for power-loss tests: [`SimFs::power_cut`] forgets, for every file,
/// what was written after its last `sync_data` (keeping a prefix of it, as a torn write
/// would), and every file created since the last `sync_dir`.
#[derive(Debug, Default, Clone)]
pub struct SimFs {
    files: Arc<Mutex<BTreeMap<PathBuf, SimFile>>>,
}

struct SimHandle {
    fs: SimFs,
    path: PathBuf,
    buf: Vec<u8>,
}

impl SimFs {
    /// An empty disk.
    pub fn new() -> SimFs {
        SimFs::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut BTreeMap<PathBuf, SimFile>) -> T) -> T {
        f(&mut self.files.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// The power goes: of every file, only what was synced stays, plus the first `keep(n)`
    /// of its `n` unsynced bytes (a torn write); files not yet in a synced directory go.
    pub fn power_cut(&self, mut keep: impl FnMut(usize) -> usize) {
        self.with(|files| {
            files.retain(|_, f| f.listed);
            for f in files.values_mut() {
                let n = keep(f.volatile.len()).min(f.volatile.len());
                let torn: Vec<u8> = f.volatile.drain(..).take(n).collect();
                f.durable.extend(torn);
            }
        });
    }

    /// The disk as it would come back if the power went now (see [`SimFs::power_cut`]), as a
    /// new disk; this one carries on.
    pub fn after_power_cut(&self, keep: impl FnMut(usize) -> usize) -> SimFs {
        let copy = SimFs {
            files: Arc::new(Mutex::new(self.with(|files| files.clone()))),
        };
        copy.power_cut(keep);
        copy
    }

    /// The directories that hold files.
    pub fn list_dirs(&self) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = self.with(|files| {
            files
                .keys()
                .filter_map(|p| p.parent().map(Path::to_path_buf))
                .collect()
        });
        dirs.dedup();
        dirs
    }

    /// The bytes of a file as a reader sees them now (synced and unsynced).
    pub fn bytes(&self, path: &Path) -> Option<Vec<u8>> {
        self.with(|files| {
            files.get(path).map(|f| {
                let mut b = f.durable.clone();
                b.extend_from_slice(&f.volatile);
                b
            })
        })
    }

    /// Replaces a file's contents (durably): for corrupting a log in tests.
    pub fn set_bytes(&self, path: &Path, bytes: Vec<u8>) {
        self.with(|files| {
            files.insert(
                path.to_owned(),
                SimFile {
                    durable: bytes,
                    volatile: Vec::new(),
                    listed: true,
                },
            );
        });
    }
}

impl LogFile for SimHandle {
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.buf.extend_from_slice(bytes);
        Ok(())
    }
    fn flush(&mut self) -> io::Result<()> {
        let buf = std::mem::take(&mut self.buf);
        self.fs.with(|files| {
            files
                .entry(self.path.clone())
                .or_default()
                .volatile
                .extend(buf)
        });
        Ok(())
    }
    fn sync_data(&mut self) -> io::Result<()> {
        self.flush()?;
        self.fs.with(|files| {
            if let Some(f) = files.get_mut(&self.path) {
                let v = std::mem::take(&mut f.volatile);
                f.durable.extend(v);
            }
        });
        Ok(())
    }
}

impl LogFs for SimFs {
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        Ok(self.with(|files| {
            files
                .keys()
                .filter(|p| p.parent() == Some(dir))
                .filter_map(|p| p.file_name()?.to_str().map(str::to_owned))
                .collect()
        }))
    }
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.bytes(path)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such simulated file"))
    }
    fn open_append(&self, path: &Path) -> io::Result<Box<dyn LogFile>> {
        self.with(|files| {
            files.entry(path.to_owned()).or_default();
        });
        Ok(Box::new(SimHandle {
            fs: self.clone(),
            path: path.to_owned(),
            buf: Vec::new(),
        }))
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        self.with(|files| files.remove(path));
        Ok(())
    }
    fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
        self.with(|files| {
            if let Some(f) = files.get_mut(path) {
                let mut all = std::mem::take(&mut f.durable);
                all.append(&mut f.volatile);
                all.truncate(len as usize);
                f.durable = all;
            }
        });
        Ok(())
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.with(|files| {
            for (p, f) in files.iter_mut() {
                if p.parent() == Some(dir) {
                    f.listed = true;
                }
            }
        });
        Ok(())
    }
    fn create_dir(&self, _: &Path) -> io::Result<()> {
        Ok(())
    }
}
