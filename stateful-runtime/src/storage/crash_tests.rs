//! A child process commits epochs in a loop and is killed (SIGKILL) at some moment; the
//! parent reopens the dir and checks that recovery lands on a whole epoch no older than the
//! last one the child saw acknowledged.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use super::{CommitBatch, CommitterId, SledStore, StateStore, StateWrite};

const CHILD_ENV: &str = "STATEFUL_STORE_CRASH_CHILD_DIR";
const KEYS: u32 = 20;
const COMMITTERS: [CommitterId; 2] = [
    CommitterId {
        worker: 0,
        lambda: 0,
    },
    CommitterId {
        worker: 1,
        lambda: 1,
    },
];

fn writes(lambda: u16, epoch: u64) -> Vec<StateWrite> {
    (0..KEYS)
        .map(|i| StateWrite {
            lambda,
            group: (i % 4) as u16,
            key: i.to_be_bytes().to_vec(),
            value: Some(epoch.to_be_bytes().to_vec()),
            writers: vec![epoch],
        })
        .collect()
}

/// The child: commits epoch after epoch from both committers, printing each acknowledged one.
#[test]
#[ignore = "run by sled_recovers_a_whole_epoch_after_sigkill in a child process"]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let store = super::model_tests::reopen(std::path::Path::new(&dir)).expect("child opens");
    let recovered = store.recover(&COMMITTERS).expect("child recovers");
    for epoch in recovered.committed_epoch + 1.. {
        for c in COMMITTERS {
            let batch = CommitBatch {
                committer: c,
                epoch,
                writes: writes(c.lambda, epoch),
                completed: vec![],
            };
            store.commit(batch).expect("child commits");
        }
        println!("{epoch}");
    }
}

#[test]
fn sled_recovers_a_whole_epoch_after_sigkill() {
    let dir = tempfile::tempdir().expect("tempdir");
    let exe = std::env::current_exe().expect("test binary");
    for (round, acks_before_kill) in [3usize, 17, 40].into_iter().enumerate() {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "storage::crash_tests::crash_child",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawns the child");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let mut last_acked = 0u64;
        let mut acks = 0;
        for line in lines.by_ref() {
            if let Ok(epoch) = line.expect("reads the child").trim().parse::<u64>() {
                last_acked = epoch;
                acks += 1;
                if acks == acks_before_kill {
                    break;
                }
            }
        }
        assert_eq!(acks, acks_before_kill, "round {round}: child stopped early");
        child.kill().expect("SIGKILL");
        child.wait().expect("reaps the child");
        // Epochs the child acknowledged before the kill landed, still in the pipe.
        for line in lines {
            if let Ok(epoch) = line.expect("reads the child").trim().parse::<u64>() {
                last_acked = epoch;
            }
        }

        let store = SledStore::open(dir.path()).expect("reopens after the kill");
        let recovered = store.recover(&COMMITTERS).expect("recovers");
        let c = recovered.committed_epoch;
        assert!(
            c >= last_acked && c <= last_acked + 1,
            "round {round}: recovered {c}, acked {last_acked}"
        );
        for committer in COMMITTERS {
            for w in writes(committer.lambda, c) {
                assert_eq!(
                    store.get(w.lambda, w.group, &w.key).expect("get"),
                    w.value,
                    "round {round}"
                );
            }
        }
    }
}
