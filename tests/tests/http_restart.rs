//! Durability through the real binary: restarts on the same data dir after a graceful stop
//! (SIGTERM) and after a crash (SIGKILL right after acknowledged writes), idempotency keys
//! across restarts, and the `inspect` subcommand on stopped and running services.
#![allow(missing_docs)]

use serde_json::json;
use stateful_tests::{Ledger, TestDir};

const FIXTURE: &str = env!("CARGO_BIN_EXE_fixture");

#[test]
fn graceful_restart_keeps_everything_and_inspect_reads_the_stopped_dir() {
    let mut dir = TestDir::new(FIXTURE);
    let s = dir.start();
    let acct = s.create_account(100);
    let other = s.create_account(10);
    s.post(&format!("/transfers/t1/{acct}/{other}/18")).ok();
    // A transfer rejected before the restart (not enough money) runs after it.
    s.post(&format!("/transfers/t2/{other}/{acct}/1000"))
        .err(400);
    let fund = format!("/accounts/{acct}/deposit/5");
    assert_eq!(s.post_idem(&fund, b"fund-once").ok(), json!(87));
    let signup = s.post_idem("/accounts/create/0", b"signup-once").ok();
    // The service's extra route.
    assert_eq!(s.post("/batch/open/3/7").ok(), json!({ "n": 3 }));

    // `inspect` refuses a data dir in use, naming the running service.
    let out = dir.inspect("Account", &acct);
    assert!(
        !out.status.success(),
        "inspect succeeded on a running service's dir"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("running service"), "{err}");

    let log = s.stop();
    assert!(log.contains("stopping"), "{log}");

    // `inspect` reads the stopped service's committed state.
    let out = dir.inspect("Account", &acct);
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("inspect prints JSON");
    assert_eq!(v, json!({ "exists": true, "balance": 100 - 18 + 5 }));
    let out = dir.inspect("Transfer", "t1");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("inspect prints JSON");
    assert_eq!(
        v,
        json!({ "done": true, "from": acct, "to": other, "amount": 18 })
    );
    let out = dir.inspect("Account", "never-written");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "null");
    let out = dir.inspect("Wallet", &acct);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("Wallet"));

    let s = dir.start();
    assert_eq!(s.balance(&acct), 87);
    assert_eq!(s.balance(&other), 28);
    assert_eq!(
        s.transfer_view("t1"),
        json!({ "done": true, "from": acct, "to": other, "amount": 18 })
    );
    assert_eq!(s.transfer_view("t2")["done"], json!(false));
    assert_eq!(
        s.get("/accounts/2").ok(),
        json!({ "account": "2", "balance": 7 })
    );
    // Idempotency keys survive the restart: the answers repeat, nothing applies twice.
    assert_eq!(s.post_idem(&fund, b"fund-once").ok(), json!(87));
    assert_eq!(s.balance(&acct), 87);
    assert_eq!(
        s.post_idem("/accounts/create/0", b"signup-once").ok(),
        signup
    );
    // The service keeps working after the restart, with fresh ids.
    assert_ne!(s.post("/accounts/create/0").ok(), signup);
    s.post(&format!("/transfers/t2/{other}/{acct}/6")).ok();
    assert_eq!((s.balance(&acct), s.balance(&other)), (93, 22));
    // The transfer done before the restart does not run again.
    s.post(&format!("/transfers/t1/{acct}/{other}/18")).err(400);
    assert_eq!((s.balance(&acct), s.balance(&other)), (93, 22));
    s.stop();
}

#[test]
fn sigkill_right_after_acknowledged_writes_loses_nothing() {
    let mut dir = TestDir::new(FIXTURE);
    let s = dir.start();
    assert!(s.log_text().contains("a new data dir"), "{}", s.log_text());
    let acct = s.create_account(0);
    let other = s.create_account(50);
    for i in 0..20 {
        s.post(&format!("/accounts/{acct}/deposit/{}", i + 1)).ok();
    }
    s.post(&format!("/transfers/t1/{acct}/{other}/4")).ok();
    s.post_idem(&format!("/accounts/{other}/deposit/100"), b"restock")
        .ok();
    // Killed right after the last acknowledgement: no graceful shutdown, no final commit.
    s.kill9();

    let s = dir.start();
    // One line says what recovery found, without RUST_LOG: the commit log held the epochs
    // the store had not checkpointed yet (it checkpoints once a second).
    let log = s.log_text();
    assert!(log.contains("recovered epoch"), "{log}");
    assert!(log.contains("epochs from the commit log"), "{log}");
    assert_eq!(s.balance(&acct), 210 - 4);
    assert_eq!(s.balance(&other), 50 + 4 + 100);
    assert_eq!(s.transfer_view("t1")["done"], json!(true));
    s.post_idem(&format!("/accounts/{other}/deposit/100"), b"restock")
        .ok();
    assert_eq!(s.balance(&other), 154);
    // A second crash and restart, after more writes.
    s.post(&format!("/accounts/{acct}/withdraw/6")).ok();
    s.kill9();
    let s = dir.start();
    assert_eq!(s.balance(&acct), 200);
    assert_eq!(s.balance(&other), 154);
}
