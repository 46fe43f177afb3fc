//! A newcomer's path through a data dir: find a transfer in the log, see its trace across the
//! transfer and both accounts, and step an account's balance back through time; and what
//! history retention compacts away.
#![allow(missing_docs)]

use serde_json::{Value, json};
use stateful_runtime::storage::StateStore;
use stateful_runtime::views::{self, LoggedRequest, VersionView, ViewError};
use stateful_runtime::{App, Config, JsonClient, JsonResponse};
use stateful_tests::fixture;

fn log(
    app: &App,
    store: &dyn StateStore,
    lambda: Option<&str>,
    key: Option<&str>,
) -> Result<Vec<LoggedRequest>, ViewError> {
    views::log(app, store, lambda, key, None, None)
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
) -> Result<Vec<VersionView>, ViewError> {
    views::history(app, store, groups, lambda, key, (0, 1)).map(|h| h.versions)
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
fn log_trace_and_history_of_transfers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = fixture::app()
        .start(Config::durable(dir.path(), 2))
        .expect("start");
    let h = fixture::app().json(rt.handle());
    let ok = |l: &str, k: &str, hd: &str, a: Value| {
        let r = h.invoke_blocking(l, k, hd, a).expect("answered");
        assert!(matches!(r, JsonResponse::Ok(_)), "{r:?}");
    };
    ok("Account", "ann", "open", json!({"balance": 100}));
    ok("Account", "bob", "open", json!({"balance": 0}));
    ok(
        "Transfer",
        "t1",
        "run",
        json!({"from": "ann", "to": "bob", "amount": 30}),
    );
    // "ghost" was never opened: t2 withdraws from ann, then fails and rolls back.
    let r = h
        .invoke_blocking(
            "Transfer",
            "t2",
            "run",
            json!({"from": "ann", "to": "ghost", "amount": 10}),
        )
        .expect("answered");
    assert!(matches!(r, JsonResponse::Rejected { .. }), "{r:?}");
    drop(h);
    rt.shutdown();

    let app = fixture::app();
    let (store, groups) = {
        let s = stateful_runtime::storage::SledStore::open(&dir.path().join("state"))
            .expect("open the stopped service's store");
        (s, stateful_runtime::Config::default().key_groups)
    };
    // Find the transfers in the log.
    let runs: Vec<_> = log(&app, &store, Some("Transfer"), None)
        .expect("log")
        .into_iter()
        .filter(|r| r.handler == "run")
        .collect();
    assert_eq!(runs.len(), 2);
    assert_eq!((runs[0].outcome, runs[1].outcome), ("ok", "rejected"));
    assert_eq!(
        log(&app, &store, Some("Account"), None).expect("log").len(),
        2,
        "the two opens"
    );
    let ann = log(&app, &store, Some("Account"), Some("ann")).expect("log");
    assert_eq!(ann.len(), 1, "only ann's open: {ann:?}");
    assert_eq!(ann[0].handler, "open");

    // The successful transfer: a withdrawal and a deposit.
    let t = trace(&app, &store, groups, runs[0].seq).expect("trace");
    assert_eq!(t["root"]["lambda"], "Transfer");
    assert_eq!(t["root"]["handler"], "run");
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
            ("Account.withdraw".to_owned(), "ann".to_owned()),
            ("Account.deposit".to_owned(), "bob".to_owned()),
        ]
    );
    assert_eq!(t["root"]["calls"][1]["args"], json!({"amount": 30}));
    assert_eq!(t["root"]["calls"][1]["result"], json!({"Ok": 30}));
    assert_eq!(t["root"]["state_after"]["done"], json!(true));
    assert_eq!(t["root"]["rolled_back_blocks"], json!(0));

    // The failed one: rolled back, the deposit rejected, nothing recorded.
    let t = trace(&app, &store, groups, runs[1].seq).expect("trace");
    assert_eq!(t["root"]["rolled_back_blocks"], json!(1));
    assert_eq!(t["root"]["calls"].as_array().map(Vec::len), Some(2));
    assert!(t["root"]["calls"][0]["result"].get("Ok").is_some());
    assert!(t["root"]["calls"][1]["result"].get("Err").is_some());
    assert_eq!(t["root"]["state_after"], Value::Null, "t2 wrote nothing");
    let text = views::trace_text(&views::trace(&app, &store, groups, runs[1].seq).expect("trace"));
    assert!(text.contains("rolled back"), "{text}");

    // Step ann's balance back through time: 100, then 70 after t1, and t2 changed nothing.
    let versions = history(&app, &store, groups, "Account", "ann").expect("history");
    let balances: Vec<_> = versions
        .iter()
        .map(|v| v.state["balance"].clone())
        .collect();
    assert_eq!(balances.first(), Some(&json!(100)));
    assert_eq!(balances.last(), Some(&json!(70)));
    // Each version names the request that wrote it: the open, then t1 (t2's withdrawal was
    // rolled back, so t2 wrote nothing that stayed).
    let writers: Vec<Vec<u64>> = versions
        .iter()
        .map(|v| v.written_by.iter().map(|w| w.seq).collect())
        .collect();
    assert_eq!(writers.first().map(Vec::len), Some(1));
    assert_eq!(
        versions[0].written_by[0].target.as_deref(),
        Some("Account.open(\"ann\")")
    );
    assert_eq!(versions[0].written_by[0].args, json!({"balance": 100}));
    let by_t1 = versions
        .iter()
        .find(|v| v.written_by.iter().any(|w| w.seq == runs[0].seq))
        .expect("a version written by t1");
    assert_eq!(by_t1.state["balance"], json!(70));
    assert_eq!(
        by_t1.written_by[0].target.as_deref(),
        Some("Transfer.run(\"t1\")")
    );
    assert!(
        versions
            .iter()
            .all(|v| v.written_by.iter().all(|w| w.seq != runs[1].seq)),
        "{versions:?}"
    );
    assert_eq!(
        state_at(&app, &store, groups, "Account", "ann", versions[0].epoch).expect("at"),
        versions[0].state
    );

    // `--at seq:N`: the state right after request N committed.
    let at = stateful_runtime::tools::at::resolve_at(&store, &format!("seq:{}", runs[0].seq))
        .expect("a completed request");
    assert_eq!(
        state_at(&app, &store, groups, "Transfer", "t1", at).expect("at")["done"],
        json!(true)
    );

    // Bad input.
    assert!(stateful_runtime::tools::at::resolve_at(&store, "seq:999999").is_err());
    assert!(trace(&app, &store, groups, 999_999).is_err());
    assert!(log(&app, &store, Some("Nope"), None).is_err());
}

/// Deposits 1 into `account`, `n` times, each in its own commit.
fn deposits(h: &JsonClient, account: &str, n: usize) {
    for _ in 0..n {
        let r = h
            .invoke_blocking("Account", account, "deposit", json!({"amount": 1}))
            .expect("answered");
        assert!(matches!(r, JsonResponse::Ok(_)), "{r:?}");
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
        fixture::app().start(config).expect("start")
    };
    // First run: keep everything.
    let rt = start(None);
    let h = fixture::app().json(rt.handle());
    let r = h
        .invoke_blocking("Account", "fig", "open", json!({"balance": 0}))
        .expect("answered");
    assert!(matches!(r, JsonResponse::Ok(_)));
    deposits(&h, "fig", 5);
    let (l, hd, key, args) = h
        .prepare("Account", "fig", "deposit", json!({"amount": 10}))
        .expect("prepared");
    let idem = "deposit-ten-once".to_owned();
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
        let app = fixture::app();
        history(&app, &store, 256, "Account", "fig").expect("history")
    };
    assert_eq!(
        versions_before.len(),
        7,
        "open, 5 deposits, the idempotent deposit"
    );
    let first_epoch = versions_before[0].epoch;

    // Second run: history off. The compactor moves the horizon up to the last commit.
    let rt = start(Some(0));
    let h = fixture::app().json(rt.handle());
    deposits(&h, "fig", 1);
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
    let state = fixture::app()
        .json(rt.handle())
        .invoke_blocking("Account", "fig", "balance", Value::Null)
        .expect("answered");
    match state {
        JsonResponse::Ok(v) => assert_eq!(v["balance"], json!(16), "{v}"),
        other => panic!("{other:?}"),
    }
    rt.shutdown();

    let app = fixture::app();
    let store =
        stateful_runtime::storage::SledStore::open(&dir.path().join("state")).expect("open");
    let horizon = store.horizon().expect("horizon");
    assert!(horizon.epoch > first_epoch);
    // The open and the five deposits (requests 1-6) are forgotten; the idempotent deposit
    // (request 7) keeps its answer.
    assert!(horizon.forgotten_below_seq >= 7, "{horizon:?}");
    for seq in 1..7 {
        assert!(
            store.completion(seq).expect("readable").is_none(),
            "request {seq}"
        );
    }
    assert!(
        store.completion(7).expect("readable").is_some(),
        "the idempotent request"
    );
    let versions = history(&app, &store, 256, "Account", "fig").expect("history");
    assert!(
        versions.len() < versions_before.len(),
        "superseded versions are gone: {versions:?}"
    );
    assert_eq!(
        versions.last().map(|v| v.state["balance"].clone()),
        Some(json!(16))
    );
    let note = views::horizon_note(&store)
        .expect("note")
        .expect("compacted");
    assert!(note.contains("compacted"), "{note}");
    // Reads before the horizon: clear errors.
    let err = state_at(&app, &store, 256, "Account", "fig", first_epoch).expect_err("compacted");
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
            .expect_err("compacted");
    assert!(err.to_string().contains("compacted"), "{err}");
    assert!(!into.exists());
}
