//! Memory stays bounded as the data grows: with a 4 MiB instance cache and an 8 MiB store page
//! cache, loading 200,000 instances of 500 bytes grows the process, from 80,000 instances on,
//! by less than the stated bound of 64 MiB while 57 MiB of state is added (measured: 21 to 47
//! MiB, the store's buffers and the allocator's), and the instance cache stays within its
//! budget. The same load with no cache bound
//! keeps every instance and grows by more than the state (the negative control: about 94 MiB).
//!
//! Not a bound on everything: sled's memory grows with what is written (measured more with
//! larger values: 70 MiB for 57 MiB of 1,000-byte states); docs/performance.md has the numbers.
#![allow(missing_docs)]

use std::sync::atomic::Ordering::Relaxed;

use stateful_runtime::Config;
use stateful_runtime::testing::TestApp;

mod common;

use common::{block_on, sum};

#[stateful_runtime::app]
pub mod notes {
    #[lambda(key = u64, state = String)]
    impl Page {
        #[public]
        async fn read(ctx: &Ctx<Self>) -> Result<String, Rejection> {
            Ok(ctx.state().clone())
        }
    }
}

const STEP: u64 = 40_000;
const STEPS: u64 = 5;
const TEXT: usize = 500;
/// How much the bounded run may grow while the last 120,000 instances are loaded.
const BOUND_MIB: u64 = 64;

/// Resident memory of this process, MiB.
fn rss_mib() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("statm");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .expect("resident pages");
    (pages * 4096) >> 20
}

/// Loads STEPS × STEP pages; the RSS after the first step and after the last, and the bytes
/// the instance cache holds at the end.
fn load_pages(cache: Option<u64>) -> (u64, u64, u64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = Config::durable(dir.path(), 2);
    config.cache_bytes = cache;
    config.store_cache_bytes = 8 << 20;
    // Memory, not the disk, is under test: no fsync.
    config.durability = stateful_runtime::Durability::ProcessCrash;
    let t = TestApp::start(notes::app(), config).expect("starts");
    let mut first = 0;
    for step in 0..STEPS {
        let pages = (step * STEP..(step + 1) * STEP).map(|i| (i, format!("{i:0>TEXT$}")));
        let done = block_on(t.handle().load::<notes::Page, _>(pages)).expect("loads");
        assert_eq!(done.instances, STEP);
        t.settle();
        // After the second step: the allocator and the store are warm.
        if step == 1 {
            first = rss_mib();
        }
    }
    let last = rss_mib();
    let read = t.call::<notes::Page>(7u64).read().wait().expect("reads");
    assert_eq!(read, format!("{:0>TEXT$}", 7));
    let cached = sum(t.handle(), |m| m.cached_bytes.load(Relaxed));
    (first, last, cached)
}

#[test]
fn loading_four_times_the_data_with_a_small_cache_grows_memory_far_less_than_the_data() {
    let data_mib = ((STEPS - 2) * STEP * TEXT as u64) >> 20;
    let (first, last, cached) = load_pages(Some(4 << 20));
    eprintln!(
        "bounded: {first} MiB after {}, {last} MiB after {} ({data_mib} MiB of state added), {cached} B cached",
        2 * STEP,
        STEPS * STEP
    );
    assert!(
        cached <= 8 << 20,
        "the cache stays near its 4 MiB ({cached} B)"
    );
    assert!(
        last.saturating_sub(first) < BOUND_MIB,
        "memory grew {} MiB for {data_mib} MiB of state",
        last - first
    );
    let (first, last, cached) = load_pages(None);
    eprintln!(
        "unbounded: {first} MiB after {}, {last} MiB after {}, {cached} B cached",
        2 * STEP,
        STEPS * STEP
    );
    assert!(
        last.saturating_sub(first) >= BOUND_MIB.max(data_mib),
        "without a bound every instance stays: grew {} MiB",
        last - first
    );
}
