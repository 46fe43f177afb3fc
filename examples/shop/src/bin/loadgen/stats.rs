//! Latency histograms (HDR, microseconds) and status counts: live progress and the summary.

use std::sync::Mutex;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::{Value, json};

use crate::workload::OpKind;

/// Highest latency tracked: one hour in µs (larger ones saturate).
const MAX_US: u64 = 3_600_000_000;

fn histogram() -> Histogram<u64> {
    // Bounds are constants that hdrhistogram accepts (low 1, high ≥ 2, 3 digits).
    Histogram::new_with_bounds(1, MAX_US, 3).unwrap_or_else(|_| unreachable!())
}

/// Counts of answers by class.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counts {
    /// 2xx answers.
    pub ok: u64,
    /// 4xx answers.
    pub client_err: u64,
    /// 5xx answers (and other non-2xx/4xx statuses).
    pub server_err: u64,
    /// No complete answer: refused, reset or timed out.
    pub conn_err: u64,
}

impl Counts {
    fn add(&mut self, status: Option<u16>) {
        match status {
            Some(200..=299) => self.ok += 1,
            Some(400..=499) => self.client_err += 1,
            Some(_) => self.server_err += 1,
            None => self.conn_err += 1,
        }
    }

    /// All requests counted.
    pub fn total(&self) -> u64 {
        self.ok + self.client_err + self.server_err + self.conn_err
    }

    /// Requests that did not get a 2xx.
    pub fn errors(&self) -> u64 {
        self.total() - self.ok
    }

    fn json(&self) -> Value {
        json!({ "2xx": self.ok, "4xx": self.client_err, "5xx": self.server_err,
                "connection_errors": self.conn_err })
    }
}

struct Inner {
    total: Histogram<u64>,
    counts: Counts,
    interval: Histogram<u64>,
    interval_counts: Counts,
    per_op: Vec<(OpKind, Histogram<u64>, Counts)>,
    first_error: Option<String>,
}

/// Measurements of the measured phase, shared by all request tasks.
pub struct Stats {
    inner: Mutex<Inner>,
}

impl Stats {
    /// Empty statistics.
    pub fn new() -> Stats {
        Stats {
            inner: Mutex::new(Inner {
                total: histogram(),
                counts: Counts::default(),
                interval: histogram(),
                interval_counts: Counts::default(),
                per_op: Vec::new(),
                first_error: None,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic elsewhere cannot leave the counters inconsistent; keep going.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records one request: its kind, latency and status (`None`: no answer).
    /// `measured` is false during warm-up: then only the live progress sees it.
    pub fn record(
        &self,
        kind: OpKind,
        latency: Duration,
        status: Option<u16>,
        error: Option<&str>,
        measured: bool,
    ) {
        let us = u64::try_from(latency.as_micros())
            .unwrap_or(MAX_US)
            .clamp(1, MAX_US);
        let mut g = self.lock();
        g.interval.saturating_record(us);
        g.interval_counts.add(status);
        if !measured {
            return;
        }
        g.total.saturating_record(us);
        g.counts.add(status);
        let i = match g.per_op.iter().position(|(k, _, _)| *k == kind) {
            Some(i) => i,
            None => {
                g.per_op.push((kind, histogram(), Counts::default()));
                g.per_op.len() - 1
            }
        };
        g.per_op[i].1.saturating_record(us);
        g.per_op[i].2.add(status);
        if g.first_error.is_none()
            && let Some(e) = error
        {
            g.first_error = Some(e.to_owned());
        }
    }

    /// Takes the last second's numbers: (requests, p50 µs, p99 µs, errors).
    pub fn take_interval(&self) -> (u64, u64, u64, u64) {
        let mut g = self.lock();
        let out = (
            g.interval_counts.total(),
            g.interval.value_at_quantile(0.5),
            g.interval.value_at_quantile(0.99),
            g.interval_counts.errors(),
        );
        g.interval.reset();
        g.interval_counts = Counts::default();
        out
    }

    /// Errors (non-2xx and connection errors) of the measured phase so far.
    pub fn errors(&self) -> u64 {
        self.lock().counts.errors()
    }

    /// The final summary of the measured phase.
    pub fn summary(&self, elapsed: Duration) -> Summary {
        let g = self.lock();
        Summary {
            elapsed,
            counts: g.counts,
            latency: Latency::of(&g.total),
            per_op: g
                .per_op
                .iter()
                .map(|(k, h, c)| (*k, Latency::of(h), *c))
                .collect(),
            first_error: g.first_error.clone(),
        }
    }
}

/// Latency percentiles in µs.
#[derive(Debug, Clone, Copy)]
pub struct Latency {
    p50: u64,
    p90: u64,
    p99: u64,
    p999: u64,
    max: u64,
    mean: f64,
}

impl Latency {
    fn of(h: &Histogram<u64>) -> Latency {
        Latency {
            p50: h.value_at_quantile(0.5),
            p90: h.value_at_quantile(0.9),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
            mean: h.mean(),
        }
    }

    fn json(&self) -> Value {
        json!({ "p50": self.p50, "p90": self.p90, "p99": self.p99, "p99_9": self.p999,
                "max": self.max, "mean": (self.mean * 10.0).round() / 10.0 })
    }
}

/// Milliseconds with 2 decimals, from µs.
pub fn ms(us: u64) -> String {
    format!("{:.2} ms", us as f64 / 1000.0)
}

/// What a run measured.
pub struct Summary {
    /// Length of the measured phase.
    pub elapsed: Duration,
    /// Answers by class.
    pub counts: Counts,
    latency: Latency,
    per_op: Vec<(OpKind, Latency, Counts)>,
    /// The first error message seen, if any.
    pub first_error: Option<String>,
}

impl Summary {
    /// Completed requests per second.
    pub fn throughput(&self) -> f64 {
        let s = self.elapsed.as_secs_f64();
        if s > 0.0 {
            self.counts.total() as f64 / s
        } else {
            0.0
        }
    }

    /// Prints the human-readable summary.
    pub fn print(&self) {
        let c = &self.counts;
        let l = &self.latency;
        println!(
            "summary: {} requests in {:.2} s = {:.0} req/s",
            c.total(),
            self.elapsed.as_secs_f64(),
            self.throughput()
        );
        println!(
            "latency: p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
            ms(l.p50),
            ms(l.p90),
            ms(l.p99),
            ms(l.p999),
            ms(l.max)
        );
        println!(
            "status:  2xx {}  4xx {}  5xx {}  connection errors {}",
            c.ok, c.client_err, c.server_err, c.conn_err
        );
        if self.per_op.len() > 1 {
            for (k, l, c) in &self.per_op {
                println!(
                    "  {:<10} {:>8} req  p50 {}  p99 {}  non-2xx {}",
                    k.name(),
                    c.total(),
                    ms(l.p50),
                    ms(l.p99),
                    c.errors()
                );
            }
        }
        if let Some(e) = &self.first_error {
            println!("first error: {e}");
        }
    }

    /// The summary as JSON (latencies in µs).
    pub fn json(&self) -> Value {
        let per_op: serde_json::Map<String, Value> = self
            .per_op
            .iter()
            .map(|(k, l, c)| {
                (
                    k.name().to_owned(),
                    json!({ "requests": c.total(), "latency_us": l.json(), "status": c.json() }),
                )
            })
            .collect();
        json!({
            "requests": self.counts.total(),
            "elapsed_s": self.elapsed.as_secs_f64(),
            "throughput_rps": (self.throughput() * 10.0).round() / 10.0,
            "latency_us": self.latency.json(),
            "status": self.counts.json(),
            "per_op": per_op,
            "first_error": self.first_error,
        })
    }
}
