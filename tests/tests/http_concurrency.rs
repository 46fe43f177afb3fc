//! Concurrent transfers through the real binary: transfers compete for the money of a few
//! accounts; afterwards the successful ones account exactly for every balance, and overload
//! is a 503 that changes nothing.
#![allow(missing_docs)]

use stateful_tests::{Client, Ledger, SplitMix, TestDir};

const FIXTURE: &str = env!("CARGO_BIN_EXE_fixture");

const THREADS: usize = 8;
const PER_THREAD: usize = 50;
const ACCOUNTS: usize = 5;
const BALANCE: i64 = 60;

/// One transfer of the workload.
#[derive(Debug, Clone)]
struct Tr {
    id: String,
    from: usize,
    to: usize,
    amount: i64,
}

#[test]
fn concurrent_transfers_balance_exactly() {
    let mut dir = TestDir::new(FIXTURE);
    let s = dir.start();
    s.post(&format!("/batch/open/{ACCOUNTS}/{BALANCE}")).ok();
    // Account 0 is nearly broke, so it rejects most transfers from it early on.
    s.post(&format!("/accounts/0/withdraw/{}", BALANCE - 5))
        .ok();
    let mut initial = vec![BALANCE; ACCOUNTS];
    initial[0] = 5;
    let mut rng = SplitMix(0xc0ffee);
    let n = THREADS * PER_THREAD;
    let transfers: Vec<Tr> = (0..n)
        .map(|i| {
            let from = rng.below(ACCOUNTS as u64) as usize;
            let to = (from + 1 + rng.below(ACCOUNTS as u64 - 1) as usize) % ACCOUNTS;
            Tr {
                id: format!("t{i}"),
                from,
                to,
                amount: 1 + rng.below(40) as i64,
            }
        })
        .collect();

    let base = s.base().to_owned();
    let statuses: Vec<(Tr, u16)> = std::thread::scope(|scope| {
        let handles: Vec<_> = transfers
            .chunks(PER_THREAD)
            .map(|chunk| {
                let client = Client::with_base(base.clone());
                scope.spawn(move || {
                    chunk
                        .iter()
                        .map(|t| {
                            let r = client.post(&format!(
                                "/transfers/{}/{}/{}/{}",
                                t.id, t.from, t.to, t.amount
                            ));
                            (t.clone(), r.status)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("client thread"))
            .collect()
    });
    assert_eq!(statuses.len(), n);
    for (t, st) in &statuses {
        assert!(*st == 200 || *st == 400, "transfer {}: status {st}", t.id);
    }

    // What the acknowledged transfers should have moved; each is done iff it answered 200.
    let mut want = initial.clone();
    let mut successes = 0;
    for (t, st) in &statuses {
        let view = s.transfer_view(&t.id);
        let done = *st == 200;
        assert_eq!(view["done"].as_bool(), Some(done), "{}: {view}", t.id);
        if !done {
            continue;
        }
        successes += 1;
        assert_eq!(
            (
                view["from"].as_str(),
                view["to"].as_str(),
                view["amount"].as_i64()
            ),
            (
                Some(t.from.to_string().as_str()),
                Some(t.to.to_string().as_str()),
                Some(t.amount)
            ),
            "{}: {view}",
            t.id
        );
        want[t.from] -= t.amount;
        want[t.to] += t.amount;
    }
    eprintln!("{successes} of {n} transfers succeeded");
    // Money ran out here and there, so some transfers must have failed, and some succeeded.
    assert!(
        successes > 0 && successes < n,
        "{successes} of {n} succeeded"
    );
    let mut total = 0;
    for (a, want) in want.iter().enumerate() {
        let left = s.balance(&a.to_string());
        assert!(left >= 0, "account {a} below zero: {left}");
        assert_eq!(left, *want, "account {a}");
        total += left;
    }
    assert_eq!(total, initial.iter().sum::<i64>(), "money is conserved");
}

/// Past `--max-in-flight` a request gets 503 with `Retry-After` and changes nothing: the
/// balance afterwards counts exactly the admitted requests.
#[test]
fn overload_is_a_503_that_changes_nothing() {
    let mut dir = TestDir::new(FIXTURE);
    let s = dir.start_with(&["--max-in-flight", "1"]);
    let acct = s.create_account(0);
    let path = format!("/accounts/{acct}/deposit/1");
    let (mut admitted, mut shed) = (0i64, 0);
    // Rounds of concurrent requests until some were shed (each stays in flight for at least
    // one commit interval, so 16 at once cannot all fit in 1 slot for long).
    for _ in 0..50 {
        let answers: Vec<(u16, Option<String>, String)> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..16)
                .map(|_| {
                    scope.spawn(|| {
                        let r = s.post(&path);
                        (r.status, r.retry_after.clone(), r.body.clone())
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("request thread"))
                .collect()
        });
        for (status, retry_after, body) in answers {
            match status {
                200 => admitted += 1,
                503 => {
                    shed += 1;
                    assert_eq!(retry_after.as_deref(), Some("1"));
                    assert!(body.contains("overloaded"), "{body}");
                }
                other => panic!("unexpected {other}: {body}"),
            }
        }
        if shed > 0 {
            break;
        }
    }
    assert!(shed > 0, "no request was shed with --max-in-flight 1");
    assert!(admitted > 0);
    assert_eq!(s.balance(&acct), admitted);
}
