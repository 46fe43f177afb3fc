//! Where the time goes, by the rule `docs/performance.md` states ("Reading the metrics"):
//!
//! 1. nothing to see under one request a second (idle);
//! 2. the engine's busiest part, if it is busy ≥ 80% of the interval: a worker's operators
//!    (the lambda taking most of that worker is marked) or the committer (the commit path:
//!    the disk and the store);
//! 3. else contention, if ≥ 20% of invocations wait for a lock or ≥ 5% of requests are
//!    retried as deadlock victims (the lambda with the most lock waits is marked);
//! 4. else the engine has time to spare, so the limit is in front of it: HTTP or the clients.

use serde::Serialize;

use super::sample::Sample;

/// Busy share from which a part counts as saturated.
const SATURATED: f64 = 0.8;

/// The verdict on one interval.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Bottleneck {
    /// `idle`, `operators`, `commit`, `contention` or `http`.
    pub kind: &'static str,
    /// The lambda marked (operators, contention).
    pub lambda: Option<String>,
    /// The worker marked (operators).
    pub worker: Option<usize>,
    /// The numbers behind the verdict, in words.
    pub why: String,
}

impl Bottleneck {
    /// Nothing to judge.
    pub fn idle() -> Self {
        Bottleneck {
            kind: "idle",
            lambda: None,
            worker: None,
            why: "under one request a second".into(),
        }
    }
}

/// What the rule reads from a sample.
pub(crate) struct Load<'a> {
    requests_per_s: f64,
    commit_busy: f64,
    invocations_per_s: f64,
    lock_waits_per_s: f64,
    aborts_per_s: f64,
    /// Per worker: its busy share and, per lambda, its busy share.
    workers: Vec<(f64, Vec<f64>)>,
    /// Per lambda: name and lock waits per second.
    lambdas: Vec<(&'a str, f64)>,
}

impl<'a> Load<'a> {
    pub(crate) fn of(s: &'a Sample) -> Self {
        Load {
            requests_per_s: s.requests_per_s,
            commit_busy: s.commit_busy,
            invocations_per_s: s.invocations_per_s,
            lock_waits_per_s: s.lock_waits_per_s,
            aborts_per_s: s.aborts_per_s,
            workers: s
                .workers
                .iter()
                .map(|w| (w.busy, w.lambdas.iter().map(|(_, b)| *b).collect()))
                .collect(),
            lambdas: s
                .lambdas
                .iter()
                .map(|l| (l.name.as_str(), l.lock_waits_per_s))
                .collect(),
        }
    }
}

fn busiest(v: impl Iterator<Item = f64>) -> Option<(usize, f64)> {
    v.enumerate()
        .max_by(|a, b| a.1.partial_cmp(&b.1).unwrap_or(std::cmp::Ordering::Equal))
}

/// The verdict for `l`.
pub(crate) fn bottleneck(l: &Load<'_>) -> Bottleneck {
    if l.requests_per_s < 1.0 {
        return Bottleneck::idle();
    }
    let worker = busiest(l.workers.iter().map(|w| w.0));
    let (w, w_busy) = worker.unwrap_or((0, 0.0));
    if w_busy >= SATURATED && w_busy >= l.commit_busy {
        let lambda = l
            .workers
            .get(w)
            .and_then(|(_, per)| busiest(per.iter().copied()))
            .and_then(|(i, _)| l.lambdas.get(i))
            .map(|(n, _)| (*n).to_owned());
        return Bottleneck {
            kind: "operators",
            why: format!(
                "worker {w} is busy {:.0}% of the time{}",
                w_busy * 100.0,
                lambda
                    .as_deref()
                    .map_or_else(String::new, |n| format!(", most of it in {n}"))
            ),
            lambda,
            worker: Some(w),
        };
    }
    if l.commit_busy >= SATURATED {
        return Bottleneck {
            kind: "commit",
            lambda: None,
            worker: None,
            why: format!(
                "the committer is busy {:.0}% of the time (log append, fsync, store)",
                l.commit_busy * 100.0
            ),
        };
    }
    let waits = l.lock_waits_per_s / l.invocations_per_s.max(1.0);
    let retries = l.aborts_per_s / l.requests_per_s;
    if waits >= 0.2 || retries >= 0.05 {
        let lambda = busiest(l.lambdas.iter().map(|(_, w)| *w))
            .and_then(|(i, _)| l.lambdas.get(i))
            .map(|(n, _)| (*n).to_owned());
        return Bottleneck {
            kind: "contention",
            why: format!(
                "{:.0}% of invocations wait for a lock, {:.1}% of requests are retried",
                waits * 100.0,
                retries * 100.0
            ),
            lambda,
            worker: None,
        };
    }
    Bottleneck {
        kind: "http",
        lambda: None,
        worker: None,
        why: format!(
            "the engine has time to spare (busiest worker {:.0}%, committer {:.0}%): the limit is the gateway or the clients",
            w_busy * 100.0,
            l.commit_busy * 100.0
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(workers: Vec<(f64, Vec<f64>)>, commit_busy: f64, waits: f64) -> Load<'static> {
        Load {
            requests_per_s: 1000.0,
            commit_busy,
            invocations_per_s: 3000.0,
            lock_waits_per_s: waits,
            aborts_per_s: 0.0,
            workers,
            lambdas: vec![("Stock", waits), ("Order", 0.0)],
        }
    }

    #[test]
    fn each_verdict_follows_the_rule() {
        let idle = Load {
            requests_per_s: 0.5,
            ..load(vec![], 0.0, 0.0)
        };
        assert_eq!(bottleneck(&idle).kind, "idle");
        let ops = bottleneck(&load(
            vec![(0.9, vec![0.2, 0.7]), (0.3, vec![0.1, 0.2])],
            0.5,
            0.0,
        ));
        assert_eq!((ops.kind, ops.worker), ("operators", Some(0)));
        assert_eq!(ops.lambda.as_deref(), Some("Order"));
        let commit = bottleneck(&load(vec![(0.5, vec![0.2, 0.3])], 0.95, 0.0));
        assert_eq!(commit.kind, "commit");
        let hot = bottleneck(&load(vec![(0.5, vec![0.2, 0.3])], 0.5, 900.0));
        assert_eq!(
            (hot.kind, hot.lambda.as_deref()),
            ("contention", Some("Stock"))
        );
        let http = bottleneck(&load(vec![(0.5, vec![0.2, 0.3])], 0.5, 10.0));
        assert_eq!(http.kind, "http");
    }
}
