//! Crash tests that really kill: the bank service runs as a child process under concurrent
//! transfers and is SIGKILLed at random moments, repeatedly. After every restart:
//! - money is conserved (the invariant),
//! - every request, acknowledged or cut off by the kill, has taken effect exactly once: each is
//!   re-sent with its Idempotency-Key until it answers, and the balances must equal the
//!   initial ones plus exactly the transfers whose (stored) answer was a success.
#![allow(missing_docs)]

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use stateful_tests::{SplitMix as Rng, http};

const ACCOUNTS: usize = 8;
const INITIAL: i64 = 1_000;

struct Service {
    child: Child,
    addr: SocketAddr,
}

impl Service {
    fn start(dir: &Path) -> Service {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let child = Command::new(env!("CARGO_BIN_EXE_bank"))
            .args([
                "--listen",
                &addr.to_string(),
                "--workers",
                "2",
                "--data-dir",
            ])
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("bank starts");
        let mut s = Service { child, addr };
        let deadline = Instant::now() + Duration::from_secs(60);
        // A 200 from /healthz while our child is alive: a bare connect could reach another
        // listener, or the port could be taken and the child gone.
        while !matches!(http(s.addr, "GET", "/healthz", None), Ok((200, _))) {
            if let Some(status) = s.child.try_wait().expect("try_wait") {
                panic!("bank exited before listening: {status}");
            }
            assert!(Instant::now() < deadline, "service did not come up");
            std::thread::sleep(Duration::from_millis(20));
        }
        s
    }

    fn kill9(mut self) {
        self.child.kill().expect("SIGKILL");
        let _ = self.child.wait();
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends until an answer arrives (the service may be down for a moment).
fn until_answered(addr: SocketAddr, method: &str, path: &str, idem: Option<&str>) -> (u16, String) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match http(addr, method, path, idem) {
            Ok((503, _)) | Err(_) => {
                assert!(Instant::now() < deadline, "no answer to {path}");
                std::thread::sleep(Duration::from_millis(20));
            }
            Ok(r) => return r,
        }
    }
}

fn balance(addr: SocketAddr, acct: usize) -> i64 {
    let (status, body) = until_answered(addr, "POST", &format!("/deposit/a{acct}/0"), None);
    assert_eq!(status, 200, "{body}");
    body.trim().parse().expect("a balance")
}

#[derive(Clone)]
struct Transfer {
    from: usize,
    to: usize,
    amount: i64,
    idem: String,
}

#[test]
fn kill9_under_concurrent_transfers_loses_nothing_and_applies_everything_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut svc = Service::start(dir.path());
    for a in 0..ACCOUNTS {
        let (st, body) = until_answered(
            svc.addr,
            "POST",
            &format!("/deposit/a{a}/{INITIAL}"),
            Some(&format!("init-{a}")),
        );
        assert_eq!(st, 200, "{body}");
    }
    let mut rng = Rng(0x5eed);
    let mut all: Vec<Transfer> = Vec::new();
    // Final answer of each transfer, by idempotency key: true = success.
    let outcomes: Arc<Mutex<HashMap<String, bool>>> = Arc::new(Mutex::new(HashMap::new()));
    let cut_off = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    for round in 0..4 {
        // A batch of transfers, sent by 6 threads while the service is killed at a random moment.
        let batch: Vec<Transfer> = (0..240)
            .map(|i| {
                let from = (rng.next_u64() % ACCOUNTS as u64) as usize;
                let to = (from + 1 + (rng.next_u64() % (ACCOUNTS as u64 - 1)) as usize) % ACCOUNTS;
                Transfer {
                    from,
                    to,
                    amount: 1 + (rng.next_u64() % 300) as i64,
                    idem: format!("r{round}-t{i}"),
                }
            })
            .collect();
        all.extend(batch.iter().cloned());
        let addr = svc.addr;
        let threads: Vec<_> = (0..6)
            .map(|t| {
                let mine: Vec<Transfer> = batch.iter().skip(t).step_by(6).cloned().collect();
                let outcomes = outcomes.clone();
                let cut_off = cut_off.clone();
                std::thread::spawn(move || {
                    for tr in mine {
                        let path = format!("/transfer/a{}/a{}/{}", tr.from, tr.to, tr.amount);
                        match http(addr, "POST", &path, Some(&tr.idem)) {
                            Ok((200, _)) => {
                                outcomes.lock().expect("lock").insert(tr.idem.clone(), true);
                            }
                            Ok((400, _)) => {
                                outcomes
                                    .lock()
                                    .expect("lock")
                                    .insert(tr.idem.clone(), false);
                            }
                            // Cut off by the kill (or overloaded): re-sent after the restart.
                            Ok(_) | Err(_) => {
                                cut_off.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            }
                        }
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(50 + rng.next_u64() % 400));
        svc.kill9();
        for t in threads {
            t.join().expect("client thread");
        }
        svc = Service::start(dir.path());
        // Every transfer of the batch now gets its final answer; acknowledged ones must answer
        // the same again, from the stored response.
        for tr in &batch {
            let path = format!("/transfer/a{}/a{}/{}", tr.from, tr.to, tr.amount);
            let (st, body) = until_answered(svc.addr, "POST", &path, Some(&tr.idem));
            assert!(st == 200 || st == 400, "transfer answered {st}: {body}");
            let ok = st == 200;
            let mut o = outcomes.lock().expect("lock");
            if let Some(before) = o.get(&tr.idem) {
                assert_eq!(
                    *before, ok,
                    "{}: the stored answer changed after the crash",
                    tr.idem
                );
            }
            o.insert(tr.idem.clone(), ok);
        }
        // Balances equal the initial ones plus exactly the successful transfers.
        let o = outcomes.lock().expect("lock");
        let mut expected = vec![INITIAL; ACCOUNTS];
        for tr in &all {
            if o.get(&tr.idem).copied().unwrap_or(false) {
                expected[tr.from] -= tr.amount;
                expected[tr.to] += tr.amount;
            }
        }
        let actual: Vec<i64> = (0..ACCOUNTS).map(|a| balance(svc.addr, a)).collect();
        assert_eq!(
            actual.iter().sum::<i64>(),
            INITIAL * ACCOUNTS as i64,
            "money is conserved"
        );
        assert_eq!(
            actual, expected,
            "round {round}: each transfer applied exactly once"
        );
        assert!(
            actual.iter().all(|b| *b >= 0),
            "no account below zero: {actual:?}"
        );
    }
    let successes = outcomes
        .lock()
        .expect("lock")
        .values()
        .filter(|v| **v)
        .count();
    let cut = cut_off.load(std::sync::atomic::Ordering::Relaxed);
    eprintln!("{successes} successful transfers; {cut} requests cut off by kills");
    assert!(
        successes > 100,
        "the workload made progress ({successes} successful transfers)"
    );
    assert!(cut > 0, "the kills landed while requests were in flight");
}
