//! Messages after commit and timers: delivered once the sending request commits, exactly once,
//! in order per sender and receiver, never when the sender fails or its block rolls back; a
//! timer fires after its delay, and both survive a restart.
#![allow(missing_docs)]

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use stateful_runtime::{App, Config, JsonResponse, Runtime};

#[stateful_runtime::app]
pub mod loyalty {
    use std::time::Duration;

    use stateful_runtime::prelude::*;

    #[lambda(key = String, state = u64)]
    impl Customer {
        async fn add_points(ctx: &mut Ctx<Self>, points: u64) -> Result<(), Rejection> {
            *ctx.state_mut() += points;
            Ok(())
        }

        #[public]
        async fn points(ctx: &Ctx<Self>) -> Result<u64, Rejection> {
            Ok(*ctx.state())
        }
    }

    #[lambda(key = String, state = Vec<u32>)]
    impl Journal {
        async fn append(ctx: &mut Ctx<Self>, n: u32) -> Result<(), Rejection> {
            ctx.state_mut().push(n);
            Ok(())
        }

        #[public]
        async fn entries(ctx: &Ctx<Self>) -> Result<Vec<u32>, Rejection> {
            Ok(ctx.state().clone())
        }
    }

    #[lambda(key = String, state = u32)]
    impl Booking {
        /// Books, and sends the customer 10 points; `fail` rejects after sending.
        #[public]
        async fn book(ctx: &mut Ctx<Self>, customer: String, fail: bool) -> Result<u32, Rejection> {
            *ctx.state_mut() += 1;
            ctx.send::<Customer>(&customer).add_points(10);
            if fail {
                return Err(Rejection::new("refused after sending"));
            }
            Ok(*ctx.state())
        }

        /// Sends inside a transaction block that fails when `fail`.
        #[public]
        async fn book_in_block(
            ctx: &mut Ctx<Self>,
            customer: String,
            fail: bool,
        ) -> Result<bool, Rejection> {
            transaction! {
                ctx.send::<Customer>(&customer).add_points(100);
                if fail {
                    return Err(Rejection::new("the block fails"));
                }
                Ok(true)
            }
            .on_failure_return(Ok(false))
        }

        /// Sends `n` numbered entries to journal `j`, one after another.
        #[public]
        async fn numbered(ctx: &mut Ctx<Self>, j: String, n: u32) -> Result<(), Rejection> {
            for i in 0..n {
                ctx.send::<Journal>(&j).append(i);
            }
            Ok(())
        }

        /// A timer: 1 point for `customer` in `ms` milliseconds.
        #[public]
        async fn remind(ctx: &mut Ctx<Self>, customer: String, ms: u64) -> Result<(), Rejection> {
            ctx.send_after::<Customer>(Duration::from_millis(ms), &customer)
                .add_points(1);
            Ok(())
        }
    }
}

fn call(app: &App, rt: &Runtime, lambda: &str, key: &str, h: &str, args: Value) -> JsonResponse {
    app.json(rt.handle())
        .invoke_blocking(lambda, key, h, args)
        .expect("answered")
}

fn points(app: &App, rt: &Runtime, customer: &str) -> u64 {
    match call(app, rt, "Customer", customer, "points", Value::Null) {
        JsonResponse::Ok(v) => v.as_u64().expect("a number"),
        other => panic!("points: {other:?}"),
    }
}

/// Polls `customer`'s points until they are `want` (or 10 s pass); the points seen last.
fn wait_points(app: &App, rt: &Runtime, customer: &str, want: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let p = points(app, rt, customer);
        if p == want || Instant::now() > deadline {
            return p;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_message_is_delivered_once_after_commit_and_never_from_failed_work() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = loyalty::app();
    let rt = app.start(Config::durable(dir.path(), 2)).expect("start");
    let ok = call(&app, &rt, "Booking", "b1", "book", json!(["ann", false]));
    assert_eq!(ok, JsonResponse::Ok(json!(1)));
    let failed = call(&app, &rt, "Booking", "b1", "book", json!(["bob", true]));
    assert!(
        matches!(failed, JsonResponse::Rejected { .. }),
        "{failed:?}"
    );
    let rolled_back = call(
        &app,
        &rt,
        "Booking",
        "b2",
        "book_in_block",
        json!(["bob", true]),
    );
    assert_eq!(rolled_back, JsonResponse::Ok(json!(false)));
    let kept = call(
        &app,
        &rt,
        "Booking",
        "b2",
        "book_in_block",
        json!(["cid", false]),
    );
    assert_eq!(kept, JsonResponse::Ok(json!(true)));
    assert_eq!(wait_points(&app, &rt, "ann", 10), 10);
    assert_eq!(wait_points(&app, &rt, "cid", 100), 100);
    // Messages to bob were sent before ann's and cid's were delivered: had they been kept,
    // they would have arrived by now.
    assert_eq!(
        points(&app, &rt, "bob"),
        0,
        "a failed sender's message is undone"
    );
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(points(&app, &rt, "ann"), 10, "delivered once");
    let h = rt.handle();
    let sent = h
        .metrics()
        .messages_sent
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(sent, 2, "only the committed requests' messages");
}

#[test]
fn messages_from_one_sender_to_one_receiver_arrive_in_order() {
    let app = loyalty::app();
    let rt = app.start(Config::in_memory(2)).expect("start");
    for round in 0..3 {
        let r = call(&app, &rt, "Booking", "b", "numbered", json!(["j", 50]));
        assert_eq!(r, JsonResponse::Ok(Value::Null), "round {round}");
    }
    let want: Vec<u32> = (0..3).flat_map(|_| 0..50).collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    let got = loop {
        let JsonResponse::Ok(v) = call(&app, &rt, "Journal", "j", "entries", Value::Null) else {
            panic!("entries");
        };
        let got: Vec<u32> = serde_json::from_value(v).expect("numbers");
        if got.len() >= want.len() || Instant::now() > deadline {
            break got;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(got, want);
}

#[test]
fn a_timer_fires_after_its_delay_and_survives_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = loyalty::app();
    let rt = app.start(Config::durable(dir.path(), 1)).expect("start");
    let t0 = Instant::now();
    call(&app, &rt, "Booking", "b", "remind", json!(["ann", 300]));
    assert_eq!(points(&app, &rt, "ann"), 0, "not before its time");
    assert_eq!(wait_points(&app, &rt, "ann", 1), 1);
    assert!(
        t0.elapsed() >= Duration::from_millis(300),
        "{:?}",
        t0.elapsed()
    );
    // A timer pending at shutdown fires after the restart, once.
    call(&app, &rt, "Booking", "b", "remind", json!(["bob", 700]));
    rt.shutdown();
    let rt = app.start(Config::durable(dir.path(), 2)).expect("restart");
    assert_eq!(points(&app, &rt, "bob"), 0, "not yet");
    assert_eq!(wait_points(&app, &rt, "bob", 1), 1);
    rt.shutdown();
    let rt = app
        .start(Config::durable(dir.path(), 1))
        .expect("restart again");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(points(&app, &rt, "bob"), 1, "delivered exactly once");
    assert_eq!(points(&app, &rt, "ann"), 1);
}

#[test]
fn the_graph_has_send_and_timer_edges() {
    let graph = loyalty::GRAPH_JSON;
    assert!(graph.contains("\"edge\": \"send\""), "{graph}");
    assert!(graph.contains("\"delayed\": true"), "{graph}");
    assert!(loyalty::GRAPH_DOT.contains("timer: remind ⇢ add_points"));
    assert!(loyalty::GRAPH_DOT.contains("send: book ⇢ add_points"));
}

#[test]
fn a_client_cannot_use_the_delivery_idempotency_keys() {
    let app = loyalty::app();
    let rt = app.start(Config::in_memory(1)).expect("start");
    let h = rt.handle();
    let err = h
        .submit(0, vec![], 0, vec![], Some("stateful.message:1.0".into()))
        .expect_err("refused");
    assert!(err.to_string().contains("the engine's own"), "{err}");
}

#[test]
fn stopping_with_messages_in_flight_does_not_hang() {
    for _ in 0..20 {
        let app = loyalty::app();
        let rt = app.start(Config::in_memory(2)).expect("start");
        call(&app, &rt, "Booking", "b", "numbered", json!(["j", 20]));
        let t0 = Instant::now();
        rt.shutdown();
        assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    }
}

#[test]
fn stopping_with_requests_in_flight_does_not_hang() {
    for _ in 0..20 {
        let app = loyalty::app();
        let rt = app.start(Config::in_memory(2)).expect("start");
        let h = rt.handle();
        let pending: Vec<_> = (0..20)
            .map(|i| h.call::<loyalty::Journal>(&format!("j{}", i % 3)).entries())
            .collect();
        let t0 = Instant::now();
        rt.shutdown();
        drop(pending);
        assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    }
}

#[test]
fn a_timer_set_after_the_test_clock_moved_is_due_by_that_clock() {
    use stateful_runtime::testing::TestApp;
    let t = TestApp::new(loyalty::app());
    t.advance(Duration::from_secs(86_400));
    let hour = 3_600_000u64;
    t.call::<loyalty::Booking>("b")
        .remind("ann".into(), hour)
        .wait()
        .expect("sets the timer");
    t.advance(Duration::from_secs(59 * 60));
    assert_eq!(t.state::<loyalty::Customer>("ann"), None, "not due yet");
    t.advance(Duration::from_secs(2 * 60));
    assert_eq!(
        t.state::<loyalty::Customer>("ann"),
        Some(1),
        "due an hour after it was set"
    );
}
