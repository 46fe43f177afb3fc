//! The HTTP contract of a generated service, against the real `fixture` binary: `/invoke`,
//! routes with `{key}`, typed parameters and fresh ids, `/state`, `/healthz`, `/metrics`,
//! `/graph` (DOT and SVG) and the `graph` command; the status of every kind of failure (400
//! with the error value for a rejection, 404, 405, 422, 500 for a panic) and that a failed
//! request changed nothing; all-or-nothing transactions; idempotency keys.
#![allow(missing_docs)]

use serde_json::{Value, json};
use stateful_tests::{Ledger, Server, TestDir};

const FIXTURE: &str = env!("CARGO_BIN_EXE_fixture");

/// A service and the directory it lives in (kept alive as long as the service).
fn fixture() -> (TestDir, Server) {
    let mut dir = TestDir::new(FIXTURE);
    let s = dir.start();
    (dir, s)
}

/// A snapshot of the committed state of the instances a test touches.
fn snapshot(s: &Server, instances: &[(&str, &str)]) -> Vec<Value> {
    instances.iter().map(|(l, k)| s.state(l, k)).collect()
}

#[test]
fn generic_invoke_health_metrics_graph_and_state() {
    let (_dir, s) = fixture();
    let acct = s.create_account(0);
    assert_eq!(
        s.post_body(
            &format!("/invoke/Account/{acct}/deposit"),
            r#"{"amount": 12}"#
        )
        .ok(),
        json!(12)
    );
    assert_eq!(
        s.post(&format!("/invoke/Account/{acct}/balance")).ok(),
        json!({ "account": acct, "balance": 12 })
    );
    // A handler without a route but `#[public]` is reachable through /invoke.
    assert_eq!(
        s.post_body("/invoke/Account/sugar/open", r#"{"balance": 9}"#)
            .ok(),
        json!(null)
    );
    assert_eq!(
        s.get("/accounts/sugar").ok(),
        json!({ "account": "sugar", "balance": 9 })
    );
    assert_eq!(
        s.state("Account", "sugar"),
        json!({ "exists": true, "balance": 9 })
    );
    assert_eq!(
        s.state("Account", &acct),
        json!({ "exists": true, "balance": 12 })
    );
    assert_eq!(s.state("Account", "never-written"), json!(null));
    assert_eq!(s.state("Transfer", "never-run"), json!(null));

    // One rejection, for the 400 counter.
    s.get("/accounts/nobody").err(400);
    // Three client errors, for the 4xx counter: no such route, no such lambda, a bad body.
    s.post("/no/such/route").err(404);
    s.post("/invoke/Nope/1/get").err(404);
    assert_eq!(
        s.post_body("/invoke/Account/a/deposit", "{not json").status,
        422
    );

    let h = s.get("/healthz");
    assert_eq!((h.status, h.body.as_str()), (200, "ok\n"));

    let m = s.get("/metrics");
    assert_eq!(m.status, 200);
    assert!(
        m.content_type
            .as_deref()
            .is_some_and(|c| c.starts_with("text/plain"))
    );
    let counter = |class: &str| -> u64 {
        let prefix = format!("stateful_http_requests_total{{class=\"{class}\"}} ");
        m.body
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no {class} counter in {}", m.body))
    };
    // Invocations so far: create, deposit, balance, open, accounts/sugar (2xx); nobody (400);
    // the three above (4xx).
    assert_eq!(
        (
            counter("2xx"),
            counter("400"),
            counter("4xx"),
            counter("5xx")
        ),
        (5, 1, 3, 0),
        "{}",
        m.body
    );
    assert!(m.body.contains("# TYPE stateful_commits_total counter"));
    // Per operator (lambda × worker): the Account handlers ran, so some worker counts them.
    let account_invocations: u64 = m
        .body
        .lines()
        .filter(|l| l.starts_with("stateful_operator_invocations_total{lambda=\"Account\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert!(account_invocations >= 3, "{}", m.body);

    let g = s.get("/graph");
    assert_eq!(g.status, 200);
    assert!(g.body.contains("digraph"), "{}", g.body);
    for name in ["Account", "Transfer"] {
        assert!(g.body.contains(name), "{name} missing from the DOT");
    }
    s.get("/graph?format=png").err(400);
}

#[test]
fn graph_svg_is_valid_svg_with_the_lambdas() {
    let (dir, s) = fixture();
    let r = s.get("/graph?format=svg");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.content_type.as_deref(), Some("image/svg+xml"));
    assert_svg(&r.body);

    let out = dir.run(&["graph"]);
    assert!(out.status.success());
    let dot = String::from_utf8(out.stdout).expect("utf-8");
    assert!(dot.contains("digraph"), "{dot}");

    let file = dir.data().with_file_name("graph.svg");
    let out = dir.run(&[
        "graph",
        "--format",
        "svg",
        "-o",
        file.to_str().expect("utf-8"),
    ]);
    assert!(out.status.success(), "{out:?}");
    assert_svg(&std::fs::read_to_string(&file).expect("graph.svg written"));
}

#[test]
fn graph_svg_needs_no_graphviz() {
    let (_dir, s) = fixture();
    let r = s.get("/graph?format=svg&layout=builtin");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.content_type.as_deref(), Some("image/svg+xml"));
    assert_svg(&r.body);
    s.get("/graph?format=svg&layout=sideways").err(400);
    // With `dot` not on the PATH, the CLI draws it with the built-in layout.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fixture"))
        .args(["graph", "--format", "svg"])
        .env("PATH", "/nonexistent")
        .output()
        .expect("runs");
    assert!(out.status.success(), "{out:?}");
    assert_svg(&String::from_utf8(out.stdout).expect("utf-8"));
}

fn assert_svg(text: &str) {
    // Graphviz writes a DOCTYPE.
    let opts = roxmltree::ParsingOptions {
        allow_dtd: true,
        ..roxmltree::ParsingOptions::default()
    };
    let doc = roxmltree::Document::parse_with_options(text, opts).expect("SVG parses as XML");
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    let texts: String = doc
        .descendants()
        .filter_map(|n| n.text())
        .collect::<Vec<_>>()
        .join(" ");
    for name in ["Account", "Transfer"] {
        assert!(texts.contains(name), "{name} missing from the SVG text");
    }
}

#[test]
fn a_rejection_is_a_400_with_the_error_value_and_changes_nothing() {
    let (_dir, s) = fixture();
    let acct = s.create_account(10);
    let other = s.create_account(3);
    let known = [("Account", acct.as_str()), ("Account", other.as_str())];
    let before = snapshot(&s, &known);

    let r = s.post(&format!("/accounts/{acct}/withdraw/11"));
    let msg = r.err(400);
    assert!(msg.contains("not enough money"), "{msg}");
    // The rejection carries the error value as detail.
    assert_eq!(
        r.json()["detail"],
        json!({ "InsufficientFunds": { "account": acct, "balance": 10, "wanted": 11 } })
    );
    assert_eq!(s.balance(&acct), 10);
    // Withdrawing the whole balance is allowed: it may reach zero (and back).
    assert_eq!(
        s.post(&format!("/accounts/{other}/withdraw/3")).ok(),
        json!(0)
    );
    assert_eq!(
        s.post(&format!("/accounts/{other}/deposit/3")).ok(),
        json!(3)
    );

    // Unknown instances: a rejection naming them, and nothing is created.
    let cases: &[(&str, &str)] = &[
        ("GET", "/accounts/ghost"),
        ("POST", "/accounts/ghost/deposit/5"),
        ("POST", "/accounts/ghost/withdraw/5"),
        ("POST", "/accounts/ghost/transfer/x/5"),
    ];
    for (method, path) in cases {
        let r = if *method == "GET" {
            s.get(path)
        } else {
            s.post(path)
        };
        let msg = r.err(400);
        assert!(
            msg.contains("ghost") && (msg.contains("does not exist") || msg.contains("failed")),
            "{path}: {msg}"
        );
    }
    assert_eq!(s.state("Account", "ghost"), json!(null));
    assert_eq!(s.state("Account", "x"), json!(null));
    assert_eq!(snapshot(&s, &known), before);
}

#[test]
fn transactions_are_all_or_nothing_within_and_across_lambdas() {
    let (_dir, s) = fixture();
    let rich = s.create_account(100);
    let poor = s.create_account(5);
    let balances = |s: &Server| (s.balance(&rich), s.balance(&poor));

    // Across lambdas: the withdrawal succeeds, the deposit into an unknown account fails, so
    // the withdrawal is rolled back.
    let msg = s
        .post(&format!("/transfers/t1/{rich}/nosuchaccount/30"))
        .err(400);
    assert!(
        msg.contains("t1") && msg.contains("nothing was moved"),
        "{msg}"
    );
    assert_eq!(balances(&s), (100, 5));
    assert_eq!(s.state("Transfer", "t1"), json!(null));
    assert_eq!(s.state("Account", "nosuchaccount"), json!(null));
    // Not enough money (6 > 5): rejected, nothing moved.
    s.post(&format!("/transfers/t2/{poor}/{rich}/6")).err(400);
    assert_eq!(balances(&s), (100, 5));
    assert_eq!(s.transfer_view("t2")["done"], json!(false));
    // Within one lambda (the first leg is a call to the instance itself): the same.
    let msg = s
        .post(&format!("/accounts/{rich}/transfer/nosuchaccount/30"))
        .err(400);
    assert!(msg.contains("nothing was moved"), "{msg}");
    assert_eq!(balances(&s), (100, 5));
    s.post(&format!("/accounts/{poor}/transfer/{rich}/6"))
        .err(400);
    assert_eq!(balances(&s), (100, 5));

    // With enough money the same transfer goes through and moves exactly.
    assert_eq!(
        s.post(&format!("/transfers/t3/{rich}/{poor}/30")).ok(),
        json!(null)
    );
    assert_eq!(balances(&s), (70, 35));
    assert_eq!(
        s.transfer_view("t3"),
        json!({ "done": true, "from": rich, "to": poor, "amount": 30 })
    );
    // A transfer runs once: again, it is rejected and moves nothing.
    let msg = s.post(&format!("/transfers/t3/{rich}/{poor}/30")).err(400);
    assert!(msg.contains("done already"), "{msg}");
    assert_eq!(balances(&s), (70, 35));
    s.post(&format!("/accounts/{poor}/transfer/{rich}/6")).ok();
    assert_eq!(balances(&s), (76, 29));
}

#[test]
fn a_panicking_handler_is_a_500_and_its_transaction_is_undone() {
    let (_dir, s) = fixture();
    let a = s.create_account(10);
    let b = s.create_account(20);
    let known = [("Account", a.as_str()), ("Account", b.as_str())];
    let before = snapshot(&s, &known);
    // It deposits into `b` and changes `a` inside its transaction, then panics.
    let msg = s.post(&format!("/accounts/{a}/explode/{b}")).err(500);
    assert!(msg.contains("panicked"), "{msg}");
    assert_eq!(snapshot(&s, &known), before);
    assert_eq!((s.balance(&a), s.balance(&b)), (10, 20));
    // The service keeps serving, the same instances too.
    assert_eq!(
        s.post(&format!("/accounts/{a}/transfer/{b}/4")).ok(),
        json!(null)
    );
    assert_eq!((s.balance(&a), s.balance(&b)), (6, 24));
    let m = s.get("/metrics");
    assert!(
        m.body
            .contains("stateful_http_requests_total{class=\"5xx\"} 1\n"),
        "{}",
        m.body
    );
}

#[test]
fn internal_handlers_are_not_reachable_from_outside() {
    let (_dir, s) = fixture();
    let a = s.create_account(10);
    // `set_balance` has no route and is not `#[public]`: a 404, as for a handler that does
    // not exist, that says why, and nothing changes.
    let internal = s
        .post_body(
            &format!("/invoke/Account/{a}/set_balance"),
            r#"{"balance": 1000000}"#,
        )
        .err(404);
    let missing = s
        .post_body(
            &format!("/invoke/Account/{a}/no_such_handler"),
            r#"{"balance": 1}"#,
        )
        .err(404);
    assert_eq!(
        internal,
        "lambda `Account` has no public handler `set_balance`: only handlers with a #[route] or #[public] are reachable from outside"
    );
    assert_eq!(missing, "lambda `Account` has no handler `no_such_handler`");
    assert_eq!(s.balance(&a), 10);
    // The graph draws ingress edges to public handlers only.
    let dot = s.get("/graph").body;
    let ingress = dot
        .lines()
        .find(|l| l.contains(r#""ingress" -> "Account""#))
        .expect("one ingress edge to Account");
    assert!(ingress.contains("deposit"), "{ingress}");
    assert!(!ingress.contains("set_balance"), "{ingress}");
}

#[test]
fn a_rejection_takes_back_the_handlers_own_writes() {
    let (_dir, s) = fixture();
    let a = s.create_account(10);
    // "Subtract, then check": 400, and the balance is what it was.
    let msg = s
        .post(&format!("/accounts/{a}/careless_withdraw/25"))
        .err(400);
    assert!(msg.contains("not enough money"), "{msg}");
    assert_eq!(s.balance(&a), 10);
    assert_eq!(
        s.post(&format!("/accounts/{a}/careless_withdraw/4")).ok(),
        json!(6)
    );
    assert_eq!(s.balance(&a), 6);
}

#[test]
fn a_panic_after_a_transaction_undoes_the_transaction_too() {
    let (_dir, s) = fixture();
    let a = s.create_account(10);
    let b = s.create_account(20);
    let msg = s
        .post(&format!("/accounts/{a}/pay_then_panic/{b}/7"))
        .err(500);
    assert!(msg.contains("panicked"), "{msg}");
    assert_eq!(
        (s.balance(&a), s.balance(&b)),
        (10, 20),
        "the payment did not stay"
    );
    assert_eq!(
        s.post(&format!("/accounts/{a}/transfer/{b}/7")).ok(),
        json!(null)
    );
    assert_eq!((s.balance(&a), s.balance(&b)), (3, 27));
}

#[test]
fn malformed_requests_get_the_right_status_and_change_nothing() {
    let (_dir, s) = fixture();
    let acct = s.create_account(10);
    let other = s.create_account(3);
    let known = [("Account", acct.as_str()), ("Account", other.as_str())];
    let before = snapshot(&s, &known);

    // Unparsable path arguments.
    s.post(&format!("/accounts/{other}/deposit/abc")).err(400);
    s.post(&format!("/accounts/{acct}/withdraw/1.5")).err(400);
    s.post("/accounts/create/cheap").err(400);
    s.post(&format!("/transfers/t/{acct}/{other}/x")).err(400);
    assert_eq!(s.state("Transfer", "t"), json!(null));
    // Bodies that are not JSON.
    let msg = s
        .post_body(&format!("/invoke/Account/{acct}/deposit"), "{amount: 5")
        .err(422);
    assert!(msg.contains("JSON"), "{msg}");
    s.post_body(&format!("/accounts/{acct}/deposit/5"), "five")
        .err(422);
    // JSON arguments of the wrong shape.
    s.post_body(
        &format!("/invoke/Account/{acct}/deposit"),
        r#"{"amount": "lots"}"#,
    )
    .err(400);
    s.post_body(&format!("/invoke/Account/{acct}/deposit"), "{}")
        .err(400);
    // Unknown routes, lambdas and handlers.
    s.get("/no/such/route").err(404);
    s.post(&format!("/accounts/{acct}/refund/1")).err(404);
    let msg = s
        .post_body(
            &format!("/invoke/Wallet/{acct}/deposit"),
            r#"{"amount": 5}"#,
        )
        .err(404);
    assert!(msg.contains("Wallet"), "{msg}");
    let msg = s
        .post_body(&format!("/invoke/Account/{acct}/steal"), r#"{"amount": 5}"#)
        .err(404);
    assert!(msg.contains("steal"), "{msg}");
    s.get(&format!("/state/Wallet/{acct}")).err(404);
    // A route called with the wrong method is not served: 405, as JSON like every error.
    let msg = s.get(&format!("/accounts/{acct}/deposit/5")).err(405);
    assert!(msg.contains("method"), "{msg}");
    // A path segment that is not UTF-8: 400 as JSON.
    let msg = s.get("/accounts/%FF%FE").err(400);
    assert!(!msg.is_empty(), "{msg}");
    // Bad Idempotency-Key headers: too long, not visible ASCII.
    let long = vec![b'k'; 257];
    let msg = s
        .post_idem(&format!("/accounts/{acct}/deposit/5"), &long)
        .err(400);
    assert!(msg.contains("Idempotency-Key"), "{msg}");
    s.post_idem(&format!("/accounts/{acct}/deposit/5"), b"caf\xe9")
        .err(400);
    s.post_idem(&format!("/invoke/Account/{other}/deposit"), &long)
        .err(400);

    assert_eq!(snapshot(&s, &known), before);
}

#[test]
fn idempotency_key_applies_a_post_once_and_repeats_its_answer() {
    let (_dir, s) = fixture();
    let acct = s.create_account(0);
    let path = format!("/accounts/{acct}/deposit/25");
    // The first answer (the balance after it) is the answer to every repeat.
    for _ in 0..3 {
        assert_eq!(s.post_idem(&path, b"fund-1").ok(), json!(25));
    }
    assert_eq!(s.balance(&acct), 25);
    // Another key applies again.
    assert_eq!(s.post_idem(&path, b"fund-2").ok(), json!(50));
    assert_eq!(s.balance(&acct), 50);
    // A route that makes a fresh id answers the first id again.
    let first = s.post_idem("/accounts/create/0", b"signup-1").ok();
    let again = s.post_idem("/accounts/create/0", b"signup-1").ok();
    assert_eq!(first, again);
    assert_ne!(s.post("/accounts/create/0").ok(), first);
    // A rejection is repeated too, even once the request would now succeed.
    let withdraw = format!("/accounts/{acct}/withdraw/60");
    s.post_idem(&withdraw, b"pay-1").err(400);
    s.post(&format!("/accounts/{acct}/deposit/10")).ok();
    s.post_idem(&withdraw, b"pay-1").err(400);
    assert_eq!(s.balance(&acct), 60);
}

#[test]
fn an_idempotency_key_is_bound_to_its_request() {
    let (_dir, s) = fixture();
    let acct = s.create_account(0);
    assert_eq!(
        s.post_idem(&format!("/accounts/{acct}/deposit/5"), b"k1")
            .ok(),
        json!(5)
    );
    // The same key with another amount, handler or account: 422, and nothing runs.
    for other in [
        format!("/accounts/{acct}/deposit/6"),
        format!("/accounts/{acct}/withdraw/5"),
        format!("/accounts/{}/deposit/5", s.create_account(0)),
    ] {
        let msg = s.post_idem(&other, b"k1").err(422);
        assert!(msg.contains("already used for another request"), "{msg}");
    }
    assert_eq!(s.balance(&acct), 5);
    // The request it belongs to still gets its answer.
    assert_eq!(
        s.post_idem(&format!("/accounts/{acct}/deposit/5"), b"k1")
            .ok(),
        json!(5)
    );
}

#[test]
fn concurrent_duplicates_with_one_idempotency_key_apply_once() {
    let (_dir, s) = fixture();
    let acct = s.create_account(0);
    let path = format!("/accounts/{acct}/deposit/10");
    let answers: Vec<(u16, String)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                scope.spawn(|| {
                    let r = s.post_idem(&path, b"dup");
                    (r.status, r.body)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("client thread"))
            .collect()
    });
    let statuses: Vec<u16> = answers.iter().map(|(s, _)| *s).collect();
    assert_eq!(statuses, [200; 8]);
    // Every duplicate got the one answer: the balance after the single deposit.
    for (_, body) in &answers {
        assert_eq!(body.trim(), "10", "{answers:?}");
    }
    assert_eq!(s.balance(&acct), 10);
}
