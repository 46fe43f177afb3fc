//! Property test: random transactional programs, run concurrently, give results equal to some
//! serial order.
//!
//! Each program runs its operations (read or add on a few registers) inside one
//! `transaction!`, and some abort at the end. Reads take shared locks (a read handler takes
//! `&Ctx`), so programs that read the same register run together, and a program that reads
//! then adds to a register upgrades its lock. Every register records the programs that wrote it,
//! in order, so the run reveals an order: a program that read version `v` of a register came
//! after its first `v` writers and before the next. The test checks that these constraints are
//! acyclic (the run is conflict-serializable), that aborted programs left no trace, and that
//! replaying the committed programs one by one in that order against a model gives exactly the
//! answers the programs got and the final register values.
//!
//! The same check runs on a durable engine whose instance cache holds almost nothing (every
//! instance is evicted after each epoch and read back from the store), across a crash: a child
//! process runs the first half of the programs and is SIGKILLed once it has its answers, and the
//! second half runs after recovery.
#![allow(missing_docs)]

use std::collections::{BTreeMap, HashMap, HashSet};

use proptest::prelude::*;

mod common;
use stateful_runtime::{Config, JsonResponse};

/// Registers and programs over them.
#[stateful_runtime::app]
pub mod regs {
    use stateful_runtime::prelude::*;

    /// One register: its value and who wrote it, in order.
    #[derive(Debug, Default, Clone, Serialize, Deserialize)]
    pub struct Reg {
        value: i64,
        writers: Vec<u64>,
    }

    /// One step of a program.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub enum Op {
        /// Read a register.
        Read(String),
        /// Add to a register.
        Add(String, i64),
    }

    #[lambda(key = String, state = Reg)]
    impl Register {
        /// (value, number of writes so far). A read: it shares the register's lock with
        /// other reads.
        async fn read(ctx: &Ctx<Self>) -> Result<(i64, u64), Rejection> {
            let s = ctx.state();
            Ok((s.value, s.writers.len() as u64))
        }

        async fn add(ctx: &mut Ctx<Self>, program: u64, n: i64) -> Result<(i64, u64), Rejection> {
            let mut s = ctx.state_mut();
            s.value += n;
            s.writers.push(program);
            Ok((s.value, s.writers.len() as u64))
        }

        async fn dump(ctx: &Ctx<Self>) -> Result<(i64, Vec<u64>), Rejection> {
            let s = ctx.state();
            Ok((s.value, s.writers.clone()))
        }
    }

    #[lambda(key = u64, state = Reg)]
    impl Program {
        async fn run(
            ctx: &mut Ctx<Self>,
            ops: Vec<Op>,
            abort: bool,
        ) -> Result<Vec<(i64, u64)>, Rejection> {
            let id = *ctx.key();
            transaction! {
                let mut out = Vec::new();
                for op in &ops {
                    let r = match op {
                        Op::Read(k) => ctx.call::<Register>(k).read().await?,
                        Op::Add(k, n) => ctx.call::<Register>(k).add(id, *n).await?,
                    };
                    out.push(r);
                }
                if abort {
                    Err(Rejection::new("the program aborts"))?;
                }
                Ok(out)
            }
            .on_failure(|e| Err(e))
        }
    }
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
enum POp {
    Read(usize),
    Add(usize, i64),
}

fn program() -> impl Strategy<Value = (Vec<POp>, bool)> {
    let op = prop_oneof![
        (0..3usize).prop_map(POp::Read),
        (0..3usize, -5i64..=5).prop_map(|(r, n)| POp::Add(r, n)),
    ];
    (prop::collection::vec(op, 1..5), prop::bool::weighted(0.25))
}

fn reg(i: usize) -> String {
    format!("r{i}")
}

/// Answers of the committed programs, by program id.
type Results = HashMap<u64, Vec<(i64, u64)>>;
/// Final registers: value and writers.
type Finals = BTreeMap<usize, (i64, Vec<u64>)>;

fn fail(e: impl std::fmt::Display) -> TestCaseError {
    TestCaseError::fail(e.to_string())
}

fn check(programs: &[(Vec<POp>, bool)], workers: usize) -> Result<(), TestCaseError> {
    let rt = regs::app()
        .start(Config::in_memory(workers))
        .map_err(fail)?;
    let h = regs::app().json(rt.handle());
    let results = run_all(&h, programs, 0)?;
    let finals = dump(&h)?;
    drop(h);
    rt.shutdown();
    verify(programs, &results, &finals)
}

/// Runs `programs` (ids from `first`) all at once; the answers of those that committed.
fn run_all(
    h: &stateful_runtime::JsonClient,
    programs: &[(Vec<POp>, bool)],
    first: usize,
) -> Result<Results, TestCaseError> {
    let mut pending = Vec::new();
    for (j, (ops, abort)) in programs.iter().enumerate() {
        let i = first + j;
        let ops: Vec<serde_json::Value> = ops
            .iter()
            .map(|o| match o {
                POp::Read(r) => serde_json::json!({"Read": reg(*r)}),
                POp::Add(r, n) => serde_json::json!({"Add": [reg(*r), n]}),
            })
            .collect();
        let (l, hd, k, a) = h
            .prepare(
                "Program",
                &i.to_string(),
                "run",
                serde_json::json!({"ops": ops, "abort": abort}),
            )
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        pending.push((
            l,
            hd,
            h.handle()
                .submit(l, k, hd, a, None)
                .map_err(|e| TestCaseError::fail(e.to_string()))?,
        ));
    }
    let mut results = Results::new();
    for (j, (l, hd, rx)) in pending.into_iter().enumerate() {
        let i = first + j;
        let resp = rx
            .blocking_recv()
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        match h.to_json(l, hd, resp) {
            JsonResponse::Ok(v) => {
                prop_assert!(!programs[j].1, "program {i} aborts but succeeded");
                let out: Vec<(i64, u64)> =
                    serde_json::from_value(v).map_err(|e| TestCaseError::fail(e.to_string()))?;
                results.insert(i as u64, out);
            }
            JsonResponse::Rejected { .. } => prop_assert!(programs[j].1, "program {i} rejected"),
            JsonResponse::Failed(e) => {
                return Err(TestCaseError::fail(format!("program {i}: {e}")));
            }
        }
    }
    Ok(results)
}

/// The final registers.
fn dump(h: &stateful_runtime::JsonClient) -> Result<Finals, TestCaseError> {
    let mut finals = Finals::new();
    for r in 0..3 {
        match h.invoke_blocking("Register", &reg(r), "dump", serde_json::Value::Null) {
            Ok(JsonResponse::Ok(v)) => {
                finals.insert(
                    r,
                    serde_json::from_value(v).map_err(|e| TestCaseError::fail(e.to_string()))?,
                );
            }
            other => return Err(TestCaseError::fail(format!("dump: {other:?}"))),
        }
    }
    Ok(finals)
}

/// The run's answers and final registers are those of a serial order of the programs.
fn verify(
    programs: &[(Vec<POp>, bool)],
    results: &Results,
    finals: &Finals,
) -> Result<(), TestCaseError> {
    // Aborted programs left no trace; committed ones wrote exactly their adds.
    for (r, (_, writers)) in finals {
        let mut expected: HashMap<u64, usize> = HashMap::new();
        for (i, (ops, abort)) in programs.iter().enumerate() {
            if *abort {
                continue;
            }
            let n = ops
                .iter()
                .filter(|o| matches!(o, POp::Add(x, _) if x == r))
                .count();
            if n > 0 {
                expected.insert(i as u64, n);
            }
        }
        let mut got: HashMap<u64, usize> = HashMap::new();
        for w in writers {
            *got.entry(*w).or_default() += 1;
        }
        prop_assert_eq!(got, expected, "writers of r{}", r);
    }
    // Order constraints: edges a -> b mean a serialised before b.
    let committed: Vec<u64> = results.keys().copied().collect();
    let mut edges: HashSet<(u64, u64)> = HashSet::new();
    for (&p, out) in results {
        for (op, (_, version)) in programs[p as usize].0.iter().zip(out) {
            let r = match op {
                POp::Read(r) | POp::Add(r, _) => *r,
            };
            let writers = &finals[&r].1;
            let v = *version as usize;
            // Everything written before this access precedes p; the next foreign writer follows.
            for w in writers.iter().take(v) {
                if *w != p {
                    edges.insert((*w, p));
                }
            }
            if let Some(w) = writers.iter().skip(v).find(|w| **w != p) {
                edges.insert((p, *w));
            }
        }
    }
    // Topological order (Kahn); a cycle means the run was not serializable.
    let mut indeg: HashMap<u64, usize> = committed.iter().map(|p| (*p, 0)).collect();
    for (_, b) in &edges {
        *indeg.entry(*b).or_default() += 1;
    }
    let mut ready: Vec<u64> = indeg
        .iter()
        .filter(|(_, d)| **d == 0)
        .map(|(p, _)| *p)
        .collect();
    let mut order = Vec::new();
    while let Some(p) = ready.pop() {
        order.push(p);
        for (a, b) in &edges {
            if *a == p {
                let d = indeg.entry(*b).or_default();
                *d -= 1;
                if *d == 0 {
                    ready.push(*b);
                }
            }
        }
    }
    prop_assert_eq!(
        order.len(),
        committed.len(),
        "conflict cycle: not serializable"
    );
    // Serial replay in that order reproduces every answer and the final values.
    let mut model: HashMap<usize, (i64, u64)> = HashMap::new();
    for p in &order {
        let mut out = Vec::new();
        for op in &programs[*p as usize].0 {
            match op {
                POp::Read(r) => out.push(*model.entry(*r).or_default()),
                POp::Add(r, n) => {
                    let e = model.entry(*r).or_default();
                    e.0 += n;
                    e.1 += 1;
                    out.push(*e);
                }
            }
        }
        prop_assert_eq!(
            &out,
            &results[p],
            "program {} answers as in the serial order",
            p
        );
    }
    for (r, (value, _)) in finals {
        prop_assert_eq!(
            model.get(r).map_or(0, |m| m.0),
            *value,
            "final value of r{}",
            r
        );
    }
    Ok(())
}

/// A cache of one byte: after each epoch every instance that may go, goes.
fn tiny_cache(dir: &std::path::Path, workers: usize) -> Config {
    let mut config = Config::durable(dir, workers);
    config.cache_bytes = Some(1);
    config
}

/// Run as a child: the programs of `STATEFUL_MODEL_PROGRAMS` on the data dir
/// `STATEFUL_MODEL_DIR`; prints their answers as one JSON line, then waits to be killed.
#[test]
#[ignore = "run by a_tiny_cache_and_a_crash_keep_the_serial_order as a child process"]
fn tiny_cache_child() {
    let (Ok(dir), Ok(programs)) = (
        std::env::var("STATEFUL_MODEL_DIR"),
        std::env::var("STATEFUL_MODEL_PROGRAMS"),
    ) else {
        return;
    };
    let programs: Vec<(Vec<POp>, bool)> = serde_json::from_str(&programs).expect("programs");
    let rt = regs::app()
        .start(tiny_cache(std::path::Path::new(&dir), 2))
        .expect("starts");
    let h = regs::app().json(rt.handle());
    let results = run_all(&h, &programs, 0).expect("runs");
    let results: BTreeMap<u64, Vec<(i64, u64)>> = results.into_iter().collect();
    println!(
        "answers {}",
        serde_json::to_string(&results).expect("encodes")
    );
    loop {
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
}

/// The first half of `programs` in a child process that is SIGKILLed once answered (its
/// store may lag its log), the second half after recovery; all with a one-byte cache.
fn check_tiny_cache_across_a_crash(
    programs: &[(Vec<POp>, bool)],
    workers: usize,
) -> Result<(), TestCaseError> {
    use std::io::BufRead;
    let dir = tempfile::tempdir().map_err(fail)?;
    let half = programs.len() / 2;
    let mut child = std::process::Command::new(std::env::current_exe().map_err(fail)?)
        .args(["--exact", "tiny_cache_child", "--ignored", "--nocapture"])
        .env("STATEFUL_MODEL_DIR", dir.path())
        .env(
            "STATEFUL_MODEL_PROGRAMS",
            serde_json::to_string(&programs[..half]).map_err(fail)?,
        )
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(fail)?;
    let stdout = child.stdout.take().ok_or_else(|| fail("no stdout"))?;
    let line = std::io::BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find_map(|l| l.strip_prefix("answers ").map(str::to_owned));
    child.kill().map_err(fail)?;
    child.wait().map_err(fail)?;
    let first: BTreeMap<u64, Vec<(i64, u64)>> =
        serde_json::from_str(&line.ok_or_else(|| fail("the child gave no answers"))?)
            .map_err(fail)?;
    let rt = regs::app()
        .start(tiny_cache(dir.path(), workers))
        .map_err(fail)?;
    let h = regs::app().json(rt.handle());
    let mut results = run_all(&h, &programs[half..], half)?;
    results.extend(first);
    let finals = dump(&h)?;
    let evicted = common::sum(h.handle(), |m| {
        m.evictions.load(std::sync::atomic::Ordering::Relaxed)
    });
    drop(h);
    rt.shutdown();
    prop_assert!(evicted > 0, "the one-byte cache evicted");
    verify(programs, &results, &finals)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn concurrent_programs_equal_a_serial_order(
        programs in prop::collection::vec(program(), 2..24),
        workers in 1usize..=3,
    ) {
        check(&programs, workers)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn a_tiny_cache_and_a_crash_keep_the_serial_order(
        programs in prop::collection::vec(program(), 4..24),
        workers in 1usize..=3,
    ) {
        check_tiny_cache_across_a_crash(&programs, workers)?;
    }
}
