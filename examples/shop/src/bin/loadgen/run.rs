//! The load loops: closed (C connections, each sends when the previous answer arrived) and
//! open (a target rate; latency counted from the scheduled send time, so a slow service
//! cannot hide its queueing — no coordinated omission).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::http::{Conn, Outcome, Pool, Target};
use crate::stats::{Stats, Summary, ms};
use crate::workload::{Op, OpKind, Workload};

/// How the load is offered.
#[derive(Debug, Clone, Copy)]
pub enum Mode {
    /// `connections` clients, each with its own connection, one request at a time.
    Closed {
        /// Number of connections.
        connections: usize,
    },
    /// Requests scheduled at `rate` per second over a connection pool.
    Open {
        /// Requests per second.
        rate: f64,
        /// Cap on requests in flight (the schedule keeps counting while capped).
        max_in_flight: usize,
    },
}

/// When the measured phase ends.
#[derive(Debug, Clone, Copy)]
pub enum Stop {
    /// After this long.
    After(Duration),
    /// After this many requests were sent.
    Requests(u64),
}

/// What a run does.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Closed or open loop.
    pub mode: Mode,
    /// End of the measured phase.
    pub stop: Stop,
    /// Unmeasured time before it.
    pub warmup: Duration,
    /// Per-request timeout.
    pub timeout: Duration,
}

/// Whether a request's effect happened, as far as its answer tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// 2xx: it happened.
    Applied,
    /// 4xx, 503 or never sent: nothing changed.
    NotApplied,
    /// No complete answer after sending, or a 5xx other than 503: unknown.
    Unknown,
}

impl Effect {
    fn of(outcome: &Outcome) -> Effect {
        match outcome {
            Ok(r) if r.ok() => Effect::Applied,
            Ok(r) if r.status < 500 || r.status == 503 => Effect::NotApplied,
            Ok(_) => Effect::Unknown,
            Err(e) if e.maybe_sent => Effect::Unknown,
            Err(_) => Effect::NotApplied,
        }
    }
}

/// Every state-changing request of the run (warm-up included), for `--verify`.
#[derive(Debug, Default)]
pub struct Ledger {
    /// Checkouts: order id and effect.
    pub checkouts: Vec<(String, Effect)>,
    /// Stock additions of 1: item id and effect.
    pub adds: Vec<(String, Effect)>,
}

/// What a run produced.
pub struct RunResult {
    /// The measured phase.
    pub summary: Summary,
    /// State changes, for verification.
    pub ledger: Ledger,
    /// The mix ran out of requests (all pooled orders were checked out) before the end.
    pub exhausted: bool,
    /// Open loop: the in-flight cap was hit, so the schedule slipped (latencies include it).
    pub capped: bool,
}

enum Admit {
    Go { measured: bool },
    Stop,
}

struct Shared {
    workload: Mutex<Workload>,
    stats: Stats,
    ledger: Mutex<Ledger>,
    measure_from: Instant,
    stop: Stop,
    issued: AtomicU64,
    exhausted: AtomicBool,
}

impl Shared {
    fn admit(&self, at: Instant) -> Admit {
        if at < self.measure_from {
            return Admit::Go { measured: false };
        }
        let go = match self.stop {
            Stop::After(d) => at < self.measure_from + d,
            Stop::Requests(n) => self.issued.fetch_add(1, Ordering::Relaxed) < n,
        };
        if go {
            Admit::Go { measured: true }
        } else {
            Admit::Stop
        }
    }

    fn next(&self) -> Option<Op> {
        let op = self
            .workload
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .next();
        if op.is_none() {
            self.exhausted.store(true, Ordering::Relaxed);
        }
        op
    }

    fn finish(&self, op: Op, outcome: Outcome, latency: Duration, measured: bool) {
        let error = match &outcome {
            Ok(r) if r.ok() => None,
            Ok(r) => Some(format!(
                "{} {} answered {}: {}",
                op.req.method,
                op.req.path,
                r.status,
                String::from_utf8_lossy(&r.body)
            )),
            Err(e) => Some(format!("{} {}: {}", op.req.method, op.req.path, e.message)),
        };
        self.stats.record(
            op.kind,
            latency,
            outcome.as_ref().ok().map(|r| r.status),
            error.as_deref(),
            measured,
        );
        if matches!(op.kind, OpKind::Checkout | OpKind::StockAdd) {
            let mut l = self.ledger.lock().unwrap_or_else(|p| p.into_inner());
            let entry = (op.key.clone(), Effect::of(&outcome));
            if op.kind == OpKind::Checkout {
                l.checkouts.push(entry);
            } else {
                l.adds.push(entry);
            }
        }
        self.workload
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .done(op, &outcome);
    }
}

/// Runs `workload` against `targets` (spread over them: connection `i`, or request `i` in an
/// open loop, goes to target `i mod n`) as `cfg` says, printing a progress line per second.
pub async fn run(targets: Vec<Arc<Target>>, workload: Workload, cfg: &RunConfig) -> RunResult {
    let start = Instant::now();
    let shared = Arc::new(Shared {
        workload: Mutex::new(workload),
        stats: Stats::new(),
        ledger: Mutex::new(Ledger::default()),
        measure_from: start + cfg.warmup,
        stop: cfg.stop,
        issued: AtomicU64::new(0),
        exhausted: AtomicBool::new(false),
    });
    let progress = tokio::spawn(progress(shared.clone(), start));
    let mut capped = false;
    match cfg.mode {
        Mode::Closed { connections } => {
            let mut tasks = tokio::task::JoinSet::new();
            for i in 0..connections {
                let conn = Conn::new(targets[i % targets.len()].clone(), cfg.timeout);
                tasks.spawn(client(shared.clone(), conn));
            }
            while tasks.join_next().await.is_some() {}
        }
        Mode::Open {
            rate,
            max_in_flight,
        } => {
            let pools: Vec<Pool> = targets
                .iter()
                .map(|t| Pool::new(t.clone(), cfg.timeout))
                .collect();
            capped = open_loop(&shared, &pools, rate, max_in_flight).await;
        }
    }
    progress.abort();
    let elapsed = Instant::now().saturating_duration_since(shared.measure_from);
    let summary = shared.stats.summary(elapsed);
    let ledger = std::mem::take(&mut *shared.ledger.lock().unwrap_or_else(|p| p.into_inner()));
    RunResult {
        summary,
        ledger,
        exhausted: shared.exhausted.load(Ordering::Relaxed),
        capped,
    }
}

/// One closed-loop client on its own connection.
async fn client(shared: Arc<Shared>, mut conn: Conn) {
    loop {
        let sent = Instant::now();
        let measured = match shared.admit(sent) {
            Admit::Go { measured } => measured,
            Admit::Stop => break,
        };
        let Some(op) = shared.next() else { break };
        let outcome = conn.send(&op.req).await;
        let refused = matches!(&outcome, Err(e) if !e.maybe_sent);
        shared.finish(op, outcome, sent.elapsed(), measured);
        if refused {
            // The service is not accepting connections: do not spin.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The open loop: request i is due at start + i/rate and its latency counts from then.
/// Returns whether the in-flight cap was ever hit.
async fn open_loop(shared: &Arc<Shared>, pools: &[Pool], rate: f64, max_in_flight: usize) -> bool {
    let sem = Arc::new(tokio::sync::Semaphore::new(max_in_flight.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    let start = Instant::now();
    let mut capped = false;
    for i in 0u64.. {
        let due = start + Duration::from_secs_f64(i as f64 / rate);
        tokio::time::sleep_until(due.into()).await;
        let measured = match shared.admit(due) {
            Admit::Go { measured } => measured,
            Admit::Stop => break,
        };
        let permit = match sem.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                capped = true;
                match sem.clone().acquire_owned().await {
                    Ok(p) => p,
                    Err(_) => break,
                }
            }
        };
        let Some(op) = shared.next() else { break };
        let pool = pools[(i % pools.len() as u64) as usize].clone();
        let shared = shared.clone();
        tasks.spawn(async move {
            let outcome = pool.send(&op.req).await;
            shared.finish(op, outcome, due.elapsed(), measured);
            drop(permit);
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    capped
}

/// Prints throughput, p50, p99 and errors once a second.
async fn progress(shared: Arc<Shared>, start: Instant) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    loop {
        tick.tick().await;
        let (n, p50, p99, errs) = shared.stats.take_interval();
        let warm = if Instant::now() < shared.measure_from {
            " (warm-up)"
        } else {
            ""
        };
        println!(
            "[{:>4.0}s] {n:>7} req/s  p50 {}  p99 {}  errors {errs} this second, {} measured so far{warm}",
            start.elapsed().as_secs_f64(),
            ms(p50),
            ms(p99),
            shared.stats.errors()
        );
    }
}
