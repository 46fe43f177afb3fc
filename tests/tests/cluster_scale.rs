//! `cluster scale` against a running `cluster up` of the fixture service: 2 → 3 → 2 → 3 → 2
//! processes at random moments while transfers run through processes 0 and 1, then a SIGKILL
//! of a process in the middle of a rescale. Every request gets a final answer (503 with
//! `Retry-After` while the cluster is away, then 200 or 400 on a retry with its idempotency
//! key), and the transfers answered 200 and only those moved money.
#![allow(missing_docs)]

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use stateful_tests::{Client, SplitMix, free_ports};

const FIXTURE: &str = env!("CARGO_BIN_EXE_fixture");
const BALANCE: i64 = 1_000;
const ACCOUNTS: usize = 6;

/// What the clients saw.
#[derive(Default)]
struct Seen {
    /// 503s, each with `Retry-After`.
    unavailable: AtomicU64,
    /// Requests that got no answer (a connection refused or cut).
    unanswered: AtomicU64,
    /// Transfers answered 200.
    done: Mutex<HashSet<usize>>,
}

/// Sends transfer `o` to `client` until it gets a final answer: 200 or 400.
fn transfer(client: &Client, accounts: &[String], o: usize, seen: &Seen) {
    let (from, to) = (o % ACCOUNTS, (o * 7 + 1) % ACCOUNTS);
    let to = if to == from { (to + 1) % ACCOUNTS } else { to };
    let path = format!(
        "/transfers/t{o}/{}/{}/{}",
        accounts[from],
        accounts[to],
        10 + o % 90
    );
    let key = format!("scale-t{o}");
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        match client.try_request("POST", &path, None, Some(key.as_bytes())) {
            Ok(r) if r.status == 200 => {
                seen.done.lock().expect("done").insert(o);
                return;
            }
            Ok(r) if r.status == 400 => return,
            Ok(r) if r.status == 503 => {
                assert!(
                    r.retry_after.is_some(),
                    "a 503 without Retry-After: {}",
                    r.body
                );
                seen.unavailable.fetch_add(1, Ordering::Relaxed);
            }
            Ok(r) => panic!("transfer {o}: {} {}", r.status, r.body),
            Err(_) => {
                seen.unanswered.fetch_add(1, Ordering::Relaxed);
            }
        }
        assert!(Instant::now() < deadline, "transfer {o} never answered");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The transfers answered 200 and only those are done; money is conserved, none negative.
fn check_consistent(client: &Client, accounts: &[String], sent: usize, done: &HashSet<usize>) {
    let mut expected = vec![BALANCE; ACCOUNTS];
    for o in 0..sent {
        let v = client.get(&format!("/transfers/t{o}")).json();
        let is_done = v["done"].as_bool().expect("done");
        assert_eq!(is_done, done.contains(&o), "transfer {o}: {v}");
        if is_done {
            let (from, to) = (o % ACCOUNTS, (o * 7 + 1) % ACCOUNTS);
            let to = if to == from { (to + 1) % ACCOUNTS } else { to };
            expected[from] -= (10 + o % 90) as i64;
            expected[to] += (10 + o % 90) as i64;
        }
    }
    for (a, want) in accounts.iter().zip(&expected) {
        let v = client.get(&format!("/accounts/{a}")).json();
        assert_eq!(v["balance"].as_i64(), Some(*want), "{a}: {v}");
        assert!(*want >= 0, "{a} below zero");
    }
}

fn wait_serving(clients: &[Client], what: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    for c in clients {
        while c
            .try_request("GET", "/healthz", None, None)
            .map_or(0, |r| r.status)
            != 200
        {
            assert!(
                Instant::now() < deadline,
                "{what}: {} did not serve",
                c.base()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// `POST path` until it is not a 503 (right after a start the supervisor may still hold the
/// port a moment and answer for it).
fn post_answered(client: &Client, path: &str) -> stateful_tests::Resp {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = client.post(path);
        if r.status != 503 || Instant::now() > deadline {
            return r;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn scale(dir: &Path, n: usize) -> std::process::Output {
    Command::new(FIXTURE)
        .args(["cluster", "scale", &n.to_string(), "--data-dir"])
        .arg(dir)
        .output()
        .expect("cluster scale")
}

/// The pid of the newest start of process `i`, from the launcher's log.
fn pid_of(log: &Path, i: usize) -> Option<u32> {
    let text = std::fs::read_to_string(log).ok()?;
    let mark = format!("process {i} (pid ");
    text.lines()
        .rev()
        .find_map(|l| l.split(&mark).nth(1))
        .and_then(|r| r.split(')').next())
        .and_then(|p| p.parse().ok())
}

struct Launcher(Child);

impl Drop for Launcher {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

#[test]
fn scaling_a_running_cluster_under_transfers_answers_every_request_and_loses_nothing() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("c");
    let log = root.path().join("up.log");
    let (http, timely) = (free_ports(3), free_ports(3));
    let launcher = Launcher(
        Command::new(FIXTURE)
            .args(["cluster", "up", "--processes", "2", "--data-dir"])
            .arg(&dir)
            .args(["--listen", &format!("127.0.0.1:{http}")])
            .args(["--timely-port", &timely.to_string()])
            .stdout(std::fs::File::create(&log).expect("log"))
            .stderr(Stdio::null())
            .spawn()
            .expect("cluster up"),
    );
    // Processes 0 and 1 exist in every shape; the clients use them.
    let clients: Vec<Client> = (0..2)
        .map(|i| Client::new(SocketAddr::from(([127, 0, 0, 1], http + i))))
        .collect();
    wait_serving(&clients, "first start");
    let accounts: Vec<String> = (0..ACCOUNTS)
        .map(|i| {
            let r = post_answered(&clients[i % 2], "/accounts/create/0");
            let a = r.json()["account"].as_str().expect("account").to_owned();
            let r = post_answered(
                &clients[(i + 1) % 2],
                &format!("/accounts/{a}/deposit/{BALANCE}"),
            );
            assert_eq!(r.status, 200, "{}", r.body);
            a
        })
        .collect();

    let seen = Arc::new(Seen::default());
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..2)
        .map(|t| {
            let (client, accounts) = (clients[t].clone(), accounts.clone());
            let (seen, stop, sent) = (seen.clone(), stop.clone(), sent.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Acquire) {
                    let o = sent.fetch_add(1, Ordering::AcqRel) as usize;
                    transfer(&client, &accounts, o, &seen);
                }
            })
        })
        .collect();
    let mut rng = SplitMix(0x5ca1e);
    for to in [3, 2, 3, 2] {
        std::thread::sleep(Duration::from_millis(300 + rng.next_u64() % 1200));
        let out = scale(&dir, to);
        assert!(
            out.status.success(),
            "scale to {to}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(said.contains(&format!("-> {to} processes")), "{said}");
        eprintln!("{}", said.trim());
    }
    let gone = Client::new(SocketAddr::from(([127, 0, 0, 1], http + 2)));
    assert!(
        gone.try_request("GET", "/healthz", None, None).is_err(),
        "process 2's port is closed after the scale down"
    );

    let unanswered_in_scales = seen.unanswered.load(Ordering::Relaxed);
    // A SIGKILL in the middle of a rescale: the cluster comes back (in one shape or the
    // other) and loses nothing.
    let asked = Command::new(FIXTURE)
        .args(["cluster", "scale", "3", "--data-dir"])
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("cluster scale");
    std::thread::sleep(Duration::from_millis(rng.next_u64() % 2500));
    let victim = pid_of(&log, 1).expect("process 1's pid");
    let _ = Command::new("kill")
        .args(["-KILL", &victim.to_string()])
        .status();
    let _ = asked.wait_with_output();
    wait_serving(&clients, "after the SIGKILL");
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Release);
    for w in workers {
        w.join().expect("client");
    }
    let sent = sent.load(Ordering::Acquire) as usize;
    let done = seen.done.lock().expect("done").clone();
    eprintln!(
        "{sent} transfers, {} done; {} answers 503 (retried); unanswered (a connection refused \
         or cut; retried): {unanswered_in_scales} during the four scales, {} in all",
        done.len(),
        seen.unavailable.load(Ordering::Relaxed),
        seen.unanswered.load(Ordering::Relaxed)
    );
    assert!(done.len() > 20, "transfers ran during the rescales");
    check_consistent(&clients[0], &accounts, sent, &done);
    drop(launcher);
}
