//! The bounded instance cache: with a budget far below the data, instances are evicted and
//! read back from the store, every value stays right, and the cache stays near its budget.
#![allow(missing_docs)]

use std::sync::atomic::Ordering::Relaxed;

use stateful_runtime::Config;
use stateful_runtime::testing::TestApp;

mod common;

use common::notes::{self, Notebook};
use common::sum;

const BUDGET: u64 = 64 * 1024;
const NOTES: u64 = 3_000;

fn text(i: u64) -> String {
    format!("{i:0>120}")
}

#[test]
fn a_cache_far_below_the_data_evicts_and_reads_back_every_value() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = Config::durable(dir.path(), 2);
    config.cache_bytes = Some(BUDGET);
    let t = TestApp::start(notes::app(), config).expect("starts");
    for round in 0..2 {
        let calls: Vec<_> = (0..NOTES)
            .map(|i| t.call::<Notebook>(i).write(text(i + round)))
            .collect();
        for c in calls {
            assert_eq!(c.wait(), Ok(round as u32 + 1));
        }
    }
    for i in (0..NOTES).rev() {
        let note = t.call::<Notebook>(i).read().wait().expect("reads");
        assert_eq!(note.text, text(i + 1), "note {i}");
        assert_eq!(note.edits, 2);
    }
    let evictions = sum(t.handle(), |m| m.evictions.load(Relaxed));
    let misses = sum(t.handle(), |m| m.cache_misses.load(Relaxed));
    let cached = sum(t.handle(), |m| m.cached_bytes.load(Relaxed));
    eprintln!("evictions {evictions}, misses {misses}, cached {cached} B of {BUDGET} B");
    // 3,000 notes of ~250 B are ~750 kB: ten times the budget.
    assert!(evictions > NOTES, "instances were evicted ({evictions})");
    assert!(misses > NOTES, "and read back from the store ({misses})");
    assert!(
        cached <= 2 * BUDGET,
        "the cache stays near its budget ({cached} B)"
    );
}

#[test]
fn without_a_bound_nothing_is_evicted() {
    let mut config = Config::in_memory(2);
    config.cache_bytes = None;
    let t = TestApp::start(notes::app(), config).expect("starts");
    for i in 0..500u64 {
        t.call::<Notebook>(i).write(text(i)).wait().expect("writes");
    }
    for i in 0..500u64 {
        assert_eq!(t.call::<Notebook>(i).read().wait().expect("reads").edits, 1);
    }
    assert_eq!(sum(t.handle(), |m| m.evictions.load(Relaxed)), 0);
}
