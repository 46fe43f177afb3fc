//! In-process benchmark of the engine (no HTTP): closed-loop clients keep `C` requests
//! outstanding and record each latency in an HDR histogram.
//!
//! ```text
//! cargo bench -p shop --bench engine                      # everything, 5 s per run
//! cargo bench -p shop --bench engine -- counter 2 durable  # filter by words
//! SECS=10 CONC=128 cargo bench -p shop --bench engine
//! CACHE_KB=512 cargo bench -p shop --bench engine -- checkout-uniform 2 durable
//! ```
//!
//! Workloads: `counter` (one lambda, one key per request out of 10k), `callreply` (a lambda
//! calling another and awaiting the reply), `hotread` (one hot key: 90% reads that hold it
//! across a call to another lambda, 10% writes), `messages` (each request sends a message
//! after commit; prints how fast the postman delivers), `checkout` (the shop's transaction: order → 2 stock
//! items + payment) with uniform keys and with a hot item. `ok/s` counts successful requests
//! only; `rejected` counts answers that were errors (for checkouts: an order drawn again after it
//! was paid, once the `ORDERS` prepared orders run out).
#![allow(missing_docs)]

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use serde_json::json;
use stateful_runtime::{App, Config, Handle, HistoryRetention, JsonClient, Runtime};

/// Two tiny lambdas: a counter, and a caller that calls it.
#[stateful_runtime::app]
pub mod micro {
    use stateful_runtime::prelude::*;

    /// A count.
    #[derive(Debug, Default, Clone, Serialize, Deserialize)]
    pub struct Count {
        n: u64,
    }

    #[lambda(key = u64, state = Count)]
    impl Counter {
        async fn incr(ctx: &mut Ctx<Self>) -> Result<u64, Rejection> {
            ctx.state_mut().n += 1;
            Ok(ctx.state().n)
        }

        async fn read(ctx: &Ctx<Self>) -> Result<u64, Rejection> {
            Ok(ctx.state().n)
        }
    }

    #[lambda(key = u64, state = Count)]
    impl Catalog {
        /// A read that holds its instance across a call (a page that shows a flight and its
        /// airline): readers of one hot key share its lock.
        async fn peek(ctx: &Ctx<Self>, target: u64) -> Result<u64, Rejection> {
            let other = ctx.call::<Counter>(&target).read().await?;
            Ok(ctx.state().n + other)
        }

        async fn bump(ctx: &mut Ctx<Self>) -> Result<u64, Rejection> {
            ctx.state_mut().n += 1;
            Ok(ctx.state().n)
        }
    }

    #[lambda(key = u64, state = Count)]
    impl Caller {
        /// Counts here and tells `target` by a message after commit.
        async fn notify(ctx: &mut Ctx<Self>, target: u64) -> Result<(), Rejection> {
            ctx.state_mut().n += 1;
            ctx.send::<Counter>(&target).incr();
            Ok(())
        }

        async fn ping(ctx: &mut Ctx<Self>, target: u64) -> Result<u64, Rejection> {
            let n = ctx.call::<Counter>(&target).incr().await?;
            ctx.state_mut().n += 1;
            Ok(n)
        }
    }
}

struct Run {
    name: String,
    workers: usize,
    durable: bool,
    conc: usize,
    history: HistoryRetention,
}

/// Bytes a directory takes on disk (allocated blocks), recursively.
fn dir_bytes(path: &std::path::Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.blocks() * 512,
            Err(_) => 0,
        })
        .sum()
}

/// The cost of history: the counter workload (every request writes a new version) with
/// history kept forever and with history off (compacted every 100 ms), side by side.
fn history_cost(secs: f64, conc: usize) {
    println!("# history cost: counter, 2 workers, durable, traces on");
    for (label, history) in [
        ("forever", HistoryRetention::forever()),
        (
            "off (0)",
            HistoryRetention {
                keep_for_ms: Some(0),
                max_bytes: None,
                check_every_ms: 100,
            },
        ),
    ] {
        let run = Run {
            name: format!("history {label}"),
            workers: 2,
            durable: true,
            conc,
            history,
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let rt = start(&micro::app(), &run, &dir);
        let h = rt.handle();
        let j = micro::app().json(h.clone());
        let keys = 10_000u64;
        let reqs: Vec<Prepared> = (0..keys)
            .map(|k| {
                prepared(
                    &j,
                    "Counter",
                    &k.to_string(),
                    "incr",
                    serde_json::Value::Null,
                )
            })
            .collect();
        let o = drive(&h, secs, conc, &|i| reqs[(i % keys) as usize].clone());
        let m = h.metrics();
        let total = m.requests.load(std::sync::atomic::Ordering::Relaxed);
        let commit_us = m.commit_us.load(std::sync::atomic::Ordering::Relaxed) as f64
            / m.commits.load(std::sync::atomic::Ordering::Relaxed).max(1) as f64;
        // Let the compactor run once more before measuring the disk.
        std::thread::sleep(Duration::from_millis(1500));
        drop(h);
        rt.shutdown();
        report(&run, &o);
        let state = dir_bytes(&dir.path().join("state"));
        let log = std::fs::metadata(dir.path().join("ingress.log")).map_or(0, |m| m.len());
        println!(
            "    {total} requests; state on disk {:.1} MiB = {:.0} B/request; ingress log {:.0} B/request; mean commit {commit_us:.0} us",
            state as f64 / (1 << 20) as f64,
            state as f64 / total.max(1) as f64,
            log as f64 / total.max(1) as f64,
        );
    }
}

struct Outcome {
    ops: u64,
    errors: u64,
    secs: f64,
    hist: Histogram<u64>,
    aborts: u64,
    /// Cache hits and misses during the measured run (warm-up included).
    hits: u64,
    misses: u64,
}

/// Cache (hits, misses) over all operators so far.
fn cache_counts(handle: &Handle) -> (u64, u64) {
    let ops = &handle.metrics().operators;
    let load = |f: fn(&stateful_runtime::OperatorMetrics) -> &std::sync::atomic::AtomicU64| {
        ops.iter()
            .map(|m| f(m).load(std::sync::atomic::Ordering::Relaxed))
            .sum::<u64>()
    };
    (load(|m| &m.cache_hits), load(|m| &m.cache_misses))
}

/// A request: (lambda, handler, key, args) as encoded by the handle.
type Prepared = (u16, u16, Vec<u8>, Vec<u8>);

fn drive(
    handle: &Handle,
    secs: f64,
    conc: usize,
    next: &(dyn Fn(u64) -> Prepared + Sync),
) -> Outcome {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio");
    let warm = Duration::from_secs_f64((secs / 5.0).min(1.0));
    let end = Instant::now() + warm + Duration::from_secs_f64(secs);
    let measure_from = Instant::now() + warm;
    let counter = std::sync::atomic::AtomicU64::new(0);
    let aborts0 = handle
        .metrics()
        .aborts
        .load(std::sync::atomic::Ordering::Relaxed);
    let cache0 = cache_counts(handle);
    let (hist, ops, errors) = rt.block_on(async {
        let mut tasks = Vec::new();
        let local = tokio::task::LocalSet::new();
        let counter = &counter;
        let results = local
            .run_until(async {
                for _ in 0..conc {
                    let handle = handle.clone();
                    tasks.push(async move {
                        let mut h =
                            Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("hist");
                        let (mut ops, mut errors) = (0u64, 0u64);
                        loop {
                            let now = Instant::now();
                            if now >= end {
                                break;
                            }
                            let i = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            let (l, hd, key, args) = next(i);
                            let ok = match handle.submit(l, key, hd, args, None) {
                                Ok(rx) => match rx.await {
                                    Ok(r) => r.result.is_ok_and(|o| o.ok),
                                    Err(_) => false,
                                },
                                Err(_) => false,
                            };
                            if now >= measure_from {
                                let _ = h.record(now.elapsed().as_micros() as u64);
                                ops += 1;
                                if !ok {
                                    errors += 1;
                                }
                            }
                        }
                        (h, ops, errors)
                    });
                }
                futures_util::future::join_all(tasks).await
            })
            .await;
        let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("hist");
        let (mut ops, mut errors) = (0, 0);
        for (h, o, e) in results {
            let _ = hist.add(h);
            ops += o;
            errors += e;
        }
        (hist, ops, errors)
    });
    Outcome {
        ops,
        errors,
        secs,
        hist,
        aborts: handle
            .metrics()
            .aborts
            .load(std::sync::atomic::Ordering::Relaxed)
            - aborts0,
        hits: cache_counts(handle).0 - cache0.0,
        misses: cache_counts(handle).1 - cache0.1,
    }
}

/// The `messages` workload: each request counts on a `Caller` and sends a message to a
/// `Counter`; after the run, how long the postman takes to deliver what is left.
fn messages(h: &Handle, j: &JsonClient, secs: f64, conc: usize) -> Outcome {
    use std::sync::atomic::Ordering::Relaxed;
    let keys = 10_000u64;
    let reqs: Vec<Prepared> = (0..keys)
        .map(|k| prepared(j, "Caller", &k.to_string(), "notify", json!(keys - 1 - k)))
        .collect();
    let t0 = Instant::now();
    let o = drive(h, secs, conc, &|i| reqs[(i % keys) as usize].clone());
    let sent_by_end = h.metrics().messages_sent.load(Relaxed);
    let delivered_by_end = h.metrics().messages_delivered.load(Relaxed);
    let drained = Instant::now();
    while h.metrics().messages_delivered.load(Relaxed) < h.metrics().messages_sent.load(Relaxed)
        && drained.elapsed() < Duration::from_secs(120)
    {
        std::thread::sleep(Duration::from_millis(5));
    }
    let total = h.metrics().messages_delivered.load(Relaxed);
    println!(
        "# messages: {sent_by_end} sent and {delivered_by_end} delivered during the run; all {total} delivered {:.2} s after it ({:.0} deliveries/s overall)",
        drained.elapsed().as_secs_f64(),
        total as f64 / t0.elapsed().as_secs_f64()
    );
    o
}

/// The `hotread` workload: of every 10 requests to `Catalog` 0, 9 read it while calling a
/// counter, 1 writes it.
fn hot_read(h: &Handle, j: &JsonClient, secs: f64, conc: usize) -> Outcome {
    let keys = 10_000u64;
    let peeks: Vec<Prepared> = (0..keys)
        .map(|k| prepared(j, "Catalog", "0", "peek", json!(k)))
        .collect();
    let bump = prepared(j, "Catalog", "0", "bump", serde_json::Value::Null);
    drive(h, secs, conc, &|i| {
        if i % 10 == 9 {
            bump.clone()
        } else {
            peeks[(i % keys) as usize].clone()
        }
    })
}

fn start(app: &App, run: &Run, dir: &tempfile::TempDir) -> Runtime {
    let mut config = if run.durable {
        Config::durable(dir.path(), run.workers)
    } else {
        Config::in_memory(run.workers)
    };
    // TRACES=0 measures without recording call trees.
    config.record_traces = std::env::var("TRACES").map_or(true, |v| v != "0");
    // CACHE_KB=n bounds the instance cache (evictions and reads from the store).
    if let Some(kb) = std::env::var("CACHE_KB")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
    {
        config.cache_bytes = Some(kb * 1024);
    }
    config.history = run.history.clone();
    app.start(config).expect("start")
}

fn prepared(
    h: &JsonClient,
    lambda: &str,
    key: &str,
    handler: &str,
    args: serde_json::Value,
) -> Prepared {
    let (l, hd, k, a) = h
        .prepare(lambda, key, handler, args)
        .expect("valid request");
    (l, hd, k, a)
}

/// Runs setup requests concurrently and waits for all of them.
fn setup(h: &Handle, reqs: Vec<Prepared>) {
    for chunk in reqs.chunks(20_000) {
        let rxs: Vec<_> = chunk
            .iter()
            .map(|(l, hd, k, a)| {
                h.submit(*l, k.clone(), *hd, a.clone(), None)
                    .expect("admitted")
            })
            .collect();
        for rx in rxs {
            let r = rx.blocking_recv().expect("answered");
            assert!(r.result.is_ok_and(|o| o.ok), "setup request failed");
        }
    }
}

fn report(run: &Run, o: &Outcome) {
    let q = |p: f64| o.hist.value_at_quantile(p) as f64 / 1000.0;
    println!(
        "{:<18} workers={} {:<9} conc={:<4} {:>9.0} ok/s  p50={:>7.3} ms  p99={:>7.3} ms  p99.9={:>7.3} ms  max={:>8.3} ms  rejected={} aborts={} cache-hits={:.1}%",
        run.name,
        run.workers,
        if run.durable { "durable" } else { "in-memory" },
        run.conc,
        (o.ops - o.errors) as f64 / o.secs,
        q(0.5),
        q(0.99),
        q(0.999),
        o.hist.max() as f64 / 1000.0,
        o.errors,
        o.aborts,
        100.0 * o.hits as f64 / (o.hits + o.misses).max(1) as f64,
    );
}

fn main() {
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let secs: f64 = std::env::var("SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5.0);
    let conc: usize = std::env::var("CONC")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(64);
    println!("# in-process engine benchmark: {secs} s per run after warm-up, closed loop");
    for name in [
        "counter",
        "callreply",
        "hotread",
        "messages",
        "checkout-uniform",
        "checkout-hot",
    ] {
        for workers in [1, 2] {
            for durable in [true, false] {
                let run = Run {
                    name: name.to_owned(),
                    workers,
                    durable,
                    conc,
                    history: HistoryRetention::forever(),
                };
                let words = [
                    name.to_owned(),
                    workers.to_string(),
                    if durable { "durable" } else { "in-memory" }.to_owned(),
                ];
                if !filters
                    .iter()
                    .all(|f| words.iter().any(|w| w.starts_with(f.as_str())))
                {
                    continue;
                }
                let dir = tempfile::tempdir().expect("tempdir");
                let outcome = match name {
                    "messages" => {
                        let rt = start(&micro::app(), &run, &dir);
                        let h = rt.handle();
                        let o = messages(&h, &micro::app().json(h.clone()), secs, conc);
                        drop(h);
                        rt.shutdown();
                        o
                    }
                    "hotread" => {
                        let rt = start(&micro::app(), &run, &dir);
                        let h = rt.handle();
                        let o = hot_read(&h, &micro::app().json(h.clone()), secs, conc);
                        drop(h);
                        rt.shutdown();
                        o
                    }
                    "counter" | "callreply" => {
                        let rt = start(&micro::app(), &run, &dir);
                        let h = rt.handle();
                        let j = micro::app().json(h.clone());
                        let keys = 10_000u64;
                        let o = if name == "counter" {
                            let reqs: Vec<Prepared> = (0..keys)
                                .map(|k| {
                                    prepared(
                                        &j,
                                        "Counter",
                                        &k.to_string(),
                                        "incr",
                                        serde_json::Value::Null,
                                    )
                                })
                                .collect();
                            drive(&h, secs, conc, &|i| reqs[(i % keys) as usize].clone())
                        } else {
                            let reqs: Vec<Prepared> = (0..keys)
                                .map(|k| {
                                    prepared(
                                        &j,
                                        "Caller",
                                        &k.to_string(),
                                        "ping",
                                        json!(keys - 1 - k),
                                    )
                                })
                                .collect();
                            drive(&h, secs, conc, &|i| reqs[(i % keys) as usize].clone())
                        };
                        drop(h);
                        rt.shutdown();
                        o
                    }
                    _ => {
                        let rt = start(&shop::shop::app(), &run, &dir);
                        let h = rt.handle();
                        let j = shop::shop::app().json(h.clone());
                        let hot = name == "checkout-hot";
                        let (items, users) = (10_000u64, 10_000u64);
                        let orders: u64 = std::env::var("ORDERS")
                            .ok()
                            .and_then(|s| s.parse().ok())
                            .unwrap_or(300_000);
                        let mut init = Vec::new();
                        for i in 0..items {
                            init.push(prepared(
                                &j,
                                "Stock",
                                &i.to_string(),
                                "init",
                                json!({"stock": 1_000_000_000, "price": 1}),
                            ));
                        }
                        for u in 0..users {
                            init.push(prepared(
                                &j,
                                "Payment",
                                &u.to_string(),
                                "init",
                                json!({"credit": 1_000_000_000}),
                            ));
                        }
                        for o in 0..orders {
                            let (a, b) = if hot {
                                // Half the orders contain item 0: one hot key.
                                (
                                    if o % 2 == 0 {
                                        0
                                    } else {
                                        1 + (o * 7919) % (items - 1)
                                    },
                                    1 + (o * 104_729) % (items - 1),
                                )
                            } else {
                                ((o * 7919) % items, (o * 104_729 + 1) % items)
                            };
                            init.push(prepared(
                                &j,
                                "Order",
                                &o.to_string(),
                                "init",
                                json!({"user_id": (o % users).to_string(), "items": [[a.to_string(), 1], [b.to_string(), 1]], "total_cost": 2}),
                            ));
                        }
                        setup(&h, init);
                        let reqs: Vec<Prepared> = (0..orders)
                            .map(|o| {
                                prepared(
                                    &j,
                                    "Order",
                                    &o.to_string(),
                                    "checkout",
                                    serde_json::Value::Null,
                                )
                            })
                            .collect();
                        let o = drive(&h, secs, conc, &|i| reqs[(i % orders) as usize].clone());
                        drop(h);
                        rt.shutdown();
                        o
                    }
                };
                report(&run, &outcome);
            }
        }
    }
    if filters.is_empty() || filters.iter().any(|f| f == "history") {
        history_cost(secs, conc);
    }
}
