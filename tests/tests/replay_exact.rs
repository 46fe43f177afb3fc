//! Unchanged-code replay of a contended run (concurrent transfers between two hot accounts in
//! both directions, with rollbacks and deadlock retries) equals the original, instance by
//! instance and response by response.
#![allow(missing_docs)]

use std::sync::atomic::Ordering::Relaxed;

use serde_json::{Value, json};
use stateful_runtime::Config;
use stateful_tests::fixture;

/// Accounts opened before the transfers.
const USERS: u64 = 30;
/// Transfers, all submitted at once.
const TRANSFERS: u64 = 300;

#[test]
fn replay_of_a_contended_run_reproduces_every_state_and_response() {
    let root = tempfile::tempdir().expect("tempdir");
    let (old, new) = (root.path().join("old"), root.path().join("new"));
    let rt = fixture::app()
        .start(Config::durable(&old, 2))
        .expect("start");
    let h = fixture::app().json(rt.handle());
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
    // A hot account with little money and a cold one, transfers between them in both
    // directions (cyclic lock orders: deadlocks for wound-wait to resolve), and transfers from
    // users into an account that does not exist (a withdrawal, then a rollback).
    let mut setup = vec![
        ("Account", "hot".to_owned(), "open", json!({"balance": 40})),
        (
            "Account",
            "cold".to_owned(),
            "open",
            json!({"balance": 1000}),
        ),
    ];
    for u in 0..USERS {
        setup.push((
            "Account",
            format!("u{u}"),
            "open",
            json!({"balance": 10 + u}),
        ));
    }
    let n_setup = setup.len() as u64;
    submit_all(setup);
    submit_all(
        (0..TRANSFERS)
            .map(|o| {
                let (from, to, amount) = match o % 5 {
                    4 => (format!("u{}", o % USERS), format!("ghost{o}"), 1),
                    _ if o % 2 == 0 => ("hot".to_owned(), "cold".to_owned(), 2),
                    _ => ("cold".to_owned(), "hot".to_owned(), 1),
                };
                (
                    "Transfer",
                    format!("t{o}"),
                    "run",
                    json!({"from": from, "to": to, "amount": amount}),
                )
            })
            .collect(),
    );
    let m = h.handle().metrics();
    let (aborts, rollbacks) = (m.aborts.load(Relaxed), m.rollbacks.load(Relaxed));
    assert!(rollbacks > 0, "the run rolled back transactions");
    eprintln!("original run: {aborts} deadlock retries, {rollbacks} rollbacks");
    drop(h);
    rt.shutdown();

    let report =
        stateful_runtime::tools::replay::replay(fixture::app().program().clone(), &old, &new, None)
            .expect("replay");
    let total = n_setup + TRANSFERS;
    assert_eq!(total, 332);
    assert_eq!(report.replayed, total, "every logged request is replayed");
    let diff = diff_dirs(&fixture::app(), None, &old, &new).expect("diff");
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
    for seq in [100, 180, 260, total] {
        let d = diff_dirs(&fixture::app(), Some(seq), &old, &new).expect("diff");
        assert!(
            d.instances.is_empty() && d.responses.is_empty(),
            "as of {seq}: {d:?}"
        );
    }

    // Replaying into a dir that exists is refused; so is a dir of nothing.
    assert!(
        stateful_runtime::tools::replay::replay(fixture::app().program().clone(), &old, &new, None)
            .is_err()
    );
    assert!(diff_dirs(&fixture::app(), None, &old, &root.path().join("nothing")).is_err());
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
