//! `cluster up`'s rescale: the running processes drain and stop, the state moves into the
//! new shape, the new dirs replace the old ones, and the new processes start (by the caller).
//!
//! ```text
//! SIGTERM every process, wait (clean stops: every epoch committed everywhere)
//! rescale p0..p(M-1) -> rescaling/p0..p(N-1)        (a crash here: rescaling/ is dropped)
//! rescaling/done  (fsync'ed)                        (from here on the move is finished on
//! p_i -> retired/p_i; rescaling/p_j -> p_j           the next start if a crash cuts it)
//! remove done, rescaling/, retired/
//! ```

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::Instant;

use crate::service::App;

/// Where the move stands.
fn rescaling(root: &Path) -> PathBuf {
    root.join("rescaling")
}

fn retired(root: &Path) -> PathBuf {
    root.join("retired")
}

fn done_marker(root: &Path) -> PathBuf {
    rescaling(root).join("done")
}

/// Process `i`'s data dir under `root`.
pub(super) fn process_dir(root: &Path, i: usize) -> PathBuf {
    root.join(format!("p{i}"))
}

/// What the stop and the move took.
pub(super) struct Moved {
    pub stop_ms: f64,
    pub move_ms: f64,
    pub instances: u64,
}

/// Why a rescale did not happen.
pub(super) enum Failed {
    /// Nothing moved: the old shape can start again.
    Kept(String),
    /// The move is decided but its dirs are not all in place: the next `cluster up` finishes it.
    Unfinished(String),
}

/// Stops `children` cleanly and moves their state from `from` processes to `to`.
pub(super) fn stop_and_move(
    app: &App,
    (root, workers): (&Path, usize),
    children: &mut Vec<Child>,
    (from, to): (usize, usize),
) -> Result<Moved, Failed> {
    let stop = Instant::now();
    for c in children.iter_mut() {
        super::signal(c, "TERM");
    }
    let mut clean = true;
    for mut c in std::mem::take(children) {
        clean &= c.wait().is_ok_and(|s| s.success());
    }
    if !clean {
        return Err(Failed::Kept(
            "a process did not stop cleanly; the cluster restarts as it was".into(),
        ));
    }
    let stop_ms = super::ms(stop);
    let moving = Instant::now();
    let old: Vec<PathBuf> = (0..from).map(|i| process_dir(root, i)).collect();
    let staged = rescaling(root);
    let kept = |e: String| Failed::Kept(format!("{e}; the cluster restarts as it was"));
    remove(&staged)
        .and_then(|()| remove(&retired(root)))
        .map_err(kept)?;
    let new: Vec<PathBuf> = (0..to).map(|j| staged.join(format!("p{j}"))).collect();
    let report = crate::tools::rescale::rescale(app.program(), &old, &new, workers)
        .map_err(|e| kept(format!("moving the state failed ({e})")))?;
    write_synced(&done_marker(root), to.to_string().as_bytes()).map_err(kept)?;
    finish(root).map_err(|e| {
        Failed::Unfinished(format!(
            "{e}; the state has moved: start `cluster up --processes {to}` again to finish"
        ))
    })?;
    Ok(Moved {
        stop_ms,
        move_ms: super::ms(moving),
        instances: report.instances.iter().sum(),
    })
}

/// At start and after a move: finishes a move that reached `done` (idempotent: each step
/// looks at what is already in place), or drops one that did not.
pub(super) fn finish(root: &Path) -> Result<(), String> {
    let Ok(text) = std::fs::read_to_string(done_marker(root)) else {
        remove(&rescaling(root))?;
        return remove(&retired(root));
    };
    let to: usize = text
        .trim()
        .parse()
        .map_err(|_| format!("{} is damaged", done_marker(root).display()))?;
    let staged = rescaling(root);
    std::fs::create_dir_all(retired(root)).map_err(|e| e.to_string())?;
    let mut i = 0;
    while process_dir(root, i).exists() {
        // Still an old dir while its replacement waits in rescaling/ (or has none).
        if i >= to || staged.join(format!("p{i}")).exists() {
            rename(&process_dir(root, i), &retired(root).join(format!("p{i}")))?;
        }
        i += 1;
    }
    for j in 0..to {
        let next = staged.join(format!("p{j}"));
        if next.exists() {
            rename(&next, &process_dir(root, j))?;
        }
    }
    sync_dir(root)?;
    std::fs::remove_file(done_marker(root)).map_err(|e| e.to_string())?;
    remove(&staged)?;
    remove(&retired(root))
}

/// How many processes the dirs under `root` belong to (`None`: no dirs yet).
pub(super) fn shape(root: &Path) -> Result<Option<usize>, String> {
    let meta = process_dir(root, 0).join(stateful_core::records::meta::DataDirMeta::FILE);
    let Ok(bytes) = std::fs::read(&meta) else {
        return Ok(None);
    };
    let m = stateful_core::records::meta::DataDirMeta::from_json(&bytes)
        .map_err(|e| format!("{}: {e}", meta.display()))?;
    Ok(Some(m.cluster.map_or(1, |l| l.processes)))
}

fn remove(p: &Path) -> Result<(), String> {
    match std::fs::remove_dir_all(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("cannot remove {}: {e}", p.display())),
    }
}

fn rename(from: &Path, to: &Path) -> Result<(), String> {
    std::fs::rename(from, to)
        .map_err(|e| format!("cannot move {} to {}: {e}", from.display(), to.display()))
}

fn write_synced(p: &Path, bytes: &[u8]) -> Result<(), String> {
    use std::io::Write;
    let mut f = std::fs::File::create(p).map_err(|e| format!("{}: {e}", p.display()))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| format!("{}: {e}", p.display()))?;
    p.parent().map_or(Ok(()), sync_dir)
}

fn sync_dir(d: &Path) -> Result<(), String> {
    std::fs::File::open(d)
        .and_then(|f| f.sync_all())
        .map_err(|e| format!("cannot sync {}: {e}", d.display()))
}
