//! The command line of a generated service: `serve` (default), `graph`, `inspect`.
//!
//! ```text
//! shop                      serve on 127.0.0.1:8000 with ./stateful-data/shop
//! shop serve --listen 0.0.0.0:9000 --data-dir /var/lib/shop --workers 4
//! shop graph --format svg -o shop.svg
//! shop inspect Stock item-1 --data-dir /var/lib/shop
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand, ValueEnum};

use crate::app::App;
use crate::engine::{Config, Durability, Handle, Runtime};

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
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
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
        /// The data dir to replay.
        #[arg(long)]
        data_dir: PathBuf,
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
        /// The original data dir.
        old: PathBuf,
        /// The replayed data dir.
        new: PathBuf,
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
enum ClusterCommand {
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
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum GraphFormat {
    Dot,
    Svg,
}

#[derive(Debug, Clone, clap::Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8000")]
    listen: SocketAddr,
    /// Where state and the request log live (created if missing; recovered if present).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Worker threads of the dataflow (default: number of cores).
    #[arg(long)]
    workers: Option<usize>,
    /// Milliseconds between commits (a response waits for the next commit).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    commit_interval: u64,
    /// Keep state in memory only (nothing survives a restart; for trying things out).
    #[arg(long)]
    in_memory: bool,
    /// Threads serving HTTP.
    #[arg(long, default_value_t = 2)]
    http_threads: usize,
    /// Do not record each request's call tree (`trace` then has nothing to show; ~10-15%
    /// more throughput).
    #[arg(long)]
    no_traces: bool,
    /// How long history (old state versions, traces) is kept for time travel: `forever`, or
    /// a duration like `90s`, `30m`, `24h`, `7d`; `0` keeps only the current state.
    #[arg(long, default_value = "24h", value_parser = parse_retention)]
    history_retention: Retention,
    /// Also compact history while the data dir is larger than this many MiB.
    #[arg(long)]
    history_max_mb: Option<u64>,
    /// Requests admitted at once; beyond it a request gets 503 with `Retry-After: 1` and
    /// changes nothing.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..))]
    max_in_flight: u64,
    /// Run as one process of a cluster: a file with one `host:port` per line (timely's
    /// connections between the processes, process 0 first). Needs --process; every process
    /// needs its own --data-dir and --listen, and the same --workers.
    #[arg(long, requires = "process")]
    cluster: Option<PathBuf>,
    /// This process's line in the --cluster file (from 0).
    #[arg(long, requires = "cluster")]
    process: Option<usize>,
}

/// `--history-retention`: `None` is forever.
#[derive(Debug, Clone, Copy)]
struct Retention(Option<u64>);

fn parse_retention(s: &str) -> Result<Retention, String> {
    if s == "forever" {
        return Ok(Retention(None));
    }
    if s == "0" {
        return Ok(Retention(Some(0)));
    }
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("`{s}`: expected `forever`, `0`, or a number with s, m, h or d"))?;
    let ms_per = match unit {
        "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(format!("`{s}`: the unit must be ms, s, m, h or d")),
    };
    n.checked_mul(ms_per)
        .map(|ms| Retention(Some(ms)))
        .ok_or_else(|| format!("`{s}` is too long"))
}

/// A service: an app plus optional extra HTTP routes.
pub struct Service {
    app: App,
    routes: Option<Box<dyn Fn(Handle) -> axum::Router + Send>>,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("app", &self.app.name)
            .finish_non_exhaustive()
    }
}

impl Service {
    /// A service for `app`.
    pub fn new(app: App) -> Self {
        Service { app, routes: None }
    }

    /// Adds app-specific routes (built with the running engine's handle).
    pub fn routes(mut self, f: impl Fn(Handle) -> axum::Router + Send + 'static) -> Self {
        self.routes = Some(Box::new(f));
        self
    }

    /// Parses the command line and runs it.
    pub fn main(self) -> ExitCode {
        let cli = Cli::parse();
        init_logging();
        match cli.command {
            None => self.serve(cli.serve),
            Some(Command::Serve(args)) => self.serve(args),
            Some(Command::Graph { format, output }) => graph(&self.app, format, output),
            Some(Command::Inspect {
                lambda,
                key,
                data_dir,
                at,
            }) => inspect(&self.app, &lambda, &key, data_dir, at.as_deref()),
            Some(Command::Replay {
                data_dir,
                into,
                until,
            }) => replay(self.app, &data_dir, &into, until.as_deref()),
            Some(Command::Diff { old, new, at, json }) => {
                diff(&self.app, &old, &new, at.as_deref(), json)
            }
            Some(Command::Trace {
                seq,
                data_dir,
                json,
            }) => trace(&self.app, seq, data_dir, json),
            Some(Command::Log {
                lambda,
                key,
                data_dir,
                json,
            }) => log(&self.app, lambda.as_deref(), key.as_deref(), data_dir, json),
            Some(Command::Cluster(ClusterCommand::Up {
                processes,
                workers,
                data_dir,
                listen,
                timely_port,
                serve_args,
            })) => crate::launcher::up(
                self.app.name,
                crate::launcher::Plan {
                    processes: processes as usize,
                    workers,
                    data_dir: data_dir
                        .unwrap_or_else(|| default_data_dir(self.app.name).join("cluster")),
                    listen,
                    timely_port,
                    serve_args,
                },
            ),
            Some(Command::Rescale {
                from,
                into,
                workers,
            }) => rescale(&self.app, &from, &into, workers),
            Some(Command::History {
                lambda,
                key,
                data_dir,
                json,
            }) => history(&self.app, &lambda, &key, data_dir, json),
        }
    }

    fn serve(self, args: ServeArgs) -> ExitCode {
        let data_dir = args
            .data_dir
            .clone()
            .unwrap_or_else(|| default_data_dir(self.app.name));
        let mut config = if args.in_memory {
            Config::in_memory(1)
        } else {
            Config::durable(&data_dir, 1)
        };
        config.workers = args.workers.unwrap_or(Config::default().workers).max(1);
        config.commit_interval_ms = args.commit_interval;
        config.record_traces = !args.no_traces;
        config.history.keep_for_ms = args.history_retention.0;
        config.max_in_flight = usize::try_from(args.max_in_flight).unwrap_or(usize::MAX);
        if let (Some(file), Some(process)) = (&args.cluster, args.process) {
            match crate::engine::cluster::ClusterConfig::from_file(file, process) {
                Ok(c) => config.cluster = Some(c),
                Err(e) => {
                    eprintln!("{}: {e}", self.app.name);
                    return ExitCode::from(2);
                }
            }
            if config.durability == Durability::InMemory {
                eprintln!(
                    "{}: --cluster needs durable state (recovery agrees on a committed epoch): drop --in-memory",
                    self.app.name
                );
                return ExitCode::from(2);
            }
        }
        config.history.max_bytes = args.history_max_mb.map(|mb| mb.saturating_mul(1 << 20));
        let name = self.app.name;
        let runtime = match Runtime::start(Arc::new(self.app), config.clone()) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("{name}: cannot start: {e}");
                return ExitCode::from(2);
            }
        };
        let tokio = match tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.http_threads.max(1))
            .enable_all()
            .build()
        {
            Ok(t) => t,
            Err(e) => {
                eprintln!("{name}: cannot start the HTTP runtime: {e}");
                return ExitCode::from(2);
            }
        };
        let handle = runtime.handle();
        let extra = self.routes.as_ref().map(|f| f(handle.clone()));
        let router = crate::gateway::router(handle, extra);
        let served = tokio.block_on(async move {
            let listener = tokio::net::TcpListener::bind(args.listen)
                .await
                .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
            let addr = listener.local_addr().map_err(|e| e.to_string())?;
            let durability = match config.durability {
                Durability::Durable => format!("data dir {}", data_dir.display()),
                Durability::InMemory => "in memory, nothing is kept".to_owned(),
            };
            let cluster = config.cluster.as_ref().map_or_else(String::new, |c| {
                format!("; process {} of a cluster of {}", c.process, c.processes())
            });
            println!(
                "{name}: serving on http://{addr} ({durability}; {} workers; commit every {} ms{cluster})",
                config.workers, config.commit_interval_ms
            );
            tracing::info!(%addr, "serving");
            axum::serve(listener, router)
                .with_graceful_shutdown(shutdown_signal())
                .await
                .map_err(|e| format!("server error: {e}"))
        });
        if crate::engine::cluster::has_failed() {
            // Nothing can commit without the lost process, so there is nothing to drain.
            eprintln!(
                "{name}: stopped; the cluster had lost a process (restart the whole cluster)"
            );
            std::process::exit(3);
        }
        // In-flight requests finish and commit before exit.
        runtime.shutdown();
        match served {
            Ok(()) => {
                println!("{name}: stopped cleanly");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{name}: {e}");
                ExitCode::from(2)
            }
        }
    }
}

/// The generated `main` of an app: [`Service::new(app).main()`](Service::main).
pub fn serve_main(app: App) -> ExitCode {
    Service::new(app).main()
}

fn default_data_dir(app: &str) -> PathBuf {
    Path::new("stateful-data").join(app)
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    eprintln!("stopping: finishing and committing in-flight requests");
}

fn graph(app: &App, format: GraphFormat, output: Option<PathBuf>) -> ExitCode {
    let text = match format {
        GraphFormat::Dot => app.dot.to_owned(),
        GraphFormat::Svg => match crate::inspect::render_svg(app.dot) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("{}: {e}", app.name);
                return ExitCode::from(2);
            }
        },
    };
    match output {
        None => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Some(path) => match std::fs::write(&path, text) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("{}: cannot write {}: {e}", app.name, path.display());
                ExitCode::from(2)
            }
        },
    }
}

fn inspect(
    app: &App,
    lambda: &str,
    key: &str,
    data_dir: Option<PathBuf>,
    at: Option<&str>,
) -> ExitCode {
    let dir = data_dir.unwrap_or_else(|| default_data_dir(app.name));
    let result =
        crate::engine::runtime::open_for_reading(app, &dir).and_then(|(store, groups)| match at {
            None => crate::inspect::committed_state(app, store.as_ref(), groups, lambda, key)
                .map_err(|e| e.to_string()),
            Some(at) => {
                let epoch = crate::inspect::resolve_at(store.as_ref(), at)?;
                crate::inspect::state_at(app, store.as_ref(), groups, lambda, key, epoch)
                    .map_err(|e| e.to_string())
            }
        });
    match result {
        Ok(v) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&v).unwrap_or_else(|_| v.to_string())
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{}: {e}", app.name);
            ExitCode::from(2)
        }
    }
}

fn history(app: &App, lambda: &str, key: &str, data_dir: Option<PathBuf>, json: bool) -> ExitCode {
    let dir = data_dir.unwrap_or_else(|| default_data_dir(app.name));
    let result = crate::engine::runtime::open_for_reading(app, &dir).and_then(|(store, groups)| {
        let versions =
            crate::inspect::history(app, store.as_ref(), groups, lambda, key, Some(&dir))
                .map_err(|e| e.to_string())?;
        let note = crate::inspect::horizon_note(store.as_ref()).map_err(|e| e.to_string())?;
        Ok((versions, note))
    });
    match result {
        Ok((versions, note)) if json => {
            let doc = serde_json::json!({ "horizon_note": note, "versions": versions });
            println!(
                "{}",
                serde_json::to_string_pretty(&doc).unwrap_or_else(|e| e.to_string())
            );
            ExitCode::SUCCESS
        }
        Ok((versions, note)) => {
            if let Some(note) = note {
                println!("({note})");
            }
            if versions.is_empty() {
                println!("{lambda} {key}: no committed version");
            }
            for v in versions {
                println!("{}  {}  {}", v.epoch, v.time, v.state);
                for w in &v.written_by {
                    match &w.target {
                        Some(t) => println!("    written by request {}: {t} {}", w.seq, w.args),
                        None => println!("    written by request {}", w.seq),
                    }
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{}: {e}", app.name);
            ExitCode::from(2)
        }
    }
}

fn rescale(app: &App, from: &[PathBuf], into: &[PathBuf], workers: usize) -> ExitCode {
    match crate::rescale::rescale(app, from, into, workers) {
        Ok(r) => {
            for (dir, n) in into.iter().zip(&r.instances) {
                println!("{}: {n} instances", dir.display());
            }
            println!(
                "moved the state as of epoch {} into {} data dir(s); start each with --workers {workers}{}",
                r.epoch,
                into.len(),
                if into.len() > 1 {
                    " and its --process index in the --cluster file (the order of --into)"
                } else {
                    ""
                }
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{}: {e}", app.name);
            ExitCode::from(2)
        }
    }
}

fn replay(app: App, old: &Path, new: &Path, until: Option<&str>) -> ExitCode {
    let name = app.name;
    let until = match until.map(crate::replay::Until::parse).transpose() {
        Ok(u) => u,
        Err(e) => {
            eprintln!("{name}: {e}");
            return ExitCode::from(2);
        }
    };
    match crate::replay::replay(Arc::new(app), old, new, until) {
        Ok(r) => {
            println!(
                "replayed {} requests into {} ({} had never completed; {} after --until skipped)",
                r.replayed,
                new.display(),
                r.never_completed,
                r.skipped
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{name}: {e}");
            ExitCode::from(2)
        }
    }
}

fn diff(app: &App, old: &Path, new: &Path, at: Option<&str>, json: bool) -> ExitCode {
    let at = match at.map(|s| {
        s.strip_prefix("seq:")
            .and_then(|n| n.parse::<u64>().ok())
            .ok_or_else(|| format!("--at `{s}`: diff compares as of a request: use seq:N"))
    }) {
        None => None,
        Some(Ok(seq)) => Some(seq),
        Some(Err(e)) => {
            eprintln!("{}: {e}", app.name);
            return ExitCode::from(2);
        }
    };
    match crate::replay::diff_at(app, old, new, at) {
        Ok(d) if json => {
            println!(
                "{}",
                serde_json::to_string_pretty(&d).unwrap_or_else(|e| e.to_string())
            );
            ExitCode::SUCCESS
        }
        Ok(d) => {
            for i in &d.instances {
                println!("{} {}: {} -> {}", i.lambda, i.key, i.old, i.new);
            }
            for r in &d.responses {
                println!("request {} {}: {} -> {}", r.seq, r.target, r.old, r.new);
            }
            println!(
                "{} instances and {} responses differ",
                d.instances.len(),
                d.responses.len()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{}: {e}", app.name);
            ExitCode::from(2)
        }
    }
}

fn trace(app: &App, seq: u64, data_dir: Option<PathBuf>, json: bool) -> ExitCode {
    let dir = data_dir.unwrap_or_else(|| default_data_dir(app.name));
    let result = crate::engine::runtime::open_for_reading(app, &dir).and_then(|(store, groups)| {
        crate::inspect::trace(app, store.as_ref(), groups, seq).map_err(|e| e.to_string())
    });
    match result {
        Ok(t) => {
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&t).unwrap_or_else(|e| e.to_string())
                );
            } else {
                println!("{}", crate::inspect::trace_text(&t).trim_end());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{}: {e}", app.name);
            ExitCode::from(2)
        }
    }
}

fn log(
    app: &App,
    lambda: Option<&str>,
    key: Option<&str>,
    data_dir: Option<PathBuf>,
    json: bool,
) -> ExitCode {
    let dir = data_dir.unwrap_or_else(|| default_data_dir(app.name));
    let result = crate::engine::runtime::open_for_reading(app, &dir).and_then(|(store, _)| {
        crate::inspect::log(app, store.as_ref(), &dir, lambda, key).map_err(|e| e.to_string())
    });
    match result {
        Ok(reqs) if json => {
            println!(
                "{}",
                serde_json::to_string_pretty(&reqs).unwrap_or_else(|e| e.to_string())
            );
            ExitCode::SUCCESS
        }
        Ok(reqs) => {
            for r in reqs {
                println!(
                    "{:>8}  {}  {}.{}({}) {}  {}",
                    r.seq, r.time, r.lambda, r.handler, r.key, r.args, r.outcome
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{}: {e}", app.name);
            ExitCode::from(2)
        }
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
        for bad in ["", "h", "10", "10y", "-1h", "99999999999999999999d"] {
            assert!(parse_retention(bad).is_err(), "{bad}");
        }
    }
}
