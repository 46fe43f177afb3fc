//! The console's built-in request generator: the app's mixes ([`LoadMix`], registered with
//! `Service::load_mix`) run in process against the engine, closed loop (N connections, each
//! sending its next session when the last one was answered) or open loop (sessions started
//! at a rate), until stopped. Answers count in the gateway's metrics; the engine does not
//! see a difference from HTTP requests (the HTTP layer itself is not exercised).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use stateful_core::mix::SplitMix;

use crate::service::http::HttpMetrics;
use crate::service::json::JsonResponse;

/// One request of a load session: a handler of an instance, with JSON arguments (an object
/// by parameter name, or an array).
#[derive(Debug, Clone)]
pub struct LoadRequest {
    /// The lambda.
    pub lambda: &'static str,
    /// The instance's key, as text (what the gateway's paths carry).
    pub key: String,
    /// The handler.
    pub handler: &'static str,
    /// The arguments.
    pub args: Value,
}

impl LoadRequest {
    /// `handler` of instance `key` of `lambda` with `args`.
    pub fn new(
        lambda: &'static str,
        key: impl Into<String>,
        handler: &'static str,
        args: Value,
    ) -> Self {
        LoadRequest {
            lambda,
            key: key.into(),
            handler,
            args,
        }
    }
}

type Sessions = dyn Fn(&mut SplitMix) -> Vec<LoadRequest> + Send + Sync;

/// A request mix for the console's generator: the requests that prepare its data (run once
/// per process, before its first run) and a generator of sessions (requests sent one after
/// the other by one connection).
#[derive(Clone)]
pub struct LoadMix {
    name: &'static str,
    about: &'static str,
    setup: Arc<dyn Fn() -> Vec<LoadRequest> + Send + Sync>,
    session: Arc<Sessions>,
}

impl std::fmt::Debug for LoadMix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadMix")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl LoadMix {
    /// A mix named `name` (`about` says what it does in a few words) whose sessions
    /// `session` makes.
    pub fn new(
        name: &'static str,
        about: &'static str,
        session: impl Fn(&mut SplitMix) -> Vec<LoadRequest> + Send + Sync + 'static,
    ) -> Self {
        LoadMix {
            name,
            about,
            setup: Arc::new(Vec::new),
            session: Arc::new(session),
        }
    }

    /// The requests that prepare the mix's data, run before its first run in a process.
    pub fn setup(mut self, setup: impl Fn() -> Vec<LoadRequest> + Send + Sync + 'static) -> Self {
        self.setup = Arc::new(setup);
        self
    }

    /// The mix's name.
    pub fn name(&self) -> &'static str {
        self.name
    }
}

/// How to run a mix (`POST /console/load`).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct LoadPlan {
    /// The mix's name.
    pub mix: String,
    /// Closed loop: this many connections (default 32 when no rate is given).
    pub connections: Option<u32>,
    /// Open loop: sessions started per second.
    pub rate: Option<u32>,
}

/// Most connections or sessions per second a plan may ask for.
pub const MAX_LOAD: u32 = 10_000;

/// Why a plan is refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PlanError {
    /// No mix of that name.
    #[error("no load mix `{0}`; this app has: {1}")]
    UnknownMix(String, String),
    /// Both or neither are zero, or one is too large.
    #[error("give connections (1..={MAX_LOAD}) or a rate (1..={MAX_LOAD} sessions/s), not both")]
    Shape,
    /// One runs already.
    #[error("the generator is running already; stop it first")]
    Running,
}

/// What the generator is doing (`GET /console/load`).
#[derive(Debug, Clone, Serialize, Default)]
pub struct LoadStatus {
    /// The app's mixes: (name, about).
    pub mixes: Vec<(&'static str, &'static str)>,
    /// The plan running, if any.
    pub running: Option<LoadPlan>,
    /// `preparing` (setup requests), `running` or `stopped`.
    pub phase: &'static str,
    /// Requests answered since the start: ok, rejected, failed.
    pub ok: u64,
    /// See `ok`.
    pub rejected: u64,
    /// See `ok`.
    pub failed: u64,
    /// Seconds since the start.
    pub seconds: f64,
    /// The last rejection or failure: the request and what it answered.
    pub last_error: Option<String>,
}

#[derive(Default)]
struct Counts {
    ok: AtomicU64,
    rejected: AtomicU64,
    failed: AtomicU64,
    last_error: std::sync::Mutex<Option<String>>,
}

struct Run {
    plan: LoadPlan,
    stop: Arc<AtomicBool>,
    preparing: Arc<AtomicBool>,
    counts: Arc<Counts>,
    started: Instant,
}

/// The generator of one service.
pub(crate) struct Generator {
    mixes: Vec<LoadMix>,
    engine: super::EngineSlot,
    http: Arc<HttpMetrics>,
    run: std::sync::Mutex<Option<Run>>,
    prepared: std::sync::Mutex<Vec<&'static str>>,
}

impl Generator {
    pub(crate) fn new(
        mixes: Vec<LoadMix>,
        engine: super::EngineSlot,
        http: Arc<HttpMetrics>,
    ) -> Self {
        Generator {
            mixes,
            engine,
            http,
            run: std::sync::Mutex::new(None),
            prepared: std::sync::Mutex::new(Vec::new()),
        }
    }

    fn lock_run(&self) -> std::sync::MutexGuard<'_, Option<Run>> {
        self.run
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// What it is doing.
    pub(crate) fn status(&self) -> LoadStatus {
        let mixes = self.mixes.iter().map(|m| (m.name, m.about)).collect();
        let run = self.lock_run();
        let Some(r) = run.as_ref() else {
            return LoadStatus {
                mixes,
                phase: "stopped",
                ..LoadStatus::default()
            };
        };
        let l = |c: &AtomicU64| c.load(Ordering::Relaxed);
        LoadStatus {
            mixes,
            running: Some(r.plan.clone()),
            phase: if r.preparing.load(Ordering::Relaxed) {
                "preparing"
            } else {
                "running"
            },
            ok: l(&r.counts.ok),
            rejected: l(&r.counts.rejected),
            failed: l(&r.counts.failed),
            seconds: r.started.elapsed().as_secs_f64(),
            last_error: r
                .counts
                .last_error
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone(),
        }
    }

    /// Starts `plan` (on the current tokio runtime).
    pub(crate) fn start(self: &Arc<Self>, plan: LoadPlan) -> Result<(), PlanError> {
        let Some(mix) = self.mixes.iter().find(|m| m.name == plan.mix).cloned() else {
            let names: Vec<&str> = self.mixes.iter().map(|m| m.name).collect();
            let names = if names.is_empty() {
                "none (Service::load_mix adds one)".to_owned()
            } else {
                names.join(", ")
            };
            return Err(PlanError::UnknownMix(plan.mix, names));
        };
        let shape = match (plan.connections, plan.rate) {
            (Some(c), None) if (1..=MAX_LOAD).contains(&c) => Shape::Closed(c),
            (None, Some(r)) if (1..=MAX_LOAD).contains(&r) => Shape::Open(r),
            (None, None) => Shape::Closed(32),
            _ => return Err(PlanError::Shape),
        };
        let mut run = self.lock_run();
        if run.is_some() {
            return Err(PlanError::Running);
        }
        let r = Run {
            plan,
            stop: Arc::new(AtomicBool::new(false)),
            preparing: Arc::new(AtomicBool::new(true)),
            counts: Arc::new(Counts::default()),
            started: Instant::now(),
        };
        let me = self.clone();
        let (stop, preparing, counts) = (r.stop.clone(), r.preparing.clone(), r.counts.clone());
        tokio::spawn(async move {
            me.prepare(&mix, &counts).await;
            preparing.store(false, Ordering::Relaxed);
            me.drive(mix, shape, stop, counts).await;
        });
        *run = Some(r);
        Ok(())
    }

    /// Stops the run (its requests in flight still finish); whether one ran.
    pub(crate) fn stop(&self) -> bool {
        match self.lock_run().take() {
            Some(r) => {
                r.stop.store(true, Ordering::Relaxed);
                true
            }
            None => false,
        }
    }

    async fn prepare(&self, mix: &LoadMix, counts: &Counts) {
        let first = {
            let mut done = self
                .prepared
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let first = !done.contains(&mix.name);
            done.push(mix.name);
            first
        };
        if !first {
            return;
        }
        let requests = (mix.setup)();
        let mut all_ok = true;
        for chunk in requests.chunks(256) {
            let calls = chunk.iter().map(|r| self.send(r, counts));
            all_ok &= futures_util::future::join_all(calls)
                .await
                .into_iter()
                .all(|ok| ok);
        }
        if !all_ok {
            // Not prepared: the next run of the mix tries again.
            let mut done = self
                .prepared
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            done.retain(|n| *n != mix.name);
        }
    }

    async fn drive(
        self: Arc<Self>,
        mix: LoadMix,
        shape: Shape,
        stop: Arc<AtomicBool>,
        counts: Arc<Counts>,
    ) {
        match shape {
            Shape::Closed(n) => {
                // One base for all connections, then one seed each: distinct streams (seeds
                // read from the clock per connection collided, and sessions repeated).
                let base = crate::storage::unix_ms() ^ 0x5eed;
                let tasks = (0..n).map(|i| {
                    let (me, mix, stop, counts) =
                        (self.clone(), mix.clone(), stop.clone(), counts.clone());
                    tokio::spawn(async move {
                        let mut rng = SplitMix::new(base.wrapping_add(u64::from(i)));
                        while !stop.load(Ordering::Relaxed) {
                            me.session(&mix, &mut rng, &counts).await;
                        }
                    })
                });
                futures_util::future::join_all(tasks).await;
            }
            Shape::Open(rate) => {
                let mut tick = tokio::time::interval(Duration::from_secs(1) / rate);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                let mut rng = SplitMix::new(0x0be11 ^ crate::storage::unix_ms());
                let in_flight = Arc::new(AtomicU64::new(0));
                while !stop.load(Ordering::Relaxed) {
                    tick.tick().await;
                    if in_flight.load(Ordering::Relaxed) >= u64::from(MAX_LOAD) {
                        continue;
                    }
                    let seed = rng.next_u64();
                    let (me, mix, counts, in_flight) =
                        (self.clone(), mix.clone(), counts.clone(), in_flight.clone());
                    in_flight.fetch_add(1, Ordering::Relaxed);
                    tokio::spawn(async move {
                        me.session(&mix, &mut SplitMix::new(seed), &counts).await;
                        in_flight.fetch_sub(1, Ordering::Relaxed);
                    });
                }
            }
        }
    }

    async fn session(&self, mix: &LoadMix, rng: &mut SplitMix, counts: &Counts) {
        for r in (mix.session)(rng) {
            if !self.send(&r, counts).await {
                break;
            }
        }
    }

    /// Sends one request and counts its answer; whether it succeeded.
    async fn send(&self, r: &LoadRequest, counts: &Counts) -> bool {
        let t0 = Instant::now();
        // Held until answered: a rescale waits for this request, and the next waits for it.
        let json = self.engine.read().await;
        let answer = match json.as_ref() {
            Some(j) => {
                j.invoke(r.lambda, &r.key, r.handler, r.args.clone(), None)
                    .await
            }
            None => Err(crate::engine::InvokeError::ShuttingDown),
        };
        drop(json);
        // Classed as the gateway would answer it.
        let (status, error) = match answer {
            Ok(JsonResponse::Ok(_)) => (StatusCode::OK, None),
            Ok(a) => {
                let text = format!("{a:?}");
                (crate::service::http::status_of_answer(a), Some(text))
            }
            Err(e) => {
                let text = e.to_string();
                (crate::service::http::status_of_refusal(e), Some(text))
            }
        };
        if let Some(e) = error {
            let mut last = counts
                .last_error
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            *last = Some(format!("{}[{}].{}: {e}", r.lambda, r.key, r.handler));
        }
        let counter = match status.as_u16() {
            200..=299 => &counts.ok,
            400 => &counts.rejected,
            _ => &counts.failed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.http.observe(status, t0.elapsed());
        status == StatusCode::OK
    }
}

#[derive(Clone, Copy)]
enum Shape {
    Closed(u32),
    Open(u32),
}
