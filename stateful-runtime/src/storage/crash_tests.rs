//! A child process applies epochs to a sled store and is SIGKILLed at a random moment; the
//! parent reopens the store: it is at some applied epoch (at least the last flushed one), with
//! exactly the state of that epoch.

use std::sync::Arc;

use super::{CommitRecord, SledStore, StateStore, WriteRecord};

/// Every epoch writes every key of `0..20` with its epoch number.
fn record(epoch: u64) -> CommitRecord {
    CommitRecord {
        epoch,
        prev_epoch: epoch - 1,
        writes: (0..20u8)
            .map(|k| WriteRecord {
                lambda: 1,
                group: u16::from(k % 4),
                key: vec![k],
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
    let store = SledStore::open(std::path::Path::new(&dir)).expect("opens");
    let mut epoch = store.checkpoint().expect("reads").epoch;
    loop {
        epoch += 1;
        store.apply(&[Arc::new(record(epoch))]).expect("applies");
        if epoch.is_multiple_of(5) {
            store.flush().expect("flushes");
            println!("flushed {epoch}");
        }
    }
}

#[test]
fn sled_keeps_whole_epochs_across_sigkill() {
    let dir = tempfile::tempdir().expect("tempdir");
    let exe = std::env::current_exe().expect("test binary");
    for round in 0..3u64 {
        let mut child = std::process::Command::new(&exe)
            .args([
                "--exact",
                "storage::crash_tests::crash_child",
                "--ignored",
                "--nocapture",
            ])
            .env("STATEFUL_CRASH_DIR", dir.path())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("spawns");
        std::thread::sleep(std::time::Duration::from_millis(300 + 150 * round));
        child.kill().expect("SIGKILL");
        let out = child.wait_with_output().expect("waits");
        let flushed = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.strip_prefix("flushed ")?.parse::<u64>().ok())
            .max()
            .unwrap_or(0);
        let store = super::model_tests::reopen(dir.path()).expect("reopens");
        let at = store.checkpoint().expect("reads").epoch;
        assert!(
            at >= flushed,
            "round {round}: at {at}, but {flushed} was flushed"
        );
        for k in 0..20u8 {
            let v = store.get(1, u16::from(k % 4), &[k]).expect("reads");
            assert_eq!(
                v,
                (at > 0).then(|| at.to_be_bytes().to_vec()),
                "round {round}: key {k} is not at epoch {at}: a partly applied epoch"
            );
        }
    }
}
