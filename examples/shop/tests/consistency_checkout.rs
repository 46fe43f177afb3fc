//! Many concurrent checkouts against limited stock and credit, in-process, with 1, 2 and 4
//! workers: exactly as many succeed as stock and credit allow, every success matches a debit
//! and a stock decrement, every failure changed nothing, and the totals balance exactly.
#![allow(missing_docs)]

use serde_json::{Value, json};
use stateful_runtime::{Config, JsonClient as Handle, JsonResponse, Runtime};
use stateful_tests::SplitMix as Rng;

type Req = (String, String, String, Value);

fn ok(h: &Handle, lambda: &str, key: &str, handler: &str, args: Value) -> Value {
    match h.invoke_blocking(lambda, key, handler, args) {
        Ok(JsonResponse::Ok(v)) => v,
        other => panic!("{lambda}/{key}/{handler}: {other:?}"),
    }
}

/// Submits every request first, then waits for all answers: they run concurrently.
fn concurrently(h: &Handle, reqs: &[Req]) -> Vec<JsonResponse> {
    let mut pending = Vec::with_capacity(reqs.len());
    for (lambda, key, handler, args) in reqs {
        let (l, hd, k, a) = h
            .prepare(lambda, key, handler, args.clone())
            .expect("valid");
        pending.push((
            l,
            hd,
            h.handle().submit(l, k, hd, a, None).expect("admitted"),
        ));
    }
    pending
        .into_iter()
        .map(|(l, hd, rx)| h.to_json(l, hd, rx.blocking_recv().expect("answered")))
        .collect()
}

/// The shop, durable (fsync'ed commit log) in a fresh directory, kept alive with the runtime;
/// `cache`: a cache of that many bytes (the default otherwise).
fn start(workers: usize, cache: Option<u64>) -> (Runtime, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = Config::durable(dir.path(), workers);
    if cache.is_some() {
        config.cache_bytes = cache;
    }
    let rt = shop::shop::app().start(config).expect("start");
    (rt, dir)
}

fn req(lambda: &str, key: String, handler: &str, args: Value) -> Req {
    (lambda.to_owned(), key, handler.to_owned(), args)
}

#[test]
fn one_item_stock_100_thousand_users_credit_1() {
    for workers in [1, 2, 4] {
        let (rt, _dir) = start(workers, None);
        let h = shop::shop::app().json(rt.handle());
        ok(
            &h,
            "Stock",
            "item",
            "init",
            json!({"stock": 100, "price": 1}),
        );
        let users = 1000;
        let mut setup = Vec::new();
        for u in 0..users {
            setup.push(req(
                "Payment",
                format!("u{u}"),
                "init",
                json!({"credit": 1}),
            ));
            setup.push(req(
                "Order",
                format!("o{u}"),
                "init",
                json!({"user_id": format!("u{u}"), "items": [["item", 1]], "total_cost": 1}),
            ));
        }
        assert!(
            concurrently(&h, &setup)
                .iter()
                .all(|r| matches!(r, JsonResponse::Ok(_)))
        );
        let checkouts: Vec<_> = (0..users)
            .map(|u| req("Order", format!("o{u}"), "checkout", Value::Null))
            .collect();
        let answers = concurrently(&h, &checkouts);
        for r in &answers {
            assert!(
                matches!(r, JsonResponse::Ok(_) | JsonResponse::Rejected { .. }),
                "every checkout is answered with success or a rejection: {r:?}"
            );
        }
        let succeeded: Vec<usize> = answers
            .iter()
            .enumerate()
            .filter(|(_, r)| matches!(r, JsonResponse::Ok(_)))
            .map(|(i, _)| i)
            .collect();
        assert_eq!(
            succeeded.len(),
            100,
            "{workers} workers: exactly the stock sells"
        );
        assert_eq!(ok(&h, "Stock", "item", "find", Value::Null)["stock"], 0);
        let reads: Vec<_> = (0..users)
            .flat_map(|u| {
                [
                    req("Payment", format!("u{u}"), "find", Value::Null),
                    req("Order", format!("o{u}"), "find", Value::Null),
                ]
            })
            .collect();
        let views = concurrently(&h, &reads);
        for u in 0..users {
            let (JsonResponse::Ok(user), JsonResponse::Ok(order)) =
                (&views[2 * u], &views[2 * u + 1])
            else {
                panic!("reads answer: {:?} {:?}", views[2 * u], views[2 * u + 1]);
            };
            let won = succeeded.binary_search(&u).is_ok();
            assert_eq!(
                user["credit"].as_i64(),
                Some(if won { 0 } else { 1 }),
                "user {u}"
            );
            assert_eq!(order["paid"].as_bool(), Some(won), "order {u}");
        }
        drop(h);
        rt.shutdown();
    }
}

#[test]
fn random_two_item_checkouts_balance_exactly() {
    // The last run keeps 8 KiB of instances in memory: most reads come back from the store.
    for (workers, seed, cache) in [
        (1, 1, None),
        (2, 2, None),
        (4, 3, None),
        (2, 4, Some(8 << 10)),
    ] {
        let (rt, _dir) = start(workers, cache);
        let h = shop::shop::app().json(rt.handle());
        let mut rng = Rng(seed);
        let (items, users, orders) = (6u64, 40u64, 600u64);
        let mut setup = Vec::new();
        let mut stock = Vec::new();
        let mut credit = Vec::new();
        for i in 0..items {
            let s = 20 + (rng.next_u64() % 40) as i64;
            stock.push(s);
            setup.push(req(
                "Stock",
                format!("i{i}"),
                "init",
                json!({"stock": s, "price": 1 + i as i64}),
            ));
        }
        for u in 0..users {
            let c = (rng.next_u64() % 60) as i64;
            credit.push(c);
            setup.push(req(
                "Payment",
                format!("u{u}"),
                "init",
                json!({"credit": c}),
            ));
        }
        let mut defs = Vec::new();
        for o in 0..orders {
            let (a, b) = (rng.next_u64() % items, rng.next_u64() % items);
            let (qa, qb) = (
                1 + (rng.next_u64() % 3) as i64,
                1 + (rng.next_u64() % 3) as i64,
            );
            let u = rng.next_u64() % users;
            let total = qa * (1 + a as i64) + qb * (1 + b as i64);
            defs.push((a as usize, qa, b as usize, qb, u as usize, total));
            setup.push(req(
                "Order",
                format!("o{o}"),
                "init",
                json!({"user_id": format!("u{u}"), "items": [[format!("i{a}"), qa], [format!("i{b}"), qb]], "total_cost": total}),
            ));
        }
        assert!(
            concurrently(&h, &setup)
                .iter()
                .all(|r| matches!(r, JsonResponse::Ok(_)))
        );
        let checkouts: Vec<_> = (0..orders)
            .map(|o| req("Order", format!("o{o}"), "checkout", Value::Null))
            .collect();
        let answers = concurrently(&h, &checkouts);
        let orders_after = concurrently(
            &h,
            &(0..orders)
                .map(|o| req("Order", format!("o{o}"), "find", Value::Null))
                .collect::<Vec<_>>(),
        );
        let mut wins = 0;
        for (o, r) in answers.iter().enumerate() {
            let (a, qa, b, qb, u, total) = defs[o];
            let paid = match &orders_after[o] {
                JsonResponse::Ok(v) => v["paid"].as_bool(),
                other => panic!("order {o}: {other:?}"),
            };
            match r {
                JsonResponse::Ok(_) => {
                    wins += 1;
                    stock[a] -= qa;
                    stock[b] -= qb;
                    credit[u] -= total;
                    assert_eq!(paid, Some(true), "order {o}");
                }
                JsonResponse::Rejected { .. } => assert_eq!(paid, Some(false), "order {o}"),
                other => panic!("checkout {o}: {other:?}"),
            }
        }
        for (i, s) in stock.iter().enumerate() {
            let got = ok(&h, "Stock", &format!("i{i}"), "find", Value::Null)["stock"].as_i64();
            assert_eq!(got, Some(*s), "{workers} workers, item {i}");
            assert!(*s >= 0);
        }
        for (u, c) in credit.iter().enumerate() {
            let got = ok(&h, "Payment", &format!("u{u}"), "find", Value::Null)["credit"].as_i64();
            assert_eq!(got, Some(*c), "{workers} workers, user {u}");
            assert!(*c >= 0);
        }
        assert!(
            wins > 0 && wins < orders,
            "both outcomes occur ({wins} of {orders})"
        );
        if cache.is_some() {
            let evicted: u64 = rt
                .handle()
                .metrics()
                .operators
                .iter()
                .map(|m| m.evictions.load(std::sync::atomic::Ordering::Relaxed))
                .sum();
            assert!(evicted > 0, "the small cache evicted");
        }
        drop(h);
        rt.shutdown();
    }
}
