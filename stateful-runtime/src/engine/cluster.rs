//! Cluster mode: the same binary as N processes on timely's cluster mode.
//!
//! ```text
//! host file: one `host:port` per line, process 0 first (timely connects the processes)
//! process p, T workers each: global workers p*T .. p*T+T-1; key group g -> worker_of(g, N*T)
//! start:  every process recovers to the same epoch (min over processes of their last durable
//!         epoch, leaving out those that stopped cleanly; later records are cut from the
//!         logs), agreed through a first, tiny timely execution, with the first completion
//!         order (past every process's); then the engine starts
//! commit: epochs close on the clock; each process logs every epoch (an empty one too) and
//!         fsyncs it; a response is released when the probe passes its epoch, i.e. every
//!         operator of every process has made it durable; only then is it materialised
//! loss:   a process that dies (or a frozen frontier) turns every gateway into 503s; the
//!         cluster is restarted as a whole and recovers to the epoch committed everywhere
//! ```

use std::cell::RefCell;
use std::path::Path;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use timely::container::CapacityContainerBuilder;
use timely::dataflow::operators::vec::Broadcast;
use timely::dataflow::operators::{Inspect, Probe};
use timely::dataflow::{InputHandle, ProbeHandle};

/// This process's place in a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// `host:port` of every process, in process order (timely's connections).
    pub addresses: Vec<String>,
    /// Every process's HTTP gateway (`http=host:port` after its address in the host file),
    /// where known: requests with an `Idempotency-Key` are forwarded to the one that owns it.
    pub http: Vec<Option<String>>,
    /// This process's index into `addresses`.
    pub process: usize,
    /// When no commit epoch completes on every process for this long, a process is
    /// considered lost (a cut link sends no error).
    pub stall_timeout_ms: u64,
}

fn check_host_port(a: &str, path: &Path) -> Result<(), String> {
    if a.rsplit_once(':')
        .is_none_or(|(h, p)| h.is_empty() || p.parse::<u16>().is_err())
    {
        return Err(format!("`{a}` in {} is not host:port", path.display()));
    }
    Ok(())
}

impl ClusterConfig {
    /// Reads a host file: one `host:port` per line, optionally followed by
    /// `http=host:port` (the process's gateway); blank lines and `#` comments are skipped.
    pub fn from_file(path: &Path, process: usize) -> Result<ClusterConfig, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the cluster file {}: {e}", path.display()))?;
        let mut addresses = Vec::new();
        let mut http = Vec::new();
        let lines = text
            .lines()
            .map(|l| l.split('#').next().unwrap_or("").trim());
        for line in lines.filter(|l| !l.is_empty()) {
            let mut words = line.split_whitespace();
            let address = words.next().unwrap_or("").to_owned();
            check_host_port(&address, path)?;
            let gateway = match words.next() {
                None => None,
                Some(w) => {
                    let g = w.strip_prefix("http=").ok_or_else(|| {
                        format!(
                            "`{w}` in {}: after the address only `http=host:port` may follow",
                            path.display()
                        )
                    })?;
                    check_host_port(g, path)?;
                    Some(g.to_owned())
                }
            };
            addresses.push(address);
            http.push(gateway);
        }
        if addresses.is_empty() {
            return Err(format!(
                "the cluster file {} lists no processes (one host:port per line)",
                path.display()
            ));
        }
        if process >= addresses.len() {
            return Err(format!(
                "--process {process} is out of range: the cluster file lists {} processes (0..{})",
                addresses.len(),
                addresses.len() - 1
            ));
        }
        Ok(ClusterConfig {
            addresses,
            http,
            process,
            stall_timeout_ms: 5_000,
        })
    }

    /// Number of processes.
    pub fn processes(&self) -> usize {
        self.addresses.len()
    }

    /// timely's communication configuration for `threads` workers per process.
    pub(crate) fn timely(&self, threads: usize) -> timely::Config {
        timely::Config {
            communication: timely::CommunicationConfig::Cluster {
                threads,
                process: self.process,
                addresses: self.addresses.clone(),
                report: false,
                zerocopy: false,
            },
            worker: timely::WorkerConfig::default(),
        }
    }
}

/// What every process tells the others before recovering: its index, whether its data dir
/// has state, its last durable epoch, its clock (unix µs), a bound on the completion orders it
/// logged, and whether it stopped cleanly at that epoch (`storage::clean_stop`).
type Announce = (u64, bool, u64, u64, u64, bool);

/// What the processes agreed on.
pub(crate) struct Agreed {
    /// The epoch to recover to: the minimum of the committed epochs of the processes that did
    /// not stop cleanly (each of them wrote it, one that stopped cleanly took part in nothing
    /// after its last, and no response of a later epoch was released); when all stopped
    /// cleanly, the largest (nothing is cut; the others' logs are brought up to it).
    pub committed: u64,
    /// The first epoch of the run, the same on every process: an operator processes the
    /// messages of the open commit epoch at once, so all must start at the same one (one
    /// that started ahead would take locks for later epochs while an earlier epoch still
    /// runs elsewhere, and the two could wait for each other).
    pub start_epoch: u64,
    /// Past every completion order any process logged: the first order of every process (so
    /// that, in replay order, the requests after a restart come after those before).
    pub next_order: u64,
}

/// Agrees with the other processes on the epoch to recover to and the first epoch of the
/// run. Fails when some processes have state and others have an empty data dir.
pub(crate) fn agree_on_committed(
    cluster: &ClusterConfig,
    committed: Option<u64>,
    orders: u64,
    clean: bool,
) -> Result<Agreed, String> {
    let now = crate::storage::unix_us();
    let me = cluster.process as u64;
    let guards = timely::execute(cluster.timely(1), move |worker| {
        let seen: Rc<RefCell<Vec<Announce>>> = Rc::new(RefCell::new(Vec::new()));
        let mut input: InputHandle<u64, CapacityContainerBuilder<Vec<Announce>>> =
            InputHandle::new();
        let probe: ProbeHandle<u64> = ProbeHandle::new();
        let sink = seen.clone();
        worker.dataflow::<u64, _, _>(|scope| {
            input
                .to_stream(scope)
                .broadcast()
                .inspect(move |a: &Announce| sink.borrow_mut().push(*a))
                .probe_with(&probe);
        });
        input.send((
            me,
            committed.is_some(),
            committed.unwrap_or(0),
            now,
            orders,
            clean,
        ));
        input.advance_to(1);
        drop(input);
        while probe.less_than(&1) {
            worker.step_or_park(Some(std::time::Duration::from_millis(10)));
        }
        seen.take()
    })?;
    let mut all: Vec<Announce> = Vec::new();
    for r in guards.join() {
        all.extend(r?);
    }
    all.sort_unstable();
    all.dedup();
    if all.len() != cluster.processes() {
        return Err(format!(
            "expected the state of {} processes, heard from {}",
            cluster.processes(),
            all.len()
        ));
    }
    let with_state: Vec<u64> = all.iter().filter(|a| a.1).map(|a| a.0).collect();
    if !with_state.is_empty() && with_state.len() != all.len() {
        let empty: Vec<u64> = all.iter().filter(|a| !a.1).map(|a| a.0).collect();
        return Err(format!(
            "processes {empty:?} have an empty data dir while processes {with_state:?} have state: \
             the data dirs do not belong to one cluster (start each process on its own dir again, \
             or move state with `rescale`)"
        ));
    }
    // A process that stopped cleanly took part in no epoch after its last: only the others
    // bound the epoch to recover to (all clean: nothing is cut).
    let crashed = all.iter().filter(|a| !a.5).map(|a| a.2).min();
    let committed = crashed
        .or_else(|| all.iter().map(|a| a.2).max())
        .unwrap_or(0);
    let latest_clock = all.iter().map(|a| a.3).max().unwrap_or(now);
    Ok(Agreed {
        committed,
        start_epoch: latest_clock.max(committed + 1),
        next_order: all.iter().map(|a| a.4).max().unwrap_or(orders),
    })
}

/// Set once a peer process is lost: gateways answer 503 from then on.
static FAILED: AtomicBool = AtomicBool::new(false);

/// Wakes the requests waiting for their answer when [`FAILED`] is set.
fn lost_notify() -> &'static tokio::sync::Notify {
    static LOST: OnceLock<tokio::sync::Notify> = OnceLock::new();
    LOST.get_or_init(tokio::sync::Notify::new)
}

/// Whether this process lost contact with a peer.
pub fn has_failed() -> bool {
    FAILED.load(Ordering::Acquire)
}

/// Resolves once this process has lost contact with a peer (never when all is well).
pub async fn lost() {
    let notified = lost_notify().notified();
    tokio::pin!(notified);
    // Registered before the check, so that a failure in between still wakes it.
    notified.as_mut().enable();
    if has_failed() {
        return;
    }
    notified.await;
}

/// Marks the cluster as failed (with the reason in the log).
pub(crate) fn fail(reason: &str) {
    if !FAILED.swap(true, Ordering::AcqRel) {
        tracing::error!("cluster: {reason}; answering 503 until the cluster is restarted");
        eprintln!("stateful: cluster: {reason}; answering 503 until the cluster is restarted");
        lost_notify().notify_waiters();
    }
}

/// Installs a panic hook that turns timely's communication errors (a peer's connection
/// closed or broken) into [`fail`]; other panics keep the default report.
pub(crate) fn watch_connections() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let msg = info
                .payload()
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| info.payload().downcast_ref::<&str>().copied())
                .unwrap_or("");
            let timely_thread = std::thread::current()
                .name()
                .is_some_and(|n| n.starts_with("timely"));
            if msg.starts_with("timely communication error") {
                fail(&format!("lost a peer process ({msg})"));
            } else if has_failed() && timely_thread {
                // The same loss seen again by timely's other threads: already reported.
            } else {
                previous(info);
            }
        }));
    });
}

/// Starts a thread that fails the cluster when `committed` (the last epoch committed
/// everywhere) stops moving for `timeout`: commit epochs complete every few milliseconds,
/// loaded or idle, as long as every process is reachable.
pub(crate) fn watch_commits(
    committed: Arc<std::sync::atomic::AtomicU64>,
    timeout: std::time::Duration,
    metrics: Arc<super::metrics::Metrics>,
) {
    let spawned = std::thread::Builder::new()
        .name("stateful-cluster-watch".into())
        .spawn(move || {
            let mut last = committed.load(Ordering::Acquire);
            let mut since = std::time::Instant::now();
            while !has_failed() {
                std::thread::sleep(std::time::Duration::from_millis(100));
                let now = committed.load(Ordering::Acquire);
                if now != last {
                    last = now;
                    since = std::time::Instant::now();
                } else if since.elapsed() >= timeout {
                    let gauges: Vec<(u64, u64)> = metrics
                        .operators
                        .iter()
                        .map(|o| {
                            (
                                o.stashed.load(Ordering::Relaxed),
                                o.waiting.load(Ordering::Relaxed),
                            )
                        })
                        .collect();
                    fail(&format!(
                        "no commit completed on every process for {} ms (a process or link is down); last committed epoch {last}, operators' (stashed, waiting) here: {gauges:?}",
                        timeout.as_millis()
                    ));
                }
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start the cluster watchdog");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_files_parse_and_bad_ones_are_clear_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("hosts");
        std::fs::write(
            &path,
            "# three processes\n127.0.0.1:9100\n\n127.0.0.1:9101  # second\n127.0.0.1:9102\n",
        )
        .expect("write");
        let c = ClusterConfig::from_file(&path, 2).expect("parses");
        assert_eq!(c.processes(), 3);
        assert_eq!(c.addresses[1], "127.0.0.1:9101");
        let err = ClusterConfig::from_file(&path, 3).expect_err("out of range");
        assert!(err.contains("out of range"), "{err}");
        std::fs::write(&path, "localhost\n").expect("write");
        assert!(
            ClusterConfig::from_file(&path, 0)
                .expect_err("no port")
                .contains("host:port")
        );
        std::fs::write(&path, "# nothing\n").expect("write");
        assert!(
            ClusterConfig::from_file(&path, 0)
                .expect_err("empty")
                .contains("no processes")
        );
        assert!(ClusterConfig::from_file(&dir.path().join("missing"), 0).is_err());
    }

    #[test]
    fn a_host_file_may_name_each_gateway() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("hosts");
        std::fs::write(&path, "10.0.0.1:7100 http=10.0.0.1:8000\n10.0.0.2:7100\n").expect("write");
        let c = ClusterConfig::from_file(&path, 0).expect("parses");
        assert_eq!(c.http, [Some("10.0.0.1:8000".to_owned()), None]);
        std::fs::write(&path, "10.0.0.1:7100 web=10.0.0.1:8000\n").expect("write");
        let e = ClusterConfig::from_file(&path, 0).expect_err("not http=");
        assert!(e.contains("only `http=host:port`"), "{e}");
        std::fs::write(&path, "10.0.0.1:7100 http=nowhere\n").expect("write");
        assert!(
            ClusterConfig::from_file(&path, 0)
                .expect_err("bad")
                .contains("host:port")
        );
    }
}
