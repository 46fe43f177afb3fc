//! How `cluster scale N` reaches the `cluster up` that supervises a data dir: through files
//! in that dir (the supervisor looks every 100 ms).
//!
//! ```text
//! <data-dir>/supervisor.pid   the running `cluster up` (written at start, removed at exit)
//! <data-dir>/scale.request    N, written by `cluster scale` (taken by the supervisor)
//! <data-dir>/scale.result     the outcome as JSON, written by the supervisor (taken back)
//! ```

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// What a scale did, or why it did not.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct Outcome {
    /// Processes before.
    pub from: usize,
    /// Processes now.
    pub processes: usize,
    /// Why nothing changed (`None`: it did).
    pub error: Option<String>,
    /// From holding the ports to every new process serving (ms).
    pub paused_ms: f64,
    /// Of which: the old processes draining and stopping (ms).
    pub stop_ms: f64,
    /// Moving the state into the new shape (ms).
    pub move_ms: f64,
    /// The new processes starting, connecting and recovering (ms).
    pub start_ms: f64,
    /// Instances moved.
    pub instances: u64,
}

fn path(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}

/// Writes `bytes` to `dir/name` whole (a temporary file renamed into place).
fn write_whole(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path(dir, &format!("{name}.tmp"));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(tmp, path(dir, name))
}

/// The supervisor's mark: its pid.
pub(super) fn mark_supervisor(dir: &Path) -> std::io::Result<()> {
    let _ = std::fs::remove_file(path(dir, "scale.request"));
    write_whole(
        dir,
        "supervisor.pid",
        std::process::id().to_string().as_bytes(),
    )
}

/// The supervisor is gone.
pub(super) fn unmark_supervisor(dir: &Path) {
    let _ = std::fs::remove_file(path(dir, "supervisor.pid"));
}

/// A waiting request: its process count (`Err`: unreadable, and taken).
pub(super) fn take_request(dir: &Path) -> Option<Result<usize, String>> {
    let p = path(dir, "scale.request");
    let text = std::fs::read_to_string(&p).ok()?;
    let _ = std::fs::remove_file(&p);
    Some(
        text.trim()
            .parse::<usize>()
            .map_err(|_| format!("not a number of processes: {:?}", text.trim())),
    )
}

/// Answers the request.
pub(super) fn answer(dir: &Path, outcome: &Outcome) {
    let bytes = serde_json::to_vec_pretty(outcome).unwrap_or_default();
    if let Err(e) = write_whole(dir, "scale.result", &bytes) {
        eprintln!("cannot write the outcome of the scale: {e}");
    }
}

/// Whether a live `cluster up` supervises `dir`.
fn supervised(dir: &Path) -> Result<u32, String> {
    let text = std::fs::read_to_string(path(dir, "supervisor.pid")).map_err(|_| {
        format!(
            "no `cluster up` runs on {} (start one; scale talks to it)",
            dir.display()
        )
    })?;
    let pid: u32 = text
        .trim()
        .parse()
        .map_err(|_| format!("{} holds no pid", path(dir, "supervisor.pid").display()))?;
    if !Path::new(&format!("/proc/{pid}")).exists() {
        return Err(format!(
            "the `cluster up` that ran on {} (pid {pid}) is gone",
            dir.display()
        ));
    }
    Ok(pid)
}

/// `cluster scale N`: asks the supervisor of `dir`, waits for its answer (at most `wait`).
pub(crate) fn scale(name: &str, dir: &Path, processes: usize, wait: Duration) -> ExitCode {
    let asked = supervised(dir).and_then(|_| {
        let _ = std::fs::remove_file(path(dir, "scale.result"));
        write_whole(dir, "scale.request", processes.to_string().as_bytes())
            .map_err(|e| format!("cannot ask {}: {e}", dir.display()))
    });
    if let Err(e) = asked {
        eprintln!("{name}: {e}");
        return ExitCode::from(2);
    }
    let deadline = Instant::now() + wait;
    while Instant::now() < deadline {
        if let Ok(bytes) = std::fs::read(path(dir, "scale.result"))
            && let Ok(o) = serde_json::from_slice::<Outcome>(&bytes)
        {
            let _ = std::fs::remove_file(path(dir, "scale.result"));
            return report(name, &o);
        }
        if supervised(dir).is_err() {
            eprintln!("{name}: the supervisor stopped before it answered");
            return ExitCode::from(1);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("{name}: no answer within {} s", wait.as_secs());
    ExitCode::from(1)
}

fn report(name: &str, o: &Outcome) -> ExitCode {
    match &o.error {
        Some(e) => {
            eprintln!(
                "{name}: not rescaled ({} processes serve): {e}",
                o.processes
            );
            ExitCode::from(1)
        }
        None if o.from == o.processes => {
            println!("{name}: already {} processes", o.processes);
            ExitCode::SUCCESS
        }
        None => {
            println!(
                "{name}: {} -> {} processes; requests held {:.0} ms (stop {:.0} ms, move {} instances {:.0} ms, start {:.0} ms)",
                o.from, o.processes, o.paused_ms, o.stop_ms, o.instances, o.move_ms, o.start_ms
            );
            ExitCode::SUCCESS
        }
    }
}
