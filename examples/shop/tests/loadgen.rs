//! End-to-end test of `loadgen` against a real `shop` service.

use std::process::{Command, Output};

use stateful_tests::{TestDir, free_port};

const SHOP: &str = env!("CARGO_BIN_EXE_shop");
const LOADGEN: &str = env!("CARGO_BIN_EXE_loadgen");

fn loadgen(args: &[&str]) -> Output {
    let out = Command::new(LOADGEN)
        .args(args)
        .output()
        .expect("run loadgen");
    eprintln!(
        "loadgen {args:?} → {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn prepare_run_checkout_and_verify() {
    // Waits for `/healthz` to answer 200 from the child it started (a bare TCP connect can
    // succeed against another listener, or by a loopback self-connect, before the shop binds).
    let mut test_dir = TestDir::new(SHOP);
    let shop = test_dir.start();
    let url = shop.base();
    let out = loadgen(&[
        "prepare", "--users", "200", "--items", "200", "--orders", "400", "--url", url,
    ]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("prepared 400 orders"), "{text}");

    let dir = tempfile::tempdir().expect("temp dir");
    let json_path = dir.path().join("out.json");
    let json_arg = json_path.to_str().expect("utf-8 path");
    let out = loadgen(&[
        "run",
        "--mix",
        "checkout",
        "--connections",
        "8",
        "--requests",
        "300",
        "--verify",
        "--json",
        json_arg,
        "--url",
        url,
    ]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("verify: PASS"), "{text}");
    assert!(text.contains("400 prepared orders"), "sizes probed: {text}");

    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json_path).expect("JSON written"))
            .expect("valid JSON");
    assert_eq!(doc["requests"], 300);
    assert_eq!(doc["mix"], "checkout");
    assert_eq!(doc["mode"]["closed"]["connections"], 8);
    let status = &doc["status"];
    let answered: u64 = ["2xx", "4xx", "5xx", "connection_errors"]
        .iter()
        .map(|k| status[k].as_u64().expect("count"))
        .sum();
    assert_eq!(answered, 300);
    assert!(status["2xx"].as_u64().expect("2xx") > 0);
    assert_eq!(status["connection_errors"], 0);
    assert!(doc["throughput_rps"].as_f64().expect("throughput") > 0.0);
    for p in ["p50", "p90", "p99", "p99_9", "max"] {
        assert!(
            doc["latency_us"][p].as_u64().expect("percentile") > 0,
            "{p}"
        );
    }
    let v = &doc["verify"];
    assert_eq!(v["pass"], true);
    assert_eq!(v["successful_checkouts"], status["2xx"]);
    assert_eq!(v["stock_decrease"], v["expected_stock_decrease"]);
    assert_eq!(v["credit_decrease"], v["expected_credit_decrease"]);
    // Two items of quantity 1 per prepared order.
    assert_eq!(
        v["items_in_successful_checkouts"].as_u64(),
        status["2xx"].as_u64().map(|n| 2 * n)
    );

    // The counter mix in an open loop, verified too, spread over two URLs (here the same
    // service twice; the processes of a cluster in use).
    let out = loadgen(&[
        "run",
        "--mix",
        "counter",
        "--rate",
        "200",
        "--duration",
        "1",
        "--verify",
        "--url",
        url,
        url,
    ]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("verify: PASS"));
}

#[test]
fn unreachable_url_is_a_clear_error() {
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let out = loadgen(&["run", "--mix", "counter", "--requests", "10", "--url", &url]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot reach the shop"), "{err}");
    assert!(!err.contains("panicked"), "{err}");

    let out = loadgen(&["prepare", "--url", "ftp://example"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("only http://"));
}

#[test]
fn bad_flags_are_clap_errors() {
    for args in [
        &["run", "--mix", "nope", "--requests", "1"][..],
        &["run", "--mix", "checkout"],
        &["run", "--mix", "checkout", "--requests", "0"],
        &["run", "--mix", "checkout", "--duration", "-3"],
        &[
            "run",
            "--mix",
            "checkout",
            "--requests",
            "5",
            "--connections",
            "4",
            "--rate",
            "10",
        ],
        &["prepare", "--users", "many"],
    ] {
        let out = loadgen(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.starts_with("error:"), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}
