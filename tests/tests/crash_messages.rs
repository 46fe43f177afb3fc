//! Messages after commit and timers across SIGKILLs: the fixture service runs as a child
//! process under concurrent notifying deposits (each deposits 1 into an account and sends 1
//! to its mailbox, at once or by a timer) and is killed at random moments, repeatedly. Every
//! deposit is re-sent with its Idempotency-Key until it answers. Once the mail is delivered,
//! every mailbox must equal its account's balance: a message lost or delivered twice would
//! show as a difference; both must equal the number of deposits.
#![allow(missing_docs)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use stateful_tests::{Client, Resp, SplitMix, TestDir};

const FIXTURE: &str = env!("CARGO_BIN_EXE_fixture");
const ACCOUNTS: usize = 4;

/// Sends until a final answer (not 503, not a dropped connection) arrives.
fn until_answered(c: &Client, method: &str, path: &str, idem: Option<&str>) -> Resp {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match c.try_request(method, path, None, idem.map(str::as_bytes)) {
            Ok(r) if r.status != 503 => return r,
            _ => {
                assert!(Instant::now() < deadline, "no answer to {path}");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

fn read(c: &Client, path: &str) -> i64 {
    let r = until_answered(c, "GET", path, None);
    let v = r.ok();
    v.get("balance").unwrap_or(&v).as_i64().expect("a number")
}

/// One notifying deposit of 1: at once, or (every third) by a timer of up to 300 ms.
fn path(i: usize, rng: &mut SplitMix) -> String {
    let a = i % ACCOUNTS;
    if i.is_multiple_of(3) {
        format!(
            "/accounts/a{a}/deposit_notify_later/1/{}",
            50 + rng.below(250)
        )
    } else {
        format!("/accounts/a{a}/deposit_notify/1")
    }
}

#[test]
fn kill9_while_messages_and_timers_are_in_flight_delivers_each_exactly_once() {
    let mut dir = TestDir::new(FIXTURE).with_workers(2);
    let mut svc = dir.start();
    for a in 0..ACCOUNTS {
        let open = format!("/invoke/Account/a{a}/open");
        let idem = format!("open-{a}");
        let r = svc.client().request(
            "POST",
            &open,
            Some("{\"balance\": 0}"),
            Some(idem.as_bytes()),
        );
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let mut rng = SplitMix(0x3a11);
    let mut all: Vec<(String, String)> = Vec::new();
    let cut_off = Arc::new(AtomicUsize::new(0));
    for round in 0..4 {
        let batch: Vec<(String, String)> = (0..200)
            .map(|i| (path(i, &mut rng), format!("r{round}-d{i}")))
            .collect();
        all.extend(batch.iter().cloned());
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let mine: Vec<(String, String)> =
                    batch.iter().skip(t).step_by(4).cloned().collect();
                let client = svc.client().clone();
                let cut_off = cut_off.clone();
                std::thread::spawn(move || {
                    for (p, idem) in mine {
                        if client.try_post_idem(&p, &idem).map(|r| r.status) != Some(200) {
                            cut_off.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(50 + rng.below(300)));
        svc.kill9();
        for t in threads {
            t.join().expect("client thread");
        }
        svc = dir.start();
        for (p, idem) in &batch {
            let r = until_answered(svc.client(), "POST", p, Some(idem));
            assert_eq!(r.status, 200, "{p}: {}", r.body);
        }
    }
    let per_account = (all.len() / ACCOUNTS) as i64;
    let deadline = Instant::now() + Duration::from_secs(30);
    for a in 0..ACCOUNTS {
        let balance = read(svc.client(), &format!("/accounts/a{a}"));
        assert_eq!(balance, per_account, "a{a}: each deposit applied once");
        let mut mailbox = read(svc.client(), &format!("/mailbox/a{a}"));
        while mailbox < balance && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
            mailbox = read(svc.client(), &format!("/mailbox/a{a}"));
        }
        assert_eq!(
            mailbox, balance,
            "a{a}: every committed deposit's message delivered exactly once"
        );
    }
    // Nothing more arrives later: no message is pending or delivered twice.
    std::thread::sleep(Duration::from_millis(500));
    for a in 0..ACCOUNTS {
        assert_eq!(read(svc.client(), &format!("/mailbox/a{a}")), per_account);
    }
    let cut = cut_off.load(Ordering::Relaxed);
    eprintln!("{} deposits; {cut} requests cut off by kills", all.len());
    assert!(cut > 0, "the kills landed while requests were in flight");
}
