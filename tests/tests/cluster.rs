//! The fixture service as a cluster of processes on loopback (timely's cluster mode):
//! concurrent transfers through every process while processes are SIGKILLed, then restarts;
//! rescaling 1 → 3 → 2 processes with every instance checked; `cluster up`; a cut network
//! link; and the clear errors of bad set-ups.
#![allow(missing_docs)]

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use stateful_tests::{Client, SplitMix, free_port, free_ports};

const FIXTURE: &str = env!("CARGO_BIN_EXE_fixture");

/// One cluster at a time: several debug-build clusters at once on 2 cores would slow commits
/// to the point where the stall watchdog (5 s) fires.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Whether the service behind `c` answers `/healthz` with 200.
fn healthy(c: &Client) -> bool {
    matches!(c.try_request("GET", "/healthz", None, None), Ok(r) if r.status == 200)
}

/// The processes of one cluster, each with its HTTP client and data dir.
struct Cluster {
    hosts: PathBuf,
    dirs: Vec<PathBuf>,
    clients: Vec<Client>,
    children: Vec<Option<Child>>,
    logs: Vec<PathBuf>,
}

impl Cluster {
    /// A cluster of processes with these data dirs, HTTP addresses and host file.
    fn with(hosts: PathBuf, dirs: Vec<PathBuf>, http: Vec<SocketAddr>, logs: Vec<PathBuf>) -> Self {
        let clients = http
            .iter()
            .zip(&logs)
            .map(|(a, l)| Client::new(*a).log_file(l.clone()))
            .collect();
        Cluster {
            hosts,
            children: dirs.iter().map(|_| None).collect(),
            dirs,
            clients,
            logs,
        }
    }

    /// A cluster of `dirs.len()` processes on fresh ports (not started).
    fn new(root: &Path, name: &str, dirs: Vec<PathBuf>) -> Cluster {
        let hosts = root.join(format!("{name}.hosts"));
        let http: Vec<SocketAddr> = dirs
            .iter()
            .map(|_| SocketAddr::from(([127, 0, 0, 1], free_port())))
            .collect();
        // Each process's timely address, then its gateway (for idempotency keys' owners).
        let lines: Vec<String> = http
            .iter()
            .map(|h| format!("127.0.0.1:{} http={h}", free_port()))
            .collect();
        std::fs::write(&hosts, lines.join("\n")).expect("host file");
        let logs = (0..dirs.len())
            .map(|i| root.join(format!("{name}-{i}.log")))
            .collect();
        Cluster::with(hosts, dirs, http, logs)
    }

    /// Starts every process and waits until each answers `/healthz` (which it does only once
    /// the whole cluster is connected and recovered).
    fn start(&mut self) {
        for i in 0..self.dirs.len() {
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.logs[i])
                .expect("log file");
            let child = Command::new(FIXTURE)
                .args(["serve", "--workers", "1", "--cluster"])
                .arg(&self.hosts)
                .args(["--process", &i.to_string(), "--data-dir"])
                .arg(&self.dirs[i])
                .args([
                    "--listen",
                    self.clients[i].base().trim_start_matches("http://"),
                ])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("start a process");
            self.children[i] = Some(child);
        }
        self.wait_up();
    }

    /// Waits until every process answers `/healthz`; panics when one exits first.
    fn wait_up(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(120);
        for i in 0..self.dirs.len() {
            while !healthy(&self.clients[i]) {
                if let Some(Some(c)) = self.children.get_mut(i)
                    && let Ok(Some(status)) = c.try_wait()
                {
                    panic!("process {i} exited with {status}: {}", self.log(i));
                }
                assert!(
                    Instant::now() < deadline,
                    "process {i} did not come up: {}",
                    self.log(i)
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    fn log(&self, i: usize) -> String {
        std::fs::read_to_string(&self.logs[i]).unwrap_or_default()
    }

    fn n(&self) -> usize {
        self.clients.len()
    }

    /// SIGKILLs process `i` (reaped by [`Cluster::kill_all`]).
    fn kill9(&self, i: usize) {
        if let Some(c) = &self.children[i] {
            let _ = Command::new("kill")
                .args(["-KILL", &c.id().to_string()])
                .status();
        }
    }

    fn kill_all(&mut self) {
        for c in self.children.iter_mut() {
            if let Some(mut c) = c.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }

    /// SIGTERM to every process at once (a clean stop drains and commits), then waits.
    fn stop(&mut self) {
        for c in self.children.iter().flatten() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
        }
        for (i, c) in self.children.iter_mut().enumerate() {
            if let Some(mut c) = c.take() {
                let status = c.wait().expect("wait");
                assert!(status.success(), "process {i}: {status}");
            }
        }
    }

    /// A request to process `i` that must answer (panics on a transport error).
    fn call(&self, i: usize, method: &str, path: &str) -> (u16, Value) {
        let r = self.clients[i].request(method, path, None, None);
        let v = serde_json::from_str(&r.body).unwrap_or(Value::Null);
        (r.status, v)
    }

    fn ok(&self, i: usize, method: &str, path: &str) -> Value {
        let (status, v) = self.call(i, method, path);
        assert_eq!(status, 200, "{method} {path} at process {i}: {v}");
        v
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.kill_all();
        if std::thread::panicking() {
            for i in 0..self.logs.len() {
                let log = self.log(i);
                let tail: Vec<&str> = log.lines().rev().take(40).collect();
                eprintln!("--- process {i} log (last lines, newest first):");
                for l in tail {
                    eprintln!("{l}");
                }
            }
        }
    }
}

/// One transfer of a test's world.
#[derive(Debug, Clone)]
struct Tr {
    id: String,
    from: usize,
    to: usize,
    amount: i64,
}

/// The accounts as the test opened them, and the transfers it may run.
struct World {
    accounts: Vec<String>,
    transfers: Vec<Tr>,
}

impl World {
    fn path(&self, t: &Tr) -> String {
        format!(
            "/transfers/{}/{}/{}/{}",
            t.id, self.accounts[t.from], self.accounts[t.to], t.amount
        )
    }
}

const BALANCE: i64 = 200;

/// Opens accounts (fresh ids, made by the processes in turn), funds each through another
/// process and reads it back through a third; plans transfers between them.
fn populate(c: &Cluster, accounts: usize, transfers: usize) -> World {
    let n = c.n();
    let accounts: Vec<String> = (0..accounts)
        .map(|i| {
            let id = c.ok(i % n, "POST", "/accounts/create/0")["account"]
                .as_str()
                .expect("account")
                .to_owned();
            c.ok(
                (i + 1) % n,
                "POST",
                &format!("/accounts/{id}/deposit/{BALANCE}"),
            );
            id
        })
        .collect();
    for (i, a) in accounts.iter().enumerate() {
        let v = c.ok((i + 2) % n, "GET", &format!("/accounts/{a}"));
        assert_eq!(v["balance"].as_i64(), Some(BALANCE), "{a}: {v}");
    }
    let m = accounts.len();
    let transfers = (0..transfers)
        .map(|o| {
            let from = o % m;
            let to = (o * 7 + 1) % m;
            let to = if to == from { (to + 1) % m } else { to };
            Tr {
                id: format!("t{o}"),
                from,
                to,
                amount: 20 + (o * 37 % 80) as i64,
            }
        })
        .collect();
    World {
        accounts,
        transfers,
    }
}

/// Sends a transfer with its idempotency key to its process until it gets a final answer
/// (200 or 400); `None` when the process is unreachable or answers 503 before `deadline`.
fn transfer(c: &Cluster, p: usize, w: &World, t: &Tr, deadline: Instant) -> Option<u16> {
    let key = format!("transfer-{}", t.id);
    let path = w.path(t);
    loop {
        match c.clients[p].try_request("POST", &path, None, Some(key.as_bytes())) {
            Ok(r) if r.status == 200 || r.status == 400 => return Some(r.status),
            Ok(r) if r.status != 503 => {
                panic!("unexpected {} for transfer {}: {}", r.status, t.id, r.body)
            }
            _ if Instant::now() >= deadline => return None,
            _ => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// The transfers answered 200 and only those are done, and every balance is its initial one
/// plus exactly what they moved (so no account is below zero and money is conserved).
fn check_consistent(c: &Cluster, w: &World, done: &HashSet<String>) {
    let n = c.n();
    let mut expected = vec![BALANCE; w.accounts.len()];
    for (o, t) in w.transfers.iter().enumerate() {
        let view = c.ok((o + 2) % n, "GET", &format!("/transfers/{}", t.id));
        let is_done = view["done"].as_bool().expect("done");
        assert_eq!(
            is_done,
            done.contains(&t.id),
            "transfer {}: done in the store vs answered 200",
            t.id
        );
        if is_done {
            assert_eq!(
                (
                    view["from"].as_str(),
                    view["to"].as_str(),
                    view["amount"].as_i64()
                ),
                (
                    Some(w.accounts[t.from].as_str()),
                    Some(w.accounts[t.to].as_str()),
                    Some(t.amount)
                ),
                "{view}"
            );
            expected[t.from] -= t.amount;
            expected[t.to] += t.amount;
        }
    }
    let mut total = 0;
    for (i, a) in w.accounts.iter().enumerate() {
        let balance = c.ok(i % n, "GET", &format!("/accounts/{a}"))["balance"]
            .as_i64()
            .expect("balance");
        assert!(balance >= 0, "{a} below zero: {balance}");
        assert_eq!(balance, expected[i], "account {a}");
        total += balance;
    }
    assert_eq!(
        total,
        BALANCE * w.accounts.len() as i64,
        "money is conserved"
    );
}

/// The others notice a lost process: a clear 503 within `limit`, never a hang.
fn assert_notices_loss(c: &Cluster, i: usize, limit: Duration, what: &str) {
    let t0 = Instant::now();
    loop {
        if let Ok(r) = c.clients[i].try_request("POST", "/accounts/create/0", None, None)
            && r.status == 503
        {
            assert!(r.body.contains("cluster lost a process"), "{}", r.body);
            break;
        }
        assert!(
            t0.elapsed() < limit,
            "process {i} kept accepting after {what}: {}",
            c.log(i)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!("process {i} noticed {what} after {:?}", t0.elapsed());
}

#[test]
fn three_processes_survive_sigkill_and_apply_every_transfer_once() {
    let _serial = serial();
    let root = tempfile::tempdir().expect("tempdir");
    let dirs = (0..3).map(|i| root.path().join(format!("p{i}"))).collect();
    let mut c = Cluster::new(root.path(), "kill", dirs);
    c.start();
    let w = populate(&c, 6, 60);
    let mut rng = SplitMix(0x05ee_dc10_57e7);
    let mut answered: HashMap<String, u16> = HashMap::new();
    for round in 0..3 {
        let batch: Vec<(usize, Tr)> = w
            .transfers
            .iter()
            .enumerate()
            .skip(round * 20)
            .take(20)
            .map(|(o, t)| (o % 3, t.clone()))
            .collect();
        let queue = Arc::new(Mutex::new(batch.clone()));
        let unknown = Arc::new(Mutex::new(Vec::new()));
        let results = Arc::new(Mutex::new(Vec::new()));
        std::thread::scope(|s| {
            for _ in 0..4 {
                let (queue, unknown, results, c, w) = (&queue, &unknown, &results, &c, &w);
                s.spawn(move || {
                    loop {
                        let Some((p, t)) = queue.lock().expect("queue").pop() else {
                            break;
                        };
                        let deadline = Instant::now() + Duration::from_secs(1);
                        match transfer(c, p, w, &t, deadline) {
                            Some(status) => results.lock().expect("results").push((t.id, status)),
                            None => unknown.lock().expect("unknown").push((p, t)),
                        }
                    }
                });
            }
            // Kill one process while the transfers run.
            std::thread::sleep(Duration::from_millis(50 + rng.below(300)));
            let victim = rng.below(3) as usize;
            eprintln!("round {round}: SIGKILL process {victim}");
            c.kill9(victim);
            // The others notice: a clear 503 within a bounded time, never a hang.
            let other = (victim + 1) % 3;
            assert_notices_loss(
                &c,
                other,
                Duration::from_secs(20),
                &format!("process {victim} died"),
            );
        });
        // Restart the whole cluster: it recovers to the epoch committed everywhere.
        c.kill_all();
        c.start();
        for (id, status) in results.lock().expect("results").drain(..) {
            answered.insert(id, status);
        }
        // Requests cut off by the crash: retried with the same key at the same process, they
        // take effect once (replayed from that process's log, or run now).
        for (p, t) in unknown.lock().expect("unknown").drain(..) {
            let status = transfer(&c, p, &w, &t, Instant::now() + Duration::from_secs(60))
                .unwrap_or_else(|| panic!("transfer {} unanswered after the restart", t.id));
            answered.insert(t.id, status);
        }
        // Answers given before the crash stand: a retry now returns the same answer.
        for (p, t) in &batch {
            let again = transfer(&c, *p, &w, t, Instant::now() + Duration::from_secs(60));
            assert_eq!(again, answered.get(&t.id).copied(), "retry of {}", t.id);
        }
        let done: HashSet<String> = answered
            .iter()
            .filter(|(_, s)| **s == 200)
            .map(|(o, _)| o.clone())
            .collect();
        check_consistent(&c, &w, &done);
    }
    assert!(
        answered.values().any(|s| *s == 200),
        "some transfers succeeded"
    );
    c.stop();
}

/// Every instance's state, read through the processes in turn.
fn snapshot(c: &Cluster, w: &World) -> Vec<Value> {
    let n = c.n();
    let mut out = Vec::new();
    for (i, a) in w.accounts.iter().enumerate() {
        out.push(c.ok(i % n, "GET", &format!("/accounts/{a}")));
    }
    for (o, t) in w.transfers.iter().enumerate() {
        out.push(c.ok(o % n, "GET", &format!("/transfers/{}", t.id)));
    }
    out
}

fn rescale(from: &[PathBuf], into: &[PathBuf]) -> std::process::Output {
    Command::new(FIXTURE)
        .arg("rescale")
        .arg("--from")
        .args(from)
        .arg("--into")
        .args(into)
        .args(["--workers", "1"])
        .output()
        .expect("run rescale")
}

/// A deposit of 5 into `account` at process `i` with the idempotency key `key`: its answer.
fn keyed_deposit(c: &Cluster, i: usize, account: &str, key: &[u8]) -> (u16, String) {
    let path = format!("/accounts/{account}/deposit/5");
    let r = c.clients[i].request("POST", &path, None, Some(key));
    (r.status, r.body)
}

/// Sets a timer at process 0 that tells `account`'s mailbox 7 in `ms`; checks it is pending.
fn pending_notice(c: &Cluster, account: &str, ms: u64) {
    c.ok(
        0,
        "POST",
        &format!("/accounts/{account}/deposit_notify_later/7/{ms}"),
    );
    assert_eq!(c.ok(0, "GET", &format!("/mailbox/{account}")), 0, "pending");
}

/// Waits until `account`'s mailbox holds `total`, asking every process in turn.
fn wait_for_notice(c: &Cluster, account: &str, total: i64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    for i in (0..c.n()).cycle() {
        if c.ok(i, "GET", &format!("/mailbox/{account}")) == total {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the timer set before the rescale never fired"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn rescale_one_to_three_to_two_processes_keeps_every_instance() {
    let _serial = serial();
    let root = tempfile::tempdir().expect("tempdir");
    let single = root.path().join("single");
    // One process (a "cluster" of one address would record a cluster layout; this is the
    // plain single-process service).
    let port = free_port();
    let mut child = Command::new(FIXTURE)
        .args([
            "serve",
            "--workers",
            "2",
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .arg("--data-dir")
        .arg(&single)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start");
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + Duration::from_secs(60);
    while !healthy(&Client::new(addr)) {
        assert!(Instant::now() < deadline, "single process did not come up");
        std::thread::sleep(Duration::from_millis(50));
    }
    let one = Cluster::with(
        PathBuf::new(),
        vec![single.clone()],
        vec![addr],
        vec![root.path().join("none")],
    );
    let w = populate(&one, 5, 12);
    let mut done = 0;
    for t in w.transfers.iter().take(6) {
        let (status, _) = one.call(0, "POST", &w.path(t));
        assert!(status == 200 || status == 400, "{status}");
        done += usize::from(status == 200);
    }
    assert!(done > 0, "some transfers moved money before the rescale");
    // What a client and a timer count on moves too: a kept answer, a pending message.
    let kept = keyed_deposit(&one, 0, &w.accounts[0], b"before-the-rescale");
    assert_eq!(kept.0, 200, "{}", kept.1);
    pending_notice(&one, &w.accounts[1], 8_000);
    let before = snapshot(&one, &w);
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    assert!(child.wait().expect("wait").success());

    // 1 -> 3.
    let three: Vec<PathBuf> = (0..3)
        .map(|i| root.path().join(format!("three{i}")))
        .collect();
    let out = rescale(std::slice::from_ref(&single), &three);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let carried = String::from_utf8_lossy(&out.stdout);
    assert!(
        carried.contains("carried 1 answers kept for idempotency keys and 1 undelivered messages"),
        "{carried}"
    );
    let mut c3 = Cluster::new(root.path(), "three", three.clone());
    c3.start();
    for i in 0..3 {
        let again = keyed_deposit(&c3, i, &w.accounts[0], b"before-the-rescale");
        assert_eq!(again, kept, "a retry at process {i} after 1 -> 3");
    }
    assert_eq!(snapshot(&c3, &w), before, "every instance after 1 -> 3");
    wait_for_notice(&c3, &w.accounts[1], 7);
    // The cluster works on the moved state: one more transfer.
    let last = &w.transfers[11];
    let (status, _) = c3.call(2, "POST", &w.path(last));
    assert!(status == 200 || status == 400);
    pending_notice(&c3, &w.accounts[2], 8_000);
    let before = snapshot(&c3, &w);
    c3.stop();

    // 3 -> 2.
    let two: Vec<PathBuf> = (0..2)
        .map(|i| root.path().join(format!("two{i}")))
        .collect();
    let out = rescale(&three, &two);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut c2 = Cluster::new(root.path(), "two", two.clone());
    c2.start();
    for i in 0..2 {
        let again = keyed_deposit(&c2, i, &w.accounts[0], b"before-the-rescale");
        assert_eq!(again, kept, "a retry at process {i} after 3 -> 2");
    }
    assert_eq!(snapshot(&c2, &w), before, "every instance after 3 -> 2");
    wait_for_notice(&c2, &w.accounts[2], 7);
    c2.stop();

    // Bad set-ups: clear errors, nothing changed.
    let out = rescale(&three[..2], &[root.path().join("x")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("give all of them"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!root.path().join("x").exists());
    let out = rescale(&two, &[three[0].clone()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not empty"));
    // A process's dir alone is not a single-process dir.
    let out = Command::new(FIXTURE)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&two[0])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("rescale"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A --process outside the host file.
    let out = Command::new(FIXTURE)
        .args(["serve", "--cluster"])
        .arg(&c2.hosts)
        .args(["--process", "7", "--data-dir"])
        .arg(root.path().join("y"))
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("out of range"));
}

#[test]
fn cluster_up_supervises_and_restarts_after_a_killed_process() {
    let _serial = serial();
    use std::io::BufRead;
    let root = tempfile::tempdir().expect("tempdir");
    let http_port = free_ports(2);
    let timely_port = free_ports(2);
    let mut launcher = Command::new(FIXTURE)
        .args(["cluster", "up", "--processes", "2", "--data-dir"])
        .arg(root.path().join("c"))
        .args([
            "--listen",
            &format!("127.0.0.1:{http_port}"),
            "--timely-port",
            &timely_port.to_string(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("cluster up");
    // The launcher prints `process I (pid N) serves ...` for every (re)start.
    let pids = Arc::new(Mutex::new(Vec::<u32>::new()));
    let stdout = launcher.stdout.take().expect("stdout");
    let seen = pids.clone();
    let reader = std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if let Some(pid) = line
                .split("(pid ")
                .nth(1)
                .and_then(|r| r.split(')').next())
                .and_then(|p| p.parse().ok())
            {
                seen.lock().expect("pids").push(pid);
            }
        }
    });
    let clients: Vec<Client> = (0..2)
        .map(|i| Client::new(SocketAddr::from(([127, 0, 0, 1], http_port + i))))
        .collect();
    let up = |what: &str| {
        let deadline = Instant::now() + Duration::from_secs(120);
        for c in &clients {
            while !healthy(c) {
                assert!(
                    Instant::now() < deadline,
                    "{what}: {} did not come up",
                    c.base()
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    };
    // Right after /healthz turns 200 the launcher may still hold a port a moment (503 with
    // Retry-After, as while the cluster is away): a client retries.
    let answered = |c: &Client, method: &str, path: &str| {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let r = c.request(method, path, None, None);
            if r.status != 503 || Instant::now() > deadline {
                return r;
            }
            assert!(r.retry_after.is_some(), "{}", r.body);
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    up("first start");
    let r = answered(&clients[1], "POST", "/accounts/create/0");
    assert_eq!(r.status, 200, "{}", r.body);
    let account = r.json()["account"].as_str().expect("account").to_owned();
    let r = answered(
        &clients[0],
        "POST",
        &format!("/accounts/{account}/deposit/42"),
    );
    assert_eq!(r.status, 200, "{}", r.body);

    // Kill process 1: the launcher restarts the whole cluster, which recovers.
    let victim = pids.lock().expect("pids")[1];
    let _ = Command::new("kill")
        .args(["-KILL", &victim.to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(60);
    while pids.lock().expect("pids").len() < 4 {
        assert!(
            Instant::now() < deadline,
            "the launcher did not restart the cluster"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    up("restart");
    let r = answered(&clients[1], "GET", &format!("/accounts/{account}"));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["balance"], 42);

    // SIGTERM stops every process cleanly.
    let _ = Command::new("kill")
        .args(["-TERM", &launcher.id().to_string()])
        .status();
    let status = launcher.wait().expect("wait");
    assert!(status.success(), "{status}");
    reader.join().expect("reader");
    for c in &clients {
        assert!(
            c.try_request("GET", "/healthz", None, None).is_err(),
            "{} still serves",
            c.base()
        );
    }
}

/// Three network namespaces on a bridge, one per process; removed when dropped.
struct Netns {
    tag: String,
    n: usize,
}

fn sh(args: &[&str]) -> bool {
    Command::new(args[0])
        .args(&args[1..])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl Netns {
    /// `None` when this machine does not allow network namespaces (not root, no `ip`).
    fn create(n: usize) -> Option<Netns> {
        let tag = format!("sf{}", std::process::id() % 100_000);
        let net = Netns { tag, n };
        let br = net.bridge();
        if !sh(&["ip", "link", "add", &br, "type", "bridge"]) {
            return None;
        }
        let ok = sh(&["ip", "addr", "add", "10.213.0.254/24", "dev", &br])
            && sh(&["ip", "link", "set", &br, "up"])
            && (0..n).all(|i| {
                let (ns, host, peer) = (net.ns(i), net.veth(i), format!("{}p{i}", net.tag));
                let ip = format!("{}/24", net.ip(i));
                sh(&["ip", "netns", "add", &ns])
                    && sh(&[
                        "ip", "link", "add", &host, "type", "veth", "peer", "name", &peer,
                    ])
                    && sh(&["ip", "link", "set", &peer, "netns", &ns])
                    && sh(&["ip", "link", "set", &host, "master", &br])
                    && sh(&["ip", "link", "set", &host, "up"])
                    && sh(&[
                        "ip", "netns", "exec", &ns, "ip", "addr", "add", &ip, "dev", &peer,
                    ])
                    && sh(&["ip", "netns", "exec", &ns, "ip", "link", "set", &peer, "up"])
                    && sh(&["ip", "netns", "exec", &ns, "ip", "link", "set", "lo", "up"])
            });
        ok.then_some(net)
    }

    fn bridge(&self) -> String {
        format!("{}br", self.tag)
    }

    fn ns(&self, i: usize) -> String {
        format!("{}n{i}", self.tag)
    }

    fn veth(&self, i: usize) -> String {
        format!("{}h{i}", self.tag)
    }

    fn ip(&self, i: usize) -> String {
        format!("10.213.0.{}", i + 1)
    }

    /// Cuts (or restores) process `i`'s link: no packet passes, and nobody is told.
    fn link(&self, i: usize, up: bool) {
        assert!(sh(&[
            "ip",
            "link",
            "set",
            &self.veth(i),
            if up { "up" } else { "down" }
        ]));
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for i in 0..self.n {
            sh(&["ip", "netns", "del", &self.ns(i)]);
            sh(&["ip", "link", "del", &self.veth(i)]);
        }
        sh(&["ip", "link", "del", &self.bridge()]);
    }
}

#[test]
fn a_cut_link_fails_safe_and_the_restarted_cluster_recovers() {
    let _serial = serial();
    let Some(net) = Netns::create(3) else {
        eprintln!("skipped: this machine does not allow network namespaces (needs root and ip)");
        return;
    };
    let root = tempfile::tempdir().expect("tempdir");
    let hosts = root.path().join("hosts");
    let lines: Vec<String> = (0..3).map(|i| format!("{}:7100", net.ip(i))).collect();
    std::fs::write(&hosts, lines.join("\n")).expect("hosts");
    let mut c = Cluster::with(
        hosts,
        (0..3).map(|i| root.path().join(format!("p{i}"))).collect(),
        (0..3)
            .map(|i| SocketAddr::new(net.ip(i).parse().expect("ip"), 8000))
            .collect(),
        (0..3)
            .map(|i| root.path().join(format!("p{i}.log")))
            .collect(),
    );
    let start = |c: &mut Cluster| {
        for i in 0..3 {
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&c.logs[i])
                .expect("log");
            let child = Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    &net.ns(i),
                    FIXTURE,
                    "serve",
                    "--workers",
                    "1",
                ])
                .arg("--cluster")
                .arg(&c.hosts)
                .args(["--process", &i.to_string(), "--data-dir"])
                .arg(&c.dirs[i])
                .args([
                    "--listen",
                    c.clients[i].base().trim_start_matches("http://"),
                ])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("start in a namespace");
            c.children[i] = Some(child);
        }
        c.wait_up();
    };
    start(&mut c);
    let w = populate(&c, 3, 6);
    let mut done = HashSet::new();
    for (o, t) in w.transfers.iter().enumerate().take(3) {
        if transfer(&c, o % 3, &w, t, Instant::now() + Duration::from_secs(30)) == Some(200) {
            done.insert(t.id.clone());
        }
    }
    check_consistent(&c, &w, &done);

    // Cut process 2's link: no error reaches anyone; the others must notice by themselves.
    net.link(2, false);
    assert_notices_loss(&c, 0, Duration::from_secs(30), "the cut link");
    // Fail safe: nothing commits while the link is down.
    let (status, _) = c.call(1, "POST", &w.path(&w.transfers[3]));
    assert_eq!(status, 503);

    // Restore the link and restart the cluster: it recovers with everything acknowledged.
    net.link(2, true);
    c.kill_all();
    start(&mut c);
    check_consistent(&c, &w, &done);
    for (o, t) in w.transfers.iter().enumerate().skip(3) {
        if transfer(&c, o % 3, &w, t, Instant::now() + Duration::from_secs(30)) == Some(200) {
            done.insert(t.id.clone());
        }
    }
    check_consistent(&c, &w, &done);
    c.stop();
}

/// Messages after commit and timers in a cluster: notifying deposits sent to every process;
/// once delivered, each account's mailbox equals its balance (nothing lost, nothing doubled).
#[test]
fn messages_and_timers_are_delivered_once_across_a_cluster() {
    let _serial = serial();
    let root = tempfile::tempdir().expect("tempdir");
    let dirs = (0..3).map(|i| root.path().join(format!("m{i}"))).collect();
    let mut c = Cluster::new(root.path(), "msg", dirs);
    c.start();
    let accounts = 6;
    for a in 0..accounts {
        let r = c.clients[a % 3].post_body(&format!("/invoke/Account/n{a}/open"), "0");
        assert_eq!(r.status, 200, "{}", r.body);
    }
    for i in 0..120usize {
        let a = i % accounts;
        let path = if i.is_multiple_of(4) {
            format!("/accounts/n{a}/deposit_notify_later/1/{}", 20 + i % 200)
        } else {
            format!("/accounts/n{a}/deposit_notify/1")
        };
        let r = c.clients[i % 3].post(&path);
        assert_eq!(r.status, 200, "{path}: {}", r.body);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    for a in 0..accounts {
        let balance = c.clients[0].get(&format!("/accounts/n{a}")).ok()["balance"]
            .as_i64()
            .expect("a balance");
        assert_eq!(balance, 20, "n{a}");
        let mailbox = || {
            c.clients[(a + 1) % 3]
                .get(&format!("/mailbox/n{a}"))
                .ok()
                .as_i64()
                .expect("a number")
        };
        let mut got = mailbox();
        while got < balance && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
            got = mailbox();
        }
        assert_eq!(got, balance, "n{a}: every message delivered once");
    }
    std::thread::sleep(Duration::from_millis(300));
    for a in 0..accounts {
        let got = c.clients[2].get(&format!("/mailbox/n{a}")).ok().as_i64();
        assert_eq!(got, Some(20), "n{a}: nothing delivered twice");
    }
}

#[test]
fn an_idempotent_retry_at_another_process_gets_the_first_answer_and_runs_once() {
    let _serial = serial();
    let root = tempfile::tempdir().expect("tempdir");
    let dirs = (0..3).map(|i| root.path().join(format!("i{i}"))).collect();
    let mut c = Cluster::new(root.path(), "idem", dirs);
    c.start();
    let r = c.clients[0].post_body("/invoke/Account/a1/open", "10");
    assert_eq!(r.status, 200, "{}", r.body);
    // Keys owned by each of the three processes, each sent first to process 0.
    for k in 0..6 {
        let key = format!("deposit-{k}");
        let first = c.clients[0].post_idem("/accounts/a1/deposit/5", key.as_bytes());
        assert_eq!(first.status, 200, "{}", first.body);
        for p in [1, 2, 0] {
            let again = c.clients[p].post_idem("/accounts/a1/deposit/5", key.as_bytes());
            assert_eq!(
                (again.status, &again.body),
                (200, &first.body),
                "{key} retried at {p}"
            );
            // A client's own forwarding marker does not make a process serve a key it
            // does not own.
            let spoofed = post_marked(c.clients[p].base(), "/accounts/a1/deposit/5", &key);
            assert!(
                spoofed.starts_with("HTTP/1.1 200") && spoofed.ends_with(first.body.as_str()),
                "{key} at {p} with a forged marker: {spoofed}"
            );
        }
    }
    let balance = c.clients[1].get("/accounts/a1").ok()["balance"].as_i64();
    assert_eq!(balance, Some(10 + 6 * 5), "each deposit ran once");
    // A route that makes a fresh key: the retry elsewhere answers the same account.
    let made = c.clients[2]
        .post_idem("/accounts/create/7", b"open-new")
        .ok();
    let again = c.clients[0]
        .post_idem("/accounts/create/7", b"open-new")
        .ok();
    assert_eq!(made, again);
    let account = made["account"].as_str().unwrap_or_default().to_owned();
    assert_eq!(
        c.clients[1].get(&format!("/accounts/{account}")).ok()["balance"],
        7
    );
}

/// `POST path` to `base` with an `Idempotency-Key` and the forwarding marker header a client
/// might forge; the raw answer.
fn post_marked(base: &str, path: &str, key: &str) -> String {
    use std::io::{Read, Write};
    let addr = base.trim_start_matches("http://").trim_end_matches('/');
    let mut s = std::net::TcpStream::connect(addr).expect("connects");
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nIdempotency-Key: {key}\r\n\
         x-stateful-forwarded: 1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .expect("writes");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("reads");
    out
}

/// Runs `fixture` with `args`, panicking unless it succeeds; its stdout.
fn tool(args: &[&std::ffi::OsStr]) -> String {
    let out = Command::new(FIXTURE)
        .args(args)
        .output()
        .expect("run the tool");
    assert!(
        out.status.success(),
        "{args:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Contended transfers through every process (each with its idempotency key), in two runs
/// of the cluster with a restart between: which transfers succeed depends on the order in
/// which they ran, across processes.
fn run_contended_transfers(c: &mut Cluster) -> World {
    let mut w = populate(c, 3, 0);
    // Amounts near the balances: some transfers find too little money, depending on order.
    w.transfers = (0..60)
        .map(|o| Tr {
            id: format!("t{o}"),
            from: o % 3,
            to: (o + 1 + o / 3) % 3,
            amount: 90 + (o * 37 % 110) as i64,
        })
        .filter(|t| t.from != t.to)
        .collect();
    let half = w.transfers.len() / 2;
    for run in 0..2 {
        let queue: Vec<(usize, Tr)> = w
            .transfers
            .iter()
            .enumerate()
            .skip(run * half)
            .take(if run == 0 { half } else { usize::MAX })
            .map(|(o, t)| (o % 3, t.clone()))
            .collect();
        let queue = Mutex::new(queue);
        std::thread::scope(|s| {
            for _ in 0..4 {
                let (queue, c, w) = (&queue, &*c, &w);
                s.spawn(move || {
                    while let Some((p, t)) = queue.lock().expect("queue").pop() {
                        let deadline = Instant::now() + Duration::from_secs(60);
                        transfer(c, p, w, &t, deadline).expect("answered");
                    }
                });
            }
        });
        c.stop();
        // A clean stop is recorded, and spent by the restart that reads it (a crash of the
        // next run must be judged by the logs alone).
        for d in &c.dirs {
            assert!(d.join("clean-stop").exists(), "{}", d.display());
        }
        c.start();
        for d in &c.dirs {
            assert!(!d.join("clean-stop").exists(), "{}", d.display());
        }
    }
    w
}

#[test]
fn replay_of_a_three_process_clusters_logs_equals_the_original_instance_by_instance() {
    let _serial = serial();
    let root = tempfile::tempdir().expect("tempdir");
    let dirs: Vec<PathBuf> = (0..3).map(|i| root.path().join(format!("p{i}"))).collect();
    let mut c = Cluster::new(root.path(), "replay", dirs.clone());
    c.start();
    let w = run_contended_transfers(&mut c);
    let before = snapshot(&c, &w);
    let rejected = before
        .iter()
        .filter(|v| v.get("done") == Some(&Value::Bool(false)))
        .count();
    eprintln!("{rejected} of {} transfers refused", w.transfers.len());
    c.stop();
    // Replay needs every process's dir: two of three is a clear error and writes nothing.
    let new = root.path().join("replayed");
    let partial = Command::new(FIXTURE)
        .args(["replay", "--data-dir"])
        .arg(&dirs[0])
        .arg("--data-dir")
        .arg(&dirs[1])
        .arg("--into")
        .arg(&new)
        .output()
        .expect("run replay");
    assert!(!partial.status.success());
    let err = String::from_utf8_lossy(&partial.stderr);
    assert!(err.contains("every process of one cluster"), "{err}");
    assert!(!new.exists(), "a refused replay creates nothing");
    // --until cuts one process's log: refused for a cluster's dirs.
    let mut args: Vec<&std::ffi::OsStr> =
        vec!["replay".as_ref(), "--until".as_ref(), "seq:5".as_ref()];
    for d in &dirs {
        args.extend(["--data-dir".as_ref(), d.as_os_str()]);
    }
    args.extend(["--into".as_ref(), new.as_os_str()]);
    let cut = Command::new(FIXTURE)
        .args(&args)
        .output()
        .expect("run replay");
    assert!(!cut.status.success());
    assert!(
        String::from_utf8_lossy(&cut.stderr).contains("--until"),
        "{cut:?}"
    );
    assert!(!new.exists(), "a refused replay creates nothing");

    let mut args: Vec<&std::ffi::OsStr> = vec!["replay".as_ref()];
    for d in &dirs {
        args.extend(["--data-dir".as_ref(), d.as_os_str()]);
    }
    args.extend(["--into".as_ref(), new.as_os_str()]);
    let out = tool(&args);
    assert!(out.contains("replayed"), "{out}");
    let mut args: Vec<&std::ffi::OsStr> = vec!["diff".as_ref(), "--json".as_ref()];
    args.extend(dirs.iter().map(|d| d.as_os_str()));
    args.push(new.as_os_str());
    let diff: Value = serde_json::from_str(&tool(&args)).expect("diff JSON");
    assert_eq!(diff["instances"], Value::Array(vec![]), "instances differ");
    assert_eq!(diff["responses"], Value::Array(vec![]), "responses differ");
    // The comparison has something to compare: the replayed accounts hold what the cluster
    // answered, and the outcome depended on the order (some transfers were refused for want
    // of money).
    for (i, a) in w.accounts.iter().enumerate() {
        let args = ["inspect", "Account", a, "--data-dir"].map(std::ffi::OsStr::new);
        let mut args = args.to_vec();
        args.push(new.as_os_str());
        let replayed: Value = serde_json::from_str(&tool(&args)).expect("state JSON");
        assert_eq!(replayed["balance"], before[i]["balance"], "account {a}");
    }
    assert!(
        rejected > 0 && rejected < w.transfers.len(),
        "{rejected} of {} transfers refused",
        w.transfers.len()
    );
}
