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
#![allow(missing_docs)]

use std::collections::{BTreeMap, HashMap, HashSet};

use proptest::prelude::*;
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

#[derive(Debug, Clone)]
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

fn check(programs: &[(Vec<POp>, bool)], workers: usize) -> Result<(), TestCaseError> {
    let rt = regs::app()
        .start(Config::in_memory(workers))
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let h = regs::app().json(rt.handle());
    // All programs at once.
    let mut pending = Vec::new();
    for (i, (ops, abort)) in programs.iter().enumerate() {
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
    let mut results: HashMap<u64, Vec<(i64, u64)>> = HashMap::new();
    for (i, (l, hd, rx)) in pending.into_iter().enumerate() {
        let resp = rx
            .blocking_recv()
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        match h.to_json(l, hd, resp) {
            JsonResponse::Ok(v) => {
                prop_assert!(!programs[i].1, "program {i} aborts but succeeded");
                let out: Vec<(i64, u64)> =
                    serde_json::from_value(v).map_err(|e| TestCaseError::fail(e.to_string()))?;
                results.insert(i as u64, out);
            }
            JsonResponse::Rejected { .. } => prop_assert!(programs[i].1, "program {i} rejected"),
            JsonResponse::Failed(e) => {
                return Err(TestCaseError::fail(format!("program {i}: {e}")));
            }
        }
    }
    // Final registers.
    let mut finals: BTreeMap<usize, (i64, Vec<u64>)> = BTreeMap::new();
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
    drop(h);
    rt.shutdown();

    // Aborted programs left no trace; committed ones wrote exactly their adds.
    for (r, (_, writers)) in &finals {
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
    for (&p, out) in &results {
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
    for (r, (value, _)) in &finals {
        prop_assert_eq!(
            model.get(r).map_or(0, |m| m.0),
            *value,
            "final value of r{}",
            r
        );
    }
    Ok(())
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
