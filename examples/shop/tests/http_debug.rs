//! The read-only time-travel views over HTTP on a running service: `/debug/log`,
//! `/debug/trace/{seq}`, `/debug/history/{lambda}/{key}` and `/state/..?at=`.

mod common;

use common::TestDir;
use serde_json::json;

#[test]
fn debug_views_show_a_checkout_across_order_stock_and_payment() {
    let mut dir = TestDir::new();
    let s = dir.start();
    let user = s.user(100);
    let item = s.item(10, 6);
    let order = s.order(&user, &[(&item, 3)]);
    let before = s.stock(&item);
    s.post(&format!("/orders/checkout/{order}")).ok();
    assert_eq!(s.stock(&item), before - 3);

    // Find the checkout in the log of its order.
    let log = s.get(&format!("/debug/log?lambda=Order&key={order}")).ok();
    let checkout = log
        .as_array()
        .expect("a list")
        .iter()
        .find(|r| r["handler"] == "checkout")
        .expect("the checkout is logged")
        .clone();
    assert_eq!(checkout["outcome"], "ok");
    let seq = checkout["seq"].as_u64().expect("seq");

    // Its trace crosses order, stock and payment.
    let t = s.get(&format!("/debug/trace/{seq}")).ok();
    assert_eq!(t["root"]["lambda"], "Order");
    let called: Vec<String> = t["root"]["calls"]
        .as_array()
        .expect("calls")
        .iter()
        .map(|c| format!("{}.{}", c["lambda"], c["handler"]).replace('"', ""))
        .collect();
    assert_eq!(called, ["Stock.subtract", "Payment.pay"]);
    assert_eq!(
        t["root"]["calls"][0]["state_before"]["stock"],
        json!(before)
    );
    assert_eq!(
        t["root"]["calls"][0]["state_after"]["stock"],
        json!(before - 3)
    );

    // The item's history: each version with the request that wrote it.
    let h = s.get(&format!("/debug/history/Stock/{item}")).ok();
    assert_eq!(
        h["horizon_note"],
        serde_json::Value::Null,
        "nothing compacted"
    );
    let versions = h["versions"].as_array().expect("versions");
    let last = versions.last().expect("a version");
    assert_eq!(last["state"]["stock"], json!(before - 3));
    assert_eq!(last["written_by"][0]["seq"], json!(seq));
    assert_eq!(
        last["written_by"][0]["target"],
        json!(format!("Order.checkout(\"{order}\")"))
    );
    // Step back: the state at the version before the checkout.
    let prev = &versions[versions.len() - 2];
    let at = prev["epoch"].as_u64().expect("epoch");
    let old = s.get(&format!("/state/Stock/{item}?at={at}")).ok();
    assert_eq!(old["stock"], json!(before));

    // Bad input: clear errors.
    let msg = s.get("/debug/trace/999999999").err(404);
    assert!(msg.contains("unknown"), "{msg}");
    s.get("/debug/history/Nope/x").err(404);
    s.get("/debug/log?lambda=Nope").err(404);
    s.get(&format!("/state/Stock/{item}?at=yesterday")).err(400);
}
