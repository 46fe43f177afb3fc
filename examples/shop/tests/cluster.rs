//! The shop as a cluster of processes on loopback (timely's cluster mode): concurrent
//! checkouts through every process while processes are SIGKILLed, then restarts; rescaling
//! 1 → 3 → 2 processes with every instance checked; and the clear errors of bad set-ups.
#![allow(missing_docs)]

use std::collections::{HashMap, HashSet};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use stateful_tests::{SplitMix, http};

const SHOP: &str = env!("CARGO_BIN_EXE_shop");

/// One cluster at a time: several debug-build clusters at once on 2 cores would slow commits
/// to the point where the stall watchdog (5 s) fires.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// The processes of one cluster, each with its HTTP address and data dir.
struct Cluster {
    hosts: PathBuf,
    dirs: Vec<PathBuf>,
    http: Vec<SocketAddr>,
    children: Vec<Option<Child>>,
    logs: Vec<PathBuf>,
}

impl Cluster {
    /// A cluster of `dirs.len()` processes on fresh ports (not started).
    fn new(root: &Path, name: &str, dirs: Vec<PathBuf>) -> Cluster {
        let hosts = root.join(format!("{name}.hosts"));
        let lines: Vec<String> = dirs
            .iter()
            .map(|_| format!("127.0.0.1:{}", free_port()))
            .collect();
        std::fs::write(&hosts, lines.join("\n")).expect("host file");
        let http = dirs
            .iter()
            .map(|_| SocketAddr::from(([127, 0, 0, 1], free_port())))
            .collect();
        let logs = (0..dirs.len())
            .map(|i| root.join(format!("{name}-{i}.log")))
            .collect();
        Cluster {
            hosts,
            children: dirs.iter().map(|_| None).collect(),
            dirs,
            http,
            logs,
        }
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
            let child = Command::new(SHOP)
                .args(["serve", "--workers", "1", "--cluster"])
                .arg(&self.hosts)
                .args(["--process", &i.to_string(), "--data-dir"])
                .arg(&self.dirs[i])
                .args(["--listen", &self.http[i].to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("start a process");
            self.children[i] = Some(child);
        }
        let deadline = Instant::now() + Duration::from_secs(120);
        for i in 0..self.dirs.len() {
            while !matches!(http(self.http[i], "GET", "/healthz", None), Ok((200, _))) {
                if let Some(Some(c)) = self.children.get_mut(i)
                    && let Ok(Some(status)) = c.try_wait()
                {
                    panic!("process {i} exited with {status}: {}", self.log(i));
                }
                assert!(Instant::now() < deadline, "process {i} did not come up");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    fn log(&self, i: usize) -> String {
        std::fs::read_to_string(&self.logs[i]).unwrap_or_default()
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
        let (status, body) = http(self.http[i], method, path, None)
            .unwrap_or_else(|e| panic!("{method} {path} at process {i}: {e}"));
        let v = serde_json::from_str(&body).unwrap_or(Value::Null);
        (status, v)
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

/// The shop's instances as the test created them.
struct World {
    items: Vec<String>,
    users: Vec<String>,
    orders: Vec<(String, i64)>,
}

const STOCK: i64 = 30;
const CREDIT: i64 = 200;

/// Creates items, users and two-item orders through the processes in turn.
fn populate(c: &Cluster, items: usize, users: usize, orders: usize) -> World {
    let n = c.http.len();
    let items: Vec<String> = (0..items)
        .map(|i| {
            let id = c.ok(i % n, "POST", &format!("/stock/item/create/{}", 2 + i % 3))["item_id"]
                .as_str()
                .expect("item_id")
                .to_owned();
            c.ok((i + 1) % n, "POST", &format!("/stock/add/{id}/{STOCK}"));
            id
        })
        .collect();
    let users: Vec<String> = (0..users)
        .map(|u| {
            let id = c.ok(u % n, "POST", "/payment/create_user")["user_id"]
                .as_str()
                .expect("user_id")
                .to_owned();
            c.ok(
                (u + 2) % n,
                "POST",
                &format!("/payment/add_funds/{id}/{CREDIT}"),
            );
            id
        })
        .collect();
    let orders = (0..orders)
        .map(|o| {
            let user = &users[o % users.len()];
            let id = c.ok(o % n, "POST", &format!("/orders/create/{user}"))["order_id"]
                .as_str()
                .expect("order_id")
                .to_owned();
            let (a, b) = (o % items.len(), (o * 7 + 1) % items.len());
            let b = if a == b { (b + 1) % items.len() } else { b };
            for item in [&items[a], &items[b]] {
                c.ok(
                    (o + 1) % n,
                    "POST",
                    &format!("/orders/addItem/{id}/{item}/1"),
                );
            }
            let cost = c.ok((o + 2) % n, "GET", &format!("/orders/find/{id}"))["total_cost"]
                .as_i64()
                .expect("total_cost");
            (id, cost)
        })
        .collect();
    World {
        items,
        users,
        orders,
    }
}

/// Sends a checkout with its idempotency key to its process until it gets a final answer
/// (200 or 400); `None` when the process is unreachable or answers 503 before `deadline`.
fn checkout(c: &Cluster, p: usize, order: &str, deadline: Instant) -> Option<u16> {
    let key = format!("checkout-{order}");
    loop {
        match http(
            c.http[p],
            "POST",
            &format!("/orders/checkout/{order}"),
            Some(&key),
        ) {
            Ok((s @ (200 | 400), _)) => return Some(s),
            Ok((503, _)) | Err(_) if Instant::now() >= deadline => return None,
            Ok((503, _)) | Err(_) => std::thread::sleep(Duration::from_millis(20)),
            Ok((s, body)) => panic!("unexpected {s} for checkout {order}: {body}"),
        }
    }
}

/// Stock and credit account exactly for the orders answered 200, and those are paid.
fn check_consistent(c: &Cluster, w: &World, paid: &HashSet<String>) {
    let n = c.http.len();
    let mut sold = 0;
    for (i, item) in w.items.iter().enumerate() {
        let stock = c.ok(i % n, "GET", &format!("/stock/find/{item}"))["stock"]
            .as_i64()
            .expect("stock");
        assert!(stock >= 0);
        sold += STOCK - stock;
    }
    let mut spent = 0;
    for (u, user) in w.users.iter().enumerate() {
        let credit = c.ok((u + 1) % n, "GET", &format!("/payment/find_user/{user}"))["credit"]
            .as_i64()
            .expect("credit");
        assert!(credit >= 0);
        spent += CREDIT - credit;
    }
    let mut expected_spent = 0;
    for (o, (order, cost)) in w.orders.iter().enumerate() {
        let is_paid = c.ok((o + 2) % n, "GET", &format!("/orders/find/{order}"))["paid"]
            .as_bool()
            .expect("paid");
        assert_eq!(
            is_paid,
            paid.contains(order),
            "order {order}: paid in the store vs answered 200"
        );
        if is_paid {
            expected_spent += cost;
        }
    }
    assert_eq!(sold, 2 * paid.len() as i64, "units sold = 2 per paid order");
    assert_eq!(
        spent, expected_spent,
        "credit spent = the paid orders' totals"
    );
}

#[test]
fn three_processes_survive_sigkill_and_apply_every_checkout_once() {
    let _serial = serial();
    let root = tempfile::tempdir().expect("tempdir");
    let dirs = (0..3).map(|i| root.path().join(format!("p{i}"))).collect();
    let mut c = Cluster::new(root.path(), "kill", dirs);
    c.start();
    let w = populate(&c, 6, 6, 60);
    let mut rng = SplitMix(0x05ee_dc10_57e7);
    let mut answered: HashMap<String, u16> = HashMap::new();
    for round in 0..3 {
        let batch: Vec<(usize, String)> = w
            .orders
            .iter()
            .enumerate()
            .skip(round * 20)
            .take(20)
            .map(|(o, (id, _))| (o % 3, id.clone()))
            .collect();
        let queue = Arc::new(Mutex::new(batch.clone()));
        let unknown = Arc::new(Mutex::new(Vec::new()));
        let results = Arc::new(Mutex::new(Vec::new()));
        std::thread::scope(|s| {
            for _ in 0..4 {
                let (queue, unknown, results, c) = (&queue, &unknown, &results, &c);
                s.spawn(move || {
                    loop {
                        let Some((p, order)) = queue.lock().expect("queue").pop() else {
                            break;
                        };
                        let deadline = Instant::now() + Duration::from_secs(1);
                        match checkout(c, p, &order, deadline) {
                            Some(status) => results.lock().expect("results").push((order, status)),
                            None => unknown.lock().expect("unknown").push((p, order)),
                        }
                    }
                });
            }
            // Kill one process while the checkouts run.
            std::thread::sleep(Duration::from_millis(50 + rng.next_u64() % 300));
            let victim = (rng.next_u64() % 3) as usize;
            eprintln!("round {round}: SIGKILL process {victim}");
            c.kill9(victim);
            // The others notice: a clear 503 within a bounded time, never a hang.
            let other = (victim + 1) % 3;
            let t0 = Instant::now();
            loop {
                if let Ok((503, body)) = http(c.http[other], "POST", "/payment/create_user", None) {
                    assert!(body.contains("cluster lost a process"), "{body}");
                    break;
                }
                assert!(
                    t0.elapsed() < Duration::from_secs(20),
                    "process {other} kept accepting after process {victim} died"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        // Restart the whole cluster: it recovers to the epoch committed everywhere.
        c.kill_all();
        c.start();
        for (order, status) in results.lock().expect("results").drain(..) {
            answered.insert(order, status);
        }
        // Requests cut off by the crash: retried with the same key at the same process, they
        // take effect once (replayed from that process's log, or run now).
        for (p, order) in unknown.lock().expect("unknown").drain(..) {
            let status = checkout(&c, p, &order, Instant::now() + Duration::from_secs(60))
                .unwrap_or_else(|| panic!("checkout {order} unanswered after the restart"));
            answered.insert(order, status);
        }
        // Answers given before the crash stand: a retry now returns the same answer.
        for (p, order) in &batch {
            let again = checkout(&c, *p, order, Instant::now() + Duration::from_secs(60));
            assert_eq!(again, answered.get(order).copied(), "retry of {order}");
        }
        let paid: HashSet<String> = answered
            .iter()
            .filter(|(_, s)| **s == 200)
            .map(|(o, _)| o.clone())
            .collect();
        check_consistent(&c, &w, &paid);
    }
    assert!(
        answered.values().any(|s| *s == 200),
        "some checkouts succeeded"
    );
    c.stop();
}

/// Every instance's state, read through the processes in turn.
fn snapshot(c: &Cluster, w: &World) -> Vec<Value> {
    let n = c.http.len();
    let mut out = Vec::new();
    for (i, item) in w.items.iter().enumerate() {
        out.push(c.ok(i % n, "GET", &format!("/stock/find/{item}")));
    }
    for (u, user) in w.users.iter().enumerate() {
        out.push(c.ok(u % n, "GET", &format!("/payment/find_user/{user}")));
    }
    for (o, (order, _)) in w.orders.iter().enumerate() {
        out.push(c.ok(o % n, "GET", &format!("/orders/find/{order}")));
    }
    out
}

fn rescale(from: &[PathBuf], into: &[PathBuf]) -> std::process::Output {
    Command::new(SHOP)
        .arg("rescale")
        .arg("--from")
        .args(from)
        .arg("--into")
        .args(into)
        .args(["--workers", "1"])
        .output()
        .expect("run rescale")
}

#[test]
fn rescale_one_to_three_to_two_processes_keeps_every_instance() {
    let _serial = serial();
    let root = tempfile::tempdir().expect("tempdir");
    let single = root.path().join("single");
    // One process (a "cluster" of one address would record a cluster layout; this is the
    // plain single-process service).
    let port = free_port();
    let mut child = Command::new(SHOP)
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
    while !matches!(http(addr, "GET", "/healthz", None), Ok((200, _))) {
        assert!(Instant::now() < deadline, "single process did not come up");
        std::thread::sleep(Duration::from_millis(50));
    }
    let one = Cluster {
        hosts: PathBuf::new(),
        dirs: vec![single.clone()],
        http: vec![addr],
        children: vec![None],
        logs: vec![root.path().join("none")],
    };
    let w = populate(&one, 5, 5, 12);
    for (order, _) in w.orders.iter().take(6) {
        let _ = one.call(0, "POST", &format!("/orders/checkout/{order}"));
    }
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
    let mut c3 = Cluster::new(root.path(), "three", three.clone());
    c3.start();
    assert_eq!(snapshot(&c3, &w), before, "every instance after 1 -> 3");
    // The cluster works on the moved state: one more checkout.
    let (last, _) = &w.orders[11];
    let (status, _) = c3.call(2, "POST", &format!("/orders/checkout/{last}"));
    assert!(status == 200 || status == 400);
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
    assert_eq!(snapshot(&c2, &w), before, "every instance after 3 -> 2");
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
    let out = Command::new(SHOP)
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
    let out = Command::new(SHOP)
        .args(["serve", "--cluster"])
        .arg(&c2.hosts)
        .args(["--process", "7", "--data-dir"])
        .arg(root.path().join("y"))
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("out of range"));
}

/// A port `p` with `p .. p + n` all free at the time of asking.
fn free_ports(n: u16) -> u16 {
    for _ in 0..100 {
        let p = free_port();
        if p.checked_add(n).is_none() {
            continue;
        }
        let all_free = (0..n).all(|i| TcpListener::bind(("127.0.0.1", p + i)).is_ok());
        if all_free {
            return p;
        }
    }
    panic!("no {n} consecutive free ports");
}

#[test]
fn cluster_up_supervises_and_restarts_after_a_killed_process() {
    let _serial = serial();
    use std::io::BufRead;
    let root = tempfile::tempdir().expect("tempdir");
    let http_port = free_ports(2);
    let timely_port = free_ports(2);
    let mut launcher = Command::new(SHOP)
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
    let addrs: Vec<SocketAddr> = (0..2)
        .map(|i| SocketAddr::from(([127, 0, 0, 1], http_port + i)))
        .collect();
    let up = |what: &str| {
        let deadline = Instant::now() + Duration::from_secs(120);
        for a in &addrs {
            while !matches!(http(*a, "GET", "/healthz", None), Ok((200, _))) {
                assert!(Instant::now() < deadline, "{what}: {a} did not come up");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    };
    up("first start");
    let (status, body) = http(addrs[1], "POST", "/payment/create_user", None).expect("answer");
    assert_eq!(status, 200, "{body}");
    let user: Value = serde_json::from_str(&body).expect("json");
    let user = user["user_id"].as_str().expect("user_id").to_owned();
    let (status, _) = http(
        addrs[0],
        "POST",
        &format!("/payment/add_funds/{user}/42"),
        None,
    )
    .expect("answer");
    assert_eq!(status, 200);

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
    let (status, body) =
        http(addrs[1], "GET", &format!("/payment/find_user/{user}"), None).expect("answer");
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["credit"], 42);

    // SIGTERM stops every process cleanly.
    let _ = Command::new("kill")
        .args(["-TERM", &launcher.id().to_string()])
        .status();
    let status = launcher.wait().expect("wait");
    assert!(status.success(), "{status}");
    reader.join().expect("reader");
    for a in &addrs {
        assert!(
            http(*a, "GET", "/healthz", None).is_err(),
            "{a} still serves"
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
    let mut c = Cluster {
        hosts,
        dirs: (0..3).map(|i| root.path().join(format!("p{i}"))).collect(),
        http: (0..3)
            .map(|i| SocketAddr::new(net.ip(i).parse().expect("ip"), 8000))
            .collect(),
        children: (0..3).map(|_| None).collect(),
        logs: (0..3)
            .map(|i| root.path().join(format!("p{i}.log")))
            .collect(),
    };
    let start = |c: &mut Cluster| {
        for i in 0..3 {
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&c.logs[i])
                .expect("log");
            let child = Command::new("ip")
                .args(["netns", "exec", &net.ns(i), SHOP, "serve", "--workers", "1"])
                .arg("--cluster")
                .arg(&c.hosts)
                .args(["--process", &i.to_string(), "--data-dir"])
                .arg(&c.dirs[i])
                .args(["--listen", &c.http[i].to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("start in a namespace");
            c.children[i] = Some(child);
        }
        let deadline = Instant::now() + Duration::from_secs(120);
        for i in 0..3 {
            while !matches!(http(c.http[i], "GET", "/healthz", None), Ok((200, _))) {
                assert!(Instant::now() < deadline, "process {i}: {}", c.log(i));
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    };
    start(&mut c);
    let w = populate(&c, 3, 3, 6);
    let mut paid = HashSet::new();
    for (o, (order, _)) in w.orders.iter().enumerate().take(3) {
        if checkout(&c, o % 3, order, Instant::now() + Duration::from_secs(30)) == Some(200) {
            paid.insert(order.clone());
        }
    }
    check_consistent(&c, &w, &paid);

    // Cut process 2's link: no error reaches anyone; the others must notice by themselves.
    net.link(2, false);
    let t0 = Instant::now();
    loop {
        if let Ok((503, body)) = http(c.http[0], "POST", "/payment/create_user", None) {
            assert!(body.contains("cluster lost a process"), "{body}");
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "process 0 did not notice the cut link: {}",
            c.log(0)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("the cut link was noticed after {:?}", t0.elapsed());
    // Fail safe: nothing commits while the link is down.
    let (order, _) = &w.orders[3];
    let (status, _) = c.call(1, "POST", &format!("/orders/checkout/{order}"));
    assert_eq!(status, 503);

    // Restore the link and restart the cluster: it recovers with everything acknowledged.
    net.link(2, true);
    c.kill_all();
    start(&mut c);
    check_consistent(&c, &w, &paid);
    for (o, (order, _)) in w.orders.iter().enumerate().skip(3) {
        if checkout(&c, o % 3, order, Instant::now() + Duration::from_secs(30)) == Some(200) {
            paid.insert(order.clone());
        }
    }
    check_consistent(&c, &w, &paid);
    c.stop();
}
