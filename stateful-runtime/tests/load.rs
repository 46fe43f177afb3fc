//! Bulk loads (`Handle::load`): thousands of instances per request, durable when it returns,
//! correct next to requests that use the same instances, and refused for another app's lambda.
#![allow(missing_docs)]

use std::sync::atomic::Ordering::Relaxed;

use stateful_runtime::testing::TestApp;
use stateful_runtime::{Config, LoadError};

#[stateful_runtime::app]
pub mod other {
    #[lambda(key = u64, state = u64)]
    impl Elsewhere {
        #[public]
        async fn get(ctx: &Ctx<Self>) -> Result<u64, Rejection> {
            Ok(*ctx.state())
        }
    }
}

mod common;

use common::notes::{self, Note, Notebook};
use common::sum;

fn loaded(i: u64) -> Note {
    Note {
        text: format!("loaded {i}"),
        edits: 1000,
    }
}

#[test]
fn a_load_sets_every_instance_in_few_requests_and_survives_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let n = 20_000u64;
    {
        let mut config = Config::durable(dir.path(), 2);
        config.cache_bytes = Some(64 * 1024);
        let t = TestApp::start(notes::app(), config).expect("starts");
        let done = t
            .load::<Notebook>((0..n).map(|i| (i, loaded(i))))
            .expect("loads");
        assert_eq!(done.instances, n);
        assert!(
            done.requests <= n / 1000,
            "thousands per request: {} requests for {n} instances",
            done.requests
        );
        let set = sum(t.handle(), |m| m.loaded.load(Relaxed));
        assert_eq!(set, n, "the shards count what they set");
        assert_eq!(t.call::<Notebook>(7u64).read().wait(), Ok(loaded(7)));
        assert_eq!(t.call::<Notebook>(7u64).write("x".into()).wait(), Ok(1001));
    }
    let t = TestApp::start(notes::app(), Config::durable(dir.path(), 1)).expect("restarts");
    for i in (0..n).step_by(997) {
        let want = if i == 7 {
            Note {
                text: "x".into(),
                edits: 1001,
            }
        } else {
            loaded(i)
        };
        assert_eq!(t.call::<Notebook>(i).read().wait(), Ok(want), "note {i}");
    }
    assert_eq!(t.call::<Notebook>(n - 1).read().wait(), Ok(loaded(n - 1)));
}

#[test]
fn a_load_next_to_writes_of_the_same_instances_loses_neither_and_replays_exactly() {
    let root = tempfile::tempdir().expect("tempdir");
    let (old, new) = (root.path().join("old"), root.path().join("new"));
    let t = TestApp::start(notes::app(), Config::durable(&old, 2)).expect("starts");
    let hot = 200u64;
    let handle = t.handle().clone();
    let loader = std::thread::spawn(move || {
        handle.load_blocking::<Notebook, _>((0..10 * hot).map(|i| (i % hot, loaded(i % hot))))
    });
    // Writes, and relays from note to note (each holds its note while it waits for the
    // other's: some are in the middle of a transaction when a load reaches their notes).
    let changes: Vec<_> = (0..5 * hot)
        .map(|i| match i % 2 {
            0 => t.call::<Notebook>(i % hot).write("w".into()),
            _ => t.call::<Notebook>(i % hot).relay((i * 7 + 3) % hot),
        })
        .collect();
    for c in changes {
        assert!(c.wait().is_ok(), "every change succeeds");
    }
    let done = loader.join().expect("the loader").expect("loads");
    assert_eq!(done.instances, 10 * hot);
    eprintln!("{} busy retries", done.busy_retries);
    for k in 0..hot {
        let note = t.call::<Notebook>(k).read().wait().expect("reads");
        // Every note was loaded (1000 edits), and later changes only count up.
        assert!(note.edits >= 1000, "note {k} lost its load: {note:?}");
        assert!(note.edits > 1000 || note == loaded(k), "note {k}: {note:?}");
    }
    drop(t);
    // A replay, one request at a time, sets what each load request set then (not the
    // entries that were busy, which later requests set): the same states.
    let program = notes::app().program().clone();
    let report = stateful_runtime::tools::replay::replay(program.clone(), &old, &new, None)
        .expect("replays");
    assert!(report.replayed > 5 * hot, "{report:?}");
    let diff = stateful_runtime::tools::diff::diff_at(&program, &old, &new, None).expect("diffs");
    assert!(diff.instances.is_empty(), "{:?}", diff.instances);
    assert!(diff.responses.is_empty(), "{:?}", diff.responses);
}

#[test]
fn a_load_of_another_apps_lambda_is_refused_and_changes_nothing() {
    let t = TestApp::start(notes::app(), Config::in_memory(1)).expect("starts");
    let r = t.load::<other::Elsewhere>([(1, 5)]);
    assert!(
        matches!(&r, Err(LoadError::UnknownLambda(name)) if name == "Elsewhere"),
        "{r:?}"
    );
    assert_eq!(t.call::<Notebook>(1u64).read().wait(), Ok(Note::default()));
    let empty = t.load::<Notebook>(std::iter::empty()).expect("loads");
    assert_eq!((empty.instances, empty.requests), (0, 0));
}

#[test]
fn a_blocking_load_inside_an_async_context_is_refused_and_changes_nothing() {
    let t = TestApp::start(notes::app(), Config::in_memory(1)).expect("starts");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let r = runtime.block_on(async { t.load::<Notebook>([(1, loaded(1))]) });
    assert!(matches!(r, Err(LoadError::InAsyncContext)), "{r:?}");
    assert_eq!(t.call::<Notebook>(1u64).read().wait(), Ok(Note::default()));
    // Outside it, the same load sets the note.
    t.load::<Notebook>([(1, loaded(1))]).expect("loads");
    assert_eq!(t.call::<Notebook>(1u64).read().wait(), Ok(loaded(1)));
}
