//! The engine driven through hand-written `Lambda` impls (what `#[app]` generates), so the
//! engine is tested independently of the macros.
#![allow(missing_docs)]

use stateful_core::ir::{AppGraph, CallSpec, Form, Handler, LambdaNode, Param};
use stateful_runtime::__private::{
    self as p, CallBackend, Calls, DispatchError, HandlerMeta, HandlerVisitor, Invocation, Lambda,
};
use stateful_runtime::{App, CallError, Config, Ctx, JsonClient, JsonResponse, Rejection};

#[derive(Default, Clone, serde::Serialize, serde::Deserialize)]
pub struct Count {
    n: i64,
}

pub struct Counter;
pub struct CounterClient<B>(B);
impl<B: CallBackend> CounterClient<B> {
    #[allow(clippy::should_implement_trait)]
    pub fn add(self, by: i64) -> B::Future<Result<i64, Rejection>> {
        self.0.call(0, &(by,))
    }
}
impl Counter {
    async fn add(ctx: &mut Ctx<Self>, by: i64) -> Result<i64, Rejection> {
        if by < 0 && ctx.state().n + by < 0 {
            return Err(Rejection::new("would go negative"));
        }
        ctx.state_mut().n += by;
        Ok(ctx.state().n)
    }
    async fn boom(_ctx: &mut Ctx<Self>) -> Result<i64, Rejection> {
        panic!("boom")
    }
}
impl Lambda for Counter {
    type Key = String;
    type State = Count;
    type Client<B: CallBackend> = CounterClient<B>;
    const NAME: &'static str = "Counter";
    const ID: u16 = 0;
    const HANDLERS: &'static [HandlerMeta] = &[
        HandlerMeta {
            name: "add",
            params: &[("by", "i64")],
            output: "Result<i64, Rejection>",
            route: None,
            writes: true,
            public: true,
            needs_existing: false,
        },
        HandlerMeta {
            name: "boom",
            params: &[],
            output: "Result<i64, Rejection>",
            route: None,
            writes: true,
            public: true,
            needs_existing: false,
        },
    ];
    fn client<B: CallBackend>(b: B) -> CounterClient<B> {
        CounterClient(b)
    }
    fn dispatch(h: u16, ctx: Ctx<Self>, args: &[u8]) -> Result<Invocation, DispatchError> {
        match h {
            0 => {
                let (by,): (i64,) = p::decode_args(args)?;
                Ok(p::invocation(async move {
                    let mut ctx = ctx;
                    Counter::add(&mut ctx, by).await
                }))
            }
            1 => {
                let (): () = p::decode_args(args)?;
                Ok(p::invocation(async move {
                    let mut ctx = ctx;
                    Counter::boom(&mut ctx).await
                }))
            }
            _ => Err(DispatchError::UnknownHandler {
                lambda: "Counter".into(),
                handler: h.to_string(),
            }),
        }
    }
    fn visit_handlers<V: HandlerVisitor>(v: &mut V) {
        v.handler::<(i64,), Result<i64, Rejection>>(0, &Self::HANDLERS[0]);
        v.handler::<(), Result<i64, Rejection>>(1, &Self::HANDLERS[1]);
    }
}

/// Moves `amount` from its own counter to `to`'s, inside a transaction.
pub struct Mover;
impl Mover {
    async fn transfer(
        ctx: &mut Ctx<Self>,
        from: String,
        to: String,
        amount: i64,
    ) -> Result<(), Rejection> {
        p::transaction(
            p::txn_ctx(&*ctx),
            p::tx_body::<_, Rejection, _>(async {
                ctx.call::<Counter>(&from).add(-amount).await?;
                ctx.call::<Counter>(&to).add(amount).await?;
                ctx.state_mut().n += 1;
                Ok(())
            }),
        )
        .await
    }
    /// Credits `to` and then fails: the transaction must undo the credit.
    async fn credit_then_fail(ctx: &mut Ctx<Self>, to: String) -> Result<(), Rejection> {
        match p::transaction(
            p::txn_ctx(&*ctx),
            p::tx_body::<_, Rejection, _>(async {
                ctx.call::<Counter>(&to).add(100).await?;
                Err(Rejection::new("changed my mind"))
            }),
        )
        .await
        {
            Ok(()) => Ok(()),
            Err(_) => Err(Rejection::new("rolled back")),
        }
    }
}
pub struct MoverClient<B>(#[allow(dead_code)] B);
impl Calls<Counter> for Mover {}
impl Lambda for Mover {
    type Key = String;
    type State = Count;
    type Client<B: CallBackend> = MoverClient<B>;
    const NAME: &'static str = "Mover";
    const ID: u16 = 1;
    const HANDLERS: &'static [HandlerMeta] = &[
        HandlerMeta {
            name: "transfer",
            params: &[("from", "String"), ("to", "String"), ("amount", "i64")],
            output: "Result<(), Rejection>",
            route: None,
            writes: true,
            public: true,
            needs_existing: false,
        },
        HandlerMeta {
            name: "credit_then_fail",
            params: &[("to", "String")],
            output: "Result<(), Rejection>",
            route: None,
            writes: true,
            public: true,
            needs_existing: false,
        },
    ];
    fn client<B: CallBackend>(b: B) -> MoverClient<B> {
        MoverClient(b)
    }
    fn dispatch(h: u16, ctx: Ctx<Self>, args: &[u8]) -> Result<Invocation, DispatchError> {
        match h {
            0 => {
                let (from, to, amount): (String, String, i64) = p::decode_args(args)?;
                Ok(p::invocation(async move {
                    let mut ctx = ctx;
                    Mover::transfer(&mut ctx, from, to, amount).await
                }))
            }
            1 => {
                let (to,): (String,) = p::decode_args(args)?;
                Ok(p::invocation(async move {
                    let mut ctx = ctx;
                    Mover::credit_then_fail(&mut ctx, to).await
                }))
            }
            _ => Err(DispatchError::UnknownHandler {
                lambda: "Mover".into(),
                handler: h.to_string(),
            }),
        }
    }
    fn visit_handlers<V: HandlerVisitor>(v: &mut V) {
        v.handler::<(String, String, i64), Result<(), Rejection>>(0, &Self::HANDLERS[0]);
        v.handler::<(String,), Result<(), Rejection>>(1, &Self::HANDLERS[1]);
    }
}

/// The IR node of a hand-written lambda (what `#[app]` would analyse).
fn node<L: Lambda>() -> LambdaNode {
    LambdaNode {
        name: L::NAME.into(),
        form: Form::Entity,
        key: "String".into(),
        state: "Count".into(),
        handlers: L::HANDLERS
            .iter()
            .map(|h| Handler {
                name: h.name.into(),
                params: h
                    .params
                    .iter()
                    .map(|(n, t)| Param {
                        name: (*n).into(),
                        ty: (*t).into(),
                    })
                    .collect(),
                output: h.output.into(),
                route: None,
                public: h.public,
            })
            .collect(),
    }
}

/// The graph `#[app]` would build: Mover's handlers call Counter::add.
fn graph() -> AppGraph {
    let mut g = AppGraph::new("handwritten");
    g.add_lambda(node::<Counter>());
    let (mover, _) = g.add_lambda(node::<Mover>());
    for caller in ["transfer", "credit_then_fail"] {
        g.add_call(CallSpec {
            caller: mover,
            from: mover,
            caller_handler: caller,
            callee: "Counter",
            handler: Some("add"),
            given: 1,
            in_transaction: true,
        })
        .expect("a valid call");
    }
    g
}

fn app() -> App {
    App::builder("handwritten", "", "digraph {}")
        .lambda::<Counter>()
        .lambda::<Mover>()
        .graph(graph())
        .build()
}

fn get(h: &JsonClient, key: &str) -> i64 {
    match h
        .invoke_blocking("Counter", key, "add", serde_json::json!(0))
        .expect("invoke")
    {
        JsonResponse::Ok(v) => v.as_i64().expect("number"),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn counter_adds_and_rejects() {
    for workers in [1, 2] {
        let rt = app().start(Config::in_memory(workers)).expect("start");
        let h = app().json(rt.handle());
        assert_eq!(
            h.invoke_blocking("Counter", "a", "add", serde_json::json!(5))
                .expect("ok"),
            JsonResponse::Ok(serde_json::json!(5))
        );
        assert_eq!(
            h.invoke_blocking("Counter", "a", "add", serde_json::json!({"by": 2}))
                .expect("ok"),
            JsonResponse::Ok(serde_json::json!(7))
        );
        assert!(matches!(
            h.invoke_blocking("Counter", "a", "add", serde_json::json!(-100))
                .expect("ok"),
            JsonResponse::Rejected { .. }
        ));
        assert_eq!(get(&h, "a"), 7);
        assert!(
            h.invoke_blocking("Nope", "a", "add", serde_json::json!(1))
                .is_err()
        );
        assert!(
            h.invoke_blocking("Counter", "a", "nope", serde_json::json!(1))
                .is_err()
        );
        assert!(
            h.invoke_blocking("Counter", "a", "add", serde_json::json!("x"))
                .is_err()
        );
        rt.shutdown();
    }
}

#[test]
fn panics_fail_the_invocation_and_the_worker_survives() {
    let rt = app().start(Config::in_memory(2)).expect("start");
    let h = app().json(rt.handle());
    let r = h
        .invoke_blocking("Counter", "p", "boom", serde_json::Value::Null)
        .expect("answered");
    assert!(
        matches!(
            r,
            JsonResponse::Failed(stateful_runtime::CallError::Panicked(_))
        ),
        "{r:?}"
    );
    assert_eq!(get(&h, "p"), 0);
}

#[test]
fn transactions_move_and_roll_back() {
    let rt = app().start(Config::in_memory(2)).expect("start");
    let h = app().json(rt.handle());
    h.invoke_blocking("Counter", "x", "add", serde_json::json!(10))
        .expect("ok");
    let r = h
        .invoke_blocking(
            "Mover",
            "m",
            "transfer",
            serde_json::json!({"from": "x", "to": "y", "amount": 4}),
        )
        .expect("ok");
    assert_eq!(r, JsonResponse::Ok(serde_json::Value::Null));
    assert_eq!((get(&h, "x"), get(&h, "y")), (6, 4));
    // Not enough: the debit is rejected, nothing changes.
    let r = h
        .invoke_blocking(
            "Mover",
            "m",
            "transfer",
            serde_json::json!({"from": "x", "to": "y", "amount": 40}),
        )
        .expect("ok");
    assert!(matches!(r, JsonResponse::Rejected { .. }), "{r:?}");
    assert_eq!((get(&h, "x"), get(&h, "y")), (6, 4));
    // The credit happened, then the block failed: rolled back.
    let r = h
        .invoke_blocking("Mover", "m", "credit_then_fail", serde_json::json!("z"))
        .expect("ok");
    assert!(matches!(r, JsonResponse::Rejected { .. }), "{r:?}");
    assert_eq!(get(&h, "z"), 0);
}

#[test]
fn concurrent_transfers_conserve_money() {
    for workers in [1, 2, 4] {
        let rt = app().start(Config::in_memory(workers)).expect("start");
        let h = app().json(rt.handle());
        let accounts = 5;
        for a in 0..accounts {
            h.invoke_blocking("Counter", &a.to_string(), "add", serde_json::json!(100))
                .expect("ok");
        }
        let mut rxs = Vec::new();
        for i in 0..2000u64 {
            let from = (i % accounts).to_string();
            let to = ((i * 7 + 1) % accounts).to_string();
            let (l, hd, key, args) = h
                .prepare(
                    "Mover",
                    &format!("m{i}"),
                    "transfer",
                    serde_json::json!({"from": from, "to": to, "amount": 3}),
                )
                .expect("prepare");
            rxs.push(h.handle().submit(l, key, hd, args, None).expect("submit"));
        }
        let mut ok = 0;
        for rx in rxs {
            let resp = rx.blocking_recv().expect("answered");
            if resp.result.as_ref().is_ok_and(|o| o.ok) {
                ok += 1;
            }
        }
        let total: i64 = (0..accounts).map(|a| get(&h, &a.to_string())).sum();
        assert_eq!(
            total,
            100 * accounts as i64,
            "money conserved with {workers} workers"
        );
        assert!(ok > 0);
        let m = h.handle().metrics();
        eprintln!(
            "{workers} workers: {ok} of 2000 transfers succeeded; {} lock waits, {} aborts and retries",
            m.lock_waits.load(std::sync::atomic::Ordering::Relaxed),
            m.aborts.load(std::sync::atomic::Ordering::Relaxed)
        );
        drop(h);
        rt.shutdown();
    }
}

#[test]
fn sequential_latency_probe() {
    let rt = app().start(Config::in_memory(2)).expect("start");
    let h = app().json(rt.handle());
    let t = std::time::Instant::now();
    for _ in 0..100 {
        get(&h, "lat");
    }
    eprintln!("100 sequential invokes: {:?}", t.elapsed());
    let t = std::time::Instant::now();
    rt.shutdown();
    eprintln!("shutdown: {:?}", t.elapsed());
}

#[test]
fn durable_state_survives_restarts_with_other_worker_counts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let keys: Vec<String> = (0..50).map(|i| format!("k{i}")).collect();
    {
        let rt = app().start(Config::durable(dir.path(), 2)).expect("start");
        let h = app().json(rt.handle());
        for (i, k) in keys.iter().enumerate() {
            h.invoke_blocking("Counter", k, "add", serde_json::json!(i as i64 + 1))
                .expect("ok");
        }
        drop(h);
        rt.shutdown();
    }
    for workers in [1, 4, 2] {
        let rt = app()
            .start(Config::durable(dir.path(), workers))
            .expect("restart");
        let h = app().json(rt.handle());
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(get(&h, k), i as i64 + 1, "{k} with {workers} workers");
        }
        drop(h);
        rt.shutdown();
    }
}

#[test]
fn idempotency_key_returns_the_stored_response() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = app().start(Config::durable(dir.path(), 2)).expect("start");
    let h = app().json(rt.handle());
    let (l, hd, key, args) = h
        .prepare("Counter", "idem", "add", serde_json::json!(5))
        .expect("prepare");
    let first = h
        .handle()
        .submit(l, key.clone(), hd, args.clone(), Some("req-1".into()))
        .expect("submit")
        .blocking_recv()
        .expect("answer");
    let again = h
        .handle()
        .submit(l, key, hd, args, Some("req-1".into()))
        .expect("submit")
        .blocking_recv()
        .expect("answer");
    assert_eq!(first, again);
    assert_eq!(get(&h, "idem"), 5, "the retried request did not run again");
    drop(h);
    rt.shutdown();
    // Also after a restart.
    let rt = app()
        .start(Config::durable(dir.path(), 1))
        .expect("restart");
    let h = app().json(rt.handle());
    let (l, hd, key, args) = h
        .prepare("Counter", "idem", "add", serde_json::json!(5))
        .expect("prepare");
    let after = h
        .handle()
        .submit(l, key, hd, args, Some("req-1".into()))
        .expect("submit")
        .blocking_recv()
        .expect("answer");
    assert_eq!(first.result, after.result);
    assert_eq!(get(&h, "idem"), 5);
}

#[test]
fn a_response_is_released_only_after_its_commit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = app().start(Config::durable(dir.path(), 2)).expect("start");
    let h = app().json(rt.handle());
    let log_dir = rt.handle().data_dir().expect("on disk").join("log");
    for i in 0..100 {
        let (l, hd, key, args) = h
            .prepare(
                "Counter",
                &format!("c{}", i % 7),
                "add",
                serde_json::json!(1),
            )
            .expect("prepare");
        let resp = h
            .handle()
            .submit(l, key, hd, args, None)
            .expect("submit")
            .blocking_recv()
            .expect("answer");
        // The answer's completion is in a record of the commit log already (read from the
        // files, not through the engine).
        let logged = stateful_runtime::storage::log::read_log(&log_dir)
            .expect("log readable")
            .iter()
            .any(|r| r.completions.iter().any(|c| c.request.seq == resp.seq));
        assert!(
            logged,
            "request {} was answered before its commit was in the log",
            resp.seq
        );
    }
}

#[test]
fn overload_is_refused_with_a_clear_error_and_changes_nothing() {
    let mut config = Config::in_memory(1);
    config.max_in_flight = 2;
    let rt = app().start(config).expect("start");
    let h = app().json(rt.handle());
    let (l, hd, key, args) = h
        .prepare("Counter", "busy", "add", serde_json::json!(1))
        .expect("prepare");
    // Answers take at least one commit interval, so the first two are still in flight.
    let a = h
        .handle()
        .submit(l, key.clone(), hd, args.clone(), None)
        .expect("admitted");
    let b = h
        .handle()
        .submit(l, key.clone(), hd, args.clone(), None)
        .expect("admitted");
    let refused = h.handle().submit(l, key.clone(), hd, args.clone(), None);
    assert!(
        matches!(refused, Err(stateful_runtime::InvokeError::Overloaded(_))),
        "{refused:?}"
    );
    a.blocking_recv().expect("answered");
    b.blocking_recv().expect("answered");
    assert_eq!(get(&h, "busy"), 2, "the refused request did not run");
}

#[test]
fn undecodable_arguments_and_keys_fail_the_request_and_change_nothing() {
    let rt = app().start(Config::in_memory(2)).expect("start");
    let h = app().json(rt.handle());
    let (l, hd, key, _) = h
        .prepare("Counter", "bad", "add", serde_json::json!(1))
        .expect("prepare");
    let resp = h
        .handle()
        .submit(l, key.clone(), hd, vec![0xff, 0xff, 0xff], None)
        .expect("admitted")
        .blocking_recv()
        .expect("answered");
    assert!(matches!(resp.result, Err(CallError::Codec(_))), "{resp:?}");
    let resp = h
        .handle()
        .submit(l, vec![0xff, 0xff, 0xff, 0xff, 0xff], hd, vec![2], None)
        .expect("admitted")
        .blocking_recv()
        .expect("answered");
    assert!(matches!(resp.result, Err(CallError::Codec(_))), "{resp:?}");
    assert!(
        h.handle().submit(l, key.clone(), 99, vec![], None).is_err(),
        "unknown handler"
    );
    assert!(
        h.handle().submit(99, key, 0, vec![], None).is_err(),
        "unknown lambda"
    );
    assert_eq!(get(&h, "bad"), 0);
}

#[test]
fn history_and_state_at_match_what_the_service_answered() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = app().start(Config::durable(dir.path(), 2)).expect("start");
    let h = app().json(rt.handle());
    // Epochs are the unix µs at which they opened.
    let now_us = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(0)
    };
    let before = now_us() - 1;
    let mut seen = Vec::new();
    for i in 1..=6 {
        let v = match h
            .invoke_blocking("Counter", "tt", "add", serde_json::json!(i))
            .expect("answered")
        {
            JsonResponse::Ok(v) => v,
            other => panic!("{other:?}"),
        };
        // The answer came after its commit epoch, and the next request commits later.
        seen.push((now_us() - 1, std::time::Instant::now(), v));
    }
    let (app, store, groups) = (
        h.app(),
        h.handle().store().as_ref(),
        h.handle().key_groups(),
    );
    use stateful_runtime::views;
    let versions = views::history(app, store, groups, "Counter", "tt", (0, 1))
        .expect("readable")
        .versions;
    let values: Vec<_> = versions.iter().map(|v| v.state["n"].clone()).collect();
    let answered: Vec<_> = seen.iter().map(|(_, _, v)| v.clone()).collect();
    assert_eq!(values, answered, "one version per committed change");
    assert!(versions.windows(2).all(|w| w[0].epoch < w[1].epoch));
    // At a version's epoch the state is that version; just before it, the one before.
    let mut previous = serde_json::Value::Null;
    for v in &versions {
        let at = |e: u64| {
            let s = views::state(app, store, groups, "Counter", "tt", Some(&e.to_string()));
            s.expect("readable")
        };
        assert_eq!(at(v.epoch), v.state, "state at its epoch {}", v.epoch);
        assert_eq!(at(v.epoch - 1), previous, "state before epoch {}", v.epoch);
        previous = v.state.clone();
    }
    // A time read off the wall clock right after an answer shows that answer, unless the
    // wall clock stepped meanwhile (epochs are wall-clock µs, kept increasing).
    let stepped = seen.windows(2).any(|w| {
        let wall = w[1].0.abs_diff(w[0].0);
        let steady = w[1].1.duration_since(w[0].1).as_micros() as u64;
        wall.abs_diff(steady) > 2_000
    });
    if stepped {
        eprintln!("skipped the wall-clock check: the wall clock stepped during the test");
    }
    let epochs: Vec<_> = versions.iter().map(|v| v.epoch).collect();
    for (at, _, answered) in seen.iter().filter(|_| !stepped) {
        let at = at.to_string();
        let state = views::state(app, store, groups, "Counter", "tt", Some(&at)).expect("readable");
        assert_eq!(&state["n"], answered, "state at {at}; epochs {epochs:?}");
    }
    // Before the first write there is nothing; bad input is a clear error.
    let before = before.to_string();
    let none = views::state(app, store, groups, "Counter", "tt", Some(&before)).expect("readable");
    assert_eq!(none, serde_json::Value::Null);
    assert!(views::history(app, store, groups, "Nope", "tt", (0, 1)).is_err());
    use stateful_runtime::tools::at::parse_at;
    assert!(parse_at("yesterday").is_err());
    assert_eq!(parse_at("1970-01-01T00:00:01Z").ok(), Some(1_000_000));
}

#[test]
fn an_idle_engine_commits_nothing_and_its_operators_handle_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = app().start(Config::durable(dir.path(), 2)).expect("start");
    let h = app().json(rt.handle());
    h.invoke_blocking("Counter", "idle", "add", serde_json::json!(1))
        .expect("answered");
    // Let the last commit and the wake-ups after it settle.
    std::thread::sleep(std::time::Duration::from_millis(200));
    let activity = || {
        let m = rt.handle();
        let m = m.metrics();
        let messages: u64 = m
            .operators
            .iter()
            .map(|o| o.messages.load(std::sync::atomic::Ordering::Relaxed))
            .sum();
        (
            m.commits.load(std::sync::atomic::Ordering::Relaxed),
            messages,
        )
    };
    let before = activity();
    std::thread::sleep(std::time::Duration::from_millis(1000));
    assert_eq!(
        activity(),
        before,
        "(commits, operator messages) moved while idle"
    );
    // And it still answers at once.
    let r = h
        .invoke_blocking("Counter", "idle", "add", serde_json::json!(1))
        .expect("answered");
    assert_eq!(r, JsonResponse::Ok(serde_json::json!(2)));
    assert!(activity().0 > before.0);
}
