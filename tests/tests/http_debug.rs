//! The read-only time-travel views over HTTP on a running service: `/debug/log`,
//! `/debug/trace/{seq}`, `/debug/history/{lambda}/{key}` and `/state/..?at=`.
#![allow(missing_docs)]

use serde_json::json;
use stateful_tests::{Ledger, TestDir};

const FIXTURE: &str = env!("CARGO_BIN_EXE_fixture");

#[test]
fn debug_views_show_a_transfer_across_transfer_and_both_accounts() {
    let mut dir = TestDir::new(FIXTURE);
    let s = dir.start();
    let from = s.create_account(100);
    let to = s.create_account(10);
    let before = s.balance(&from);
    s.post(&format!("/transfers/t1/{from}/{to}/30")).ok();
    assert_eq!(s.balance(&from), before - 30);

    // Find the transfer in the log of its instance.
    let log = s.get("/debug/log?lambda=Transfer&key=t1").ok();
    let run = log
        .as_array()
        .expect("a list")
        .iter()
        .find(|r| r["handler"] == "run")
        .expect("the transfer is logged")
        .clone();
    assert_eq!(run["outcome"], "ok");
    let seq = run["seq"].as_u64().expect("seq");

    // Its trace crosses the transfer and both accounts.
    let t = s.get(&format!("/debug/trace/{seq}")).ok();
    assert_eq!(t["root"]["lambda"], "Transfer");
    let called: Vec<String> = t["root"]["calls"]
        .as_array()
        .expect("calls")
        .iter()
        .map(|c| format!("{}.{}", c["lambda"], c["handler"]).replace('"', ""))
        .collect();
    assert_eq!(called, ["Account.withdraw", "Account.deposit"]);
    assert_eq!(
        t["root"]["calls"][0]["state_before"]["balance"],
        json!(before)
    );
    assert_eq!(
        t["root"]["calls"][0]["state_after"]["balance"],
        json!(before - 30)
    );

    // The debited account's history: each version with the request that wrote it.
    let h = s.get(&format!("/debug/history/Account/{from}")).ok();
    assert_eq!(
        h["horizon_note"],
        serde_json::Value::Null,
        "nothing compacted"
    );
    let versions = h["versions"].as_array().expect("versions");
    let last = versions.last().expect("a version");
    assert_eq!(last["state"]["balance"], json!(before - 30));
    assert_eq!(last["written_by"][0]["seq"], json!(seq));
    assert_eq!(
        last["written_by"][0]["target"],
        json!("Transfer.run(\"t1\")")
    );
    // Step back: the state at the version before the transfer.
    let prev = &versions[versions.len() - 2];
    let at = prev["epoch"].as_u64().expect("epoch");
    let old = s.get(&format!("/state/Account/{from}?at={at}")).ok();
    assert_eq!(old["balance"], json!(before));

    // Bad input: clear errors.
    let msg = s.get("/debug/trace/999999999").err(404);
    assert!(msg.contains("unknown"), "{msg}");
    s.get("/debug/history/Nope/x").err(404);
    s.get("/debug/log?lambda=Nope").err(404);
    s.get(&format!("/state/Account/{from}?at=yesterday"))
        .err(400);
}
