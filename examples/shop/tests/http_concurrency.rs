//! Concurrent checkouts through the real binary: orders compete for a few items of limited
//! stock; afterwards the successful checkouts account exactly for the stock and credit used.

mod common;

use std::collections::HashMap;

use common::TestDir;

const THREADS: usize = 8;
const PER_THREAD: usize = 50;
const ITEMS: usize = 3;
const STOCK: i64 = 40;
const PRICE: i64 = 3;
const USERS: usize = 4;
const CREDIT: i64 = 400;

#[test]
fn concurrent_checkouts_balance_exactly() {
    let mut dir = TestDir::new();
    let s = dir.start();
    s.post(&format!("/stock/batch_init/{ITEMS}/{STOCK}/{PRICE}"))
        .ok();
    s.post(&format!("/payment/batch_init/{USERS}/{CREDIT}"))
        .ok();
    // User 0 is nearly broke, so both stock and credit reject some checkouts.
    s.post(&format!("/payment/pay/0/{}", CREDIT - 20)).ok();
    // One order per checkout: batch orders of two items each, every fourth with a third.
    let n = THREADS * PER_THREAD;
    s.post(&format!("/orders/batch_init/{n}/{ITEMS}/{USERS}/{PRICE}"))
        .ok();
    for i in (0..n).step_by(4) {
        s.post(&format!("/orders/addItem/{i}/{}/1", i % ITEMS)).ok();
    }
    let ids: Vec<String> = (0..n).map(|i| i.to_string()).collect();

    let base = s.base().to_owned();
    let statuses: Vec<(String, u16)> = std::thread::scope(|scope| {
        let handles: Vec<_> = ids
            .chunks(PER_THREAD)
            .map(|chunk| {
                let base = base.clone();
                scope.spawn(move || {
                    let agent: ureq::Agent = ureq::Agent::config_builder()
                        .http_status_as_error(false)
                        .build()
                        .into();
                    chunk
                        .iter()
                        .map(|id| {
                            let r = agent
                                .post(&format!("{base}/orders/checkout/{id}"))
                                .send_empty()
                                .expect("checkout request");
                            (id.clone(), r.status().as_u16())
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
    for (id, st) in &statuses {
        assert!(*st == 200 || *st == 400, "checkout {id}: status {st}");
    }

    // What the acknowledged checkouts should have consumed.
    let paid: HashMap<&str, bool> = statuses
        .iter()
        .map(|(id, st)| (id.as_str(), *st == 200))
        .collect();
    let mut want_stock: HashMap<String, i64> = HashMap::new();
    let mut want_credit: HashMap<String, i64> = HashMap::new();
    let mut successes = 0;
    for id in &ids {
        let view = s.get(&format!("/orders/find/{id}")).ok();
        assert_eq!(view["paid"].as_bool(), Some(paid[id.as_str()]), "{view}");
        if !paid[id.as_str()] {
            continue;
        }
        successes += 1;
        let user = view["user_id"].as_str().expect("user_id").to_owned();
        let mut cost = 0;
        for it in view["items"].as_array().expect("items") {
            let (item, qty) = (it[0].as_str().expect("item"), it[1].as_i64().expect("qty"));
            *want_stock.entry(item.to_owned()).or_default() += qty;
            cost += qty * PRICE;
        }
        assert_eq!(view["total_cost"].as_i64(), Some(cost), "{view}");
        *want_credit.entry(user).or_default() += cost;
    }
    // Stock ran out, so some checkouts must have failed, and some succeeded.
    assert!(
        successes > 0 && successes < n,
        "{successes} of {n} succeeded"
    );
    let mut used_stock = 0;
    for i in 0..ITEMS {
        let item = i.to_string();
        let left = s.stock(&item);
        assert!(left >= 0, "item {item} below zero: {left}");
        let used = STOCK - left;
        assert_eq!(
            used,
            want_stock.get(&item).copied().unwrap_or(0),
            "item {item}"
        );
        used_stock += used;
    }
    let mut used_credit = 0;
    for u in 0..USERS {
        let user = u.to_string();
        let left = s.credit(&user);
        assert!(left >= 0, "user {user} below zero: {left}");
        let start = if u == 0 { 20 } else { CREDIT };
        let used = start - left;
        assert_eq!(
            used,
            want_credit.get(&user).copied().unwrap_or(0),
            "user {user}"
        );
        used_credit += used;
    }
    assert_eq!(used_credit, used_stock * PRICE);
}

/// Past `--max-in-flight` a request gets 503 with `Retry-After` and changes nothing: the
/// credit afterwards counts exactly the admitted requests.
#[test]
fn overload_is_a_503_that_changes_nothing() {
    let mut dir = TestDir::new();
    let s = dir.start_with(&["--max-in-flight", "1"]);
    let user = s.user(0);
    let path = format!("/payment/add_funds/{user}/1");
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
    assert_eq!(s.credit(&user), admitted);
}
