//! A service binary under test as a child process: `BIN serve` on a free port with a data dir
//! in a temporary directory, ready once `/healthz` answers 200 while the child is alive (a
//! bare connect could reach another listener, or the port could be taken and the child gone).

use std::fs::File;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use crate::client::Client;
use crate::free_port;

/// How long a service may take to answer `/healthz` (debug build, busy 2-core machine).
const START_DEADLINE: Duration = Duration::from_secs(60);

/// A temporary directory holding one service's data dir and its logs.
#[derive(Debug)]
pub struct TestDir {
    bin: PathBuf,
    tmp: tempfile::TempDir,
    runs: u32,
    workers: usize,
    /// The address the service listens on (the client always goes to 127.0.0.1).
    host: &'static str,
}

impl TestDir {
    /// A fresh, empty directory for the service binary `bin` (`env!("CARGO_BIN_EXE_..")`).
    pub fn new(bin: impl Into<PathBuf>) -> Self {
        TestDir {
            bin: bin.into(),
            tmp: tempfile::tempdir().expect("temp dir"),
            runs: 0,
            workers: 2,
            host: "127.0.0.1",
        }
    }

    /// Starts the service listening on `host` (e.g. `0.0.0.0`: not loopback, so its admin
    /// routes need a token) instead of 127.0.0.1.
    pub fn listen_on(mut self, host: &'static str) -> Self {
        self.host = host;
        self
    }

    /// Starts the service with `workers` workers instead of 2.
    pub fn with_workers(mut self, workers: usize) -> Self {
        self.workers = workers;
        self
    }

    /// The temporary directory itself.
    pub fn path(&self) -> &Path {
        self.tmp.path()
    }

    /// The service's data dir (created by the service on its first start).
    pub fn data(&self) -> PathBuf {
        self.tmp.path().join("data")
    }

    /// Starts `BIN serve --workers 2` (or [`TestDir::with_workers`]) on a free port with this data dir, waiting until
    /// `/healthz` answers.
    pub fn start(&mut self) -> Server {
        self.start_with(&[])
    }

    /// [`TestDir::start`] with extra `serve` flags.
    pub fn start_with(&mut self, extra: &[&str]) -> Server {
        self.runs += 1;
        let log = self.tmp.path().join(format!("serve-{}.log", self.runs));
        Server::start(
            &self.bin,
            &self.data(),
            &log,
            (self.workers, self.host),
            extra,
        )
    }

    /// Runs `BIN ARGS` to completion (the tool subcommands).
    pub fn run(&self, args: &[&str]) -> Output {
        Command::new(&self.bin)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run the service binary")
    }

    /// `BIN inspect LAMBDA KEY --data-dir <data>`.
    pub fn inspect(&self, lambda: &str, key: &str) -> Output {
        let data = self.data();
        self.run(&[
            "inspect",
            lambda,
            key,
            "--data-dir",
            data.to_str().expect("utf-8 path"),
        ])
    }
}

/// A running `BIN serve`; SIGKILLed on drop unless stopped before. Requests go through its
/// [`Client`] (`Deref`).
#[derive(Debug)]
pub struct Server {
    child: Child,
    client: Client,
    log: PathBuf,
}

impl Deref for Server {
    type Target = Client;

    fn deref(&self) -> &Client {
        &self.client
    }
}

impl Server {
    fn start(
        bin: &Path,
        data: &Path,
        log: &Path,
        (workers, host): (usize, &str),
        extra: &[&str],
    ) -> Server {
        // The port is free when picked but could be taken before the child binds it: retry.
        for _ in 0..3 {
            let port = free_port();
            // stdout (the start-up lines) and stderr (logs) go to one file.
            let log_file = File::create(log).expect("log file");
            let child = Command::new(bin)
                .args([
                    "serve",
                    "--listen",
                    &format!("{host}:{port}"),
                    "--data-dir",
                    data.to_str().expect("utf-8 path"),
                    "--workers",
                    &workers.to_string(),
                ])
                .args(extra)
                .stdin(Stdio::null())
                .stdout(log_file.try_clone().expect("log file"))
                .stderr(log_file)
                .spawn()
                .expect("spawn the service");
            let mut server = Server {
                child,
                client: Client::with_base(format!("http://127.0.0.1:{port}"))
                    .log_file(log.to_owned()),
                log: log.to_owned(),
            };
            match server.wait_ready() {
                Ok(()) => return server,
                Err(status) if server.log_text().contains("cannot listen") => {
                    eprintln!("port {port} taken ({status}); retrying");
                }
                Err(status) => panic!("the service exited with {status}: {}", server.log_text()),
            }
        }
        panic!("no free port after 3 tries");
    }

    /// Polls `/healthz` until it answers 200; `Err` when the child exits first.
    fn wait_ready(&mut self) -> Result<(), ExitStatus> {
        let deadline = Instant::now() + START_DEADLINE;
        let probe = self.client.clone().timeout(Duration::from_secs(2));
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Err(status);
            }
            if let Ok(r) = probe.try_request("GET", "/healthz", None, None)
                && r.status == 200
            {
                return Ok(());
            }
            assert!(
                Instant::now() < deadline,
                "the service was not ready within {START_DEADLINE:?}: {}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The client of this service.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// What the service wrote to stdout and stderr so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` (e.g. "TERM", "KILL") with the `kill` command.
    fn signal(&self, signal: &str) {
        let st = Command::new("kill")
            .args([&format!("-{signal}"), &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(st.success(), "kill -{signal} failed");
    }

    /// Waits for the child to exit, with a deadline.
    fn wait_exit(&mut self, deadline: Duration) -> ExitStatus {
        let until = Instant::now() + deadline;
        loop {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                return st;
            }
            assert!(
                Instant::now() < until,
                "the service did not exit within {deadline:?}: {}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Graceful stop (SIGTERM); asserts a clean exit and returns the log.
    pub fn stop(mut self) -> String {
        self.signal("TERM");
        let st = self.wait_exit(Duration::from_secs(30));
        let log = self.log_text();
        assert!(st.success(), "unclean exit {st}: {log}");
        log
    }

    /// Crash: SIGKILL, then reap.
    pub fn kill9(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reap");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
