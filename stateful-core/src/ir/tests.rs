//! Tests of the IR builder, the rules and the topology, on a small shop.

use super::*;

fn handler(name: &str, params: &[(&str, &str)], output: &str) -> Handler {
    Handler {
        name: name.into(),
        params: params
            .iter()
            .map(|(n, t)| Param {
                name: (*n).into(),
                ty: (*t).into(),
            })
            .collect(),
        output: output.into(),
        route: None,
        public: true,
    }
}

/// A small shop: Order::checkout calls Stock::subtract and Payment::pay inside a
/// transaction.
pub(crate) fn shop() -> AppGraph {
    let mut g = AppGraph::new("shop");
    let lambda = |name: &str, handlers| LambdaNode {
        name: name.into(),
        form: Form::Entity,
        key: "String".into(),
        state: format!("{name}State"),
        handlers,
    };
    let mut subtract = handler("subtract", &[("amount", "i64")], "Result<(), ShopError>");
    subtract.route = Some(Route {
        method: "POST".into(),
        path: "/stock/subtract/{key}/{amount}".into(),
    });
    g.add_lambda(lambda("Stock", vec![subtract]));
    g.add_lambda(lambda(
        "Payment",
        vec![handler(
            "pay",
            &[("amount", "i64")],
            "Result<(), ShopError>",
        )],
    ));
    let order = g
        .add_lambda(lambda(
            "Order",
            vec![handler("checkout", &[], "Result<(), ShopError>")],
        ))
        .0;
    let tx = g.add_and(
        order,
        AndNode {
            kind: AndKind::Transaction,
            lambda: "Order".into(),
            handler: "checkout".into(),
            line: 42,
        },
    );
    g.add_call(CallSpec {
        caller: order,
        from: tx,
        caller_handler: "checkout",
        callee: "Stock",
        handler: Some("subtract"),
        given: 1,
        in_transaction: true,
    })
    .expect("valid call");
    g.add_call(CallSpec {
        caller: order,
        from: tx,
        caller_handler: "checkout",
        callee: "Payment",
        handler: Some("pay"),
        given: 1,
        in_transaction: true,
    })
    .expect("valid call");
    g
}

#[test]
fn shop_is_valid_and_cyclic_through_replies() {
    let g = shop();
    assert_eq!(g.validate(), vec![]);
    assert!(g.has_cycle());
    assert!(!g.has_call_cycle());
}

#[test]
fn unknown_callee_suggests_a_name() {
    let mut g = shop();
    let (order, _) = g.lambda("Order").expect("order");
    let err = g
        .add_call(CallSpec {
            caller: order,
            from: order,
            caller_handler: "checkout",
            callee: "Stok",
            handler: Some("subtract"),
            given: 1,
            in_transaction: false,
        })
        .expect_err("unknown lambda");
    assert_eq!(
        err.to_string(),
        "no lambda named `Stok` in app `shop`; did you mean `Stock`?"
    );
}

#[test]
fn unknown_handler_and_arity_are_errors() {
    let mut g = shop();
    let (order, _) = g.lambda("Order").expect("order");
    let err = g
        .add_call(CallSpec {
            caller: order,
            from: order,
            caller_handler: "checkout",
            callee: "Stock",
            handler: Some("substract"),
            given: 1,
            in_transaction: false,
        })
        .expect_err("unknown handler");
    assert_eq!(
        err.to_string(),
        "lambda `Stock` has no handler `substract`; did you mean `subtract`?"
    );
    let err = g
        .add_call(CallSpec {
            caller: order,
            from: order,
            caller_handler: "checkout",
            callee: "Stock",
            handler: Some("subtract"),
            given: 2,
            in_transaction: false,
        })
        .expect_err("arity");
    assert_eq!(
        err,
        IrError::Arity {
            lambda: "Stock".into(),
            handler: "subtract".into(),
            expected: 1,
            params: "amount: i64".into(),
            given: 2
        }
    );
}

#[test]
fn validate_reports_duplicates_and_detached_blocks() {
    let mut g = shop();
    // As a graph read back from JSON could be: the builder would refuse these.
    g.graph.add_node(Node::Lambda(LambdaNode {
        name: "Stock".into(),
        form: Form::Function,
        key: "String".into(),
        state: "()".into(),
        handlers: vec![handler("a", &[], "R"), handler("a", &[], "R")],
    }));
    g.graph.add_node(Node::And(AndNode {
        kind: AndKind::Join,
        lambda: "Stock".into(),
        handler: "a".into(),
        line: 1,
    }));
    let errors = g.validate();
    assert_eq!(errors.len(), 3, "{errors:?}");
    assert!(errors.contains(&IrError::DuplicateLambda("Stock".into())));
}

#[test]
fn call_cycles_are_detected() {
    let mut g = AppGraph::new("ping");
    let a = g
        .add_lambda(LambdaNode {
            name: "A".into(),
            form: Form::Entity,
            key: "u64".into(),
            state: "()".into(),
            handlers: vec![handler("ping", &[], "Result<(), Rejection>")],
        })
        .0;
    let b = g
        .add_lambda(LambdaNode {
            name: "B".into(),
            form: Form::Entity,
            key: "u64".into(),
            state: "()".into(),
            handlers: vec![handler("pong", &[], "Result<(), Rejection>")],
        })
        .0;
    g.add_call(CallSpec {
        caller: a,
        from: a,
        caller_handler: "ping",
        callee: "B",
        handler: Some("pong"),
        given: 0,
        in_transaction: false,
    })
    .expect("a→b");
    assert!(!g.has_call_cycle());
    g.add_call(CallSpec {
        caller: b,
        from: b,
        caller_handler: "pong",
        callee: "A",
        handler: Some("ping"),
        given: 0,
        in_transaction: false,
    })
    .expect("b→a");
    assert!(g.has_call_cycle());
}

#[test]
fn json_round_trips() {
    let g = shop();
    let back = AppGraph::from_json(&g.to_json()).expect("parses");
    assert_eq!(back.to_json(), g.to_json());
    assert_eq!(back.lambdas().count(), 3);
}

#[test]
fn did_you_mean_needs_a_close_name() {
    assert_eq!(
        did_you_mean("paymnt", ["Payment", "Stock"]),
        Some("Payment".into())
    );
    assert_eq!(did_you_mean("Zebra", ["Payment", "Stock"]), None);
    assert_eq!(edit_distance("kitten", "sitting"), 3);
}

#[test]
fn shop_json_snapshot() {
    insta::assert_snapshot!(shop().to_json());
}

#[test]
fn the_builder_reports_duplicates_and_validate_agrees() {
    let mut g = shop();
    let (_, errors) = g.add_lambda(LambdaNode {
        name: "Stock".into(),
        form: Form::Entity,
        key: "String".into(),
        state: "()".into(),
        handlers: vec![handler("a", &[], "R"), handler("a", &[], "R")],
    });
    assert_eq!(
        errors,
        [
            IrError::DuplicateLambda("Stock".into()),
            IrError::DuplicateHandler {
                lambda: "Stock".into(),
                handler: "a".into()
            }
        ]
    );
    assert_eq!(g.validate(), errors, "validate applies the same rules");
    assert_eq!(
        errors[0].to_string(),
        "lambda `Stock` is defined twice in this app"
    );
}

#[test]
fn calls_must_match_the_callee_form() {
    let mut g = shop();
    let (order, _) = g.lambda("Order").expect("order");
    let err = g
        .add_call(CallSpec {
            caller: order,
            from: order,
            caller_handler: "checkout",
            callee: "Stock",
            handler: None,
            given: 1,
            in_transaction: false,
        })
        .expect_err("an entity is not invoked");
    assert!(err.to_string().contains("is an entity lambda"), "{err}");
}

#[test]
fn topology_links_what_reaches_and_nothing_else() {
    let t = shop().topology();
    assert_eq!(t.names, ["Stock", "Payment", "Order"]);
    let (stock, payment, order) = (0, 1, 2);
    assert!(t.reaches(order, stock) && t.reaches(order, payment));
    assert!(!t.reaches(stock, order));
    assert!(!t.linked(stock, payment), "stock and payment never talk");
    assert_eq!(t.links(stock), [stock, order]);
    assert_eq!(t.links(order), [stock, payment, order]);
    assert_eq!(t.participants(order), [stock, payment, order]);
    assert_eq!(t.participants(stock), [stock]);
    assert_eq!(t.channels().len(), 7);
}

#[test]
fn topology_follows_chains_transitively() {
    let mut g = AppGraph::new("chain");
    let node = |name: &str, h: &str| LambdaNode {
        name: name.into(),
        form: Form::Entity,
        key: "u64".into(),
        state: "()".into(),
        handlers: vec![handler(h, &[], "R")],
    };
    let (a, _) = g.add_lambda(node("A", "a"));
    let (b, _) = g.add_lambda(node("B", "b"));
    g.add_lambda(node("C", "c"));
    g.add_lambda(node("D", "d"));
    for (caller, from, h, callee, ch) in [(a, a, "a", "B", "b"), (b, b, "b", "C", "c")] {
        g.add_call(CallSpec {
            caller,
            from,
            caller_handler: h,
            callee,
            handler: Some(ch),
            given: 0,
            in_transaction: false,
        })
        .expect("call");
    }
    let t = g.topology();
    assert!(t.reaches(0, 2), "A reaches C through B");
    assert!(t.linked(2, 0));
    assert_eq!(t.links(3), [3], "D talks only to itself");
    assert_eq!(t.participants(0), [0, 1, 2]);
}

#[test]
fn the_drawing_has_one_ingress_edge_per_lambda_and_merges_equal_calls() {
    let mut g = shop();
    let (order, _) = g.lambda("Order").expect("order");
    // The same call written twice more (outside the block).
    for _ in 0..2 {
        g.add_call(CallSpec {
            caller: order,
            from: order,
            caller_handler: "checkout",
            callee: "Payment",
            handler: Some("pay"),
            given: 1,
            in_transaction: false,
        })
        .expect("valid call");
    }
    g.add_lambda(LambdaNode {
        name: "Catalog".into(),
        form: Form::Entity,
        key: "String".into(),
        state: "CatalogState".into(),
        handlers: vec![
            handler("list", &[], "Result<(), E>"),
            handler("find", &[], "Result<(), E>"),
            handler("count", &[], "Result<(), E>"),
        ],
    });
    let dot = crate::dot::render(&g);
    let from_ingress = dot.matches("\"ingress\" -> ").count();
    assert_eq!(from_ingress, 4, "one per lambda: {dot}");
    assert!(dot.contains("list, find, count"), "{dot}");
    assert!(dot.contains("checkout → pay(i64) ×2"), "{dot}");
    assert_eq!(
        dot.matches("checkout → pay(i64)").count(),
        2,
        "in the block and outside"
    );
}

/// Ten lambdas of four handlers each, four calls deep: a gateway over orders, users and a
/// catalog; orders over stock, payment (over a ledger and fraud checks) and shipping (over
/// notifications). The size a screen must hold.
pub(crate) fn ten_lambdas() -> AppGraph {
    let mut g = AppGraph::new("market");
    let calls: [(&str, &[&str]); 10] = [
        ("Gateway", &["Orders", "Users", "Catalog"]),
        ("Orders", &["Stock", "Payment", "Shipping"]),
        ("Users", &[]),
        ("Catalog", &[]),
        ("Stock", &[]),
        ("Payment", &["Ledger", "Fraud"]),
        ("Shipping", &["Notify"]),
        ("Ledger", &[]),
        ("Fraud", &[]),
        ("Notify", &[]),
    ];
    let mut nodes = Vec::new();
    for (name, _) in &calls {
        let handlers = ["create", "update", "cancel", "find"]
            .iter()
            .map(|h| {
                handler(
                    h,
                    &[("id", "String"), ("amount", "i64")],
                    "Result<u64, Rejection>",
                )
            })
            .collect();
        let node = LambdaNode {
            name: (*name).into(),
            form: Form::Entity,
            key: "String".into(),
            state: format!("{name}State"),
            handlers,
        };
        nodes.push(g.add_lambda(node).0);
    }
    for ((caller, callees), node) in calls.iter().zip(&nodes) {
        for callee in *callees {
            let call = CallSpec {
                caller: *node,
                from: *node,
                caller_handler: "create",
                callee,
                handler: Some("update"),
                given: 2,
                in_transaction: false,
            };
            assert_eq!(g.add_call(call), Ok(()), "{caller} → {callee}");
        }
    }
    g
}
