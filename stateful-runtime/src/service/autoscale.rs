//! The autoscaler (`serve --autoscale MIN..MAX`): once a second it reads the console's newest
//! sample and rescales the process ([`super::live`]) when the bottleneck view says so, with
//! hysteresis. Part of the service layer.
//!
//! - **Up** one worker when the verdict has been "operators" (a worker busy ≥ 80%) for
//!   [`UP_AFTER`] samples in a row.
//! - **Down** one worker when no worker has been busy ≥ [`IDLE_BUSY`] for [`DOWN_AFTER`]
//!   samples in a row.
//! - Nothing for [`COOLDOWN`] samples after a rescale (the new shape needs time to show).
//!
//! Every decision is logged and kept with the rescales (`GET /admin/workers`, the console).

use std::sync::Arc;
use std::time::Duration;

use super::console::Sample;
use super::live::Live;

/// Saturated samples in a row before a worker is added.
pub const UP_AFTER: u32 = 5;
/// Quiet samples in a row before a worker is removed.
pub const DOWN_AFTER: u32 = 10;
/// Busy share under which every worker counts as quiet.
pub const IDLE_BUSY: f64 = 0.2;
/// Samples without a decision after a rescale.
pub const COOLDOWN: u32 = 10;

/// `MIN..MAX` workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    /// The fewest workers.
    pub min: usize,
    /// The most workers.
    pub max: usize,
}

impl std::str::FromStr for Range {
    type Err = String;

    fn from_str(s: &str) -> Result<Range, String> {
        let bad = || format!("`{s}` is not MIN..MAX workers (e.g. 1..4)");
        let (a, b) = s.split_once("..").ok_or_else(bad)?;
        let (min, max) = (
            a.parse::<usize>().map_err(|_| bad())?,
            b.parse::<usize>().map_err(|_| bad())?,
        );
        if min == 0 || min > max || max > super::live::MAX_WORKERS {
            return Err(format!(
                "{s}: need 1 <= MIN <= MAX <= {}",
                super::live::MAX_WORKERS
            ));
        }
        Ok(Range { min, max })
    }
}

/// What the autoscaler remembers between samples.
#[derive(Debug, Default)]
pub struct Policy {
    saturated: u32,
    quiet: u32,
    cooldown: u32,
}

impl Policy {
    /// The decision for `sample` with `workers` now: a new worker count and why.
    pub fn decide(
        &mut self,
        range: Range,
        workers: usize,
        sample: &Sample,
    ) -> Option<(usize, String)> {
        // After a rescale, and after a failed one: the next decision waits.
        if self.cooldown > 0 {
            self.cooldown -= 1;
            return None;
        }
        if workers < range.min || workers > range.max {
            let to = workers.clamp(range.min, range.max);
            return Some(self.decided(
                to,
                format!("{workers} workers is outside {}..{}", range.min, range.max),
            ));
        }
        let busiest = sample.workers.iter().map(|w| w.busy).fold(0.0, f64::max);
        self.saturated = if sample.bottleneck.kind == "operators" {
            self.saturated + 1
        } else {
            0
        };
        self.quiet = if busiest < IDLE_BUSY {
            self.quiet + 1
        } else {
            0
        };
        if self.saturated >= UP_AFTER && workers < range.max {
            return Some(self.decided(
                workers + 1,
                format!(
                    "the operators were the bottleneck for {UP_AFTER} s ({})",
                    sample.bottleneck.why
                ),
            ));
        }
        if self.quiet >= DOWN_AFTER && workers > range.min {
            return Some(self.decided(
                workers - 1,
                format!(
                    "every worker under {:.0}% busy for {DOWN_AFTER} s",
                    IDLE_BUSY * 100.0
                ),
            ));
        }
        None
    }

    /// A rescale happened (anyone's): counting starts again after the cooldown.
    pub fn rescaled(&mut self) {
        *self = Policy {
            cooldown: COOLDOWN,
            ..Policy::default()
        };
    }

    fn decided(&mut self, to: usize, why: String) -> (usize, String) {
        *self = Policy {
            cooldown: COOLDOWN,
            ..Policy::default()
        };
        (to, why)
    }
}

/// Runs the autoscaler for `live` until it stops.
pub(crate) async fn run(live: Arc<Live>, range: Range) {
    let mut policy = Policy::default();
    let mut seen = 0;
    let mut rescales = live.rescales();
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        // A rescale from the CLI, the API or the console starts the cooldown too: the
        // seconds counted before it were another shape's.
        if live.rescales() != rescales {
            rescales = live.rescales();
            policy.rescaled();
        }
        let Some(sample) = live.latest_sample() else {
            continue;
        };
        if sample.t_ms == seen {
            continue;
        }
        seen = sample.t_ms;
        let workers = live.workers();
        let Some((to, why)) = policy.decide(range, workers, &sample) else {
            continue;
        };
        tracing::warn!(from = workers, to, %why, "autoscaler");
        if let Err(e) = live
            .rescale_because(to, Some(format!("autoscaler: {why}")))
            .await
        {
            tracing::warn!(error = %e, "the autoscaler's rescale failed");
        }
        rescales = live.rescales();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::console::{Bottleneck, WorkerSample};

    fn sample(kind: &'static str, busy: f64) -> Sample {
        Sample {
            t_ms: 0,
            requests_per_s: 100.0,
            answers_per_s: [0.0; 5],
            latency_p50_ms: None,
            latency_p99_ms: None,
            commits_per_s: 0.0,
            commit_ms: 0.0,
            batch: 0.0,
            commit_busy: 0.0,
            in_flight: 0,
            invocations_per_s: 0.0,
            lock_waits_per_s: 0.0,
            aborts_per_s: 0.0,
            rollbacks_per_s: 0.0,
            messages_per_s: 0.0,
            lambdas: Vec::new(),
            edges: Vec::new(),
            workers: vec![WorkerSample {
                worker: 0,
                busy,
                lambdas: Vec::new(),
            }],
            bottleneck: Bottleneck {
                kind,
                lambda: None,
                worker: Some(0),
                why: "test".into(),
            },
        }
    }

    #[test]
    fn saturation_adds_a_worker_after_a_while_and_then_waits() {
        let range: Range = "1..3".parse().expect("range");
        let mut p = Policy::default();
        let hot = sample("operators", 0.95);
        for _ in 1..UP_AFTER {
            assert_eq!(p.decide(range, 1, &hot), None);
        }
        assert_eq!(p.decide(range, 1, &hot).map(|d| d.0), Some(2));
        for _ in 0..COOLDOWN {
            assert_eq!(p.decide(range, 2, &hot), None, "cooling down");
        }
        // A calm sample in between starts the count again.
        for _ in 1..UP_AFTER {
            assert_eq!(p.decide(range, 2, &hot), None);
        }
        assert_eq!(p.decide(range, 2, &sample("http", 0.5)), None);
        assert_eq!(p.decide(range, 2, &hot), None);
    }

    #[test]
    fn quiet_removes_a_worker_never_below_the_minimum() {
        let range: Range = "2..4".parse().expect("range");
        let mut p = Policy::default();
        let idle = sample("idle", 0.01);
        for _ in 1..DOWN_AFTER {
            assert_eq!(p.decide(range, 3, &idle), None);
        }
        assert_eq!(p.decide(range, 3, &idle).map(|d| d.0), Some(2));
        for _ in 0..COOLDOWN + DOWN_AFTER * 2 {
            assert_eq!(p.decide(range, 2, &idle), None, "at the minimum");
        }
        assert_eq!(
            p.decide(range, 7, &idle).map(|d| d.0),
            Some(4),
            "into the range"
        );
    }

    #[test]
    fn ranges_parse_and_bad_ones_say_why() {
        assert_eq!("1..4".parse::<Range>(), Ok(Range { min: 1, max: 4 }));
        for bad in ["4..1", "0..2", "1-4", "a..b", "1..100000"] {
            assert!(bad.parse::<Range>().is_err(), "{bad}");
        }
    }
}
