//! Shared helpers of the HTTP end-to-end tests: the real `shop` binary as a child process on a
//! free port with a temporary data dir, and a small blocking HTTP client.

// Every test binary uses a different subset of the helpers.
#![allow(dead_code)]

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The binary under test.
pub const SHOP: &str = env!("CARGO_BIN_EXE_shop");

/// How long a service may take to answer `/healthz` (debug build, busy 2-core machine).
const START_DEADLINE: Duration = Duration::from_secs(60);

/// A temporary directory holding the data dir and the services' logs.
pub struct TestDir {
    tmp: tempfile::TempDir,
    runs: u32,
}

impl TestDir {
    /// A fresh, empty directory.
    pub fn new() -> Self {
        TestDir {
            tmp: tempfile::tempdir().expect("temp dir"),
            runs: 0,
        }
    }

    /// The service's data dir (created by the service on its first start).
    pub fn data(&self) -> PathBuf {
        self.tmp.path().join("data")
    }

    /// Starts `shop serve` on a free port with this data dir, waiting until `/healthz` answers.
    pub fn start(&mut self) -> Shop {
        self.start_with(&[])
    }

    /// [`TestDir::start`] with extra `serve` flags.
    pub fn start_with(&mut self, extra: &[&str]) -> Shop {
        self.runs += 1;
        let log = self.tmp.path().join(format!("serve-{}.log", self.runs));
        Shop::start(&self.data(), &log, extra)
    }

    /// Runs `shop ARGS` to completion (the `graph` and `inspect` subcommands).
    pub fn run(&self, args: &[&str]) -> Output {
        Command::new(SHOP)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run shop")
    }

    /// `shop inspect LAMBDA KEY --data-dir <data>`.
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

/// A running `shop serve`; SIGKILLed on drop unless stopped before.
pub struct Shop {
    child: Child,
    base: String,
    log: PathBuf,
    agent: ureq::Agent,
}

/// An answer: status, headers of interest and body.
#[derive(Debug)]
pub struct Resp {
    /// HTTP status.
    pub status: u16,
    /// Body as text.
    pub body: String,
    /// `Content-Type`, if any.
    pub content_type: Option<String>,
    /// `Retry-After`, if any.
    pub retry_after: Option<String>,
}

impl Resp {
    /// The body as JSON; panics with the body when it is not.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.body))
    }

    /// Asserts a 2xx answer and returns the JSON body.
    #[track_caller]
    pub fn ok(&self) -> Value {
        assert!(
            (200..300).contains(&self.status),
            "expected 2xx, got {} {}",
            self.status,
            self.body
        );
        self.json()
    }

    /// Asserts a 4xx answer of `status` with a JSON `error` message, and returns the message.
    #[track_caller]
    pub fn err(&self, status: u16) -> String {
        assert_eq!(
            self.status, status,
            "unexpected status; body: {}",
            self.body
        );
        let v = self.json();
        let msg = v["error"]
            .as_str()
            .unwrap_or_else(|| panic!("no `error` message in {v}"));
        assert!(!msg.is_empty(), "empty error message");
        msg.to_owned()
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a free port")
        .port()
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

impl Shop {
    fn start(data: &Path, log: &Path, extra: &[&str]) -> Shop {
        // The port is free when picked but could be taken before the child binds it: retry.
        for _ in 0..3 {
            let port = free_port();
            let child = Command::new(SHOP)
                .args([
                    "serve",
                    "--listen",
                    &format!("127.0.0.1:{port}"),
                    "--data-dir",
                    data.to_str().expect("utf-8 path"),
                    "--workers",
                    "2",
                ])
                .args(extra)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(File::create(log).expect("log file"))
                .spawn()
                .expect("spawn shop");
            let mut shop = Shop {
                child,
                base: format!("http://127.0.0.1:{port}"),
                log: log.to_owned(),
                agent: agent(),
            };
            match shop.wait_ready() {
                Ok(()) => return shop,
                Err(status) if shop.log_text().contains("cannot listen") => {
                    eprintln!("port {port} taken ({status}); retrying");
                }
                Err(status) => panic!("shop exited with {status}: {}", shop.log_text()),
            }
        }
        panic!("no free port after 3 tries");
    }

    /// Polls `/healthz` until it answers 200; `Err` when the child exits first.
    fn wait_ready(&mut self) -> Result<(), ExitStatus> {
        let deadline = Instant::now() + START_DEADLINE;
        let probe: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(2)))
            .build()
            .into();
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Err(status);
            }
            if let Ok(r) = probe.get(&format!("{}/healthz", self.base)).call()
                && r.status() == 200
            {
                return Ok(());
            }
            assert!(
                Instant::now() < deadline,
                "shop not ready within {START_DEADLINE:?}: {}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// What the service wrote to stderr so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base(&self) -> &str {
        &self.base
    }

    fn finish(&self, r: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Resp {
        let mut r = r.unwrap_or_else(|e| panic!("request failed: {e}; log: {}", self.log_text()));
        let header = |name: &str| {
            r.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let (content_type, retry_after) = (header("content-type"), header("retry-after"));
        Resp {
            status: r.status().as_u16(),
            body: r.body_mut().read_to_string().expect("read body"),
            content_type,
            retry_after,
        }
    }

    /// `GET path`.
    pub fn get(&self, path: &str) -> Resp {
        self.finish(self.agent.get(&format!("{}{path}", self.base)).call())
    }

    /// `POST path` without a body.
    pub fn post(&self, path: &str) -> Resp {
        self.finish(
            self.agent
                .post(&format!("{}{path}", self.base))
                .send_empty(),
        )
    }

    /// `POST path` with a body.
    pub fn post_body(&self, path: &str, body: &str) -> Resp {
        self.finish(
            self.agent
                .post(&format!("{}{path}", self.base))
                .header("content-type", "application/json")
                .send(body),
        )
    }

    /// `POST path` without a body, with an `Idempotency-Key` header of raw bytes.
    pub fn post_idem(&self, path: &str, key: &[u8]) -> Resp {
        self.finish(
            self.agent
                .post(&format!("{}{path}", self.base))
                .header("idempotency-key", key)
                .send_empty(),
        )
    }

    /// `POST path` with an `Idempotency-Key`, tolerating a dead service: the status, or `None`
    /// when the connection failed (the answer is unknown).
    pub fn try_post_idem(&self, path: &str, key: &str) -> Option<u16> {
        self.agent
            .post(&format!("{}{path}", self.base))
            .header("idempotency-key", key)
            .send_empty()
            .ok()
            .map(|r| r.status().as_u16())
    }

    /// The committed state of one instance (`GET /state/{lambda}/{key}`).
    pub fn state(&self, lambda: &str, key: &str) -> Value {
        self.get(&format!("/state/{lambda}/{key}")).ok()
    }

    /// A user's credit, read through the API.
    pub fn credit(&self, user: &str) -> i64 {
        self.get(&format!("/payment/find_user/{user}")).ok()["credit"]
            .as_i64()
            .expect("credit is a number")
    }

    /// An item's stock, read through the API.
    pub fn stock(&self, item: &str) -> i64 {
        self.get(&format!("/stock/find/{item}")).ok()["stock"]
            .as_i64()
            .expect("stock is a number")
    }

    /// Creates a user with `credit`, returning its id.
    pub fn user(&self, credit: i64) -> String {
        let id = self.post("/payment/create_user").ok()["user_id"]
            .as_str()
            .expect("user_id")
            .to_owned();
        if credit != 0 {
            self.post(&format!("/payment/add_funds/{id}/{credit}")).ok();
        }
        id
    }

    /// Creates an item with `stock` units at `price`, returning its id.
    pub fn item(&self, stock: i64, price: i64) -> String {
        let id = self.post(&format!("/stock/item/create/{price}")).ok()["item_id"]
            .as_str()
            .expect("item_id")
            .to_owned();
        if stock != 0 {
            self.post(&format!("/stock/add/{id}/{stock}")).ok();
        }
        id
    }

    /// Creates an order of `user` with `items` (id, quantity), returning its id.
    pub fn order(&self, user: &str, items: &[(&str, i64)]) -> String {
        let id = self.post(&format!("/orders/create/{user}")).ok()["order_id"]
            .as_str()
            .expect("order_id")
            .to_owned();
        for (item, qty) in items {
            self.post(&format!("/orders/addItem/{id}/{item}/{qty}"))
                .ok();
        }
        id
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
                "shop did not exit within {deadline:?}: {}",
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

impl Drop for Shop {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
