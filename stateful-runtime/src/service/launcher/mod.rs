//! `cluster up`: a cluster of N processes of this binary on one machine, supervised.
//!
//! ```text
//! <data-dir>/hosts      127.0.0.1:<timely-port + i>, one line per process
//! <data-dir>/p<i>       process i's data dir; it serves HTTP on <listen port + i>
//! a process exits       -> the others are stopped and the whole cluster restarts (it recovers
//!                          to the epoch committed everywhere)
//! `cluster scale N`     -> the processes drain and stop, the state moves to N processes'
//!                          dirs, N processes start (`scale`)
//! SIGINT / SIGTERM      -> SIGTERM to every process (they drain and commit), then exit
//! ```
//!
//! While processes are away (starting, restarting, rescaling) the supervisor holds their HTTP
//! ports and answers 503 with `Retry-After` (`holder`): clients never find a port closed.

mod control;
mod holder;
mod scale;

pub(crate) use control::scale as ask_to_scale;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::service::App;

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
            .arg(scale::process_dir(&self.data_dir, i))
            .args(["--listen", &self.http(i).to_string(), "--reuse-port"])
            .args(&self.serve_args)
            .stdin(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start process {i}: {e}"))
    }
}

/// Sends `signal` to a child (with the `kill` command; SIGKILL through std if that fails).
pub(super) fn signal(child: &mut Child, signal: &str) {
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
pub(crate) fn up(app: &App, mut plan: Plan) -> ExitCode {
    let name = app.name();
    if let Err(e) = prepare(&plan) {
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
    if let Err(e) = control::mark_supervisor(&plan.data_dir) {
        eprintln!("{name}: cannot write to {}: {e}", plan.data_dir.display());
        return ExitCode::from(2);
    }
    println!(
        "{name}: cluster of {} processes x {} workers; hosts file {}",
        plan.processes,
        plan.workers,
        plan.hosts().display()
    );
    let code = supervise(app, &mut plan, &exe, &stop);
    control::unmark_supervisor(&plan.data_dir);
    code
}

/// Finishes (or drops) a move a crash cut short, checks the plan against the dirs, writes
/// the hosts file.
fn prepare(plan: &Plan) -> Result<(), String> {
    plan.check()?;
    std::fs::create_dir_all(&plan.data_dir)
        .map_err(|e| format!("cannot create {}: {e}", plan.data_dir.display()))?;
    scale::finish(&plan.data_dir)?;
    if let Some(n) = scale::shape(&plan.data_dir)?
        && n != plan.processes
    {
        return Err(format!(
            "the data dirs in {} belong to a cluster of {n} processes: start it with --processes {n} (and change it with `cluster scale`)",
            plan.data_dir.display()
        ));
    }
    plan.write_hosts()
}

/// What ended a run of the processes.
enum Event {
    Stop,
    Lost(usize, std::process::ExitStatus),
    Scale(usize),
}

/// A rescale under way: the ports held until the new processes serve.
struct Switch {
    t0: Instant,
    from: usize,
    moved: scale::Moved,
    started: Instant,
}

/// Starts the processes and restarts or rescales them until a stop signal.
fn supervise(app: &App, plan: &mut Plan, exe: &Path, stop: &AtomicBool) -> ExitCode {
    let name = app.name();
    let mut restarts = 0u32;
    // Held until every process serves (at start too: clients see 503, not a closed port).
    let mut held = hold(plan, plan.processes);
    let mut switch: Option<Switch> = None;
    loop {
        let mut children = match spawn_all(name, plan, exe) {
            Ok(c) => c,
            Err(code) => return code,
        };
        let event = loop {
            if stop.load(Ordering::Acquire) {
                break Event::Stop;
            }
            if let Some((i, status)) = children
                .iter_mut()
                .enumerate()
                .find_map(|(i, c)| c.try_wait().ok().flatten().map(|s| (i, s)))
            {
                break Event::Lost(i, status);
            }
            if held.is_some() && (0..plan.processes).all(|i| holder::serves(plan.http(i))) {
                held = None;
                if let Some(s) = switch.take() {
                    answer_switch(&plan.data_dir, s, plan.processes);
                }
            }
            if held.is_none()
                && let Some(asked) = control::take_request(&plan.data_dir)
            {
                let from = plan.processes;
                match asked.and_then(|to| check_scale(plan, to)) {
                    Ok(to) if to != from => break Event::Scale(to),
                    Ok(_) => control::answer(&plan.data_dir, &outcome(from, from, None)),
                    Err(e) => control::answer(&plan.data_dir, &outcome(from, from, Some(e))),
                }
            }
            // While ports are held, look often: a request may land on the holder until then.
            let pause = if held.is_some() { 20 } else { 100 };
            std::thread::sleep(Duration::from_millis(pause));
        };
        match event {
            Event::Stop => return stop_all(name, &mut children),
            Event::Lost(i, status) => {
                restarts += 1;
                eprintln!(
                    "{name}: process {i} exited ({status}); restarting the whole cluster (restart {restarts})"
                );
                held = held.or_else(|| hold(plan, plan.processes));
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
            Event::Scale(to) => {
                // Requests are taken only while nothing is held.
                held = hold(plan, plan.processes.max(to));
                match rescale(app, plan, &mut children, to) {
                    Ok(s) => switch = s,
                    Err(code) => return code,
                }
            }
        }
    }
}

/// Stops the processes and moves their state to `to` processes (the caller starts them):
/// the switch under way, `None` when the old shape restarts, `Err` when the move could not
/// be finished (the next `cluster up` finishes it).
fn rescale(
    app: &App,
    plan: &mut Plan,
    children: &mut Vec<Child>,
    to: usize,
) -> Result<Option<Switch>, ExitCode> {
    let (name, from, t0) = (app.name(), plan.processes, Instant::now());
    println!("{name}: rescaling from {from} to {to} processes");
    let dirs = (plan.data_dir.as_path(), plan.workers);
    match scale::stop_and_move(app, dirs, children, (from, to)) {
        Ok(moved) => {
            plan.processes = to;
            plan.write_hosts().map_err(|e| {
                eprintln!("{name}: {e}");
                ExitCode::from(1)
            })?;
            Ok(Some(Switch {
                t0,
                from,
                moved,
                started: Instant::now(),
            }))
        }
        Err(scale::Failed::Kept(e)) => {
            eprintln!("{name}: {e}");
            control::answer(&plan.data_dir, &outcome(from, from, Some(e)));
            Ok(None)
        }
        Err(scale::Failed::Unfinished(e)) => {
            eprintln!("{name}: {e}");
            control::answer(&plan.data_dir, &outcome(from, to, Some(e)));
            Err(ExitCode::from(1))
        }
    }
}

/// Holds the HTTP ports of the first `n` processes (`None`, with a warning, if it cannot:
/// clients then find a port closed for a while).
fn hold(plan: &Plan, n: usize) -> Option<holder::Holder> {
    let addrs: Vec<SocketAddr> = (0..n).map(|i| plan.http(i)).collect();
    match holder::Holder::start(&addrs) {
        Ok(h) => Some(h),
        Err(e) => {
            eprintln!("cannot hold the cluster's ports while it is away: {e}");
            None
        }
    }
}

/// A scale to `to` processes, checked against the plan's ports.
fn check_scale(plan: &Plan, to: usize) -> Result<usize, String> {
    if !(1..=64).contains(&to) {
        return Err(format!("a cluster has 1 to 64 processes, not {to}"));
    }
    let mut next = plan.clone();
    next.processes = to;
    next.check().map(|()| to)
}

fn outcome(from: usize, processes: usize, error: Option<String>) -> control::Outcome {
    control::Outcome {
        from,
        processes,
        error,
        paused_ms: 0.0,
        stop_ms: 0.0,
        move_ms: 0.0,
        start_ms: 0.0,
        instances: 0,
    }
}

/// The new shape serves: the scale's answer.
fn answer_switch(root: &Path, s: Switch, processes: usize) {
    let o = control::Outcome {
        paused_ms: ms(s.t0),
        stop_ms: s.moved.stop_ms,
        move_ms: s.moved.move_ms,
        start_ms: ms(s.started),
        instances: s.moved.instances,
        ..outcome(s.from, processes, None)
    };
    println!(
        "cluster: {} -> {processes} processes; requests held {:.0} ms",
        s.from, o.paused_ms
    );
    control::answer(root, &o);
}

pub(super) fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

/// Starts every process of the plan.
fn spawn_all(name: &str, plan: &Plan, exe: &Path) -> Result<Vec<Child>, ExitCode> {
    let mut children = Vec::with_capacity(plan.processes);
    for i in 0..plan.processes {
        match plan.spawn(exe, i) {
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
                return Err(ExitCode::from(2));
            }
        }
    }
    Ok(children)
}

/// SIGTERM to every process; success if all stopped cleanly.
fn stop_all(name: &str, children: &mut [Child]) -> ExitCode {
    println!("{name}: stopping the cluster");
    for c in children.iter_mut() {
        signal(c, "TERM");
    }
    let mut clean = true;
    for c in children.iter_mut() {
        clean &= c.wait().is_ok_and(|s| s.success());
    }
    if clean {
        println!("{name}: cluster stopped cleanly");
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
