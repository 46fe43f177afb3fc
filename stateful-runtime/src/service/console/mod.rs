//! The console: the paper's demonstration in a browser, served by the binary itself at `/`.
//! Part of the service layer, beside the HTTP gateway that mounts it.
//!
//! ```text
//! GET  /                      the page (HTML, CSS and JS embedded at build time; no CDN)
//! GET  /console/stats?since=  one sample a second of the last 10 minutes (rates, percentiles,
//!                             per lambda, edge and worker, the bottleneck), taken by a thread
//! GET  /console/load          the generator's mixes and what it does
//! POST /console/load          {"mix": .., "connections": n | "rate": r}: starts it
//! DELETE /console/load        stops it
//! ```
//!
//! The page draws the graph (`/graph?format=svg&layout=builtin`) with the live numbers on
//! it, charts the samples, and reads the request log, traces and histories from `/debug`.

mod bottleneck;
mod load;
mod sample;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;

#[cfg(test)]
pub(crate) use bottleneck::Bottleneck;
pub use load::{LoadMix, LoadRequest};
use load::{LoadPlan, PlanError};
pub(crate) use sample::Sample;
#[cfg(test)]
pub(crate) use sample::WorkerSample;

use crate::service::app::{App, JsonClient};
use crate::service::http::HttpMetrics;

/// Samples kept: ten minutes.
const KEPT: usize = 600;

const PAGE: &str = include_str!("assets/index.html");
const SCRIPT: &str = include_str!("assets/console.js");
const STYLE: &str = include_str!("assets/console.css");

/// The engine the console watches and loads, replaced when the service rescales (its users
/// hold the read lock while they use it; a rescale takes the write lock).
pub(crate) type EngineSlot = Arc<tokio::sync::RwLock<Option<JsonClient>>>;
// (`None` only inside a switch, behind its write lock, or after a failed one.)

/// The console of one service.
pub(crate) struct Console {
    app: &'static str,
    names: Vec<&'static str>,
    engine: EngineSlot,
    samples: Mutex<VecDeque<Sample>>,
    load: Arc<load::Generator>,
}

impl Console {
    /// The console of the engine in `engine`, sampling every second while it lives.
    pub(crate) fn start(
        app: &App,
        engine: EngineSlot,
        http: Arc<HttpMetrics>,
        mixes: Vec<LoadMix>,
    ) -> Arc<Self> {
        let console = Arc::new(Console {
            app: app.name(),
            names: app.program().lambdas().iter().map(|l| l.name).collect(),
            engine: engine.clone(),
            samples: Mutex::new(VecDeque::with_capacity(KEPT)),
            load: Arc::new(load::Generator::new(mixes, engine.clone(), http.clone())),
        });
        let weak = Arc::downgrade(&console);
        let spawned = std::thread::Builder::new()
            .name("console-sampler".into())
            .spawn(move || sample_every_second(&weak, &engine, &http));
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "the console cannot sample: no charts");
        }
        console
    }

    /// Stops the load generator, if it runs (before the engine stops: it would keep the
    /// engine busy).
    pub(crate) fn stop_load(&self) {
        self.load.stop();
    }

    fn push(&self, s: Sample) {
        let mut q = self
            .samples
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if q.len() == KEPT {
            q.pop_front();
        }
        q.push_back(s);
    }

    /// The newest sample.
    pub(crate) fn latest(&self) -> Option<Sample> {
        let q = self
            .samples
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        q.back().cloned()
    }

    fn since(&self, t_ms: u64) -> Vec<Sample> {
        let q = self
            .samples
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        q.iter().filter(|s| s.t_ms > t_ms).cloned().collect()
    }
}

fn read_counters(engine: &EngineSlot, http: &HttpMetrics) -> Option<sample::Counters> {
    let json = engine.blocking_read();
    json.as_ref()
        .map(|j| sample::Counters::read(j.handle(), http))
}

fn sample_every_second(console: &Weak<Console>, engine: &EngineSlot, http: &HttpMetrics) {
    let mut last = read_counters(engine, http).unwrap_or_default();
    loop {
        std::thread::sleep(Duration::from_secs(1));
        let Some(c) = console.upgrade() else { return };
        let Some(now) = read_counters(engine, http) else {
            continue;
        };
        // A new engine (a rescale) counts from zero: the interval counts from there.
        if now.requests < last.requests || now.operators.len() != last.operators.len() {
            last = sample::Counters {
                at_us: last.at_us,
                http: last.http,
                ..sample::Counters::default()
            };
        }
        c.push(sample::sample(&last, &now, &c.names));
        last = now;
    }
}

/// The page, with its script and style inlined (one request, and a token in the page's URL
/// covers all of it).
fn page(app: &str) -> String {
    PAGE.replace("/*STYLE*/", STYLE)
        .replace("/*SCRIPT*/", SCRIPT)
        .replace("{{APP}}", &html_escape(app))
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[derive(serde::Deserialize)]
struct SinceQuery {
    since: Option<u64>,
}

#[derive(Serialize)]
struct Stats {
    app: &'static str,
    lambdas: Vec<&'static str>,
    workers: usize,
    samples: Vec<Sample>,
}

async fn stats(State(c): State<Arc<Console>>, Query(q): Query<SinceQuery>) -> Response {
    let workers = {
        let json = c.engine.read().await;
        json.as_ref().map_or(0, |j| {
            j.handle().metrics().operators.len() / c.names.len().max(1)
        })
    };
    axum::Json(Stats {
        app: c.app,
        lambdas: c.names.clone(),
        workers,
        samples: c.since(q.since.unwrap_or(0)),
    })
    .into_response()
}

async fn load_status(State(c): State<Arc<Console>>) -> Response {
    axum::Json(c.load.status()).into_response()
}

async fn load_start(
    State(c): State<Arc<Console>>,
    plan: Result<axum::Json<LoadPlan>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let plan = match plan {
        Ok(axum::Json(p)) => p,
        Err(e) => return crate::service::http::json_error(StatusCode::UNPROCESSABLE_ENTITY, e),
    };
    match c.load.start(plan) {
        Ok(()) => axum::Json(c.load.status()).into_response(),
        Err(e @ PlanError::UnknownMix(..)) => {
            crate::service::http::json_error(StatusCode::NOT_FOUND, e)
        }
        Err(e @ PlanError::Shape) => crate::service::http::json_error(StatusCode::BAD_REQUEST, e),
        Err(e @ PlanError::Running) => crate::service::http::json_error(StatusCode::CONFLICT, e),
    }
}

async fn load_stop(State(c): State<Arc<Console>>) -> Response {
    axum::Json(serde_json::json!({ "stopped": c.load.stop() })).into_response()
}

/// The console's routes (the gateway puts them behind its admin rule).
pub(crate) fn routes<S: Clone + Send + Sync + 'static>(console: Arc<Console>) -> Router<S> {
    let app = console.app;
    Router::new()
        .route(
            "/",
            get(move || async move { ([(header::CACHE_CONTROL, "no-store")], Html(page(app))) }),
        )
        .route("/console/stats", get(stats))
        .route(
            "/console/load",
            get(load_status).post(load_start).delete(load_stop),
        )
        .with_state(console)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_page_inlines_its_script_and_style() {
        let p = super::page("shop<1>");
        assert!(p.contains("shop&lt;1&gt;"));
        assert!(!p.contains("/*SCRIPT*/") && !p.contains("/*STYLE*/"));
        assert!(p.contains(super::SCRIPT.lines().next().unwrap_or("")));
    }
}
