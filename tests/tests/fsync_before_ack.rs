//! The acknowledgement point, seen from outside: under `strace`, every answer to a write is
//! sent only after an `fdatasync` of a commit-log segment that completed after the previous
//! answer (one client, one request at a time, so that fsync is this request's commit).
//! Skipped (and says so) where `strace` is missing or may not trace.
#![allow(missing_docs)]

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use stateful_tests::{Ledger, TestDir};

const WRITES: usize = 25;

fn strace_usable() -> bool {
    Command::new("strace")
        .args(["-f", "-o", "/dev/null", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `strace` attached to every thread of `pid`, writing to `out`; returns once attached.
fn attach(pid: u32, out: &std::path::Path, err: &std::path::Path) -> Child {
    let child = Command::new("strace")
        .args(["-f", "-tt", "-y", "-s", "24", "-e"])
        .arg("trace=fdatasync,fsync,write,writev,sendto,sendmsg")
        .arg("-o")
        .arg(out)
        .args(["-p", &pid.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(err).expect("strace log"))
        .spawn()
        .expect("spawn strace");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(err)
        .unwrap_or_default()
        .contains("attached")
    {
        assert!(Instant::now() < deadline, "strace did not attach");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Attaching to the threads one by one takes a moment more.
    std::thread::sleep(Duration::from_millis(300));
    child
}

/// What the trace says happened, in order.
#[derive(Debug, PartialEq)]
enum Event {
    /// An `fdatasync` of a commit-log segment returned.
    LogSynced,
    /// An HTTP response started going out.
    Answer(String),
}

/// The events of a `strace -f -y` trace: a call may be split into `<unfinished ...>` and
/// `<... resumed>` lines (by thread), and only a finished sync counts.
fn events(trace: &str) -> Vec<Event> {
    let mut pending: HashMap<&str, bool> = HashMap::new();
    let mut out = Vec::new();
    for line in trace.lines() {
        let tid = line.split_whitespace().next().unwrap_or("");
        let is_seg_sync = line.contains("fdatasync(") && line.contains(".seg>");
        if line.contains("<unfinished ...>") {
            pending.insert(tid, is_seg_sync);
        } else if line.contains("<... fdatasync resumed>") {
            if pending.remove(tid) == Some(true) && line.contains("= 0") {
                out.push(Event::LogSynced);
            }
        } else if is_seg_sync && line.contains("= 0") {
            out.push(Event::LogSynced);
        }
        if let Some(i) = line.find("\"HTTP/1.1 ") {
            out.push(Event::Answer(line[i + 1..].chars().take(15).collect()));
        }
    }
    out
}

#[test]
fn every_answer_to_a_write_follows_an_fdatasync_of_the_log() {
    if !strace_usable() {
        eprintln!("SKIPPED: strace is missing or may not trace here (apt-get install strace)");
        return;
    }
    let mut dir = TestDir::new(env!("CARGO_BIN_EXE_fixture"));
    let server = dir.start();
    let account = server.create_account(0);
    let trace = dir.path().join("strace.out");
    let mut strace = attach(server.pid(), &trace, &dir.path().join("strace.err"));
    for i in 1..=WRITES {
        let r = server.post(&format!("/accounts/{account}/deposit/1"));
        assert_eq!(r.ok(), serde_json::json!(i as i64), "deposit {i}");
    }
    // SIGINT: strace detaches and writes out what it has.
    let _ = Command::new("kill")
        .args(["-INT", &strace.id().to_string()])
        .status();
    let _ = strace.wait();
    assert_eq!(server.balance(&account), WRITES as i64);
    server.stop();
    let text = std::fs::read_to_string(&trace).expect("trace");
    let events = events(&text);
    let answers: Vec<usize> = events
        .iter()
        .enumerate()
        .filter_map(|(i, e)| matches!(e, Event::Answer(_)).then_some(i))
        .collect();
    assert!(
        answers.len() >= WRITES,
        "the trace shows {} answers, expected at least {WRITES}:\n{text}",
        answers.len()
    );
    // The last WRITES answers are the deposits; each needs a sync since the answer before
    // (or since the trace began).
    let first = answers.len() - WRITES;
    for (n, w) in answers[first..].iter().enumerate() {
        let since = (first + n).checked_sub(1).map_or(0, |p| answers[p]);
        let synced = events[since..*w].contains(&Event::LogSynced);
        assert!(
            synced,
            "deposit {} was answered ({:?}) with no fdatasync of the log since the previous answer",
            n + 1,
            events[*w]
        );
        assert_eq!(events[*w], Event::Answer("HTTP/1.1 200 OK".into()));
    }
}
