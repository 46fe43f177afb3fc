//! A child process applies epochs to a sled store and is SIGKILLed at a random moment; the
//! parent reopens the store: it is at some applied epoch (at least the last flushed one), with
//! exactly the state of that epoch. An epoch larger than one sled batch may be cut short: its
//! keys hold the state of that epoch or of the next, and applying the next again (as recovery
//! does from the commit log) completes it.

use std::sync::Arc;

use super::{CommitRecord, SledStore, StateStore, WriteRecord};

/// Every epoch writes every key of `0..keys` with its epoch number.
fn record(epoch: u64, keys: u16) -> CommitRecord {
    CommitRecord {
        epoch,
        prev_epoch: epoch - 1,
        writes: (0..keys)
            .map(|k| WriteRecord {
                lambda: 1,
                group: k % 4,
                key: k.to_be_bytes().to_vec(),
                value: Some(epoch.to_be_bytes().to_vec()),
                writers: vec![epoch],
            })
            .collect(),
        completions: vec![],
        messages: vec![],
        next_seq: epoch + 1,
        next_order: epoch,
    }
}

/// Run as a child: applies epochs forever, flushing every few, printing each flushed epoch.
#[test]
#[ignore = "run by sled_keeps_whole_epochs_across_sigkill as a child process"]
fn crash_child() {
    let Ok(dir) = std::env::var("STATEFUL_CRASH_DIR") else {
        return;
    };
    let keys = std::env::var("STATEFUL_CRASH_KEYS")
        .ok()
        .and_then(|k| k.parse().ok())
        .unwrap_or(20);
    let store = SledStore::open(std::path::Path::new(&dir)).expect("opens");
    let store = if std::env::var("STATEFUL_CRASH_WHOLE").is_ok() {
        store.with_whole_epochs()
    } else {
        store
    };
    let mut epoch = store.checkpoint().expect("reads").epoch;
    loop {
        epoch += 1;
        store
            .apply(&[Arc::new(record(epoch, keys))])
            .expect("applies");
        if epoch.is_multiple_of(5) {
            store.flush().expect("flushes");
            println!("flushed {epoch}");
        }
    }
}

/// Runs the child on `dir` with `keys` keys per epoch (`whole`: a store that never splits an
/// epoch), SIGKILLs it after `ms` and reopens the store: its checkpoint epoch, at least the
/// last one the child flushed.
fn crash_and_reopen(dir: &std::path::Path, keys: u16, ms: u64, whole: bool) -> SledStore {
    let exe = std::env::current_exe().expect("test binary");
    let mut command = std::process::Command::new(&exe);
    if whole {
        command.env("STATEFUL_CRASH_WHOLE", "1");
    }
    let mut child = command
        .args([
            "--exact",
            "storage::crash_tests::crash_child",
            "--ignored",
            "--nocapture",
        ])
        .env("STATEFUL_CRASH_DIR", dir)
        .env("STATEFUL_CRASH_KEYS", keys.to_string())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawns");
    std::thread::sleep(std::time::Duration::from_millis(ms));
    child.kill().expect("SIGKILL");
    let out = child.wait_with_output().expect("waits");
    let flushed = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("flushed ")?.parse::<u64>().ok())
        .max()
        .unwrap_or(0);
    let store = super::model_tests::reopen(dir).expect("reopens");
    let at = store.checkpoint().expect("reads").epoch;
    assert!(at >= flushed, "at {at}, but {flushed} was flushed");
    store
}

/// The value key `k` holds.
fn value_of(store: &SledStore, k: u16) -> Option<Vec<u8>> {
    store.get(1, k % 4, &k.to_be_bytes()).expect("reads")
}

#[test]
fn sled_keeps_whole_epochs_across_sigkill() {
    let dir = tempfile::tempdir().expect("tempdir");
    for round in 0..3u64 {
        let store = crash_and_reopen(dir.path(), 20, 300 + 150 * round, false);
        let at = store.checkpoint().expect("reads").epoch;
        for k in 0..20 {
            assert_eq!(
                value_of(&store, k),
                (at > 0).then(|| at.to_be_bytes().to_vec()),
                "round {round}: key {k} is not at epoch {at}: a partly applied epoch"
            );
        }
    }
}

#[test]
fn an_epoch_larger_than_a_batch_cut_short_by_sigkill_is_completed_by_applying_it_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let keys = 3000;
    let mut cut_short = 0;
    for round in 0..3u64 {
        let store = crash_and_reopen(dir.path(), keys, 300 + 170 * round, false);
        let at = store.checkpoint().expect("reads").epoch;
        let (this, next) = (at.to_be_bytes().to_vec(), (at + 1).to_be_bytes().to_vec());
        let mut ahead = 0;
        for k in 0..keys {
            let v = value_of(&store, k).expect("every key was written");
            assert!(
                v == this || v == next,
                "round {round}: key {k} at {v:?}, checkpoint {at}"
            );
            ahead += usize::from(v == next);
        }
        cut_short += usize::from(ahead > 0);
        // Recovery applies the epochs after the checkpoint again, from the log.
        store
            .apply(&[Arc::new(record(at + 1, keys))])
            .expect("applies again");
        for k in 0..keys {
            assert_eq!(
                value_of(&store, k),
                Some(next.clone()),
                "round {round}: key {k}"
            );
        }
    }
    eprintln!("{cut_short} of 3 kills cut an epoch short");
}

#[test]
fn a_store_that_keeps_epochs_whole_never_shows_part_of_one_after_sigkill() {
    let dir = tempfile::tempdir().expect("tempdir");
    let keys = 3000;
    for round in 0..3u64 {
        let store = crash_and_reopen(dir.path(), keys, 300 + 170 * round, true);
        let at = store.checkpoint().expect("reads").epoch;
        for k in 0..keys {
            assert_eq!(
                value_of(&store, k),
                (at > 0).then(|| at.to_be_bytes().to_vec()),
                "round {round}: key {k} is not at epoch {at}: a partly applied epoch"
            );
        }
    }
}
