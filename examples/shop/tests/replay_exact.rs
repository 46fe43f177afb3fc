//! Unchanged-code replay of a contended run (concurrent checkouts on a hot item, with
//! rollbacks and deadlock retries) equals the original, instance by instance and response by
//! response.
#![allow(missing_docs)]

use std::sync::atomic::Ordering::Relaxed;

use serde_json::{Value, json};
use stateful_runtime::Config;

#[test]
fn replay_of_a_contended_run_reproduces_every_state_and_response() {
    let root = tempfile::tempdir().expect("tempdir");
    let (old, new) = (root.path().join("old"), root.path().join("new"));
    let rt = shop::shop::app()
        .start(Config::durable(&old, 2))
        .expect("start");
    let h = shop::shop::app().json(rt.handle());
    let submit_all = |reqs: Vec<(&str, String, &str, Value)>| {
        let rxs: Vec<_> = reqs
            .into_iter()
            .map(|(l, k, hd, a)| {
                let (l, hd, k, a) = h.prepare(l, &k, hd, a).expect("valid");
                h.handle().submit(l, k, hd, a, None).expect("admitted")
            })
            .collect();
        for rx in rxs {
            rx.blocking_recv().expect("answered");
        }
    };
    // A hot item with little stock, users with little credit, orders of two items each, some
    // in opposite item order (cyclic lock orders: deadlocks for wound-wait to resolve).
    let mut setup = vec![
        (
            "Stock",
            "hot".to_owned(),
            "init",
            json!({"stock": 40, "price": 3}),
        ),
        (
            "Stock",
            "cold".to_owned(),
            "init",
            json!({"stock": 1000, "price": 1}),
        ),
    ];
    for u in 0..30 {
        setup.push((
            "Payment",
            format!("u{u}"),
            "init",
            json!({"credit": 10 + u}),
        ));
    }
    for o in 0..300u64 {
        let items = if o % 2 == 0 {
            json!([["hot", 1], ["cold", 1]])
        } else {
            json!([["cold", 1], ["hot", 1]])
        };
        setup.push((
            "Order",
            format!("o{o}"),
            "init",
            json!({"user_id": format!("u{}", o % 30), "items": items, "total_cost": 4}),
        ));
    }
    submit_all(setup);
    submit_all(
        (0..300)
            .map(|o| ("Order", format!("o{o}"), "checkout", Value::Null))
            .collect(),
    );
    let m = h.handle().metrics();
    let (aborts, rollbacks) = (m.aborts.load(Relaxed), m.rollbacks.load(Relaxed));
    assert!(rollbacks > 0, "the run rolled back transactions");
    eprintln!("original run: {aborts} deadlock retries, {rollbacks} rollbacks");
    drop(h);
    rt.shutdown();

    let report = stateful_runtime::tools::replay::replay(
        shop::shop::app().program().clone(),
        &old,
        &new,
        None,
    )
    .expect("replay");
    assert_eq!(report.replayed, 632, "every logged request is replayed");
    let diff = diff_dirs(&shop::shop::app(), None, &old, &new).expect("diff");
    assert!(
        diff.instances.is_empty(),
        "instances differ: {:?}",
        diff.instances
    );
    assert!(
        diff.responses.is_empty(),
        "responses differ: {:?}",
        diff.responses
    );

    // As of requests in the middle of the contended run, too.
    for seq in [350, 450, 550, 632] {
        let d = diff_dirs(&shop::shop::app(), Some(seq), &old, &new).expect("diff");
        assert!(
            d.instances.is_empty() && d.responses.is_empty(),
            "as of {seq}: {d:?}"
        );
    }

    // Replaying into a dir that exists is refused; so is a dir of nothing.
    assert!(
        stateful_runtime::tools::replay::replay(
            shop::shop::app().program().clone(),
            &old,
            &new,
            None
        )
        .is_err()
    );
    assert!(diff_dirs(&shop::shop::app(), None, &old, &root.path().join("nothing")).is_err());
}

/// The diff of two data dirs as the CLI shows it.
fn diff_dirs(
    app: &stateful_runtime::App,
    at: Option<u64>,
    old: &std::path::Path,
    new: &std::path::Path,
) -> Result<stateful_runtime::views::DiffView, stateful_runtime::tools::replay::ReplayError> {
    stateful_runtime::tools::diff::diff_at(app.program(), old, new, at)
        .map(|d| stateful_runtime::views::diff(app, d))
}
