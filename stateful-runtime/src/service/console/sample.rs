//! One second of the running service as the console shows it: the counters read at two
//! moments ([`Counters`]) turned into rates, percentiles and utilisations ([`Sample`]), per
//! lambda, per call edge and per worker.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use super::bottleneck::{Bottleneck, Load, bottleneck};
use crate::engine::{DURATION_BUCKETS, Handle, Metrics, OperatorMetrics};
use crate::service::http::{HttpCounts, HttpMetrics, LATENCY_BOUNDS_MS};

/// Every counter the console reads, at one moment.
#[derive(Debug, Clone, Default)]
pub(crate) struct Counters {
    /// When (unix µs).
    pub at_us: u64,
    pub requests: u64,
    pub invocations: u64,
    pub lock_waits: u64,
    pub aborts: u64,
    pub rollbacks: u64,
    pub messages: u64,
    pub commits: u64,
    pub commit_us: u64,
    pub committed: u64,
    pub in_flight: usize,
    pub http: HttpCounts,
    /// Per operator, indexed `worker * lambdas + lambda`.
    pub operators: Vec<OperatorCounters>,
}

/// One operator's counters.
#[derive(Debug, Clone, Default)]
pub(crate) struct OperatorCounters {
    pub invocations: u64,
    pub failed: u64,
    pub busy_us: u64,
    pub lock_waits: u64,
    pub queued: u64,
    pub hits: u64,
    pub misses: u64,
    pub durations: Vec<u64>,
    pub calls_from: Vec<u64>,
}

fn load(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

impl OperatorCounters {
    fn read(m: &OperatorMetrics) -> Self {
        OperatorCounters {
            invocations: load(&m.invocations),
            failed: load(&m.failed),
            busy_us: load(&m.busy_us),
            lock_waits: load(&m.lock_waits),
            queued: load(&m.waiting) + load(&m.stashed),
            hits: load(&m.cache_hits),
            misses: load(&m.cache_misses),
            durations: m.durations.iter().map(load).collect(),
            calls_from: m.calls_from.iter().map(load).collect(),
        }
    }
}

impl Counters {
    /// Reads the engine's and the gateway's counters now.
    pub(crate) fn read(handle: &Handle, http: &HttpMetrics) -> Self {
        let m: &Metrics = handle.metrics();
        Counters {
            at_us: crate::storage::unix_ms().saturating_mul(1000),
            requests: load(&m.requests),
            invocations: load(&m.invocations),
            lock_waits: load(&m.lock_waits),
            aborts: load(&m.aborts),
            rollbacks: load(&m.rollbacks),
            messages: load(&m.messages_delivered),
            commits: load(&m.commits),
            commit_us: load(&m.commit_us),
            committed: load(&m.committed_requests),
            in_flight: handle.in_flight(),
            http: http.counts(),
            operators: m.operators.iter().map(OperatorCounters::read).collect(),
        }
    }
}

/// The service over one interval, as the console draws it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Sample {
    /// End of the interval (unix ms).
    pub t_ms: u64,
    /// Requests admitted per second.
    pub requests_per_s: f64,
    /// Answers per second by class (`2xx`, `400`, `4xx`, `503`, `5xx`), from the gateway and
    /// the console's load generator.
    pub answers_per_s: [f64; 5],
    /// Answer latency percentiles (ms, the upper bound of the bucket; `None`: no answers).
    pub latency_p50_ms: Option<f64>,
    /// See `latency_p50_ms`.
    pub latency_p99_ms: Option<f64>,
    /// Group commits per second.
    pub commits_per_s: f64,
    /// Mean time of one commit (ms).
    pub commit_ms: f64,
    /// Mean requests per commit.
    pub batch: f64,
    /// Share of the interval the committer spent committing.
    pub commit_busy: f64,
    /// Requests admitted and not answered, now.
    pub in_flight: usize,
    /// Handler invocations per second.
    pub invocations_per_s: f64,
    /// Calls per second that queued behind another request's lock.
    pub lock_waits_per_s: f64,
    /// Deadlock victims retried per second.
    pub aborts_per_s: f64,
    /// `transaction!` blocks rolled back per second.
    pub rollbacks_per_s: f64,
    /// Messages delivered per second.
    pub messages_per_s: f64,
    /// Per lambda (all workers together).
    pub lambdas: Vec<LambdaSample>,
    /// Invocations per second along each edge that carried any.
    pub edges: Vec<EdgeSample>,
    /// Per worker.
    pub workers: Vec<WorkerSample>,
    /// Where the time goes.
    pub bottleneck: Bottleneck,
}

/// One lambda over the interval.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LambdaSample {
    /// Its name.
    pub name: String,
    /// Invocations started per second.
    pub invocations_per_s: f64,
    /// Invocations failed per second.
    pub failed_per_s: f64,
    /// Invocation time percentiles (µs, bucket upper bounds; `None`: none ended).
    pub p50_us: Option<u64>,
    /// See `p50_us`.
    pub p99_us: Option<u64>,
    /// Busy time over the interval, in workers (0.5: half of one worker's time).
    pub busy: f64,
    /// Calls waiting for a lock or for the next epoch, now.
    pub queued: u64,
    /// Calls per second that waited for a lock.
    pub lock_waits_per_s: f64,
    /// Share of calls whose instance was cached (`None`: no calls).
    pub cache_hit_rate: Option<f64>,
}

/// One edge of the graph over the interval.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct EdgeSample {
    /// The caller: a lambda, or `ingress` for requests from outside.
    pub from: String,
    /// The called lambda.
    pub to: String,
    /// Invocations per second.
    pub per_s: f64,
}

/// One worker over the interval.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct WorkerSample {
    /// Its index.
    pub worker: usize,
    /// Share of the interval it spent handling messages.
    pub busy: f64,
    /// Its share of each lambda: (invocations per second, busy), in lambda order.
    pub lambdas: Vec<(f64, f64)>,
}

/// Percentile `q` of log2 buckets (bucket `i` < 2^i µs): the upper bound of its bucket.
fn log2_percentile(counts: &[u64], q: f64) -> Option<u64> {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return None;
    }
    let want = (q * total as f64).ceil().max(1.0) as u64;
    let mut seen = 0;
    for (i, n) in counts.iter().enumerate() {
        seen += n;
        if seen >= want {
            return Some(1u64 << i);
        }
    }
    Some(1u64 << (counts.len() - 1))
}

/// Percentile `q` of the gateway's cumulative buckets (ms; beyond the last bound: `None`
/// would hide it, so the last bound doubled).
fn within_percentile(within: &[u64; 10], total: u64, q: f64) -> Option<f64> {
    if total == 0 {
        return None;
    }
    let want = (q * total as f64).ceil().max(1.0) as u64;
    let hit = LATENCY_BOUNDS_MS
        .iter()
        .zip(within)
        .find(|(_, n)| **n >= want)
        .map(|(b, _)| *b);
    Some(hit.unwrap_or(LATENCY_BOUNDS_MS[9] * 2.0))
}

struct Delta<'a> {
    old: &'a Counters,
    new: &'a Counters,
    secs: f64,
}

impl Delta<'_> {
    fn rate(&self, f: impl Fn(&Counters) -> u64) -> f64 {
        f(self.new).saturating_sub(f(self.old)) as f64 / self.secs
    }

    fn op(&self, i: usize) -> (OperatorCounters, &OperatorCounters) {
        let new = &self.new.operators[i];
        let old = self.old.operators.get(i).cloned().unwrap_or_default();
        (old, new)
    }
}

fn sub(a: &[u64], b: &[u64]) -> Vec<u64> {
    a.iter()
        .enumerate()
        .map(|(i, x)| x.saturating_sub(b.get(i).copied().unwrap_or(0)))
        .collect()
}

/// The sample of the interval from `old` to `new`; `names` are the app's lambdas in order.
pub(crate) fn sample(old: &Counters, new: &Counters, names: &[&str]) -> Sample {
    let secs = (new.at_us.saturating_sub(old.at_us) as f64 / 1e6).max(1e-3);
    let d = Delta { old, new, secs };
    let lambdas = names.len().max(1);
    let workers = new.operators.len() / lambdas;
    let mut per_lambda: Vec<(OperatorCounters, Vec<u64>)> =
        vec![(OperatorCounters::default(), vec![0; DURATION_BUCKETS]); names.len()];
    let mut edges = vec![vec![0u64; names.len() + 1]; names.len()];
    let mut worker_samples = Vec::new();
    for w in 0..workers {
        let mut mine = Vec::new();
        let mut busy = 0.0;
        for (l, acc) in per_lambda.iter_mut().enumerate() {
            let (old, new) = d.op(w * lambdas + l);
            let inv = new.invocations.saturating_sub(old.invocations);
            let b = new.busy_us.saturating_sub(old.busy_us) as f64 / 1e6 / secs;
            busy += b;
            mine.push((inv as f64 / secs, b));
            acc.0.invocations += inv;
            acc.0.failed += new.failed.saturating_sub(old.failed);
            acc.0.busy_us += new.busy_us.saturating_sub(old.busy_us);
            acc.0.lock_waits += new.lock_waits.saturating_sub(old.lock_waits);
            acc.0.queued += new.queued;
            acc.0.hits += new.hits.saturating_sub(old.hits);
            acc.0.misses += new.misses.saturating_sub(old.misses);
            for (i, n) in sub(&new.durations, &old.durations).into_iter().enumerate() {
                if let Some(b) = acc.1.get_mut(i) {
                    *b += n;
                }
            }
            for (i, n) in sub(&new.calls_from, &old.calls_from)
                .into_iter()
                .enumerate()
            {
                if let Some(e) = edges[l].get_mut(i) {
                    *e += n;
                }
            }
        }
        worker_samples.push(WorkerSample {
            worker: w,
            busy,
            lambdas: mine,
        });
    }
    let lambda_samples: Vec<LambdaSample> = per_lambda
        .iter()
        .zip(names)
        .map(|((c, durations), name)| LambdaSample {
            name: (*name).to_owned(),
            invocations_per_s: c.invocations as f64 / secs,
            failed_per_s: c.failed as f64 / secs,
            p50_us: log2_percentile(durations, 0.5),
            p99_us: log2_percentile(durations, 0.99),
            busy: c.busy_us as f64 / 1e6 / secs,
            queued: c.queued,
            lock_waits_per_s: c.lock_waits as f64 / secs,
            cache_hit_rate: (c.hits + c.misses > 0)
                .then(|| c.hits as f64 / (c.hits + c.misses) as f64),
        })
        .collect();
    let edge_samples = edge_samples(&edges, names, secs);
    let answers: [u64; 5] =
        std::array::from_fn(|i| new.http.classes[i].saturating_sub(old.http.classes[i]));
    let within: [u64; 10] =
        std::array::from_fn(|i| new.http.within[i].saturating_sub(old.http.within[i]));
    let answered: u64 = answers.iter().sum();
    let commits = new.commits.saturating_sub(old.commits);
    let commit_us = new.commit_us.saturating_sub(old.commit_us);
    let mut s = Sample {
        t_ms: new.at_us / 1000,
        requests_per_s: d.rate(|c| c.requests),
        answers_per_s: answers.map(|n| n as f64 / secs),
        latency_p50_ms: within_percentile(&within, answered, 0.5),
        latency_p99_ms: within_percentile(&within, answered, 0.99),
        commits_per_s: commits as f64 / secs,
        commit_ms: if commits == 0 {
            0.0
        } else {
            commit_us as f64 / 1000.0 / commits as f64
        },
        batch: if commits == 0 {
            0.0
        } else {
            new.committed.saturating_sub(old.committed) as f64 / commits as f64
        },
        commit_busy: commit_us as f64 / 1e6 / secs,
        in_flight: new.in_flight,
        invocations_per_s: d.rate(|c| c.invocations),
        lock_waits_per_s: d.rate(|c| c.lock_waits),
        aborts_per_s: d.rate(|c| c.aborts),
        rollbacks_per_s: d.rate(|c| c.rollbacks),
        messages_per_s: d.rate(|c| c.messages),
        lambdas: lambda_samples,
        edges: edge_samples,
        workers: worker_samples,
        bottleneck: Bottleneck::idle(),
    };
    s.bottleneck = bottleneck(&Load::of(&s));
    s
}

fn edge_samples(edges: &[Vec<u64>], names: &[&str], secs: f64) -> Vec<EdgeSample> {
    let mut out = Vec::new();
    for (to, from_counts) in edges.iter().enumerate() {
        for (from, n) in from_counts.iter().enumerate() {
            if *n == 0 {
                continue;
            }
            let from = match from {
                0 => "ingress",
                l => names.get(l - 1).copied().unwrap_or("?"),
            };
            out.push(EdgeSample {
                from: from.to_owned(),
                to: names.get(to).copied().unwrap_or("?").to_owned(),
                per_s: *n as f64 / secs,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(
        invocations: u64,
        busy_us: u64,
        durations: &[u64],
        calls_from: &[u64],
    ) -> OperatorCounters {
        OperatorCounters {
            invocations,
            busy_us,
            durations: durations.to_vec(),
            calls_from: calls_from.to_vec(),
            ..OperatorCounters::default()
        }
    }

    #[test]
    fn percentiles_are_bucket_upper_bounds() {
        assert_eq!(log2_percentile(&[0, 0, 0], 0.5), None);
        // 90 under 2^3 µs, 10 under 2^10 µs.
        let mut b = vec![0; 24];
        b[3] = 90;
        b[10] = 10;
        assert_eq!(log2_percentile(&b, 0.5), Some(8));
        assert_eq!(log2_percentile(&b, 0.99), Some(1024));
        let mut within = [0; 10];
        within[2..].fill(100); // all within 2 ms
        assert_eq!(within_percentile(&within, 100, 0.99), Some(2.0));
        assert_eq!(within_percentile(&[0; 10], 5, 0.5), Some(2000.0));
    }

    #[test]
    fn a_second_becomes_rates_per_lambda_edge_and_worker() {
        let names = ["Stock", "Order"];
        let old = Counters {
            at_us: 1_000_000,
            operators: vec![OperatorCounters::default(); 4],
            ..Counters::default()
        };
        let mut d = vec![0; 24];
        d[4] = 100;
        // Worker 0: Stock 100 calls from Order in 0.5 s busy; Order 100 roots. Worker 1 idle.
        let new = Counters {
            at_us: 2_000_000,
            requests: 100,
            invocations: 200,
            operators: vec![
                op(100, 500_000, &d, &[0, 0, 100]),
                op(100, 200_000, &d, &[100, 0, 0]),
                op(0, 0, &[], &[]),
                op(0, 0, &[], &[]),
            ],
            ..Counters::default()
        };
        let s = sample(&old, &new, &names);
        assert_eq!(s.requests_per_s, 100.0);
        assert_eq!(s.lambdas[0].invocations_per_s, 100.0);
        assert_eq!(s.lambdas[0].p50_us, Some(16));
        assert!((s.lambdas[0].busy - 0.5).abs() < 1e-9);
        assert!((s.workers[0].busy - 0.7).abs() < 1e-9);
        assert_eq!(s.workers[1].busy, 0.0);
        let edge = |f: &str, t: &str| s.edges.iter().find(|e| e.from == f && e.to == t);
        assert_eq!(edge("Order", "Stock").map(|e| e.per_s), Some(100.0));
        assert_eq!(edge("ingress", "Order").map(|e| e.per_s), Some(100.0));
        assert_eq!(s.edges.len(), 2);
    }
}
