//! `loadgen`: a request generator for the shop's REST API.
//!
//! ```text
//! loadgen prepare --users 100000 --items 100000 --orders 100000
//! loadgen run --mix checkout --connections 32 --duration 20 --verify --json out.json
//! loadgen run --mix counter --rate 5000 --duration 20 --warmup 2
//! ```
//!
//! `run` offers load in a closed loop (`--connections C`: C connections, each sending its
//! next request when the previous one was answered) or an open loop (`--rate R`: requests
//! scheduled R per second; a request's latency counts from its scheduled send time, so a
//! stalled service shows up in the percentiles instead of slowing the generator down).
//!
//! Mixes:
//! * `checkout`: checkouts of the orders made by `prepare` ("0".."orders-1") in random
//!   order, each at most once (an order can be paid only once); the run ends early when all
//!   are used. `prepare` again before the next run: batch init resets orders, stock, credit.
//! * `mixed`: shopping sessions — create an order, add two random items, find it, check it
//!   out: 20% create, 40% addItem, 20% find, 20% checkout.
//! * `hot`: hot-key contention. Before measuring, `--pool` fresh orders are created (create +
//!   addItem ×2) whose items come from the `--hot-items` first items with probability
//!   `--hot-fraction`; the run checks them out, each once.
//! * `counter`: the raw cost of one lambda call, `POST /stock/add/{random item}/1`.
//!
//! `--verify` reads the stock of every item and credit of every user before the run, and the
//! touched ones after it, and checks the decreases against the successful checkouts seen.

#[path = "loadgen/http.rs"]
mod http;
#[path = "loadgen/run.rs"]
mod run;
#[path = "loadgen/stats.rs"]
mod stats;
#[path = "loadgen/verify.rs"]
mod verify;
#[path = "loadgen/workload.rs"]
mod workload;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde_json::json;

use http::{Pool, Req, Target};
use run::{Mode, RunConfig, Stop};
use workload::{Rng, Workload};

/// Exit code of a failed verification.
const EXIT_FAIL: u8 = 1;
/// Exit code of an error (unreachable service, bad answers, I/O).
const EXIT_ERROR: u8 = 2;

/// Request generator for the shop example: prepares data and measures throughput and latency.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create users, items and orders through the batch-init endpoints (resets them).
    Prepare(PrepareArgs),
    /// Offer load and report throughput, latency percentiles and answer counts.
    Run(RunArgs),
}

#[derive(Debug, Args)]
struct PrepareArgs {
    /// Users "0".."N-1".
    #[arg(long, default_value_t = 100_000)]
    users: u64,
    /// Items "0".."N-1".
    #[arg(long, default_value_t = 100_000)]
    items: u64,
    /// Orders "0".."N-1", each with two random items and a random user.
    #[arg(long, default_value_t = 100_000)]
    orders: u64,
    /// Starting credit of every user.
    #[arg(long, default_value_t = 1_000_000_000, value_parser = clap::value_parser!(i64).range(0..))]
    credit: i64,
    /// Starting stock of every item.
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(i64).range(0..))]
    stock: i64,
    /// Price of every item.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(i64).range(0..))]
    price: i64,
    /// The shop's base URL.
    #[arg(long, default_value = "http://127.0.0.1:8000")]
    url: String,
}

/// The request mix of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mix {
    /// Checkouts of prepared orders, each once.
    Checkout,
    /// Create, addItem, find and checkout in shopping sessions.
    Mixed,
    /// Checkouts of orders concentrated on a few hot items.
    Hot,
    /// `POST /stock/add/{random item}/1`.
    Counter,
    /// `GET /stock/find/{random item}`: reads only.
    Read,
}

#[derive(Debug, Args)]
struct RunArgs {
    /// The request mix.
    #[arg(long, value_enum)]
    mix: Mix,
    /// Closed loop with this many connections (the default: 32).
    #[arg(long, conflicts_with = "rate", value_parser = clap::value_parser!(u32).range(1..=100_000))]
    connections: Option<u32>,
    /// Open loop at this many requests per second.
    #[arg(long, value_parser = positive)]
    rate: Option<f64>,
    /// Measure for this many seconds.
    #[arg(long, value_parser = positive, required_unless_present = "requests", conflicts_with = "requests")]
    duration: Option<f64>,
    /// Measure this many requests.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    requests: Option<u64>,
    /// Seconds of load before measuring (not in the summary; verified all the same).
    #[arg(long, default_value_t = 0.0, value_parser = non_negative)]
    warmup: f64,
    /// Also write the summary as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Check stock and credit against the successful checkouts afterwards.
    #[arg(long)]
    verify: bool,
    /// The shop's base URL; several (`--url A B C`, the processes of a cluster) spread the
    /// load over them, and the first one is used to size and verify.
    #[arg(long, num_args = 1.., default_value = "http://127.0.0.1:8000")]
    url: Vec<String>,
    /// Items "0".."N-1" on the service (default: found by probing /stock/find).
    #[arg(long)]
    items: Option<u64>,
    /// Users "0".."N-1" on the service (default: found by probing /payment/find_user).
    #[arg(long)]
    users: Option<u64>,
    /// Prepared orders "0".."N-1" for `checkout` (default: found by probing /orders/find).
    #[arg(long)]
    orders: Option<u64>,
    /// `hot`: orders to create before measuring (default: --requests, or 20000).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pool: Option<u64>,
    /// `hot`: how many items are hot.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    hot_items: u64,
    /// `hot`: probability that an order's item is a hot one.
    #[arg(long, default_value_t = 0.9, value_parser = probability)]
    hot_fraction: f64,
    /// Open loop: most requests in flight at once.
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1..))]
    max_in_flight: u32,
    /// Seconds to wait for an answer.
    #[arg(long, default_value_t = 30.0, value_parser = positive)]
    timeout: f64,
    /// Seed of the key choices (default: from the clock).
    #[arg(long)]
    seed: Option<u64>,
}

fn number(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("`{s}` is not a number"))?;
    if v.is_finite() {
        Ok(v)
    } else {
        Err(format!("`{s}` is not a finite number"))
    }
}

fn positive(s: &str) -> Result<f64, String> {
    let v = number(s)?;
    if v > 0.0 {
        Ok(v)
    } else {
        Err("must be greater than 0".to_owned())
    }
}

fn non_negative(s: &str) -> Result<f64, String> {
    let v = number(s)?;
    if v >= 0.0 {
        Ok(v)
    } else {
        Err("must not be negative".to_owned())
    }
}

fn probability(s: &str) -> Result<f64, String> {
    let v = number(s)?;
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err("must be between 0 and 1".to_owned())
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("loadgen: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    let result = rt.block_on(async {
        match cli.command {
            Command::Prepare(a) => prepare(a).await,
            Command::Run(a) => run(a).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("loadgen: {e}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

/// Parses the URL and checks that something answers HTTP there.
async fn connect(url: &str, timeout: Duration) -> Result<Pool, String> {
    let target = Arc::new(Target::parse(url)?);
    let pool = Pool::new(target, timeout);
    pool.send(&Req::get("/metrics".to_owned()))
        .await
        .map_err(|e| format!("cannot reach the shop at {url}: {}", e.message))?;
    Ok(pool)
}

async fn prepare(a: PrepareArgs) -> Result<ExitCode, String> {
    let pool = connect(&a.url, Duration::from_secs(3600)).await?;
    let mut steps = vec![
        (
            "users",
            format!("/payment/batch_init/{}/{}", a.users, a.credit),
        ),
        (
            "items",
            format!("/stock/batch_init/{}/{}/{}", a.items, a.stock, a.price),
        ),
    ];
    if a.orders > 0 {
        if a.items == 0 || a.users == 0 {
            return Err("orders need at least one item and one user".to_owned());
        }
        steps.push((
            "orders",
            format!(
                "/orders/batch_init/{}/{}/{}/{}",
                a.orders, a.items, a.users, a.price
            ),
        ));
    }
    for (what, path) in steps {
        let t = Instant::now();
        pool.json(&Req::post(path)).await?;
        let s = t.elapsed().as_secs_f64();
        let n = match what {
            "users" => a.users,
            "items" => a.items,
            _ => a.orders,
        };
        println!(
            "prepared {n} {what} in {s:.2} s ({:.0}/s)",
            n as f64 / s.max(1e-9)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// How many keys "0".."n-1" answer 2xx at `prefix{key}`: exponential then binary search.
async fn count(pool: &Pool, prefix: &str) -> Result<u64, String> {
    let exists = |k: u64| {
        let req = Req::get(format!("{prefix}{k}"));
        async move {
            match pool.send(&req).await {
                Ok(r) if r.ok() => Ok(true),
                Ok(r) if r.status < 500 => Ok(false),
                Ok(r) => Err(format!(
                    "GET {} answered {}: {}",
                    req.path,
                    r.status,
                    String::from_utf8_lossy(&r.body)
                )),
                Err(e) => Err(format!("GET {}: {}", req.path, e.message)),
            }
        }
    };
    if !exists(0).await? {
        return Ok(0);
    }
    // Invariant: key lo exists, key hi does not.
    let (mut lo, mut hi) = (0u64, 1u64);
    while exists(hi).await? {
        lo = hi;
        hi = hi.saturating_mul(2);
        if hi >= 1 << 40 {
            return Err(format!("more than 2^40 keys at {prefix}?"));
        }
    }
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if exists(mid).await? {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Ok(hi)
}

async fn size(
    pool: &Pool,
    given: Option<u64>,
    prefix: &str,
    what: &str,
) -> Result<(u64, bool), String> {
    let n = match given {
        Some(n) => return Ok((n, false)),
        None => count(pool, prefix).await?,
    };
    if n == 0 {
        return Err(format!(
            "the service has no {what} (\"0\" is not found): run `loadgen prepare` first"
        ));
    }
    Ok((n, true))
}

/// Creates `n` orders whose items are mostly hot ones; returns their ids.
async fn hot_orders(
    pool: &Pool,
    n: u64,
    items: u64,
    users: u64,
    hot: u64,
    fraction: f64,
    seed: u64,
) -> Result<Vec<String>, String> {
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..64u64 {
        let (pool, next) = (pool.clone(), next.clone());
        let mut rng = Rng::new(seed ^ t.wrapping_mul(0xA24B_AED4_963E_E407));
        tasks.spawn(async move {
            let mut ids = Vec::new();
            while next.fetch_add(1, Ordering::Relaxed) < n {
                let user = rng.below(users);
                let v = pool
                    .json(&Req::post(format!("/orders/create/{user}")))
                    .await?;
                let id = v
                    .get("order_id")
                    .and_then(|v| v.as_str())
                    .ok_or_else(|| format!("create answered without an order_id: {v}"))?
                    .to_owned();
                for _ in 0..2 {
                    let item = if rng.unit() < fraction {
                        rng.below(hot.min(items))
                    } else {
                        rng.below(items)
                    };
                    pool.json(&Req::post(format!("/orders/addItem/{id}/{item}/1")))
                        .await?;
                }
                ids.push(id);
            }
            Ok::<_, String>(ids)
        });
    }
    let mut all = Vec::new();
    while let Some(r) = tasks.join_next().await {
        all.extend(r.map_err(|e| format!("an order-creating task failed: {e}"))??);
    }
    Ok(all)
}

async fn run(a: RunArgs) -> Result<ExitCode, String> {
    let timeout = Duration::from_secs_f64(a.timeout);
    let mut targets = Vec::with_capacity(a.url.len());
    for url in &a.url {
        targets.push(Arc::new(connect(url, timeout).await?.target().clone()));
    }
    let first = a.url.first().ok_or("give --url")?;
    let pool = connect(first, timeout).await?;
    let seed = a.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
    });
    let mut rng = Rng::new(seed);
    let (items, found_items) = size(&pool, a.items, "/stock/find/", "items").await?;
    let (users, found_users) = if matches!(a.mix, Mix::Counter | Mix::Read) && !a.verify {
        (a.users.unwrap_or(0), false)
    } else {
        size(&pool, a.users, "/payment/find_user/", "users").await?
    };
    let found = |f: bool| if f { " (found on the service)" } else { "" };
    println!(
        "{items} items{}, {users} users{}",
        found(found_items),
        found(found_users)
    );
    let workload = match a.mix {
        Mix::Checkout => {
            let (orders, f) = size(&pool, a.orders, "/orders/find/", "orders").await?;
            println!(
                "{orders} prepared orders{}, each checked out at most once",
                found(f)
            );
            let mut ids: Vec<String> = (0..orders).map(|i| i.to_string()).collect();
            rng.shuffle(&mut ids);
            Workload::Orders { pool: ids }
        }
        Mix::Hot => {
            let n = a.pool.or(a.requests).unwrap_or(20_000);
            let t = Instant::now();
            let ids = hot_orders(
                &pool,
                n,
                items,
                users,
                a.hot_items,
                a.hot_fraction,
                rng.next_u64(),
            )
            .await?;
            println!(
                "created {n} orders ({:.0}% of their items among the {} hot ones) in {:.2} s",
                a.hot_fraction * 100.0,
                a.hot_items.min(items),
                t.elapsed().as_secs_f64()
            );
            Workload::Orders { pool: ids }
        }
        Mix::Mixed => Workload::Mixed {
            items,
            users,
            rng: Rng::new(rng.next_u64()),
            ready: Default::default(),
        },
        Mix::Counter => Workload::Counter {
            items,
            rng: Rng::new(rng.next_u64()),
        },
        Mix::Read => Workload::Read {
            items,
            rng: Rng::new(rng.next_u64()),
        },
    };
    let before = if a.verify {
        let t = Instant::now();
        let keys = |n: u64| (0..n).map(|i| i.to_string()).collect::<Vec<_>>();
        let snap = verify::Snapshot {
            stock: verify::stocks(&pool, keys(items)).await?,
            credit: verify::credits(&pool, keys(users)).await?,
        };
        println!(
            "verify: read the stock of {items} items and credit of {users} users in {:.2} s",
            t.elapsed().as_secs_f64()
        );
        Some(snap)
    } else {
        None
    };
    let mode = match a.rate {
        Some(rate) => Mode::Open {
            rate,
            max_in_flight: a.max_in_flight as usize,
        },
        None => Mode::Closed {
            connections: a.connections.unwrap_or(32) as usize,
        },
    };
    let stop = match (a.duration, a.requests) {
        (Some(d), _) => Stop::After(Duration::from_secs_f64(d)),
        (None, Some(n)) => Stop::Requests(n),
        (None, None) => return Err("give --duration or --requests".to_owned()),
    };
    let cfg = RunConfig {
        mode,
        stop,
        warmup: Duration::from_secs_f64(a.warmup),
        timeout,
    };
    let how = match mode {
        Mode::Closed { connections } => format!("closed loop, {connections} connections"),
        Mode::Open { rate, .. } => format!("open loop, {rate} req/s"),
    };
    println!(
        "running {:?} mix, {how}, against {}",
        a.mix,
        a.url.join(" ")
    );
    let result = run::run(targets, workload, &cfg).await;
    result.summary.print();
    if result.exhausted {
        println!(
            "note: every order of the pool was checked out, so the run ended early; \
             prepare more orders (or a larger --pool) for longer runs"
        );
    }
    if result.capped {
        println!(
            "note: {} requests were in flight, so sending fell behind the schedule; \
             latencies include that delay",
            a.max_in_flight
        );
    }
    let verdict = match &before {
        Some(b) => Some(verify::verify(&pool, b, &result.ledger).await?),
        None => None,
    };
    if let Some(path) = &a.json {
        let mut doc = result.summary.json();
        doc["mix"] = json!(format!("{:?}", a.mix).to_lowercase());
        doc["mode"] = match mode {
            Mode::Closed { connections } => json!({ "closed": { "connections": connections } }),
            Mode::Open { rate, .. } => json!({ "open": { "rate": rate } }),
        };
        doc["ended_early"] = json!(result.exhausted);
        doc["verify"] = verdict.as_ref().map_or(json!(null), |v| v.json.clone());
        let text = serde_json::to_string_pretty(&doc)
            .map_err(|e| format!("cannot encode the summary: {e}"))?;
        std::fs::write(path, text + "\n")
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(match verdict {
        Some(v) if !v.pass => ExitCode::from(EXIT_FAIL),
        _ => ExitCode::SUCCESS,
    })
}
