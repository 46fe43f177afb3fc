//! A newcomer's path through a data dir: find an order's checkout in the log, see its trace
//! across order, stock and payment, and step an item's stock back through time.
#![allow(missing_docs)]

use std::path::Path;

use serde_json::{Value, json};
use stateful_runtime::storage::StateStore;
use stateful_runtime::views::{self, LoggedRequest, VersionView, ViewError};
use stateful_runtime::{App, Config};

fn log(
    app: &App,
    store: &dyn StateStore,
    dir: &Path,
    lambda: Option<&str>,
    key: Option<&str>,
) -> Result<Vec<LoggedRequest>, ViewError> {
    views::log(
        app,
        store,
        &dir.join("ingress.log"),
        lambda,
        key,
        None,
        None,
    )
}

fn trace(app: &App, store: &dyn StateStore, groups: u16, seq: u64) -> Result<Value, ViewError> {
    views::trace(app, store, groups, seq).map(|t| serde_json::to_value(t).expect("JSON"))
}

fn history(
    app: &App,
    store: &dyn StateStore,
    groups: u16,
    lambda: &str,
    key: &str,
    dir: Option<&Path>,
) -> Result<Vec<VersionView>, ViewError> {
    let log = dir.map(|d| d.join("ingress.log"));
    views::history(app, store, groups, lambda, key, log.as_deref()).map(|h| h.versions)
}

fn state_at(
    app: &App,
    store: &dyn StateStore,
    groups: u16,
    lambda: &str,
    key: &str,
    epoch: u64,
) -> Result<Value, ViewError> {
    views::state(app, store, groups, lambda, key, Some(&epoch.to_string()))
}

#[test]
fn log_trace_and_history_of_checkouts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = shop::shop::app()
        .start(Config::durable(dir.path(), 2))
        .expect("start");
    let h = shop::shop::app().json(rt.handle());
    let ok = |l: &str, k: &str, hd: &str, a: Value| {
        let r = h.invoke_blocking(l, k, hd, a).expect("answered");
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
        .invoke_blocking("Order", "o2", "checkout", Value::Null)
        .expect("answered");
    assert!(
        matches!(r, stateful_runtime::JsonResponse::Rejected { .. }),
        "{r:?}"
    );
    drop(h);
    rt.shutdown();

    let app = shop::shop::app();
    let (store, groups) = {
        let s = stateful_runtime::storage::SledStore::open(&dir.path().join("state"))
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
    let text =
        views::trace_text(&views::trace(&app, &store, groups, checkouts[1].seq).expect("trace"));
    assert!(text.contains("rolled back"), "{text}");

    // Step the pear's stock back through time: 5, then 4 after o1, and o2 changed nothing.
    let pear = history(&app, &store, groups, "Stock", "pear", Some(dir.path())).expect("history");
    let stocks: Vec<_> = pear.iter().map(|v| v.state["stock"].clone()).collect();
    assert_eq!(stocks.first(), Some(&json!(5)));
    assert_eq!(stocks.last(), Some(&json!(4)));
    // Each version names the request that wrote it: the init, then o1's checkout (o2's
    // subtraction was rolled back, so o2 wrote nothing that stayed).
    let writers: Vec<Vec<u64>> = pear
        .iter()
        .map(|v| v.written_by.iter().map(|w| w.seq).collect())
        .collect();
    assert_eq!(writers.first().map(Vec::len), Some(1));
    assert_eq!(
        pear[0].written_by[0].target.as_deref(),
        Some("Stock.init(\"pear\")")
    );
    assert_eq!(pear[0].written_by[0].args, json!({"stock": 5, "price": 3}));
    let by_o1 = pear
        .iter()
        .find(|v| v.written_by.iter().any(|w| w.seq == checkouts[0].seq))
        .expect("a version written by o1's checkout");
    assert_eq!(by_o1.state["stock"], json!(4));
    assert_eq!(
        by_o1.written_by[0].target.as_deref(),
        Some("Order.checkout(\"o1\")")
    );
    assert!(
        pear.iter()
            .all(|v| v.written_by.iter().all(|w| w.seq != checkouts[1].seq)),
        "{pear:?}"
    );
    assert_eq!(
        state_at(&app, &store, groups, "Stock", "pear", pear[0].epoch).expect("at"),
        pear[0].state
    );

    // `--at seq:N`: the state right after request N committed.
    let at = stateful_runtime::tools::at::resolve_at(&store, &format!("seq:{}", checkouts[0].seq))
        .expect("a completed request");
    assert_eq!(
        state_at(&app, &store, groups, "Order", "o1", at).expect("at")["paid"],
        json!(true)
    );

    // Bad input.
    assert!(stateful_runtime::tools::at::resolve_at(&store, "seq:999999").is_err());
    assert!(trace(&app, &store, groups, 999_999).is_err());
    assert!(log(&app, &store, dir.path(), Some("Nope"), None).is_err());
}

/// Runs `stock.add(1)` on `item`, `n` times, each in its own commit; returns the request seqs
/// (from the log) in order.
fn adds(h: &stateful_runtime::JsonClient, item: &str, n: usize) {
    for _ in 0..n {
        let r = h
            .invoke_blocking("Stock", item, "add", json!({"amount": 1}))
            .expect("answered");
        assert!(matches!(r, stateful_runtime::JsonResponse::Ok(_)), "{r:?}");
    }
}

/// With a retention of 0 only the current state stays: old versions, traces and completion
/// records go; reads before the horizon are clear errors; a restart neither loses nor re-runs
/// anything; an idempotent retry still gets its stored answer.
#[test]
fn retention_compacts_history_and_says_how_far_back_it_sees() {
    let dir = tempfile::tempdir().expect("tempdir");
    let start = |keep: Option<u64>| {
        let mut config = Config::durable(dir.path(), 2);
        config.history = stateful_runtime::HistoryRetention {
            keep_for_ms: keep,
            max_bytes: None,
            check_every_ms: 20,
        };
        shop::shop::app().start(config).expect("start")
    };
    // First run: keep everything.
    let rt = start(None);
    let h = shop::shop::app().json(rt.handle());
    let r = h
        .invoke_blocking("Stock", "fig", "init", json!({"stock": 0, "price": 1}))
        .expect("answered");
    assert!(matches!(r, stateful_runtime::JsonResponse::Ok(_)));
    adds(&h, "fig", 5);
    let (l, hd, key, args) = h
        .prepare("Stock", "fig", "add", json!({"amount": 10}))
        .expect("prepared");
    let idem = "add-ten-once".to_owned();
    let first = h
        .handle()
        .submit(l, key.clone(), hd, args.clone(), Some(idem.clone()))
        .expect("submitted")
        .blocking_recv()
        .expect("answered");
    drop(h);
    rt.shutdown();
    let versions_before = {
        let store =
            stateful_runtime::storage::SledStore::open(&dir.path().join("state")).expect("open");
        let app = shop::shop::app();
        history(&app, &store, 256, "Stock", "fig", None).expect("history")
    };
    assert_eq!(versions_before.len(), 7, "init, 5 adds, the idempotent add");
    let first_epoch = versions_before[0].epoch;

    // Second run: history off. The compactor moves the horizon up to the last commit.
    let rt = start(Some(0));
    let h = shop::shop::app().json(rt.handle());
    adds(&h, "fig", 1);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while h.handle().store().horizon().expect("horizon").epoch <= versions_before[6].epoch {
        assert!(std::time::Instant::now() < deadline, "no compaction");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // The idempotent request is answered from its stored response, not run again.
    let again = h
        .handle()
        .submit(l, key, hd, args, Some(idem))
        .expect("submitted")
        .blocking_recv()
        .expect("answered");
    assert_eq!(format!("{first:?}"), format!("{again:?}"));
    drop(h);
    rt.shutdown();

    // Third run (keeping everything again): nothing re-ran after the compaction.
    let rt = start(None);
    let state = shop::shop::app()
        .json(rt.handle())
        .invoke_blocking("Stock", "fig", "find", Value::Null)
        .expect("answered");
    match state {
        stateful_runtime::JsonResponse::Ok(v) => assert_eq!(v["stock"], json!(16), "{v}"),
        other => panic!("{other:?}"),
    }
    rt.shutdown();

    let app = shop::shop::app();
    let store =
        stateful_runtime::storage::SledStore::open(&dir.path().join("state")).expect("open");
    let horizon = store.horizon().expect("horizon");
    assert!(horizon.epoch > first_epoch);
    assert!(horizon.forgotten_below_seq > 7, "{horizon:?}");
    let versions = history(&app, &store, 256, "Stock", "fig", None).expect("history");
    assert!(
        versions.len() < versions_before.len(),
        "superseded versions are gone: {versions:?}"
    );
    assert_eq!(
        versions.last().map(|v| v.state["stock"].clone()),
        Some(json!(16))
    );
    let note = views::horizon_note(&store)
        .expect("note")
        .expect("compacted");
    assert!(note.contains("compacted"), "{note}");
    // Reads before the horizon: clear errors.
    let err = state_at(&app, &store, 256, "Stock", "fig", first_epoch).expect_err("compacted");
    assert!(err.to_string().contains("compacted"), "{err}");
    let err = trace(&app, &store, 256, 2).expect_err("compacted");
    assert!(err.to_string().contains("compacted"), "{err}");
    let err = stateful_runtime::tools::at::resolve_at(&store, "seq:2").expect_err("compacted");
    assert!(err.to_string().contains("compacted"), "{err}");
    drop(store);
    // A compacted data dir cannot be replayed exactly: a clear error, nothing created.
    let into = dir.path().join("replayed");
    let err =
        stateful_runtime::tools::replay::replay(app.program().clone(), dir.path(), &into, None)
            .expect_err("refused");
    assert!(err.to_string().contains("compacted"), "{err}");
    assert!(!into.exists());
}
