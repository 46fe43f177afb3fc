//! The command line of a generated service: the argument schema (clap).
//!
//! ```text
//! shop                      serve on 127.0.0.1:8000 with ./stateful-data/shop
//! shop serve --listen 0.0.0.0:9000 --data-dir /var/lib/shop --workers 4
//! shop graph --format svg -o shop.svg
//! shop inspect Stock item-1 --data-dir /var/lib/shop
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// A service generated from an app of stateful functions.
#[derive(Debug, Parser)]
#[command(
    version,
    about = "A service of stateful functions: serves the app's lambdas over HTTP, with durable state",
    long_about = "A service of stateful functions compiled into a dataflow graph.\n\n\
        Without a subcommand it serves: every handler at POST /invoke/{lambda}/{key}/{handler} \
        (JSON body = arguments) and at the routes the app declares; GET /graph shows the graph, \
        GET /metrics the counters. Every answer is sent only after its effects are on disk; \
        after a crash (even kill -9) restarting on the same --data-dir recovers everything \
        that was acknowledged. Set RUST_LOG=debug for more logs."
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Serve the app over HTTP (the default).
    Serve(ServeArgs),
    /// Print the app's dataflow graph (computed at compile time); needs no data dir.
    Graph {
        /// Output format (svg needs Graphviz's `dot` program).
        #[arg(long, value_enum, default_value_t = GraphFormat::Dot)]
        format: GraphFormat,
        /// Write to this file instead of standard output.
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Print the committed state of one instance as JSON (now, or as it was at a past time).
    Inspect {
        /// Lambda name, as in the graph (e.g. Stock).
        lambda: String,
        /// The instance's key.
        key: String,
        /// Data directory of the service (default: ./stateful-data/<app>).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Show the state as of this commit epoch (a number, as `history` prints), RFC 3339
        /// time (e.g. 2026-11-26T18:00:00Z), or request (`seq:N`, right after it committed).
        #[arg(long)]
        at: Option<String>,
    },
    /// Re-run the logged requests of a data dir with this binary into a new data dir, in the
    /// order they committed (so unchanged code reproduces every state and response).
    Replay {
        /// The data dir to replay; for a cluster, give the dir of every process (repeat the
        /// flag): their logs merge into one single-process data dir.
        #[arg(long, required = true)]
        data_dir: Vec<PathBuf>,
        /// The new data dir to create.
        #[arg(long)]
        into: PathBuf,
        /// Stop after `seq:N`, `epoch:N` or an RFC 3339 time.
        #[arg(long)]
        until: Option<String>,
    },
    /// List the instances whose state differs between two data dirs (a run and its replay),
    /// and the requests whose responses differ.
    Diff {
        /// The original data dir (for a cluster: the dirs of all its processes), then the
        /// replayed one.
        #[arg(required = true, num_args = 2.., value_names = ["OLD", "NEW"])]
        dirs: Vec<PathBuf>,
        /// Compare as of request `seq:N` of the old dir (right after it committed there, and
        /// right after its replay in the new one) instead of now.
        #[arg(long)]
        at: Option<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Print the call tree of one request: every invocation with arguments, result, rolled-back
    /// blocks, timing and the participants' state around its commit.
    Trace {
        /// The request's sequence number (as `log` prints it).
        seq: u64,
        /// Data directory of the service (default: ./stateful-data/<app>).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Print JSON instead of a tree.
        #[arg(long)]
        json: bool,
    },
    /// List logged requests (all, or those addressed to one lambda or instance).
    Log {
        /// Only requests to this lambda.
        #[arg(long)]
        lambda: Option<String>,
        /// Only requests to this key (with --lambda).
        #[arg(long, requires = "lambda")]
        key: Option<String>,
        /// Data directory of the service (default: ./stateful-data/<app>).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Print JSON instead of lines.
        #[arg(long)]
        json: bool,
    },
    /// Move the state of a stopped service or cluster into new data dirs of another shape
    /// (more or fewer processes or workers). History, completion records and idempotency keys
    /// stay behind.
    Rescale {
        /// The old data dirs: a single process's, or those of every process of a cluster.
        #[arg(long, num_args = 1.., required = true)]
        from: Vec<PathBuf>,
        /// The new data dirs, one per process (one dir: a single process).
        #[arg(long, num_args = 1.., required = true)]
        into: Vec<PathBuf>,
        /// Workers per process of the new deployment (start it with the same --workers).
        #[arg(long)]
        workers: usize,
    },
    /// Rescale a running service to N workers (`POST /admin/workers`): requests are held,
    /// not refused, while its engine restarts with the new shape.
    Workers {
        /// The number of workers.
        workers: usize,
        /// The service.
        #[arg(long, default_value = "http://127.0.0.1:8000")]
        url: String,
        /// The admin token (needed when the service does not listen on loopback).
        #[arg(long, env = "STATEFUL_ADMIN_TOKEN", hide_env_values = true)]
        admin_token: Option<String>,
    },
    /// Run a cluster of this service on this machine (for trying and testing cluster mode).
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Print every committed version of one instance: commit epoch, time and state.
    History {
        /// Lambda name, as in the graph (e.g. Stock).
        lambda: String,
        /// The instance's key.
        key: String,
        /// Data directory of the service (default: ./stateful-data/<app>).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum ClusterCommand {
    /// Start N processes on loopback and supervise them: when one exits, the whole cluster is
    /// restarted (and recovers); SIGINT or SIGTERM stops them all cleanly.
    Up {
        /// Number of processes.
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=64))]
        processes: u64,
        /// Workers per process.
        #[arg(long, default_value_t = 1)]
        workers: usize,
        /// Base directory: the hosts file and one data dir per process (p0, p1, ...).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// HTTP address of process 0; process i listens on the port + i.
        #[arg(long, default_value = "127.0.0.1:8000")]
        listen: SocketAddr,
        /// Port of process 0 for the connections between processes; process i uses + i.
        #[arg(long, default_value_t = 7100)]
        timely_port: u16,
        /// More `serve` flags for every process (e.g. `--commit-interval 2`), after `--`.
        #[arg(last = true)]
        serve_args: Vec<String>,
    },
    /// Change the number of processes of a running `cluster up` (same --data-dir): they
    /// drain and stop, the state moves to the new shape, the new processes start. Meanwhile
    /// the ports answer 503 with Retry-After; answers once the new shape serves.
    Scale {
        /// The new number of processes.
        #[arg(value_parser = clap::value_parser!(u64).range(1..=64))]
        processes: u64,
        /// The `--data-dir` of the `cluster up` (default: ./stateful-data/<app>/cluster).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// How long to wait for the answer (seconds).
        #[arg(long, default_value_t = 600)]
        wait_secs: u64,
    },
}

/// `--durability`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum DurabilityArg {
    /// Answered after the commit log's `fdatasync`.
    Fsync,
    /// Answered once the commit is written to the operating system.
    ProcessCrash,
    /// In memory only.
    None,
}

impl From<DurabilityArg> for crate::engine::Durability {
    fn from(d: DurabilityArg) -> Self {
        match d {
            DurabilityArg::Fsync => crate::engine::Durability::Fsync,
            DurabilityArg::ProcessCrash => crate::engine::Durability::ProcessCrash,
            DurabilityArg::None => crate::engine::Durability::None,
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum GraphFormat {
    Dot,
    Svg,
}

#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8000")]
    pub listen: SocketAddr,
    /// The token the console, /debug, /state and the load generator need when --listen is
    /// not a loopback address (generated and printed at start if not given; loopback is
    /// open). The business API is always open.
    #[arg(long, env = "STATEFUL_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Where state and the commit log live (created if missing; recovered if present).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Worker threads of the dataflow (default: number of cores).
    #[arg(long)]
    pub workers: Option<usize>,
    /// The longest an epoch with requests waits for the previous commit before it closes
    /// (ms; epochs close as soon as the previous commit is durable). In a cluster: the epoch
    /// length.
    #[arg(long, default_value_t = crate::engine::DEFAULT_COMMIT_INTERVAL_MS, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub commit_interval: u64,
    /// What an answer means: `fsync` (its commit survives a power cut; the default),
    /// `process-crash` (survives `kill -9`, not a power cut), `none` (state in memory only).
    #[arg(long, value_enum, default_value_t = DurabilityArg::Fsync)]
    pub durability: DurabilityArg,
    /// The same as `--durability none`.
    #[arg(long)]
    pub in_memory: bool,
    /// Let the autoscaler keep the workers between MIN and MAX (`1..4`): one more when the
    /// operators are the bottleneck for 5 s, one fewer when every worker is under 20% busy
    /// for 10 s (a single process with a data dir).
    #[arg(long, value_name = "MIN..MAX")]
    pub autoscale: Option<crate::service::autoscale::Range>,
    /// Threads serving HTTP.
    #[arg(long, default_value_t = 2)]
    pub http_threads: usize,
    /// Share the listening port with other sockets that set it too (`SO_REUSEPORT`): what
    /// `cluster up` passes, so that it can hold a port while a process is replaced.
    #[arg(long, hide = true)]
    pub reuse_port: bool,
    /// Do not record each request's call tree (`trace` then has nothing to show; ~10-15%
    /// more throughput).
    #[arg(long)]
    pub no_traces: bool,
    /// How long history (old state versions, traces) is kept for time travel: `forever`, or
    /// a duration like `90s`, `30m`, `24h`, `7d`; `0` keeps only the current state.
    #[arg(long, default_value = "24h", value_parser = parse_retention)]
    pub history_retention: Retention,
    /// Also compact history while the data dir is larger than this many MiB.
    #[arg(long)]
    pub history_max_mb: Option<u64>,
    /// MiB of state instances kept in memory, over all workers (default: a quarter of the
    /// machine's memory); beyond it, clean instances are evicted (CLOCK: one used since the
    /// hand last passed gets a second chance) and read back from the store when used. `0`: no
    /// bound. Memory is about this, plus --store-cache-mb, plus the store's own index (about
    /// 60 bytes per stored instance with sled), plus the requests in flight (--max-in-flight);
    /// a bulk load also leaves freed buffers in the allocator (100-200 MiB more right after
    /// one). docs/performance.md has the numbers.
    #[arg(long)]
    pub cache_mb: Option<u64>,
    /// MiB of the durable store's page cache (sled's).
    #[arg(long, default_value_t = crate::storage::DEFAULT_PAGE_CACHE_BYTES >> 20)]
    pub store_cache_mb: u64,
    /// Requests admitted at once; beyond it a request gets 503 with `Retry-After: 1` and
    /// changes nothing.
    #[arg(long, default_value_t = crate::engine::DEFAULT_MAX_IN_FLIGHT as u64, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_in_flight: u64,
    /// Run as one process of a cluster: a file with one `host:port` per line (timely's
    /// connections between the processes, process 0 first), each optionally followed by
    /// `http=host:port`, the process's gateway (then a retried Idempotency-Key is answered
    /// at any process). Needs --process; every process needs its own --data-dir and
    /// --listen, and the same --workers.
    #[arg(long, requires = "process")]
    pub cluster: Option<PathBuf>,
    /// This process's line in the --cluster file (from 0).
    #[arg(long, requires = "cluster")]
    pub process: Option<usize>,
}

/// `--history-retention`: `None` is forever.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Retention(pub Option<u64>);

/// `forever`, `0`, or a duration (`90s`, `30m`, `24h`, `7d`, as humantime reads them).
pub(crate) fn parse_retention(s: &str) -> Result<Retention, String> {
    match s {
        "forever" => Ok(Retention(None)),
        "0" => Ok(Retention(Some(0))),
        _ => humantime::parse_duration(s)
            .map_err(|e| {
                format!(
                    "`{s}`: expected `forever`, `0`, or a duration like 90s, 30m, 24h or 7d ({e})"
                )
            })
            .and_then(|d| u64::try_from(d.as_millis()).map_err(|_| format!("`{s}` is too long")))
            .map(|ms| Retention(Some(ms))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_parses_units_and_rejects_the_rest() {
        assert_eq!(parse_retention("forever").map(|r| r.0), Ok(None));
        assert_eq!(parse_retention("0").map(|r| r.0), Ok(Some(0)));
        assert_eq!(parse_retention("90s").map(|r| r.0), Ok(Some(90_000)));
        assert_eq!(parse_retention("24h").map(|r| r.0), Ok(Some(86_400_000)));
        assert_eq!(parse_retention("7d").map(|r| r.0), Ok(Some(604_800_000)));
        // humantime also reads longer units: a year is 365.25 days.
        assert_eq!(parse_retention("1y").map(|r| r.0), Ok(Some(31_557_600_000)));
        for bad in ["", "h", "10", "10x", "-1h", "99999999999999999999d"] {
            assert!(parse_retention(bad).is_err(), "{bad}");
        }
    }
}
