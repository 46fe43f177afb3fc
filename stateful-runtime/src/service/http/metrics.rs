//! `GET /metrics`: the gateway's and the engine's counters as Prometheus text.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::engine::{Handle, Metrics, OperatorMetrics};

/// Upper bounds of the gateway's latency buckets (cumulative: `le`).
pub(crate) const LATENCY_BOUNDS_MS: [f64; 10] =
    [0.5, 1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 1000.0];

/// The gateway's counters at one moment.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct HttpCounts {
    /// Answers by class: 2xx, 400, other 4xx, 503, 5xx.
    pub classes: [u64; 5],
    /// Answers within each of [`LATENCY_BOUNDS_MS`] (cumulative).
    pub within: [u64; 10],
}

/// Request counters of the gateway, by outcome class.
#[derive(Debug, Default)]
pub struct HttpMetrics {
    ok: AtomicU64,
    rejected: AtomicU64,
    client_error: AtomicU64,
    overloaded: AtomicU64,
    server_error: AtomicU64,
    latency_us_sum: AtomicU64,
    latency_buckets: [AtomicU64; LATENCY_BOUNDS_MS.len()],
    unauthorized: AtomicU64,
}

impl HttpMetrics {
    /// Counts one answer.
    pub(crate) fn observe(&self, status: StatusCode, took: std::time::Duration) {
        let c = match status.as_u16() {
            200..=299 => &self.ok,
            400 => &self.rejected,
            503 => &self.overloaded,
            401..=499 => &self.client_error,
            _ => &self.server_error,
        };
        c.fetch_add(1, Ordering::Relaxed);
        let us = took.as_micros() as u64;
        self.latency_us_sum.fetch_add(us, Ordering::Relaxed);
        let ms = us as f64 / 1000.0;
        for (i, b) in LATENCY_BOUNDS_MS.iter().enumerate() {
            if ms <= *b {
                self.latency_buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Counts a request refused for its admin token (401).
    pub(crate) fn refused(&self) {
        self.unauthorized.fetch_add(1, Ordering::Relaxed);
    }

    /// The counters now.
    pub(crate) fn counts(&self) -> HttpCounts {
        let l = |c: &AtomicU64| c.load(Ordering::Relaxed);
        HttpCounts {
            classes: self.classes().map(|(_, n)| n),
            within: std::array::from_fn(|i| l(&self.latency_buckets[i])),
        }
    }

    fn classes(&self) -> [(&'static str, u64); 5] {
        let l = |c: &AtomicU64| c.load(Ordering::Relaxed);
        [
            ("2xx", l(&self.ok)),
            ("400", l(&self.rejected)),
            ("4xx", l(&self.client_error)),
            ("503", l(&self.overloaded)),
            ("5xx", l(&self.server_error)),
        ]
    }

    fn write(&self, s: &mut String) {
        let _ = writeln!(s, "# TYPE stateful_http_requests_total counter");
        for (class, n) in self.classes() {
            let _ = writeln!(s, "stateful_http_requests_total{{class=\"{class}\"}} {n}");
        }
        let total: u64 = self.classes().iter().map(|(_, n)| n).sum();
        let _ = writeln!(s, "# TYPE stateful_http_latency_ms histogram");
        for (i, b) in LATENCY_BOUNDS_MS.iter().enumerate() {
            let _ = writeln!(
                s,
                "stateful_http_latency_ms_bucket{{le=\"{b}\"}} {}",
                self.latency_buckets[i].load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(s, "stateful_http_latency_ms_bucket{{le=\"+Inf\"}} {total}");
        let _ = writeln!(
            s,
            "stateful_http_latency_ms_sum {}",
            self.latency_us_sum.load(Ordering::Relaxed) as f64 / 1000.0
        );
        let _ = writeln!(s, "stateful_http_latency_ms_count {total}");
        counter(
            s,
            "stateful_admin_unauthorized_total",
            Some("requests to the console, /debug or /state refused for their admin token"),
            self.unauthorized.load(Ordering::Relaxed),
        );
    }
}

fn counter(s: &mut String, name: &str, help: Option<&str>, v: u64) {
    if let Some(help) = help {
        let _ = writeln!(s, "# HELP {name} {help}");
    }
    let _ = writeln!(s, "# TYPE {name} counter");
    let _ = writeln!(s, "{name} {v}");
}

fn engine_totals(s: &mut String, m: &Metrics, in_flight: usize) {
    let l = |c: &AtomicU64| c.load(Ordering::Relaxed);
    counter(s, "stateful_requests_total", None, l(&m.requests));
    let _ = writeln!(s, "# TYPE stateful_requests_in_flight gauge");
    let _ = writeln!(s, "stateful_requests_in_flight {in_flight}");
    for (name, help, v) in [
        (
            "stateful_invocations_total",
            "handler invocations",
            &m.invocations,
        ),
        (
            "stateful_lock_waits_total",
            "calls that waited for a lock",
            &m.lock_waits,
        ),
        (
            "stateful_aborts_total",
            "requests aborted as deadlock victims and retried",
            &m.aborts,
        ),
        (
            "stateful_rollbacks_total",
            "transaction blocks rolled back",
            &m.rollbacks,
        ),
        (
            "stateful_messages_sent_total",
            "messages and timers committed",
            &m.messages_sent,
        ),
        (
            "stateful_messages_delivered_total",
            "messages delivered",
            &m.messages_delivered,
        ),
    ] {
        counter(s, name, Some(help), l(v));
    }
}

/// (name, kind, help, read) of one per-operator series.
type OperatorSeries = (
    &'static str,
    &'static str,
    &'static str,
    fn(&OperatorMetrics) -> u64,
);

const PER_OPERATOR: [OperatorSeries; 10] = [
    (
        "stateful_operator_messages_total",
        "counter",
        "messages handled",
        |m| m.messages.load(Ordering::Relaxed),
    ),
    (
        "stateful_operator_invocations_total",
        "counter",
        "handler invocations",
        |m| m.invocations.load(Ordering::Relaxed),
    ),
    (
        "stateful_operator_lock_waits_total",
        "counter",
        "calls that queued for a lock",
        |m| m.lock_waits.load(Ordering::Relaxed),
    ),
    (
        "stateful_operator_busy_microseconds_total",
        "counter",
        "time spent handling messages",
        |m| m.busy_us.load(Ordering::Relaxed),
    ),
    (
        "stateful_operator_waiting",
        "gauge",
        "calls waiting in lock queues",
        |m| m.waiting.load(Ordering::Relaxed),
    ),
    (
        "stateful_operator_stashed",
        "gauge",
        "messages held for the next commit epoch",
        |m| m.stashed.load(Ordering::Relaxed),
    ),
    (
        "stateful_operator_cache_hits_total",
        "counter",
        "calls whose instance was cached",
        |m| m.cache_hits.load(Ordering::Relaxed),
    ),
    (
        "stateful_operator_cache_misses_total",
        "counter",
        "calls whose instance was read from the store",
        |m| m.cache_misses.load(Ordering::Relaxed),
    ),
    (
        "stateful_operator_evictions_total",
        "counter",
        "instances evicted from the cache",
        |m| m.evictions.load(Ordering::Relaxed),
    ),
    (
        "stateful_operator_cached_bytes",
        "gauge",
        "bytes of the cached instances",
        |m| m.cached_bytes.load(Ordering::Relaxed),
    ),
];

fn per_operator(s: &mut String, h: &Handle) {
    let names: Vec<&str> = h.program().lambdas().iter().map(|l| l.name).collect();
    let lambdas = names.len().max(1);
    for (name, kind, help, get) in PER_OPERATOR {
        let _ = writeln!(s, "# HELP {name} {help}");
        let _ = writeln!(s, "# TYPE {name} {kind}");
        for (i, om) in h.metrics().operators.iter().enumerate() {
            let lambda = names.get(i % lambdas).copied().unwrap_or("?");
            let _ = writeln!(
                s,
                "{name}{{lambda=\"{lambda}\",worker=\"{}\"}} {}",
                i / lambdas,
                get(om)
            );
        }
    }
}

/// The metrics page.
pub(crate) fn render(h: &Handle, http: &HttpMetrics) -> Response {
    let m = h.metrics();
    let mut s = String::new();
    http.write(&mut s);
    engine_totals(&mut s, m, h.in_flight());
    per_operator(&mut s, h);
    counter(
        &mut s,
        "stateful_commits_total",
        None,
        m.commits.load(Ordering::Relaxed),
    );
    let _ = writeln!(s, "# TYPE stateful_commit_seconds_total counter");
    let _ = writeln!(
        s,
        "stateful_commit_seconds_total {}",
        m.commit_us.load(Ordering::Relaxed) as f64 / 1e6
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], s).into_response()
}
