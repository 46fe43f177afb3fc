//! `cluster up`: a cluster of N processes of this binary on one machine, supervised.
//!
//! ```text
//! <data-dir>/hosts      127.0.0.1:<timely-port + i>, one line per process
//! <data-dir>/p<i>       process i's data dir; it serves HTTP on <listen port + i>
//! a process exits       -> the others are stopped and the whole cluster restarts (it recovers
//!                          to the epoch committed everywhere)
//! SIGINT / SIGTERM      -> SIGTERM to every process (they drain and commit), then exit
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// What `cluster up` starts.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub processes: usize,
    pub workers: usize,
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub timely_port: u16,
    /// Extra `serve` flags passed to every process.
    pub serve_args: Vec<String>,
}

impl Plan {
    fn hosts(&self) -> PathBuf {
        self.data_dir.join("hosts")
    }

    fn http(&self, i: usize) -> SocketAddr {
        SocketAddr::new(self.listen.ip(), self.listen.port() + i as u16)
    }

    fn check(&self) -> Result<(), String> {
        if self.processes == 0 || self.workers == 0 {
            return Err("--processes and --workers must be at least 1".into());
        }
        let n = self.processes as u32;
        if u32::from(self.listen.port()) + n > 65_536 || u32::from(self.timely_port) + n > 65_536 {
            return Err("the ports of the processes run past 65535".into());
        }
        let http = self.listen.port()..self.listen.port() + n as u16;
        let timely = self.timely_port..self.timely_port + n as u16;
        if http.start < timely.end && timely.start < http.end {
            return Err(format!(
                "HTTP ports {http:?} and cluster ports {timely:?} overlap: choose another --timely-port"
            ));
        }
        Ok(())
    }

    fn write_hosts(&self) -> Result<(), String> {
        std::fs::create_dir_all(&self.data_dir)
            .map_err(|e| format!("cannot create {}: {e}", self.data_dir.display()))?;
        // Each process's gateway too: a request with an Idempotency-Key goes to its owner.
        let lines: Vec<String> = (0..self.processes)
            .map(|i| {
                format!(
                    "127.0.0.1:{} http={}",
                    self.timely_port + i as u16,
                    self.http(i)
                )
            })
            .collect();
        std::fs::write(self.hosts(), lines.join("\n") + "\n")
            .map_err(|e| format!("cannot write {}: {e}", self.hosts().display()))
    }

    fn spawn(&self, exe: &Path, i: usize) -> Result<Child, String> {
        Command::new(exe)
            .arg("serve")
            .arg("--cluster")
            .arg(self.hosts())
            .args([
                "--process",
                &i.to_string(),
                "--workers",
                &self.workers.to_string(),
            ])
            .arg("--data-dir")
            .arg(self.data_dir.join(format!("p{i}")))
            .args(["--listen", &self.http(i).to_string()])
            .args(&self.serve_args)
            .stdin(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start process {i}: {e}"))
    }
}

/// Sends `signal` to a child (with the `kill` command; SIGKILL through std if that fails).
fn signal(child: &mut Child, signal: &str) {
    let sent = Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !sent {
        let _ = child.kill();
    }
}

/// Sets `stop` on SIGINT or SIGTERM.
fn watch_signals(stop: Arc<AtomicBool>) -> std::io::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("cluster-signals".into())
        .spawn(move || {
            rt.block_on(async move {
                use tokio::signal::unix::{SignalKind, signal};
                let (Ok(mut int), Ok(mut term)) = (
                    signal(SignalKind::interrupt()),
                    signal(SignalKind::terminate()),
                ) else {
                    let _ = ready_tx.send(false);
                    return;
                };
                let _ = ready_tx.send(true);
                tokio::select! {
                    _ = int.recv() => {},
                    _ = term.recv() => {},
                }
                stop.store(true, Ordering::Release);
            });
        })?;
    match ready_rx.recv() {
        Ok(true) => Ok(()),
        _ => Err(std::io::Error::other("no signal handlers")),
    }
}

/// Runs the cluster until SIGINT or SIGTERM.
pub(crate) fn up(name: &str, plan: Plan) -> ExitCode {
    if let Err(e) = plan.check().and_then(|()| plan.write_hosts()) {
        eprintln!("{name}: {e}");
        return ExitCode::from(2);
    }
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("{name}: cannot find this program's path: {e}");
            return ExitCode::from(2);
        }
    };
    let stop = Arc::new(AtomicBool::new(false));
    if let Err(e) = watch_signals(stop.clone()) {
        eprintln!("{name}: cannot handle signals: {e}");
        return ExitCode::from(2);
    }
    println!(
        "{name}: cluster of {} processes x {} workers; hosts file {}",
        plan.processes,
        plan.workers,
        plan.hosts().display()
    );
    let mut restarts = 0u32;
    loop {
        let mut children = Vec::with_capacity(plan.processes);
        for i in 0..plan.processes {
            match plan.spawn(&exe, i) {
                Ok(c) => {
                    println!(
                        "{name}: process {i} (pid {}) serves http://{}",
                        c.id(),
                        plan.http(i)
                    );
                    children.push(c);
                }
                Err(e) => {
                    eprintln!("{name}: {e}");
                    for mut c in children {
                        signal(&mut c, "KILL");
                        let _ = c.wait();
                    }
                    return ExitCode::from(2);
                }
            }
        }
        // Wait for a stop signal or for a process to exit.
        let lost = loop {
            if stop.load(Ordering::Acquire) {
                break None;
            }
            if let Some((i, status)) = children
                .iter_mut()
                .enumerate()
                .find_map(|(i, c)| c.try_wait().ok().flatten().map(|s| (i, s)))
            {
                break Some((i, status));
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        match lost {
            None => {
                println!("{name}: stopping the cluster");
                for c in &mut children {
                    signal(c, "TERM");
                }
                let mut clean = true;
                for c in &mut children {
                    clean &= c.wait().is_ok_and(|s| s.success());
                }
                return if clean {
                    println!("{name}: cluster stopped cleanly");
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(1)
                };
            }
            Some((i, status)) => {
                restarts += 1;
                eprintln!(
                    "{name}: process {i} exited ({status}); restarting the whole cluster (restart {restarts})"
                );
                // The others answer 503 by now; nothing more can commit without process i.
                for c in &mut children {
                    signal(c, "KILL");
                }
                for c in &mut children {
                    let _ = c.wait();
                }
                std::thread::sleep(Duration::from_millis(500));
                if stop.load(Ordering::Acquire) {
                    return ExitCode::from(1);
                }
            }
        }
    }
}
