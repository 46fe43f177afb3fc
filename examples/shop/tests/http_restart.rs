//! Durability through the real binary: restarts on the same data dir after a graceful stop
//! (SIGTERM) and after a crash (SIGKILL right after acknowledged writes), idempotency keys
//! across restarts, and the `inspect` subcommand on stopped and running services.

mod common;

use common::TestDir;
use serde_json::json;

#[test]
fn graceful_restart_keeps_everything_and_inspect_reads_the_stopped_dir() {
    let mut dir = TestDir::new();
    let s = dir.start();
    let user = s.user(100);
    let item = s.item(10, 6);
    let order = s.order(&user, &[(&item, 3)]);
    s.post(&format!("/orders/checkout/{order}")).ok();
    let open_order = s.order(&user, &[(&item, 1)]);
    let fund = format!("/payment/add_funds/{user}/5");
    s.post_idem(&fund, b"fund-once").ok();
    let signup = s.post_idem("/payment/create_user", b"signup-once").ok();
    s.post("/stock/batch_init/3/7/2").ok();

    // `inspect` refuses a data dir in use, naming the running service.
    let out = dir.inspect("Payment", &user);
    assert!(
        !out.status.success(),
        "inspect succeeded on a running service's dir"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("running service"), "{err}");

    let log = s.stop();
    assert!(log.contains("stopping"), "{log}");

    // `inspect` reads the stopped service's committed state.
    let out = dir.inspect("Payment", &user);
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("inspect prints JSON");
    assert_eq!(v, json!({ "exists": true, "credit": 100 - 18 + 5 }));
    let out = dir.inspect("Order", &order);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("inspect prints JSON");
    assert_eq!(v["paid"], json!(true));
    assert_eq!(v["items"], json!([[item, 3]]));
    let out = dir.inspect("Stock", "never-written");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "null");
    let out = dir.inspect("Wallet", &user);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("Wallet"));

    let s = dir.start();
    assert_eq!(s.credit(&user), 87);
    assert_eq!(s.stock(&item), 7);
    assert_eq!(
        s.get(&format!("/orders/find/{order}")).ok(),
        json!({
            "order_id": order, "paid": true, "items": [[item, 3]],
            "user_id": user, "total_cost": 18,
        })
    );
    assert_eq!(
        s.get(&format!("/orders/find/{open_order}")).ok()["paid"],
        json!(false)
    );
    assert_eq!(
        s.get("/stock/find/2").ok(),
        json!({ "stock": 7, "price": 2 })
    );
    // Idempotency keys survive the restart: the answers repeat, nothing applies twice.
    s.post_idem(&fund, b"fund-once").ok();
    assert_eq!(s.credit(&user), 87);
    assert_eq!(
        s.post_idem("/payment/create_user", b"signup-once").ok(),
        signup
    );
    // The service keeps working after the restart, with fresh ids.
    assert_ne!(s.post("/payment/create_user").ok(), signup);
    s.post(&format!("/orders/checkout/{open_order}")).ok();
    assert_eq!((s.stock(&item), s.credit(&user)), (6, 81));
    s.stop();
}

#[test]
fn sigkill_right_after_acknowledged_writes_loses_nothing() {
    let mut dir = TestDir::new();
    let s = dir.start();
    let user = s.user(0);
    let item = s.item(50, 1);
    for i in 0..20 {
        s.post(&format!("/payment/add_funds/{user}/{}", i + 1)).ok();
    }
    let order = s.order(&user, &[(&item, 4)]);
    s.post(&format!("/orders/checkout/{order}")).ok();
    s.post_idem(&format!("/stock/add/{item}/100"), b"restock")
        .ok();
    // Killed right after the last acknowledgement: no graceful shutdown, no final commit.
    s.kill9();

    let s = dir.start();
    assert_eq!(s.credit(&user), 210 - 4);
    assert_eq!(s.stock(&item), 50 - 4 + 100);
    assert_eq!(
        s.get(&format!("/orders/find/{order}")).ok()["paid"],
        json!(true)
    );
    s.post_idem(&format!("/stock/add/{item}/100"), b"restock")
        .ok();
    assert_eq!(s.stock(&item), 146);
    // A second crash and restart, after more writes.
    s.post(&format!("/payment/pay/{user}/6")).ok();
    s.kill9();
    let s = dir.start();
    assert_eq!(s.credit(&user), 200);
    assert_eq!(s.stock(&item), 146);
}
