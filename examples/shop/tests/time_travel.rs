//! A newcomer's path through a data dir: find an order's checkout in the log, see its trace
//! across order, stock and payment, and step an item's stock back through time.
#![allow(missing_docs)]

use std::sync::Arc;

use serde_json::{Value, json};
use stateful_runtime::inspect::{history, log, state_at, trace};
use stateful_runtime::{Config, Runtime};

#[test]
fn log_trace_and_history_of_checkouts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt =
        Runtime::start(Arc::new(shop::shop::app()), Config::durable(dir.path(), 2)).expect("start");
    let h = rt.handle();
    let ok = |l: &str, k: &str, hd: &str, a: Value| {
        let r = h.invoke_json_blocking(l, k, hd, a).expect("answered");
        assert!(matches!(r, stateful_runtime::JsonResponse::Ok(_)), "{r:?}");
    };
    ok("Stock", "apple", "init", json!({"stock": 1, "price": 2}));
    ok("Stock", "pear", "init", json!({"stock": 5, "price": 3}));
    ok("Payment", "ann", "init", json!({"credit": 100}));
    for o in ["o1", "o2"] {
        ok(
            "Order",
            o,
            "init",
            json!({"user_id": "ann", "items": [["pear", 1], ["apple", 1]], "total_cost": 5}),
        );
    }
    ok("Order", "o1", "checkout", Value::Null);
    // The apple is sold out: o2's checkout subtracts a pear, then fails and rolls back.
    let r = h
        .invoke_json_blocking("Order", "o2", "checkout", Value::Null)
        .expect("answered");
    assert!(
        matches!(r, stateful_runtime::JsonResponse::Rejected { .. }),
        "{r:?}"
    );
    drop(h);
    rt.shutdown();

    let app = shop::shop::app();
    let (store, groups) = {
        let s = stateful_runtime::store::SledStore::open(&dir.path().join("state"))
            .expect("open the stopped service's store");
        (s, stateful_runtime::Config::default().key_groups)
    };
    // Find the checkouts in the log.
    let checkouts: Vec<_> = log(&app, &store, dir.path(), Some("Order"), None)
        .expect("log")
        .into_iter()
        .filter(|r| r.handler == "checkout")
        .collect();
    assert_eq!(checkouts.len(), 2);
    assert_eq!(
        (checkouts[0].outcome, checkouts[1].outcome),
        ("ok", "rejected")
    );
    assert_eq!(
        log(&app, &store, dir.path(), Some("Order"), Some("o2"))
            .expect("log")
            .len(),
        2,
        "init and checkout of o2"
    );

    // The successful checkout: order -> 2 stock subtractions and a payment.
    let t = trace(&app, &store, groups, checkouts[0].seq).expect("trace");
    assert_eq!(t["root"]["lambda"], "Order");
    assert_eq!(t["root"]["handler"], "checkout");
    let calls: Vec<(String, String)> = t["root"]["calls"]
        .as_array()
        .expect("calls")
        .iter()
        .map(|c| {
            (
                format!(
                    "{}.{}",
                    c["lambda"].as_str().unwrap_or(""),
                    c["handler"].as_str().unwrap_or("")
                ),
                c["key"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        calls,
        [
            ("Stock.subtract".to_owned(), "pear".to_owned()),
            ("Stock.subtract".to_owned(), "apple".to_owned()),
            ("Payment.pay".to_owned(), "ann".to_owned()),
        ]
    );
    assert_eq!(t["root"]["calls"][2]["args"], json!({"amount": 5}));
    assert_eq!(t["root"]["state_after"]["paid"], json!(true));
    assert_eq!(t["root"]["rolled_back_blocks"], json!(0));

    // The failed one: rolled back, the apple rejected, nothing paid.
    let t = trace(&app, &store, groups, checkouts[1].seq).expect("trace");
    assert_eq!(t["root"]["rolled_back_blocks"], json!(1));
    assert_eq!(t["root"]["calls"].as_array().map(Vec::len), Some(2));
    assert!(t["root"]["calls"][1]["result"].get("Err").is_some());
    assert_eq!(t["root"]["state_after"]["paid"], json!(false));
    let text = stateful_runtime::inspect::trace_text(&t);
    assert!(text.contains("rolled back"), "{text}");

    // Step the pear's stock back through time: 5, then 4 after o1, and o2 changed nothing.
    let pear = history(&app, &store, groups, "Stock", "pear").expect("history");
    let stocks: Vec<_> = pear.iter().map(|v| v.state["stock"].clone()).collect();
    assert_eq!(stocks.first(), Some(&json!(5)));
    assert_eq!(stocks.last(), Some(&json!(4)));
    assert_eq!(
        state_at(&app, &store, groups, "Stock", "pear", pear[0].epoch).expect("at"),
        pear[0].state
    );

    // `--at seq:N`: the state right after request N committed.
    let at = stateful_runtime::inspect::resolve_at(&store, &format!("seq:{}", checkouts[0].seq))
        .expect("a completed request");
    assert_eq!(
        state_at(&app, &store, groups, "Order", "o1", at).expect("at")["paid"],
        json!(true)
    );

    // Bad input.
    assert!(stateful_runtime::inspect::resolve_at(&store, "seq:999999").is_err());
    assert!(trace(&app, &store, groups, 999_999).is_err());
    assert!(log(&app, &store, dir.path(), Some("Nope"), None).is_err());
}
