//! What `transaction!` means: the paper's Listing 1 ported, and aborts caused by panics, by an
//! explicit abort and by a rejection three calls deep; nested blocks as savepoints; no hidden
//! rollback outside a block.
#![allow(missing_docs)]

use serde_json::{Value, json};
use stateful_runtime::{CallError, Config, JsonClient as Handle, JsonResponse};

/// The paper's Listing 1 in the function form: the input events carry their keys.
#[stateful_runtime::app]
pub mod listing1 {
    use stateful_runtime::prelude::*;

    /// An order was initiated (keyed by the order id).
    #[derive(Debug, Clone, Serialize, Deserialize, Keyed)]
    pub struct OrderInitiated {
        #[key]
        pub order_id: String,
        pub user_id: String,
        pub amount: i64,
        /// Makes the state update after the payment fail (the paper's failure case).
        pub fail_update: bool,
    }

    /// Ask a wallet for money (keyed by the user).
    #[derive(Debug, Clone, Serialize, Deserialize, Keyed)]
    pub struct PaymentRequested {
        pub order_id: String,
        #[key]
        pub user_id: String,
        pub amount: i64,
    }

    /// The payment went through.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct PaymentApproved {
        pub order_id: String,
        pub credit_left: i64,
    }

    /// A user's wallet.
    #[derive(Debug, Default, Clone, Serialize, Deserialize)]
    pub struct Wallet {
        pub credit: i64,
    }

    /// The order's summary.
    #[derive(Debug, Default, Clone, Serialize, Deserialize)]
    pub struct OrderSummary {
        pub placed: bool,
        pub amount: i64,
    }

    /// The outcome of an order.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub enum OrderProcessed {
        OrderPlaced(String),
        OrderRejected(String),
    }

    #[lambda]
    async fn order_payment(
        ctx: &mut Ctx<Wallet>,
        req: PaymentRequested,
    ) -> Result<PaymentApproved, Rejection> {
        if ctx.state().credit < req.amount {
            return Err(Rejection::new("insufficient credit"));
        }
        // A negative amount is a refund (how the test funds a wallet).
        ctx.state_mut().credit -= req.amount;
        Ok(PaymentApproved {
            order_id: req.order_id,
            credit_left: ctx.state().credit,
        })
    }

    #[lambda]
    async fn create_order(
        ctx: &mut Ctx<OrderSummary>,
        o: OrderInitiated,
    ) -> Result<OrderProcessed, Rejection> {
        let id = o.order_id.clone();
        transaction! {
            let approved = ctx
                .invoke::<OrderPayment>(PaymentRequested {
                    order_id: o.order_id.clone(),
                    user_id: o.user_id.clone(),
                    amount: o.amount,
                })
                .await?;
            *ctx.state_mut() = OrderSummary { placed: true, amount: o.amount };
            if o.fail_update {
                Err(Rejection::new("the state update failed"))?;
            }
            Ok(OrderProcessed::OrderPlaced(approved.order_id))
        }
        .on_failure_return(Ok(OrderProcessed::OrderRejected(id)))
    }
}

/// Chains, panics, explicit aborts and savepoints.
#[stateful_runtime::app]
pub mod chain {
    use stateful_runtime::prelude::*;

    /// A counter.
    #[derive(Debug, Default, Clone, Serialize, Deserialize)]
    pub struct Count {
        pub n: i64,
    }

    #[lambda(key = String, state = Count)]
    impl Cell {
        async fn get(ctx: &mut Ctx<Self>) -> Result<i64, Rejection> {
            Ok(ctx.state().n)
        }

        async fn bump(ctx: &mut Ctx<Self>) -> Result<i64, Rejection> {
            ctx.state_mut().n += 1;
            Ok(ctx.state().n)
        }

        /// Bumps itself, then the next cell of `path`; the last one does `last`.
        async fn bump_chain(
            ctx: &mut Ctx<Self>,
            path: Vec<String>,
            last: String,
        ) -> Result<i64, Rejection> {
            ctx.state_mut().n += 1;
            match path.split_first() {
                Some((next, rest)) => ctx.call::<Cell>(next).bump_chain(rest.to_vec(), last).await,
                None => match last.as_str() {
                    "reject" => Err(Rejection::new("rejected at the end of the chain")),
                    "panic" => panic!("the last callee panics"),
                    _ => Ok(ctx.state().n),
                },
            }
        }

        /// A block that calls a chain and fails as told.
        async fn atomic(
            ctx: &mut Ctx<Self>,
            path: Vec<String>,
            last: String,
            abort: bool,
        ) -> Result<String, Rejection> {
            transaction! {
                ctx.state_mut().n += 100;
                ctx.call::<Cell>(&path[0]).bump_chain(path[1..].to_vec(), last).await?;
                if abort {
                    Err(Rejection::new("explicit abort"))?;
                }
                Ok("committed".to_owned())
            }
            .on_failure_return(Ok("rolled back".to_owned()))
        }

        /// An outer block with an inner block that fails: a savepoint.
        async fn savepoint(ctx: &mut Ctx<Self>, a: String, b: String) -> Result<String, Rejection> {
            transaction! {
                ctx.call::<Cell>(&a).bump().await?;
                let inner: Result<String, Rejection> = transaction! {
                    ctx.call::<Cell>(&b).bump().await?;
                    Err(Rejection::new("inner fails"))?;
                    Ok("inner committed".to_owned())
                }
                .on_failure_return(Ok("inner rolled back".to_owned()));
                ctx.state_mut().n += 1;
                inner
            }
            .on_failure_return(Ok("outer rolled back".to_owned()))
        }

        /// Two calls in parallel inside a block: if either fails, both are undone.
        async fn both(
            ctx: &mut Ctx<Self>,
            a: String,
            b: String,
            fail_b: bool,
        ) -> Result<String, Rejection> {
            let last = if fail_b { "reject" } else { "ok" }.to_owned();
            transaction! {
                let (x, y) = join!(
                    ctx.call::<Cell>(&a).bump(),
                    ctx.call::<Cell>(&b).bump_chain(Vec::new(), last)
                );
                x?;
                y?;
                Ok("both".to_owned())
            }
            .on_failure_return(Ok("rolled back".to_owned()))
        }

        /// No block: the first call's effect stays when the second fails.
        async fn no_block(ctx: &mut Ctx<Self>, a: String, b: String) -> Result<i64, Rejection> {
            ctx.call::<Cell>(&a).bump().await?;
            ctx.call::<Cell>(&b)
                .bump_chain(Vec::new(), "reject".to_owned())
                .await
        }
    }
}

fn ok(h: &Handle, lambda: &str, key: &str, handler: &str, args: Value) -> Value {
    match h.invoke_blocking(lambda, key, handler, args) {
        Ok(JsonResponse::Ok(v)) => v,
        other => panic!("{lambda}/{key}/{handler}: {other:?}"),
    }
}

#[test]
fn listing1_places_orders_and_rolls_back_the_payment_when_the_update_fails() {
    for workers in [1, 2] {
        let rt = listing1::app()
            .start(Config::in_memory(workers))
            .expect("start");
        let h = listing1::app().json(rt.handle());
        let event = |amount: i64| json!({"order_id": "x", "user_id": "alice", "amount": amount});
        let pay = |h: &Handle, amount: i64| {
            ok(
                h,
                "OrderPayment",
                "alice",
                "order_payment",
                json!({"req": event(amount)}),
            )["credit_left"]
                .clone()
        };
        assert_eq!(pay(&h, -50), json!(50));
        let order = |id: &str, amount: i64, fail: bool| json!({"o": {"order_id": id, "user_id": "alice", "amount": amount, "fail_update": fail}});
        // Success: paid and placed.
        assert_eq!(
            ok(
                &h,
                "CreateOrder",
                "o1",
                "create_order",
                order("o1", 20, false)
            ),
            json!({"OrderPlaced": "o1"})
        );
        let wallet = |h: &Handle| pay(h, 0);
        assert_eq!(wallet(&h), json!(30));
        // The payment succeeds, then the state update fails: the payment is rolled back.
        assert_eq!(
            ok(
                &h,
                "CreateOrder",
                "o2",
                "create_order",
                order("o2", 10, true)
            ),
            json!({"OrderRejected": "o2"})
        );
        assert_eq!(wallet(&h), json!(30), "the payment was undone");
        let summary = |id: &str| {
            stateful_runtime::views::state(
                h.app(),
                h.handle().store().as_ref(),
                h.handle().key_groups(),
                "CreateOrder",
                id,
                None,
            )
            .expect("readable")
        };
        assert_eq!(summary("o1")["placed"], json!(true));
        assert_ne!(
            summary("o2")["placed"],
            json!(true),
            "the summary update was undone"
        );
        // The payment itself is rejected: nothing changes either.
        assert_eq!(
            ok(
                &h,
                "CreateOrder",
                "o3",
                "create_order",
                order("o3", 1000, false)
            ),
            json!({"OrderRejected": "o3"})
        );
        assert_eq!(wallet(&h), json!(30));
        drop(h);
        rt.shutdown();
    }
}

fn cell(h: &Handle, k: &str) -> i64 {
    ok(h, "Cell", k, "get", Value::Null)
        .as_i64()
        .expect("a number")
}

#[test]
fn a_rejection_three_calls_deep_rolls_back_every_level() {
    let rt = chain::app().start(Config::in_memory(2)).expect("start");
    let h = chain::app().json(rt.handle());
    let r = ok(
        &h,
        "Cell",
        "root",
        "atomic",
        json!({"path": ["a", "b", "c"], "last": "reject", "abort": false}),
    );
    assert_eq!(r, json!("rolled back"));
    for k in ["root", "a", "b", "c"] {
        assert_eq!(cell(&h, k), 0, "{k} unchanged");
    }
    let r = ok(
        &h,
        "Cell",
        "root",
        "atomic",
        json!({"path": ["a", "b", "c"], "last": "ok", "abort": false}),
    );
    assert_eq!(r, json!("committed"));
    assert_eq!(["root", "a", "b", "c"].map(|k| cell(&h, k)), [100, 1, 1, 1]);
}

fn expect_panicked(r: Result<JsonResponse, stateful_runtime::InvokeError>) {
    match r {
        Ok(JsonResponse::Failed(CallError::Panicked(msg))) => {
            assert!(msg.contains("panics"), "{msg}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_panic_fails_the_whole_request_and_undoes_everything_it_did() {
    let rt = chain::app().start(Config::in_memory(2)).expect("start");
    let h = chain::app().json(rt.handle());
    // Inside a block: the block does not turn the panic into its failure value.
    expect_panicked(h.invoke_blocking(
        "Cell",
        "root",
        "atomic",
        json!({"path": ["a", "b"], "last": "panic", "abort": false}),
    ));
    for k in ["root", "a", "b"] {
        assert_eq!(cell(&h, k), 0, "{k} unchanged");
    }
    // Outside any block: every instance the chain bumped before the panic is back too.
    expect_panicked(h.invoke_blocking(
        "Cell",
        "p",
        "bump_chain",
        json!({"path": ["q", "r"], "last": "panic"}),
    ));
    for k in ["p", "q", "r"] {
        assert_eq!(cell(&h, k), 0, "{k} unchanged");
    }
    assert_eq!(
        ok(&h, "Cell", "z", "bump", Value::Null),
        json!(1),
        "still serving"
    );
    assert_eq!(
        ok(&h, "Cell", "p", "bump", Value::Null),
        json!(1),
        "the same instances too"
    );
}

#[test]
fn an_explicit_abort_rolls_back_everything_the_block_did() {
    let rt = chain::app().start(Config::in_memory(2)).expect("start");
    let h = chain::app().json(rt.handle());
    let r = ok(
        &h,
        "Cell",
        "root",
        "atomic",
        json!({"path": ["a", "b"], "last": "ok", "abort": true}),
    );
    assert_eq!(r, json!("rolled back"));
    for k in ["root", "a", "b"] {
        assert_eq!(cell(&h, k), 0, "{k} unchanged");
    }
}

#[test]
fn nested_blocks_are_savepoints() {
    let rt = chain::app().start(Config::in_memory(2)).expect("start");
    let h = chain::app().json(rt.handle());
    let r = ok(&h, "Cell", "root", "savepoint", json!({"a": "a", "b": "b"}));
    assert_eq!(r, json!("inner rolled back"));
    assert_eq!(cell(&h, "a"), 1, "the outer block's call stays");
    assert_eq!(cell(&h, "b"), 0, "the inner block's call is undone");
    assert_eq!(cell(&h, "root"), 1, "the outer block's own write stays");
}

#[test]
fn outside_a_block_a_failed_call_keeps_the_other_effects() {
    let rt = chain::app().start(Config::in_memory(2)).expect("start");
    let h = chain::app().json(rt.handle());
    match h.invoke_blocking("Cell", "root", "no_block", json!({"a": "a", "b": "b"})) {
        Ok(JsonResponse::Rejected { message, .. }) => {
            assert!(message.contains("rejected"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        cell(&h, "a"),
        1,
        "no hidden rollback of a callee that succeeded"
    );
    assert_eq!(
        cell(&h, "b"),
        0,
        "a rejected invocation takes back its own write"
    );
}

#[test]
fn parallel_calls_in_a_block_commit_together_or_not_at_all() {
    let rt = chain::app().start(Config::in_memory(2)).expect("start");
    let h = chain::app().json(rt.handle());
    let r = ok(
        &h,
        "Cell",
        "root",
        "both",
        json!({"a": "p", "b": "q", "fail_b": false}),
    );
    assert_eq!(r, json!("both"));
    assert_eq!((cell(&h, "p"), cell(&h, "q")), (1, 1));
    let r = ok(
        &h,
        "Cell",
        "root",
        "both",
        json!({"a": "p", "b": "q", "fail_b": true}),
    );
    assert_eq!(r, json!("rolled back"));
    assert_eq!(
        (cell(&h, "p"), cell(&h, "q")),
        (1, 1),
        "both calls were undone"
    );
}
