//! Concurrent checkouts while the service is SIGKILLed, repeatedly: after each restart every
//! checkout (acknowledged or cut off) has its final answer, each paid order matches exactly one
//! debit and one stock decrement per item, and every failed one changed nothing.
#![allow(missing_docs)]

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Shop, TestDir};

const USERS: u64 = 40;
const ITEMS: u64 = 6;
const ORDERS: u64 = 360;

/// Re-sends until the service answers 200 or 400 (it may be restarting or overloaded).
fn final_answer(shop: &Shop, path: &str, key: &str) -> u16 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match shop.try_post_idem(path, key) {
            Some(s @ (200 | 400)) => return s,
            _ => {
                assert!(Instant::now() < deadline, "no final answer to {path}");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

#[test]
fn kill9_during_checkouts_keeps_every_total_exact() {
    let mut dir = TestDir::new();
    let mut shop = dir.start();
    shop.post(&format!("/payment/batch_init/{USERS}/30")).ok();
    shop.post(&format!("/stock/batch_init/{ITEMS}/40/2")).ok();
    shop.post(&format!("/orders/batch_init/{ORDERS}/{ITEMS}/{USERS}/2"))
        .ok();
    let outcomes: Arc<Mutex<HashMap<u64, u16>>> = Arc::new(Mutex::new(HashMap::new()));
    let mut cut_off = 0;
    let rounds = 3;
    let per_round = ORDERS / rounds;
    for round in 0..rounds {
        let orders: Vec<u64> = (round * per_round..(round + 1) * per_round).collect();
        let base = shop.base().to_owned();
        let threads: Vec<_> = (0..6)
            .map(|t| {
                let mine: Vec<u64> = orders.iter().copied().skip(t).step_by(6).collect();
                let outcomes = outcomes.clone();
                let base = base.clone();
                std::thread::spawn(move || {
                    let agent: ureq::Agent = ureq::Agent::config_builder()
                        .http_status_as_error(false)
                        .timeout_global(Some(Duration::from_secs(10)))
                        .build()
                        .into();
                    let mut lost = 0;
                    for o in mine {
                        let r = agent
                            .post(&format!("{base}/orders/checkout/{o}"))
                            .header("idempotency-key", &format!("co-{o}"))
                            .send_empty();
                        match r.map(|r| r.status().as_u16()) {
                            Ok(s @ (200 | 400)) => {
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
        shop.kill9();
        for t in threads {
            cut_off += t.join().expect("client thread");
        }
        shop = dir.start();
        // Every checkout of the round gets its final answer; earlier answers stand.
        for o in &orders {
            let s = final_answer(&shop, &format!("/orders/checkout/{o}"), &format!("co-{o}"));
            let mut out = outcomes.lock().expect("lock");
            if let Some(before) = out.get(o) {
                assert_eq!(*before, s, "order {o}: the answer changed after the crash");
            }
            out.insert(*o, s);
        }
    }
    // Totals from the orders that were paid.
    let outcomes = outcomes.lock().expect("lock").clone();
    let mut stock: HashMap<String, i64> = (0..ITEMS).map(|i| (i.to_string(), 40)).collect();
    let mut credit: HashMap<String, i64> = (0..USERS).map(|u| (u.to_string(), 30)).collect();
    let mut paid = 0;
    for o in 0..ORDERS {
        let view = shop.get(&format!("/orders/find/{o}")).ok();
        let was_paid = view["paid"].as_bool() == Some(true);
        assert_eq!(
            was_paid,
            outcomes.get(&o) == Some(&200),
            "order {o}: {view}"
        );
        if was_paid {
            paid += 1;
            for item in view["items"].as_array().into_iter().flatten() {
                let (id, qty) = (
                    item[0].as_str().unwrap_or(""),
                    item[1].as_i64().unwrap_or(0),
                );
                *stock.entry(id.to_owned()).or_default() -= qty;
            }
            let user = view["user_id"].as_str().unwrap_or("").to_owned();
            *credit.entry(user).or_default() -= view["total_cost"].as_i64().unwrap_or(0);
        }
    }
    for (item, expected) in &stock {
        assert_eq!(shop.stock(item), *expected, "item {item}");
        assert!(*expected >= 0);
    }
    for (user, expected) in &credit {
        assert_eq!(shop.credit(user), *expected, "user {user}");
        assert!(*expected >= 0);
    }
    eprintln!("{paid} of {ORDERS} orders paid; {cut_off} checkouts cut off by the kills");
    assert!(paid > 0 && paid < ORDERS, "both outcomes occur");
    assert!(
        cut_off > 0,
        "the kills landed while checkouts were in flight"
    );
}
