//! Power loss, end to end: the engine runs on a simulated disk for its commit log while
//! clients get answers; at random moments the disk is copied as a power cut would leave it
//! (everything after the last `fdatasync` gone, a torn prefix of it at most). Recovering any
//! copy must find every request answered before the copy exactly once, with the answers it
//! gave. Under `process-crash` durability the same check must fail: it proves the check can.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use stateful_core::mix::SplitMix;

use super::{Config, Durability, Runtime};
use crate::sdk::{CallError, Lambda, Outcome, Rejection, wire};
use crate::storage::log::fs::{LogFs, SimFs};
use crate::storage::log::{CommitLog, SyncMode};

#[stateful_macros::app]
mod counters {
    use crate::prelude::*;

    #[lambda(key = String, state = i64)]
    impl Tally {
        async fn add(ctx: &mut Ctx<Self>, by: i64) -> Result<i64, Rejection> {
            *ctx.state_mut() += by;
            Ok(*ctx.state())
        }
    }
}

use counters::Tally;

const KEYS: u64 = 5;
const REQUESTS_PER_CLIENT: u64 = 150;

/// What a client was answered: `(seq, key, the new count)`.
type Acked = (u64, Vec<u8>, i64);

/// Runs two clients against an engine whose log is on `sim`; returns the disks left by power
/// cuts at random moments, each with what had been answered before it.
fn run(durability: Durability, sim: &SimFs, seed: u64) -> Vec<(Vec<Acked>, SimFs)> {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = Config::durable(dir.path(), 2);
    config.durability = durability;
    let fs: Arc<dyn LogFs> = Arc::new(sim.clone());
    let rt = Runtime::start_on(counters::app().program().clone(), config, fs).expect("starts");
    let acked: Arc<Mutex<Vec<Acked>>> = Arc::default();
    let clients: Vec<_> = (0..2u64)
        .map(|c| {
            let (h, acked) = (rt.handle(), acked.clone());
            std::thread::spawn(move || {
                let mut rng = SplitMix::new(seed * 7 + c);
                for _ in 0..REQUESTS_PER_CLIENT {
                    let key = wire::encode("key", &format!("k{}", rng.below(KEYS))).expect("key");
                    let args = wire::encode("args", &(1i64,)).expect("args");
                    let resp = h
                        .submit(Tally::ID, key.clone(), 0, args, None)
                        .expect("admitted")
                        .blocking_recv()
                        .expect("answered");
                    acked
                        .lock()
                        .expect("lock")
                        .push((resp.seq, key, count(&resp.result)));
                }
            })
        })
        .collect();
    let mut rng = SplitMix::new(seed);
    let mut cuts = Vec::new();
    while clients.iter().any(|c| !c.is_finished()) {
        std::thread::sleep(std::time::Duration::from_micros(300 + rng.below(3000)));
        let answered = acked.lock().expect("lock").clone();
        let disk = sim.after_power_cut(|n| rng.below(n as u64 + 1) as usize);
        cuts.push((answered, disk));
    }
    for c in clients {
        c.join().expect("client");
    }
    rt.shutdown();
    cuts
}

fn count(result: &Result<Outcome, CallError>) -> i64 {
    let outcome = result.as_ref().expect("the handler ran");
    wire::decode::<Result<i64, Rejection>>("result", &outcome.bytes)
        .expect("decodes")
        .expect("added")
}

/// What the log on `disk` recovers: per request seq, its key and answer, in log order.
fn recovered(disk: SimFs, log_dir: &std::path::Path) -> Vec<Acked> {
    let (_, records, _) =
        CommitLog::open(log_dir, Arc::new(disk), SyncMode::Fsync, 0).expect("the log recovers");
    records
        .iter()
        .flat_map(|r| &r.completions)
        .map(|c| {
            let result: Result<Outcome, CallError> =
                postcard::from_bytes(&c.response).expect("response decodes");
            (c.request.seq, c.request.key.clone(), count(&result))
        })
        .collect()
}

/// Why a disk does not hold what was answered before it (`None`: it does).
fn violation(answered: &[Acked], logged: &[Acked]) -> Option<String> {
    let mut seen = HashSet::new();
    if let Some(dup) = logged.iter().find(|(seq, ..)| !seen.insert(*seq)) {
        return Some(format!("request {} is in the log twice", dup.0));
    }
    // Per key, the answers in log order count 1, 2, 3, ...: each add applied once, in order.
    let mut next: BTreeMap<&[u8], i64> = BTreeMap::new();
    for (seq, key, n) in logged {
        let expected = next.entry(key).or_insert(1);
        if n != expected {
            return Some(format!("request {seq} answered {n}, expected {expected}"));
        }
        *expected += 1;
    }
    let logged: BTreeMap<u64, &Acked> = logged.iter().map(|a| (a.0, a)).collect();
    for a in answered {
        match logged.get(&a.0) {
            None => {
                return Some(format!(
                    "request {} was answered but is not in the log",
                    a.0
                ));
            }
            Some(l) if *l != a => {
                return Some(format!("request {} logged as {l:?}, answered {a:?}", a.0));
            }
            Some(_) => {}
        }
    }
    None
}

fn log_dir_of(sim: &SimFs) -> std::path::PathBuf {
    // The log's directory is the only one holding segments.
    sim.list_dirs()
        .into_iter()
        .next()
        .expect("the log has a segment")
}

#[test]
fn after_a_power_cut_every_answered_request_is_recovered_exactly_once() {
    for seed in 1..=3 {
        let sim = SimFs::new();
        let cuts = run(Durability::Fsync, &sim, seed);
        let log_dir = log_dir_of(&sim);
        assert!(cuts.len() > 5, "seed {seed}: only {} cuts", cuts.len());
        let mut answered_total = 0;
        for (answered, disk) in cuts {
            let logged = recovered(disk, &log_dir);
            if let Some(v) = violation(&answered, &logged) {
                panic!("seed {seed}: {v}");
            }
            answered_total = answered_total.max(answered.len());
        }
        assert!(
            answered_total > 0,
            "seed {seed}: nothing was answered during the run"
        );
    }
}

#[test]
fn the_check_fails_when_answers_do_not_wait_for_fdatasync() {
    let sim = SimFs::new();
    let cuts = run(Durability::ProcessCrash, &sim, 9);
    let log_dir = log_dir_of(&sim);
    let lost = cuts
        .into_iter()
        .filter(|(answered, disk)| {
            violation(answered, &recovered(disk.clone(), &log_dir)).is_some()
        })
        .count();
    assert!(
        lost > 0,
        "process-crash durability lost nothing in a power cut: the check is blind"
    );
}
