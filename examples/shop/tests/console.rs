//! The console over HTTP (the browser test drives the page itself): the page, the stats, the
//! load generator and its refusals, the request log's filters, and the admin token on a
//! listener that is not loopback.

use std::time::{Duration, Instant};

use serde_json::Value;
use stateful_tests::{Server, TestDir};

fn shop() -> TestDir {
    TestDir::new(env!("CARGO_BIN_EXE_shop"))
}

/// Polls `/console/stats` until `pred` holds for the newest sample (or panics after 60 s).
fn wait_for_sample(s: &Server, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let stats = s.get("/console/stats").ok();
        if let Some(last) = stats["samples"].as_array().and_then(|a| a.last())
            && pred(last)
        {
            return last.clone();
        }
        assert!(Instant::now() < deadline, "no sample with {what}: {stats}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn the_page_the_stats_and_the_generator_work_on_loopback_without_a_token() {
    let mut dir = shop();
    let s = dir.start_with(&["--in-memory"]);
    let page = s.get("/");
    assert_eq!(page.status, 200);
    assert!(page.body.contains("<title>shop · stateful console</title>"));
    assert!(page.body.contains("loadGraph"), "the script is inlined");
    assert!(s.log_text().contains("console on http://127.0.0.1:"));

    let load = s.get("/console/load").ok();
    let names: Vec<&str> = load["mixes"]
        .as_array()
        .map(|m| m.iter().filter_map(|x| x[0].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(names, ["checkout", "hot", "counter", "reads"]);
    assert_eq!(load["phase"], "stopped");

    let started = s
        .post_body("/console/load", r#"{"mix":"hot","connections":32}"#)
        .ok();
    assert_eq!(started["running"]["mix"], "hot");
    assert_eq!(
        s.post_body("/console/load", r#"{"mix":"counter"}"#)
            .err(409),
        "the generator is running already; stop it first"
    );
    let busy = wait_for_sample(&s, "checkouts", |x| {
        x["lambdas"][2]["invocations_per_s"].as_f64().unwrap_or(0.0) > 0.0
    });
    assert_eq!(busy["lambdas"][2]["name"], "Order");
    let edge = busy["edges"]
        .as_array()
        .and_then(|e| {
            e.iter()
                .find(|e| e["from"] == "Order" && e["to"] == "Stock")
        })
        .cloned()
        .unwrap_or_default();
    assert!(edge["per_s"].as_f64().unwrap_or(0.0) > 0.0, "{busy}");
    assert!(busy["bottleneck"]["kind"].is_string());
    let stopped = s.request("DELETE", "/console/load", None, None).ok();
    assert_eq!(stopped["stopped"], true);
    let after = s.get("/console/load").ok();
    assert_eq!(after["phase"], "stopped");
    assert!(load_ok(&s) > 0, "checkouts answered");
    // Every session is a fresh order, checked out once: none is refused (deadlock victims
    // among the contended ones are retried inside the engine, not answered).
    assert_eq!(
        s.get("/debug/log?outcome=rejected&limit=5").ok(),
        serde_json::json!([])
    );

    // The log's newest page, filtered by outcome.
    let last = s.get("/debug/log?last=true&limit=5&outcome=ok").ok();
    let page = last.as_array().cloned().unwrap_or_default();
    assert_eq!(page.len(), 5);
    assert!(page.iter().all(|e| e["outcome"] == "ok"));
    let first = s.get("/debug/log?limit=5").ok();
    assert!(first[0]["seq"].as_u64() < page[0]["seq"].as_u64());
    assert_eq!(
        s.get("/debug/log?outcome=maybe").err(400),
        "unknown outcome `maybe`: ok, rejected or failed"
    );
}

fn load_ok(s: &Server) -> u64 {
    s.get("/metrics")
        .body
        .lines()
        .find_map(|l| l.strip_prefix("stateful_http_requests_total{class=\"2xx\"} "))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[test]
fn bad_load_plans_are_refused_and_change_nothing() {
    let mut dir = shop();
    let s = dir.start_with(&["--in-memory"]);
    let unknown = s.post_body("/console/load", r#"{"mix":"nope"}"#).err(404);
    assert!(
        unknown.contains("checkout, hot, counter, reads"),
        "{unknown}"
    );
    for plan in [
        r#"{"mix":"counter","connections":4,"rate":10}"#,
        r#"{"mix":"counter","connections":0}"#,
        r#"{"mix":"counter","rate":1000000}"#,
    ] {
        s.post_body("/console/load", plan).err(400);
    }
    assert_eq!(s.post_body("/console/load", "not json").status, 422);
    assert_eq!(s.get("/console/load").ok()["phase"], "stopped");
}

#[test]
fn off_loopback_the_admin_side_needs_the_token_and_the_business_api_does_not() {
    let mut dir = shop().listen_on("0.0.0.0");
    let s = dir.start_with(&["--in-memory", "--admin-token", "s3cret"]);
    for path in ["/", "/console/stats", "/debug/log", "/state/Stock/1"] {
        assert_eq!(s.get(path).status, 401, "{path} without a token");
    }
    assert_eq!(s.get("/?token=wrong").status, 401);
    assert_eq!(
        s.client()
            .clone()
            .bearer("s3cret!")
            .get("/debug/log")
            .status,
        401
    );
    assert_eq!(s.get("/?token=s3cret").status, 200);
    let admin = s.client().clone().bearer("s3cret");
    assert_eq!(admin.get("/debug/log").status, 200);
    assert_eq!(admin.get("/console/stats").status, 200);
    // The business API and the operational endpoints stay open.
    assert_eq!(s.get("/stock/find/nothing").status, 404);
    assert_eq!(s.get("/healthz").status, 200);
    let metrics = s.get("/metrics").body;
    assert!(
        metrics.contains("stateful_admin_unauthorized_total 6"),
        "{metrics}"
    );
}

#[test]
fn off_loopback_without_a_token_one_is_generated_and_printed() {
    let mut dir = shop().listen_on("0.0.0.0");
    let s = dir.start_with(&["--in-memory"]);
    let log = s.log_text();
    let token: String = log
        .split("?token=")
        .nth(1)
        .map(|t| t.chars().take_while(char::is_ascii_hexdigit).collect())
        .unwrap_or_default();
    assert_eq!(token.len(), 32, "{log}");
    assert_eq!(s.get("/").status, 401);
    assert_eq!(s.get(&format!("/?token={token}")).status, 200);
}
