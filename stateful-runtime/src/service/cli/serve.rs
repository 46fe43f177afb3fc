//! `serve`: the engine behind the HTTP gateway, until SIGINT or SIGTERM.

use std::path::PathBuf;
use std::process::ExitCode;

use super::args::ServeArgs;
use crate::engine::{Config, Durability, default_workers};
use crate::service::App;
use crate::service::http::AdminAccess;
use crate::service::live::{Live, Routes};

/// The engine configuration of `serve`'s flags (an error message for a bad flag).
fn config(args: &ServeArgs, data_dir: &std::path::Path) -> Result<Config, String> {
    let durability = if args.in_memory {
        Durability::None
    } else {
        args.durability.into()
    };
    let mut config = if durability.on_disk() {
        Config::durable(data_dir, 1)
    } else {
        Config::in_memory(1)
    };
    config.durability = durability;
    config.workers = args.workers.unwrap_or_else(default_workers).max(1);
    config.commit_interval_ms = args.commit_interval;
    config.record_traces = !args.no_traces;
    config.history.keep_for_ms = args.history_retention.0;
    config.history.max_bytes = args.history_max_mb.map(|mb| mb.saturating_mul(1 << 20));
    if let Some(mb) = args.cache_mb {
        config.cache_bytes = (mb > 0).then(|| mb.saturating_mul(1 << 20));
    }
    config.store_cache_bytes = args.store_cache_mb.saturating_mul(1 << 20);
    config.max_in_flight = usize::try_from(args.max_in_flight).unwrap_or(usize::MAX);
    if args.autoscale.is_some() && (!durability.on_disk() || args.cluster.is_some()) {
        return Err("--autoscale rescales a single process with a data dir: drop --in-memory, --durability none or --cluster".to_owned());
    }
    if let (Some(file), Some(process)) = (&args.cluster, args.process) {
        config.cluster = Some(crate::engine::cluster::ClusterConfig::from_file(
            file, process,
        )?);
        if !config.durability.on_disk() {
            return Err(
                "--cluster needs state on disk (recovery agrees on a committed epoch): drop --in-memory / --durability none"
                    .to_owned(),
            );
        }
    }
    Ok(config)
}

/// Runs `serve`.
pub(crate) fn serve(
    app: App,
    routes: Option<Routes>,
    mixes: Vec<crate::service::console::LoadMix>,
    args: ServeArgs,
    data_dir: PathBuf,
) -> ExitCode {
    let name = app.name();
    let config = match config(&args, &data_dir) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{name}: {e}");
            return ExitCode::from(2);
        }
    };
    let (admin, fresh) = AdminAccess::for_listener(args.listen, args.admin_token.clone());
    let console = console_url(args.listen, fresh.as_deref(), &admin);
    let live = match Live::start(app, config.clone(), routes, (admin, mixes)) {
        Ok(l) => l,
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
    if let Some(handle) = live.handle() {
        print_recovered(name, &handle, &config);
    }
    if let Some(range) = args.autoscale {
        println!(
            "{name}: the autoscaler keeps {}..{} workers (decisions in GET /admin/workers and the console)",
            range.min, range.max
        );
        live.set_autoscale(range);
        tokio.spawn(crate::service::autoscale::run(live.clone(), range));
    }
    println!("{name}: console on {console}");
    let router = live.front();
    let served = tokio.block_on(listen(
        router,
        (args.listen, args.reuse_port),
        &config,
        &data_dir,
        name,
    ));
    if crate::engine::cluster::has_failed() {
        // Nothing can commit without the lost process, so there is nothing to drain.
        eprintln!("{name}: stopped; the cluster had lost a process (restart the whole cluster)");
        std::process::exit(3);
    }
    // In-flight requests finish and commit before exit.
    live.shutdown();
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

/// Where the console is, with the token a browser needs (a fresh one is shown in full; a
/// given one is not repeated).
fn console_url(listen: std::net::SocketAddr, fresh: Option<&str>, admin: &AdminAccess) -> String {
    let host = if listen.ip().is_unspecified() {
        format!("<this host>:{}", listen.port())
    } else {
        listen.to_string()
    };
    match (fresh, admin.is_open()) {
        (_, true) => format!("http://{host}/"),
        (Some(t), false) => format!(
            "http://{host}/?token={t}  (admin token generated; set --admin-token or STATEFUL_ADMIN_TOKEN to choose it)"
        ),
        (None, false) => format!("http://{host}/?token=<your --admin-token>"),
    }
}

/// One line on what start-up found, without `RUST_LOG`.
fn print_recovered(name: &str, handle: &crate::engine::Handle, config: &Config) {
    if !config.durability.on_disk() {
        return;
    }
    let r = handle.recovered();
    if r.epoch == 0 {
        println!("{name}: a new data dir");
    } else {
        println!(
            "{name}: recovered epoch {} ({}): the state store's checkpoint plus {} epochs from the commit log",
            r.epoch,
            crate::storage::epoch_time(r.epoch),
            r.replayed_epochs
        );
    }
    if r.schema_checked > 0 {
        println!(
            "{name}: read {} stored instances through: their state type changed, and every one still reads",
            r.schema_checked
        );
    }
}

async fn listen(
    router: axum::Router,
    (addr, reuse_port): (std::net::SocketAddr, bool),
    config: &Config,
    data_dir: &std::path::Path,
    name: &str,
) -> Result<(), String> {
    let listener = crate::service::http::bind(addr, reuse_port)
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let durability = match config.durability {
        Durability::Fsync => format!("data dir {}, answers after fsync", data_dir.display()),
        Durability::ProcessCrash => format!(
            "data dir {}, answers survive a process crash, not a power cut",
            data_dir.display()
        ),
        Durability::None => "in memory, nothing is kept".to_owned(),
    };
    let cluster = config.cluster.as_ref().map_or_else(String::new, |c| {
        format!("; process {} of a cluster of {}", c.process, c.processes())
    });
    println!(
        "{name}: serving on http://{addr} ({durability}; {} workers; epochs close by group commit, within {} ms{cluster})",
        config.workers, config.commit_interval_ms
    );
    tracing::info!(%addr, "serving");
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(|e| format!("server error: {e}"))
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    eprintln!("stopping: finishing and committing in-flight requests");
}
