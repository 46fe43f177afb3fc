//! The clean-stop marker of a cluster process's data dir (storage layer, written by the
//! engine's shutdown, read by its recovery).
//!
//! ```text
//! <dir>/clean-stop   the last epoch this process logged, written after a clean stop
//! ```
//!
//! Processes stopped together do not all log the same last epoch: one whose input closed
//! first has no record of the epochs the others still closed, though it took part in none of
//! them (the dataflow ran until every process had finished, so whatever it took part in, it
//! logged). Without the marker, the restart would agree on the lowest last epoch, below what
//! the others' stores hold, and refuse to start. The marker counts only while the log still
//! ends at its epoch, and only once: the restart that reads it brings every log to the agreed
//! epoch (an empty record where one ended before it) and then spends it, so that a crash of
//! the next run, before this process logs anything, is judged by the logs alone.

use std::path::Path;

const FILE: &str = "clean-stop";

/// Records that the process stopped cleanly with `epoch` as its last logged epoch (a
/// temporary file, fsync'ed, renamed into place).
pub(crate) fn mark(root: &Path, epoch: u64) -> std::io::Result<()> {
    let tmp = root.join("clean-stop.tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        std::io::Write::write_all(&mut f, epoch.to_string().as_bytes())?;
        f.sync_data()?;
    }
    std::fs::rename(&tmp, root.join(FILE))?;
    std::fs::File::open(root)?.sync_all()
}

/// Removes the marker (durably), once the restart it vouched for has aligned the log.
pub(crate) fn spend(root: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(root.join(FILE)) {
        Ok(()) => std::fs::File::open(root)?.sync_all(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Whether the process stopped cleanly with `last` as its last logged epoch, and logged
/// nothing since.
pub(crate) fn stopped_cleanly_at(root: &Path, last: u64) -> bool {
    match std::fs::read_to_string(root.join(FILE)) {
        Ok(s) => s.trim().parse::<u64>().ok() == Some(last),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the clean-stop marker; recovering as after a crash");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_marker_counts_only_for_the_epoch_it_names() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(!stopped_cleanly_at(dir.path(), 7), "no marker: not clean");
        mark(dir.path(), 7).expect("mark");
        assert!(stopped_cleanly_at(dir.path(), 7));
        assert!(
            !stopped_cleanly_at(dir.path(), 9),
            "logged since: not clean"
        );
        std::fs::write(dir.path().join(FILE), "seven").expect("write");
        assert!(!stopped_cleanly_at(dir.path(), 7), "unreadable: not clean");
        mark(dir.path(), 7).expect("mark");
        spend(dir.path()).expect("spend");
        assert!(!stopped_cleanly_at(dir.path(), 7), "spent: not clean");
        spend(dir.path()).expect("spending none is fine");
    }
}
