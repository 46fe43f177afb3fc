//! Rescaling a running shop (one process) while contended checkouts run over HTTP: every
//! request is answered 200 or 400 (never an error), exactly as many checkouts succeed as the
//! stock allows, stock, credit and paid flags agree, and a SIGKILL in the middle of a rescale
//! recovers to a consistent state.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use stateful_tests::{Client, Server, TestDir};

const ORDERS: u64 = 1000;
const USERS: u64 = 100;
/// Each order takes 2 of item 0: 100 orders can be paid.
const STOCK: i64 = 200;
const CREDIT: i64 = 1_000_000;

fn prepare(s: &Server) {
    s.post(&format!("/stock/batch_init/1/{STOCK}/1")).ok();
    s.post(&format!("/payment/batch_init/{USERS}/{CREDIT}"))
        .ok();
    s.post(&format!("/orders/batch_init/{ORDERS}/1/{USERS}/1"))
        .ok();
}

/// Checkouts of every order, by `threads` clients; the statuses.
fn checkouts(
    client: &Client,
    threads: u64,
    stop: &Arc<AtomicBool>,
) -> Vec<std::thread::JoinHandle<Vec<(u64, u16)>>> {
    (0..threads)
        .map(|t| {
            let (c, stop) = (client.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut got = Vec::new();
                for i in (t..ORDERS).step_by(threads as usize) {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    match c.try_request("POST", &format!("/orders/checkout/{i}"), None, None) {
                        Ok(r) => got.push((i, r.status)),
                        Err(_) => break, // the service was killed
                    }
                }
                got
            })
        })
        .collect()
}

/// (stock taken, credit taken, orders paid): each paid order took 2 items and 2 of credit.
fn totals(s: &Server) -> (i64, i64, u64) {
    let stock = STOCK - s.get("/stock/find/0").ok()["stock"].as_i64().unwrap_or(0);
    let credit: i64 = (0..USERS)
        .map(|u| {
            CREDIT
                - s.get(&format!("/payment/find_user/{u}")).ok()["credit"]
                    .as_i64()
                    .unwrap_or(0)
        })
        .sum();
    let paid = (0..ORDERS)
        .filter(|i| s.get(&format!("/orders/find/{i}")).ok()["paid"] == true)
        .count() as u64;
    (stock, credit, paid)
}

fn rescale(s: &Server, workers: usize) -> f64 {
    let r = s
        .post_body("/admin/workers", &format!(r#"{{"workers": {workers}}}"#))
        .ok();
    assert_eq!(r["workers"], workers, "{r}");
    r["paused_ms"].as_f64().unwrap_or(f64::NAN)
}

#[test]
fn rescaling_under_contended_checkouts_answers_every_request_and_loses_nothing() {
    let mut dir = TestDir::new(env!("CARGO_BIN_EXE_shop")).with_workers(1);
    let s = dir.start();
    prepare(&s);
    let stop = Arc::new(AtomicBool::new(false));
    let clients = checkouts(s.client(), 8, &stop);
    let mut pauses = Vec::new();
    for workers in [2, 1, 2, 1] {
        std::thread::sleep(Duration::from_millis(100));
        pauses.push(rescale(&s, workers));
    }
    let answers: Vec<(u64, u16)> = clients
        .into_iter()
        .flat_map(|c| c.join().expect("client"))
        .collect();
    assert_eq!(answers.len() as u64, ORDERS, "every checkout answered");
    let odd: Vec<_> = answers
        .iter()
        .filter(|(_, st)| *st != 200 && *st != 400)
        .collect();
    assert!(odd.is_empty(), "only 200 and 400: {odd:?}");
    let ok = answers.iter().filter(|(_, st)| *st == 200).count() as u64;
    assert_eq!(ok, 100, "as many as the stock allows");
    assert_eq!(totals(&s), (2 * ok as i64, 2 * ok as i64, ok));
    let shape = s.get("/admin/workers").ok();
    assert_eq!(shape["workers"], 1);
    assert_eq!(shape["rescales"].as_array().map(Vec::len), Some(4));
    eprintln!("paused ms: {pauses:?}");
}

#[test]
fn a_rescale_is_refused_in_memory_and_for_bad_bodies_and_changes_nothing() {
    let mut dir = TestDir::new(env!("CARGO_BIN_EXE_shop"));
    let s = dir.start_with(&["--in-memory"]);
    let e = s.post_body("/admin/workers", r#"{"workers": 1}"#).err(409);
    assert!(e.contains("in-memory"), "{e}");
    let mut dir = TestDir::new(env!("CARGO_BIN_EXE_shop"));
    let s = dir.start();
    s.post_body("/admin/workers", r#"{"workers": 0}"#).err(400);
    s.post_body("/admin/workers", r#"{"workers": 100000}"#)
        .err(400);
    assert_eq!(
        s.post_body("/admin/workers", r#"{"threads": 2}"#).status,
        422
    );
    assert_eq!(s.get("/admin/workers").ok()["workers"], 2);
    // Another method: a 405, in JSON.
    let other = s.client().request("DELETE", "/admin/workers", None, None);
    assert_eq!(other.status, 405);
    let e: serde_json::Value = serde_json::from_str(&other.body).expect("a JSON error");
    assert!(
        e["error"]
            .as_str()
            .is_some_and(|m| m.contains("method not allowed")),
        "{e}"
    );
    // The workers it has: nothing restarts, nothing is recorded.
    let same = s.post_body("/admin/workers", r#"{"workers": 2}"#).ok();
    assert_eq!(
        (same["changed"].clone(), same["paused_ms"].clone()),
        (false.into(), 0.0.into())
    );
    assert_eq!(
        s.get("/admin/workers").ok()["rescales"],
        serde_json::json!([])
    );
    let out = dir.run(&["workers", "2", "--url", s.base()]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("already 2 workers"));
    // The CLI's `workers` does the same.
    let out = dir.run(&["workers", "1", "--url", s.base()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("2 → 1 workers"), "{text}");
    assert_eq!(s.get("/admin/workers").ok()["workers"], 1);
    let refused = dir.run(&["workers", "0", "--url", s.base()]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("between 1 and 256"));
}

#[test]
fn a_sigkill_in_the_middle_of_a_rescale_recovers_consistent_state() {
    let mut dir = TestDir::new(env!("CARGO_BIN_EXE_shop")).with_workers(1);
    let s = dir.start();
    prepare(&s);
    let stop = Arc::new(AtomicBool::new(false));
    let clients = checkouts(s.client(), 8, &stop);
    std::thread::sleep(Duration::from_millis(150));
    let c = s.client().clone();
    let rescaling = std::thread::spawn(move || {
        c.try_request("POST", "/admin/workers", Some(r#"{"workers": 2}"#), None)
            .map(|r| r.status)
    });
    std::thread::sleep(Duration::from_millis(15));
    let t = Instant::now();
    s.kill9();
    stop.store(true, Ordering::Relaxed);
    let acked: Vec<u64> = clients
        .into_iter()
        .flat_map(|c| c.join().expect("client"))
        .filter(|(_, st)| *st == 200)
        .map(|(i, _)| i)
        .collect();
    let _ = rescaling.join();
    eprintln!("killed {:?} after the rescale began", t.elapsed());
    let s = dir.start();
    let (stock, credit, paid) = totals(&s);
    assert_eq!(
        (stock, credit),
        (2 * paid as i64, 2 * paid as i64),
        "stock, credit and paid agree"
    );
    for i in &acked {
        assert_eq!(
            s.get(&format!("/orders/find/{i}")).ok()["paid"],
            true,
            "acknowledged order {i} is paid"
        );
    }
    assert!(paid <= 100);
}

#[test]
fn an_idempotent_retry_after_a_rescale_gets_the_first_answer_and_runs_once() {
    let mut dir = TestDir::new(env!("CARGO_BIN_EXE_shop"));
    let s = dir.start();
    s.post("/stock/batch_init/1/10/1").ok();
    assert_eq!(s.post_idem("/stock/add/0/5", b"k-1").status, 200);
    rescale(&s, 1);
    assert_eq!(s.post_idem("/stock/add/0/5", b"k-1").status, 200);
    assert_eq!(s.get("/stock/find/0").ok()["stock"], 15, "applied once");
}

#[test]
fn the_autoscaler_removes_a_worker_from_an_idle_service_and_says_why() {
    let mut dir = TestDir::new(env!("CARGO_BIN_EXE_shop"));
    let s = dir.start_with(&["--autoscale", "1..2"]);
    assert!(s.log_text().contains("the autoscaler keeps 1..2 workers"));
    let deadline = Instant::now() + Duration::from_secs(60);
    let shape = loop {
        let shape = s.get("/admin/workers").ok();
        if shape["workers"] == 1 || Instant::now() > deadline {
            break shape;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(shape["workers"], 1, "{shape}");
    assert_eq!(shape["autoscale"], serde_json::json!({"min": 1, "max": 2}));
    let why = shape["rescales"][0]["reason"].as_str().unwrap_or_default();
    assert!(
        why.starts_with("autoscaler: every worker under 20% busy"),
        "{why}"
    );
    // Not below the minimum, and the service still serves.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(s.get("/admin/workers").ok()["workers"], 1);
    s.post("/stock/batch_init/1/10/1").ok();
}

#[test]
fn a_manual_rescale_under_the_autoscaler_stays_in_its_range_and_is_not_undone_at_once() {
    let mut dir = TestDir::new(env!("CARGO_BIN_EXE_shop")).with_workers(1);
    let s = dir.start_with(&["--autoscale", "1..2"]);
    // Quiet at the minimum for longer than a decision takes: the quiet seconds pile up.
    std::thread::sleep(Duration::from_secs(12));
    let outside = s.post_body("/admin/workers", r#"{"workers": 3}"#);
    assert_eq!(outside.status, 409, "{}", outside.body);
    assert!(outside.body.contains("1..2"), "{}", outside.body);
    // A rescale from outside starts the cooldown: those seconds were another shape's.
    rescale(&s, 2);
    std::thread::sleep(Duration::from_secs(5));
    let shape = s.get("/admin/workers").ok();
    assert_eq!(shape["workers"], 2, "undone at once: {shape}");
}

#[test]
fn the_autoscaler_needs_a_data_dir() {
    let dir = TestDir::new(env!("CARGO_BIN_EXE_shop"));
    let out = dir.run(&["serve", "--in-memory", "--autoscale", "1..2"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--autoscale rescales a single process"));
    let bad = dir.run(&["serve", "--autoscale", "3..1"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("MIN <= MAX"));
}

#[test]
fn a_client_that_never_finishes_its_body_does_not_hold_a_rescale_up() {
    use std::io::Write;
    let mut dir = TestDir::new(env!("CARGO_BIN_EXE_shop"));
    let s = dir.start();
    let addr = s.base().trim_start_matches("http://").to_owned();
    let mut slow = std::net::TcpStream::connect(&addr).expect("connect");
    let head = format!(
        "POST /invoke/Stock/0/add HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 1000\r\n\r\n{{"
    );
    slow.write_all(head.as_bytes()).expect("a partial request");
    std::thread::sleep(Duration::from_millis(200));
    let t = Instant::now();
    let paused = rescale(&s, 1);
    assert!(
        t.elapsed() < Duration::from_secs(20),
        "held {:?} ({paused} ms)",
        t.elapsed()
    );
    drop(slow);
}
