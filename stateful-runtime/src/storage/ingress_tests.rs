//! Tests of the ingress log: appends, reopen, torn and corrupt tails, streaming reads.

use super::*;

fn rec(i: u8) -> NewRecord {
    NewRecord {
        timestamp_ms: 1000 + u64::from(i),
        lambda: u16::from(i % 3),
        key: vec![i; usize::from(i % 5)],
        handler: 7,
        args: vec![i, i, i],
        idempotency_key: i.is_multiple_of(2).then(|| format!("idem-{i}")),
    }
}

fn open(path: &Path) -> (IngressLog, OpenReport) {
    IngressLog::open(path).expect("opens")
}

#[test]
fn append_reopen_and_read_from() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("ingress.log");
    let (log, report) = open(&path);
    assert_eq!(report, OpenReport::default());
    let seqs: Vec<u64> = (0..5)
        .map(|i| log.append(rec(i)).expect("appends"))
        .collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5]);
    // Readable before a sync: read_from flushes the buffer.
    assert_eq!(log.read_from(4).expect("reads").len(), 2);
    log.sync().expect("syncs");
    drop(log);

    let (log, report) = open(&path);
    assert_eq!(
        report,
        OpenReport {
            records: 5,
            truncated_bytes: 0
        }
    );
    assert_eq!(log.append(rec(5)).expect("appends"), 6);
    let all = log.read_from(0).expect("reads");
    let expected: Vec<_> = (0..6).map(|i| rec(i).with_seq(u64::from(i) + 1)).collect();
    assert_eq!(all, expected);
    assert_eq!(log.read_from(3).expect("reads"), expected[2..].to_vec());
    assert!(log.read_from(7).expect("reads").is_empty());
}

fn log_with_three(path: &Path) -> u64 {
    let (log, _) = open(path);
    for i in 0..3 {
        log.append(rec(i)).expect("appends");
    }
    log.sync().expect("syncs");
    std::fs::metadata(path).expect("metadata").len()
}

#[test]
fn torn_tail_is_truncated_and_appends_continue() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("ingress.log");
    let full = log_with_three(&path);
    let last_len = {
        let (log, _) = open(&path);
        log.append(rec(9)).expect("appends");
        log.sync().expect("syncs");
        std::fs::metadata(&path).expect("metadata").len() - full
    };
    // Cut the fourth record in the middle of its payload.
    let file = OpenOptions::new().write(true).open(&path).expect("opens");
    file.set_len(full + last_len - 3).expect("truncates");
    drop(file);

    let (log, report) = open(&path);
    assert_eq!(
        report,
        OpenReport {
            records: 3,
            truncated_bytes: last_len - 3
        }
    );
    assert_eq!(std::fs::metadata(&path).expect("metadata").len(), full);
    assert_eq!(log.append(rec(4)).expect("appends"), 4);
    log.sync().expect("syncs");
    drop(log);
    let (log, report) = open(&path);
    assert_eq!(
        report,
        OpenReport {
            records: 4,
            truncated_bytes: 0
        }
    );
    assert_eq!(log.read_from(4).expect("reads"), vec![rec(4).with_seq(4)]);
}

#[test]
fn garbage_after_the_last_record_is_truncated() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("ingress.log");
    let full = log_with_three(&path);
    let mut file = OpenOptions::new().append(true).open(&path).expect("opens");
    // A plausible header (small length) with a wrong CRC, then junk.
    file.write_all(&[5, 0, 0, 0, 1, 2, 3, 4, 9, 9])
        .expect("writes");
    drop(file);

    let (log, report) = open(&path);
    assert_eq!(
        report,
        OpenReport {
            records: 3,
            truncated_bytes: 10
        }
    );
    assert_eq!(std::fs::metadata(&path).expect("metadata").len(), full);
    assert_eq!(log.next_seq(), 4);
    // A header shorter than 8 bytes is cut too.
    drop(log);
    let mut file = OpenOptions::new().append(true).open(&path).expect("opens");
    file.write_all(&[1, 2, 3]).expect("writes");
    drop(file);
    assert_eq!(
        open(&path).1,
        OpenReport {
            records: 3,
            truncated_bytes: 3
        }
    );
}

#[test]
fn corrupt_crc_in_the_last_record_drops_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("ingress.log");
    let full = log_with_three(&path);
    let mut bytes = std::fs::read(&path).expect("reads");
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40;
    std::fs::write(&path, &bytes).expect("writes");

    let (log, report) = open(&path);
    assert_eq!(report.records, 2);
    let dropped = report.truncated_bytes;
    assert!(dropped > HEADER as u64);
    assert_eq!(
        std::fs::metadata(&path).expect("metadata").len(),
        full - dropped
    );
    assert_eq!(log.append(rec(7)).expect("appends"), 3);
    let seqs: Vec<u64> = log
        .read_from(0)
        .expect("reads")
        .iter()
        .map(|r| r.seq)
        .collect();
    assert_eq!(seqs, [1, 2, 3]);
}

#[test]
fn sync_is_skipped_when_nothing_was_appended() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (log, _) = open(&dir.path().join("ingress.log"));
    assert!(!log.lock().dirty);
    log.append(rec(1)).expect("appends");
    assert!(log.lock().dirty);
    log.sync().expect("syncs");
    assert!(!log.lock().dirty);
    log.sync().expect("a second sync is a no-op");
}

#[test]
fn concurrent_appends_get_distinct_increasing_seqs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("ingress.log");
    let (log, _) = open(&path);
    std::thread::scope(|s| {
        for t in 0..4u8 {
            let log = &log;
            s.spawn(move || {
                for i in 0..50u8 {
                    log.append(rec(t * 50 + i)).expect("appends");
                }
            });
        }
    });
    log.sync().expect("syncs");
    drop(log);
    let (log, report) = open(&path);
    assert_eq!(
        report,
        OpenReport {
            records: 200,
            truncated_bytes: 0
        }
    );
    let seqs: Vec<u64> = log
        .read_from(0)
        .expect("reads")
        .iter()
        .map(|r| r.seq)
        .collect();
    assert_eq!(seqs, (1..=200).collect::<Vec<_>>());
}

#[test]
fn scan_log_streams_from_a_seq_and_stops_when_asked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("ingress.log");
    let (log, _) = open(&path);
    for i in 0..10 {
        log.append(rec(i)).expect("appends");
    }
    log.sync().expect("syncs");
    let mut seen = Vec::new();
    scan_log(&path, 4, |r| {
        seen.push(r.seq);
        seen.len() < 3
    })
    .expect("scans");
    assert_eq!(seen, [4, 5, 6]);
    // A torn tail ends the scan quietly, as it ends the log.
    let len = std::fs::metadata(&path).expect("metadata").len();
    OpenOptions::new()
        .write(true)
        .open(&path)
        .expect("opens")
        .set_len(len - 2)
        .expect("truncates");
    let mut all = 0;
    scan_log(&path, 0, |_| {
        all += 1;
        true
    })
    .expect("scans");
    assert_eq!(all, 9);
}
