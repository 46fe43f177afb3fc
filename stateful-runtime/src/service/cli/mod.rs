//! The command line of a generated service: [`args`] is the schema, [`serve`] serves, [`tools`]
//! runs the tool commands, and `cluster up` starts a local cluster (the launcher).

mod args;
mod remote;
mod serve;
mod tools;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;

use crate::engine::Handle;
use crate::service::App;
use args::{Cli, ClusterCommand, Command};

/// A service: an app plus optional extra HTTP routes.
pub struct Service {
    app: App,
    routes: Option<crate::service::live::Routes>,
    mixes: Vec<crate::service::console::LoadMix>,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("app", &self.app.name())
            .finish_non_exhaustive()
    }
}

/// The data dir of `app` when none is given.
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

impl Service {
    /// A service for `app`.
    pub fn new(app: App) -> Self {
        Service {
            app,
            routes: None,
            mixes: Vec::new(),
        }
    }

    /// Adds a request mix to the console's load generator.
    pub fn load_mix(mut self, mix: crate::service::console::LoadMix) -> Self {
        self.mixes.push(mix);
        self
    }

    /// Adds app-specific routes (built with the running engine's handle).
    pub fn routes(mut self, f: impl Fn(Handle) -> axum::Router + Send + Sync + 'static) -> Self {
        self.routes = Some(std::sync::Arc::new(f));
        self
    }

    /// Parses the command line and runs it.
    pub fn main(self) -> ExitCode {
        let cli = Cli::parse();
        init_logging();
        let app = &self.app;
        let dir = |d: Option<PathBuf>| d.unwrap_or_else(|| default_data_dir(app.name()));
        match cli.command {
            None => self.serve(cli.serve),
            Some(Command::Serve(args)) => self.serve(args),
            Some(Command::Graph { format, output }) => tools::graph(app, format, output),
            Some(Command::Inspect {
                lambda,
                key,
                data_dir,
                at,
            }) => tools::inspect(app, &lambda, &key, &dir(data_dir), at.as_deref()),
            Some(Command::History {
                lambda,
                key,
                data_dir,
                json,
            }) => tools::history(app, &lambda, &key, &dir(data_dir), json),
            Some(Command::Log {
                lambda,
                key,
                data_dir,
                json,
            }) => tools::log(app, lambda.as_deref(), key.as_deref(), &dir(data_dir), json),
            Some(Command::Trace {
                seq,
                data_dir,
                json,
            }) => tools::trace(app, seq, &dir(data_dir), json),
            Some(Command::Replay {
                data_dir,
                into,
                until,
            }) => tools::replay(app, &data_dir, &into, until.as_deref()),
            Some(Command::Diff { dirs, at, json }) => tools::diff(app, &dirs, at.as_deref(), json),
            Some(Command::Rescale {
                from,
                into,
                workers,
            }) => tools::rescale(app, &from, &into, workers),
            Some(Command::Workers {
                workers,
                url,
                admin_token,
            }) => remote::workers(app.name(), workers, &url, admin_token.as_deref()),
            Some(Command::Cluster(ClusterCommand::Up {
                processes,
                workers,
                data_dir,
                listen,
                timely_port,
                serve_args,
            })) => crate::service::launcher::up(
                app,
                crate::service::launcher::Plan {
                    processes: processes as usize,
                    workers,
                    data_dir: data_dir
                        .unwrap_or_else(|| default_data_dir(app.name()).join("cluster")),
                    listen,
                    timely_port,
                    serve_args,
                },
            ),
            Some(Command::Cluster(ClusterCommand::Scale {
                processes,
                data_dir,
                wait_secs,
            })) => crate::service::launcher::ask_to_scale(
                app.name(),
                &data_dir.unwrap_or_else(|| default_data_dir(app.name()).join("cluster")),
                processes as usize,
                std::time::Duration::from_secs(wait_secs),
            ),
        }
    }

    fn serve(self, args: args::ServeArgs) -> ExitCode {
        let data_dir = args
            .data_dir
            .clone()
            .unwrap_or_else(|| default_data_dir(self.app.name()));
        serve::serve(self.app, self.routes, self.mixes, args, data_dir)
    }
}

/// The generated `main` of an app: [`Service::new(app).main()`](Service::main).
pub fn serve_main(app: App) -> ExitCode {
    Service::new(app).main()
}
