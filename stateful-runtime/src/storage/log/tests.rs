//! Tests of the commit log: reopen and chain, segments, torn tails at every byte, damage in
//! the middle, a missing segment, a checkpoint newer than the log, and power cuts.

use super::fs::{OsFs, SimFs};
use super::*;
use stateful_core::mix::SplitMix;
use stateful_core::records::commit::WriteRecord;

fn record(epoch: u64, prev: u64) -> CommitRecord {
    CommitRecord {
        epoch,
        prev_epoch: prev,
        writes: vec![WriteRecord {
            lambda: 1,
            group: 2,
            key: epoch.to_be_bytes().to_vec(),
            value: Some(vec![7; (epoch % 5) as usize]),
            writers: vec![epoch],
        }],
        completions: vec![],
        messages: vec![],
        next_seq: epoch + 1,
        next_order: epoch,
    }
}

fn open(
    dir: &Path,
    fs: Arc<dyn LogFs>,
    checkpoint: u64,
) -> (CommitLog, Vec<CommitRecord>, LogReport) {
    CommitLog::open(dir, fs, SyncMode::Fsync, checkpoint).expect("opens")
}

/// Appends epochs `from..to` (each after the previous), syncing after each.
fn append(log: &mut CommitLog, epochs: std::ops::Range<u64>) {
    for e in epochs {
        let prev = log.last_epoch();
        log.append(&record(e, prev)).expect("appends");
        log.sync().expect("syncs");
    }
}

fn epochs(records: &[CommitRecord]) -> Vec<u64> {
    records.iter().map(|r| r.epoch).collect()
}

#[test]
fn records_come_back_after_the_checkpoint_across_segments() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("log");
    let fs: Arc<dyn LogFs> = Arc::new(OsFs);
    let (log, after, report) = open(&dir, fs.clone(), 0);
    assert_eq!((after.len(), report.records), (0, 0));
    let mut log = log.with_segment_bytes(200);
    append(&mut log, 1..21);
    assert!(log.segments.len() > 3, "{} segments", log.segments.len());
    drop(log);
    let (log, after, report) = open(&dir, fs.clone(), 12);
    assert_eq!(epochs(&after), (13..21).collect::<Vec<_>>());
    assert_eq!((report.records, report.last_epoch), (20, 20));
    let mut log = log.with_segment_bytes(200);
    let before = log.segments.len();
    assert!(log.truncate_through(12).expect("truncates") > 0);
    assert!(log.segments.len() < before);
    append(&mut log, 21..23);
    drop(log);
    let (_, after, _) = open(&dir, fs, 12);
    assert_eq!(epochs(&after), (13..23).collect::<Vec<_>>());
    assert_eq!(
        read_log(&dir).expect("reads").last().map(|r| r.epoch),
        Some(22)
    );
}

#[test]
fn a_torn_last_record_is_cut_at_every_byte_and_appends_continue() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("log");
    let sim = SimFs::new();
    let fs: Arc<dyn LogFs> = Arc::new(sim.clone());
    let (mut log, _, _) = open(&dir, fs.clone(), 0);
    append(&mut log, 1..4);
    let path = log.segments[0].path.clone();
    let full = sim.bytes(&path).expect("the segment");
    let last_len = frame::frame(&record(3, 2)).expect("frames").len();
    drop(log);
    for cut in 1..last_len {
        sim.set_bytes(&path, full[..full.len() - cut].to_vec());
        let (mut log, after, report) = open(&dir, fs.clone(), 0);
        assert_eq!(epochs(&after), [1, 2], "cut {cut} bytes");
        assert_eq!(report.truncated_bytes, (last_len - cut) as u64);
        assert_eq!(
            sim.bytes(&path).map(|b| b.len()),
            Some(full.len() - last_len),
            "the torn bytes are cut off"
        );
        append(&mut log, 3..4);
        drop(log);
        let (_, after, report) = open(&dir, fs.clone(), 0);
        assert_eq!(epochs(&after), [1, 2, 3]);
        assert_eq!(report.truncated_bytes, 0);
    }
}

#[test]
fn a_bad_checksum_last_is_a_torn_tail_and_in_the_middle_an_error() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("log");
    let sim = SimFs::new();
    let fs: Arc<dyn LogFs> = Arc::new(sim.clone());
    let (mut log, _, _) = open(&dir, fs.clone(), 0);
    append(&mut log, 1..6);
    let path = log.segments[0].path.clone();
    drop(log);
    let full = sim.bytes(&path).expect("the segment");
    // The last byte of the last record: its checksum fails and nothing follows.
    let mut bytes = full.clone();
    let n = bytes.len();
    bytes[n - 1] ^= 0x55;
    sim.set_bytes(&path, bytes);
    let (_, after, report) = open(&dir, fs.clone(), 0);
    assert_eq!(epochs(&after), [1, 2, 3, 4]);
    assert!(report.truncated_bytes > 0);
    // A byte of the second record: intact records follow, so the middle is damaged.
    let mut bytes = full.clone();
    let second = frame::frame(&record(1, 0)).expect("frames").len() + frame::HEADER + 1;
    bytes[second] ^= 0x55;
    sim.set_bytes(&path, bytes);
    let err = CommitLog::open(&dir, fs, SyncMode::Fsync, 0).expect_err("damaged");
    assert!(err.to_string().contains("damaged in the middle"), "{err}");
}

#[test]
fn a_missing_segment_and_a_missing_start_are_errors() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("log");
    let sim = SimFs::new();
    let fs: Arc<dyn LogFs> = Arc::new(sim.clone());
    let (log, _, _) = open(&dir, fs.clone(), 0);
    let mut log = log.with_segment_bytes(150);
    append(&mut log, 1..12);
    assert!(log.segments.len() >= 3);
    let middle = log.segments[1].path.clone();
    let first = log.segments[0].path.clone();
    drop(log);
    let kept = sim.bytes(&middle).expect("segment");
    sim.remove(&middle).expect("removes");
    let err = CommitLog::open(&dir, fs.clone(), SyncMode::Fsync, 0).expect_err("gap");
    assert!(err.to_string().contains("missing"), "{err}");
    sim.set_bytes(&middle, kept);
    sim.remove(&first).expect("removes");
    let err = CommitLog::open(&dir, fs.clone(), SyncMode::Fsync, 0).expect_err("start");
    assert!(err.to_string().contains("missing"), "{err}");
    // With a checkpoint past the removed segment's records, nothing is missing.
    let (_, after, _) = open(&dir, fs, 11);
    assert!(after.is_empty());
}

#[test]
fn a_checkpoint_newer_than_the_log_recovers_and_the_chain_restarts() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("log");
    let fs: Arc<dyn LogFs> = Arc::new(OsFs);
    let (mut log, _, _) = open(&dir, fs.clone(), 0);
    append(&mut log, 1..4);
    drop(log);
    // The store materialised up to epoch 10 (later records were lost with a segment that
    // was already behind its checkpoint).
    let (mut log, after, _) = open(&dir, fs.clone(), 10);
    assert!(after.is_empty());
    assert_eq!(log.last_epoch(), 10);
    append(&mut log, 11..13);
    drop(log);
    let (_, after, _) = open(&dir, fs, 10);
    assert_eq!(epochs(&after), [11, 12]);
}

#[test]
fn a_record_out_of_order_is_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (mut log, _, _) = open(&tmp.path().join("log"), Arc::new(OsFs), 0);
    append(&mut log, 1..3);
    assert!(
        log.append(&record(2, 2)).is_err(),
        "not after the last epoch"
    );
    assert!(log.append(&record(5, 1)).is_err(), "a wrong predecessor");
}

#[test]
fn after_a_power_cut_every_synced_record_is_there_exactly_once() {
    for seed in 0..40u64 {
        let mut rng = SplitMix::new(seed);
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("log");
        let sim = SimFs::new();
        let fs: Arc<dyn LogFs> = Arc::new(sim.clone());
        let mut synced: Vec<u64> = Vec::new();
        let mut next = 1u64;
        for _round in 0..4 {
            let (log, after, _) = CommitLog::open(&dir, fs.clone(), SyncMode::Fsync, 0)
                .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
            let got = epochs(&after);
            // Everything synced is there, in order, once; at most unsynced epochs beyond it.
            assert!(
                got.starts_with(&synced),
                "seed {seed}: {got:?} lost some of {synced:?}"
            );
            synced = got.clone();
            next = next.max(got.last().copied().unwrap_or(0) + 1);
            let mut log = log.with_segment_bytes(120 + rng.below(400));
            let mut appended = got;
            for _ in 0..rng.below(12) {
                let prev = log.last_epoch();
                log.append(&record(next, prev)).expect("appends");
                appended.push(next);
                next += 1;
                if rng.below(3) == 0 {
                    log.sync().expect("syncs");
                    synced = appended.clone();
                }
            }
            drop(log);
            sim.power_cut(|n| rng.below(n as u64 + 1) as usize);
        }
    }
}

#[test]
fn cut_after_drops_later_records_across_segments() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("log");
    let fs: Arc<dyn LogFs> = Arc::new(OsFs);
    let (log, _, _) = open(&dir, fs.clone(), 0);
    let mut log = log.with_segment_bytes(150);
    append(&mut log, 1..15);
    assert_eq!(log.cut_after(6, 0).expect("cuts"), 8);
    assert_eq!(log.last_epoch(), 6);
    append(&mut log, 7..9);
    drop(log);
    let (_, after, _) = open(&dir, fs.clone(), 0);
    assert_eq!(epochs(&after), (1..9).collect::<Vec<_>>());
    let (mut log, _, _) = open(&dir, fs.clone(), 0);
    log.cut_after(0, 0).expect("cuts everything");
    assert_eq!(log.last_epoch(), 0);
    append(&mut log, 20..22);
    drop(log);
    let (_, after, _) = open(&dir, fs, 0);
    assert_eq!(epochs(&after), [20, 21]);
}
