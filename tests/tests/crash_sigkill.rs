//! Crash tests that really kill: the fixture service runs as a child process under concurrent
//! transfers and is SIGKILLed at random moments, repeatedly. After every restart:
//! - money is conserved (the invariant) and no account is below zero,
//! - every request, acknowledged or cut off by the kill, has taken effect exactly once: each is
//!   re-sent with its Idempotency-Key until it answers, an answer given before the crash is
//!   the answer after it, and the balances equal the initial ones plus exactly the transfers
//!   whose (stored) answer was a success.
#![allow(missing_docs)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use stateful_tests::{Client, Resp, SplitMix, TestDir};

const FIXTURE: &str = env!("CARGO_BIN_EXE_fixture");

/// Sends until a final answer (not 503) arrives: the service may be down for a moment.
fn until_answered(
    c: &Client,
    method: &str,
    path: &str,
    body: Option<&str>,
    idem: Option<&str>,
) -> Resp {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match c.try_request(method, path, body, idem.map(str::as_bytes)) {
            Ok(r) if r.status != 503 => return r,
            _ => {
                assert!(Instant::now() < deadline, "no answer to {path}");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

const ACCOUNTS: usize = 8;
const INITIAL: i64 = 1_000;

fn balance(c: &Client, acct: usize) -> i64 {
    let r = until_answered(c, "GET", &format!("/accounts/a{acct}"), None, None);
    r.ok()["balance"].as_i64().expect("a balance")
}

#[derive(Clone)]
struct Transfer {
    from: usize,
    to: usize,
    amount: i64,
    idem: String,
}

impl Transfer {
    /// Within one lambda: `Account::transfer`.
    fn path(&self) -> String {
        format!(
            "/accounts/a{}/transfer/a{}/{}",
            self.from, self.to, self.amount
        )
    }
}

#[test]
fn kill9_under_concurrent_transfers_loses_nothing_and_applies_everything_once_at_1_2_and_4_workers()
{
    for workers in [1, 2, 4] {
        eprintln!("{workers} workers");
        kill9_under_concurrent_transfers(workers);
    }
}

fn kill9_under_concurrent_transfers(workers: usize) {
    let mut dir = TestDir::new(FIXTURE).with_workers(workers);
    let mut svc = dir.start();
    for a in 0..ACCOUNTS {
        let r = until_answered(
            &svc,
            "POST",
            &format!("/invoke/Account/a{a}/open"),
            Some(&format!("{{\"balance\": {INITIAL}}}")),
            Some(&format!("init-{a}")),
        );
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let mut rng = SplitMix(0x5eed);
    let mut all: Vec<Transfer> = Vec::new();
    // Final answer of each transfer, by idempotency key: true = success.
    let outcomes: Arc<Mutex<HashMap<String, bool>>> = Arc::new(Mutex::new(HashMap::new()));
    let cut_off = Arc::new(AtomicUsize::new(0));
    for round in 0..4 {
        // A batch of transfers, sent by 6 threads while the service is killed at a random moment.
        let batch: Vec<Transfer> = (0..240)
            .map(|i| {
                let from = rng.below(ACCOUNTS as u64) as usize;
                let to = (from + 1 + rng.below(ACCOUNTS as u64 - 1) as usize) % ACCOUNTS;
                Transfer {
                    from,
                    to,
                    amount: 1 + rng.below(300) as i64,
                    idem: format!("r{round}-t{i}"),
                }
            })
            .collect();
        all.extend(batch.iter().cloned());
        let threads: Vec<_> = (0..6)
            .map(|t| {
                let mine: Vec<Transfer> = batch.iter().skip(t).step_by(6).cloned().collect();
                let outcomes = outcomes.clone();
                let cut_off = cut_off.clone();
                let client = svc.client().clone();
                std::thread::spawn(move || {
                    for tr in mine {
                        match client.try_post_idem(&tr.path(), &tr.idem).map(|r| r.status) {
                            Some(200) => {
                                outcomes.lock().expect("lock").insert(tr.idem.clone(), true);
                            }
                            Some(400) => {
                                outcomes
                                    .lock()
                                    .expect("lock")
                                    .insert(tr.idem.clone(), false);
                            }
                            // Cut off by the kill (or overloaded): re-sent after the restart.
                            _ => {
                                cut_off.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(50 + rng.below(400)));
        svc.kill9();
        for t in threads {
            t.join().expect("client thread");
        }
        svc = dir.start();
        // Every transfer of the batch now gets its final answer; acknowledged ones must answer
        // the same again, from the stored response.
        for tr in &batch {
            let r = until_answered(&svc, "POST", &tr.path(), None, Some(&tr.idem));
            assert!(
                r.status == 200 || r.status == 400,
                "transfer answered {}: {}",
                r.status,
                r.body
            );
            let ok = r.status == 200;
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
        let actual: Vec<i64> = (0..ACCOUNTS).map(|a| balance(&svc, a)).collect();
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
    let cut = cut_off.load(Ordering::Relaxed);
    eprintln!("{successes} successful transfers; {cut} requests cut off by kills");
    assert!(
        successes > 100,
        "the workload made progress ({successes} successful transfers)"
    );
    assert!(cut > 0, "the kills landed while requests were in flight");
}

const HOLDERS: u64 = 40;
const HOLDER_BALANCE: i64 = 30;
const TRANSFERS: u64 = 360;

/// Re-sends until the service answers 200 or 400 (it may be restarting or overloaded).
fn final_answer(c: &Client, path: &str, key: &str) -> u16 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match c.try_post_idem(path, key).map(|r| r.status) {
            Some(s @ (200 | 400)) => return s,
            _ => {
                assert!(Instant::now() < deadline, "no final answer to {path}");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// Transfers across lambdas (`Transfer::run`, recorded in the transfer's own state) while the
/// service is killed, three rounds: each done transfer matches exactly one debit and one
/// credit, every rejected one changed nothing.
#[test]
fn kill9_during_transfers_across_lambdas_keeps_every_total_exact_at_1_2_and_4_workers() {
    for workers in [1, 2, 4] {
        eprintln!("{workers} workers");
        kill9_during_transfers_across_lambdas(workers);
    }
}

fn kill9_during_transfers_across_lambdas(workers: usize) {
    let mut dir = TestDir::new(FIXTURE).with_workers(workers);
    let mut svc = dir.start();
    svc.post(&format!("/batch/open/{HOLDERS}/{HOLDER_BALANCE}"))
        .ok();
    let mut rng = SplitMix(0xdead_beef);
    // (from, to, amount) of transfer `t{o}`.
    let plan: Vec<(u64, u64, i64)> = (0..TRANSFERS)
        .map(|_| {
            let from = rng.below(HOLDERS);
            let to = (from + 1 + rng.below(HOLDERS - 1)) % HOLDERS;
            (from, to, 1 + rng.below(25) as i64)
        })
        .collect();
    let path = |o: u64| {
        let (from, to, amount) = plan[o as usize];
        format!("/transfers/t{o}/{from}/{to}/{amount}")
    };
    let outcomes: Arc<Mutex<HashMap<u64, u16>>> = Arc::new(Mutex::new(HashMap::new()));
    let mut cut_off = 0;
    let rounds = 3;
    let per_round = TRANSFERS / rounds;
    for round in 0..rounds {
        let batch: Vec<u64> = (round * per_round..(round + 1) * per_round).collect();
        let threads: Vec<_> = (0..6)
            .map(|t| {
                let mine: Vec<(u64, String)> = batch
                    .iter()
                    .copied()
                    .skip(t)
                    .step_by(6)
                    .map(|o| (o, path(o)))
                    .collect();
                let outcomes = outcomes.clone();
                let client = svc.client().clone().timeout(Duration::from_secs(10));
                std::thread::spawn(move || {
                    let mut lost = 0;
                    for (o, p) in mine {
                        match client
                            .try_post_idem(&p, &format!("tr-{o}"))
                            .map(|r| r.status)
                        {
                            Some(s @ (200 | 400)) => {
                                outcomes.lock().expect("lock").insert(o, s);
                            }
                            _ => lost += 1,
                        }
                    }
                    lost
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(60 + 90 * round));
        svc.kill9();
        for t in threads {
            cut_off += t.join().expect("client thread");
        }
        svc = dir.start();
        // Every transfer of the round gets its final answer; earlier answers stand.
        for o in &batch {
            let s = final_answer(&svc, &path(*o), &format!("tr-{o}"));
            let mut out = outcomes.lock().expect("lock");
            if let Some(before) = out.get(o) {
                assert_eq!(
                    *before, s,
                    "transfer {o}: the answer changed after the crash"
                );
            }
            out.insert(*o, s);
        }
    }
    // Totals from the transfers that were done.
    let outcomes = outcomes.lock().expect("lock").clone();
    let mut expected = vec![HOLDER_BALANCE; HOLDERS as usize];
    let mut done = 0;
    for o in 0..TRANSFERS {
        let view = svc.get(&format!("/transfers/t{o}")).ok();
        let was_done = view["done"].as_bool() == Some(true);
        assert_eq!(
            was_done,
            outcomes.get(&o) == Some(&200),
            "transfer {o}: {view}"
        );
        if was_done {
            done += 1;
            let (from, to, amount) = plan[o as usize];
            assert_eq!(
                (
                    view["from"].as_str(),
                    view["to"].as_str(),
                    view["amount"].as_i64()
                ),
                (
                    Some(from.to_string().as_str()),
                    Some(to.to_string().as_str()),
                    Some(amount)
                ),
                "transfer {o}: {view}"
            );
            expected[from as usize] -= amount;
            expected[to as usize] += amount;
        }
    }
    let actual: Vec<i64> = (0..HOLDERS)
        .map(|a| {
            svc.get(&format!("/accounts/{a}")).ok()["balance"]
                .as_i64()
                .expect("a balance")
        })
        .collect();
    assert_eq!(actual, expected, "each done transfer moved its amount once");
    assert!(
        actual.iter().all(|b| *b >= 0),
        "no account below zero: {actual:?}"
    );
    assert_eq!(
        actual.iter().sum::<i64>(),
        HOLDER_BALANCE * HOLDERS as i64,
        "money is conserved"
    );
    eprintln!("{done} of {TRANSFERS} transfers done; {cut_off} cut off by the kills");
    assert!(done > 0 && done < TRANSFERS, "both outcomes occur");
    assert!(
        cut_off > 0,
        "the kills landed while transfers were in flight"
    );
}
