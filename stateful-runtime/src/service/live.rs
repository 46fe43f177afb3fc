//! A running service whose engine can be replaced while it serves: rescaling one process to
//! another number of workers (`POST /admin/workers {"workers": N}`). Part of the service
//! layer: it owns the engine and the gateway's current router.
//!
//! ```text
//! request ─▶ front router ─ read lock, held for the request ─▶ current gateway router ─▶ engine
//! rescale: write lock (new requests wait; the ones inside finish and are answered)
//!          ─▶ old engine shut down (commits, checkpoints) ─▶ new engine on the same data dir
//!             with N workers (key groups reassigned) ─▶ new router ─▶ unlock
//! ```
//!
//! Clients see added latency during the switch, not errors. The console and its load
//! generator follow the new engine; a single process's data dir does not depend on its worker
//! count, so nothing is copied. In memory (nothing on disk to restart from) and in a cluster
//! (its shape is in every process's data dir) a rescale is refused.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tokio::sync::RwLock;
use tower::ServiceExt;

use crate::engine::{Config, Handle, Runtime};
use crate::service::App;
use crate::service::console::{Console, EngineSlot, LoadMix};
use crate::service::http::{AdminAccess, GatewayOptions, HttpMetrics};

/// The app's extra routes, built again for each engine.
pub(crate) type Routes = Arc<dyn Fn(Handle) -> Router + Send + Sync>;

/// Most workers a rescale may ask for.
pub const MAX_WORKERS: usize = 256;

/// How long a rescale waits for the requests being served to finish.
const DRAIN: Duration = Duration::from_secs(60);

/// How often a new engine is tried while the old one's store is still held (×250 ms).
const START_TRIES: u32 = 40;

/// The largest request body the gateway buffers, and how long it waits for one.
const BODY_LIMIT: usize = 2 << 20;
/// See [`BODY_LIMIT`].
const BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a rescale was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum RescaleError {
    /// Not between 1 and [`MAX_WORKERS`].
    #[error("workers must be between 1 and {MAX_WORKERS}, not {0}")]
    Workers(usize),
    /// State only in memory: a new engine would start empty.
    #[error(
        "an in-memory service cannot rescale: its state would not survive the switch (serve with a data dir)"
    )]
    InMemory,
    /// A cluster's shape is in each process's data dir.
    #[error("a cluster rescales offline: stop it and use `rescale --from .. --into ..`")]
    Cluster,
    /// The new engine did not start; the old shape serves again.
    #[error(
        "the engine with {workers} workers did not start ({error}); serving with {kept} workers again"
    )]
    Start {
        /// Asked for.
        workers: usize,
        /// Serving again.
        kept: usize,
        /// What went wrong.
        error: String,
    },
    /// Requests inside did not finish within the drain bound; nothing changed.
    #[error("the requests being served did not finish within {} s; nothing changed", DRAIN.as_secs())]
    Busy,
    /// The service is stopping.
    #[error("the service is stopping")]
    Stopping,
    /// The autoscaler keeps the workers within a range this is outside of.
    #[error("the autoscaler keeps {min}..{max} workers (--autoscale): {workers} is outside it")]
    OutsideAutoscale {
        /// Asked for.
        workers: usize,
        /// The autoscaler's fewest.
        min: usize,
        /// Its most.
        max: usize,
    },
    /// Neither the new nor the old shape started: the service is down.
    #[error("the engine did not start again: {0}")]
    Down(String),
}

/// What a rescale did (`POST /admin/workers`'s answer).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Rescaled {
    /// Workers before.
    pub from: usize,
    /// Workers now.
    pub workers: usize,
    /// How long requests were held (ms).
    pub paused_ms: f64,
    /// Of which: stopping the old engine (ms).
    pub stop_ms: f64,
    /// Of which: starting the new one (recovery included; ms).
    pub start_ms: f64,
    /// When (unix ms).
    pub at_ms: u64,
    /// Who asked, and why (`None`: `POST /admin/workers`).
    pub reason: Option<String>,
    /// Whether anything changed: asked for the workers it already has, the service does not
    /// restart its engine (and nothing is held).
    pub changed: bool,
}

/// The service while it runs.
pub(crate) struct Live {
    app: App,
    config: Mutex<Config>,
    routes: Option<Routes>,
    admin: AdminAccess,
    http: Arc<HttpMetrics>,
    engine: EngineSlot,
    console: Arc<Console>,
    current: RwLock<Router>,
    /// The engine (timely's workers are not `Sync`: behind a mutex of its own).
    runtime: Mutex<Option<Runtime>>,
    /// One rescale at a time.
    switching: tokio::sync::Mutex<()>,
    history: Mutex<Vec<Rescaled>>,
    /// Set by shutdown: no more rescales.
    stopping: std::sync::atomic::AtomicBool,
    /// The autoscaler's range, when one runs: a manual rescale must stay within it.
    autoscale: std::sync::OnceLock<crate::service::autoscale::Range>,
}

impl Live {
    /// Starts the engine of `config` and its gateway.
    pub(crate) fn start(
        app: App,
        config: Config,
        routes: Option<Routes>,
        (admin, mixes): (AdminAccess, Vec<LoadMix>),
    ) -> Result<Arc<Live>, String> {
        let runtime = app.start(config.clone()).map_err(|e| e.to_string())?;
        let http = Arc::new(HttpMetrics::default());
        let engine: EngineSlot = Arc::new(RwLock::new(Some(app.json(runtime.handle()))));
        let console = Console::start(&app, engine.clone(), http.clone(), mixes);
        let router = gateway(&app, &runtime, routes.as_ref(), (&admin, &http, &console));
        Ok(Arc::new(Live {
            current: RwLock::new(router),
            runtime: Mutex::new(Some(runtime)),
            app,
            config: Mutex::new(config),
            routes,
            admin,
            http,
            engine,
            console,
            switching: tokio::sync::Mutex::new(()),
            history: Mutex::new(Vec::new()),
            stopping: std::sync::atomic::AtomicBool::new(false),
            autoscale: std::sync::OnceLock::new(),
        }))
    }

    /// The engine's handle now.
    pub(crate) fn handle(&self) -> Option<Handle> {
        self.lock_runtime().as_ref().map(Runtime::handle)
    }

    fn lock_runtime(&self) -> std::sync::MutexGuard<'_, Option<Runtime>> {
        self.runtime
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The router to serve: `/admin/workers` here (it must not hold the gateway it replaces),
    /// every other request to the current gateway, holding it until answered.
    pub(crate) fn front(self: &Arc<Self>) -> Router {
        let me = self.clone();
        Router::new()
            .route(
                "/admin/workers",
                axum::routing::get(workers_get).post(workers_post),
            )
            // Its errors in JSON too (a 405 for another method).
            .route_layer(axum::middleware::map_response(
                crate::service::http::status::json_errors,
            ))
            .with_state(self.clone())
            .fallback(move |req: Request| {
                let me = me.clone();
                async move {
                    // The body first, outside the lock: a client that sends it slowly must
                    // not hold a rescale (and everyone queued behind it) up.
                    let req = match buffered(req).await {
                        Ok(r) => r,
                        Err(refused) => return refused,
                    };
                    let current = me.current.read().await;
                    let router = current.clone();
                    let resp = router.oneshot(req).await.into_response();
                    drop(current);
                    resp
                }
            })
    }

    /// Workers now.
    pub(crate) fn workers(&self) -> usize {
        self.lock_config().workers
    }

    fn lock_config(&self) -> std::sync::MutexGuard<'_, Config> {
        self.config
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The rescales so far, oldest first.
    pub(crate) fn history(&self) -> Vec<Rescaled> {
        self.history
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The console's newest sample.
    pub(crate) fn latest_sample(&self) -> Option<crate::service::console::Sample> {
        self.console.latest()
    }

    /// Replaces the engine by one with `workers` workers, holding requests meanwhile.
    pub(crate) async fn rescale(&self, workers: usize) -> Result<Rescaled, RescaleError> {
        self.rescale_because(workers, None).await
    }

    /// Records that an autoscaler keeps the workers within `range` (manual rescales outside it
    /// are refused).
    pub(crate) fn set_autoscale(&self, range: crate::service::autoscale::Range) {
        let _ = self.autoscale.set(range);
    }

    /// Rescales done so far (by anyone).
    pub(crate) fn rescales(&self) -> usize {
        self.history
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }

    /// [`Live::rescale`], recording `reason` with it.
    pub(crate) async fn rescale_because(
        &self,
        workers: usize,
        reason: Option<String>,
    ) -> Result<Rescaled, RescaleError> {
        if !(1..=MAX_WORKERS).contains(&workers) {
            return Err(RescaleError::Workers(workers));
        }
        let _one = self.switching.lock().await;
        if self.stopping.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(RescaleError::Stopping);
        }
        let mut config = self.lock_config().clone();
        if !config.durability.on_disk() {
            return Err(RescaleError::InMemory);
        }
        if config.cluster.is_some() {
            return Err(RescaleError::Cluster);
        }
        let from = config.workers;
        if workers == from {
            return Ok(Rescaled {
                from,
                workers,
                paused_ms: 0.0,
                stop_ms: 0.0,
                start_ms: 0.0,
                at_ms: crate::storage::unix_ms(),
                reason,
                changed: false,
            });
        }
        let held = Instant::now();
        let Ok(mut current) = tokio::time::timeout(DRAIN, self.current.write()).await else {
            return Err(RescaleError::Busy);
        };
        let mut engine = self.engine.write().await;
        // Nothing may hold the old engine (its store stays locked while anything does).
        *engine = None;
        *current = switching_router();
        let old = self.lock_runtime().take();
        let stop = Instant::now();
        run_blocking(move || {
            if let Some(rt) = old {
                rt.shutdown();
            }
        })
        .await;
        let stop_ms = ms(stop);
        let start = Instant::now();
        config.workers = workers;
        let (runtime, outcome) = match self.start_engine(config.clone()).await {
            Ok(rt) => (rt, Ok(())),
            Err(error) => {
                config.workers = from;
                match self.start_engine(config.clone()).await {
                    Ok(rt) => (
                        rt,
                        Err(RescaleError::Start {
                            workers,
                            kept: from,
                            error,
                        }),
                    ),
                    Err(e) => return Err(RescaleError::Down(e)),
                }
            }
        };
        let start_ms = ms(start);
        *engine = Some(self.app.json(runtime.handle()));
        *current = gateway(
            &self.app,
            &runtime,
            self.routes.as_ref(),
            (&self.admin, &self.http, &self.console),
        );
        *self.lock_runtime() = Some(runtime);
        *self.lock_config() = config;
        drop((engine, current));
        outcome?;
        let done = Rescaled {
            from,
            workers,
            paused_ms: ms(held),
            stop_ms,
            start_ms,
            at_ms: crate::storage::unix_ms(),
            reason,
            changed: true,
        };
        tracing::info!(from, workers, paused_ms = done.paused_ms, "rescaled");
        self.history
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(done.clone());
        Ok(done)
    }

    /// Starts an engine; tries again for a while, as the old engine's store stays locked
    /// until the last view still reading it (a `/debug` scan off the async threads) ends.
    async fn start_engine(&self, config: Config) -> Result<Runtime, String> {
        let mut tries = 0;
        loop {
            let (app, config) = (self.app.clone(), config.clone());
            match run_blocking(move || app.start(config).map_err(|e| e.to_string())).await {
                Ok(rt) => return Ok(rt),
                Err(e) if tries < START_TRIES => {
                    tracing::debug!(error = %e, "the new engine did not start yet");
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Stops the console's load generator and the engine: in-flight work finishes and
    /// commits.
    pub(crate) fn shutdown(&self) {
        self.console.stop_load();
        // After a rescale under way (the autoscaler's), and none after it.
        let _one = self.switching.blocking_lock();
        self.stopping
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let rt = self.lock_runtime().take();
        if let Some(rt) = rt {
            rt.shutdown();
        }
    }
}

/// `req` with its body read (at most [`BODY_LIMIT`], within [`BODY_TIMEOUT`]).
async fn buffered(req: Request) -> Result<Request, Response> {
    use axum::http::StatusCode;
    let (parts, body) = req.into_parts();
    match tokio::time::timeout(BODY_TIMEOUT, axum::body::to_bytes(body, BODY_LIMIT)).await {
        Ok(Ok(bytes)) => Ok(Request::from_parts(parts, axum::body::Body::from(bytes))),
        Ok(Err(e)) => Err(crate::service::http::json_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body could not be read (at most {BODY_LIMIT} bytes): {e}"),
        )),
        Err(_) => Err(crate::service::http::json_error(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "the body did not arrive within {} s",
                BODY_TIMEOUT.as_secs()
            ),
        )),
    }
}

/// What answers while no engine serves (only after a switch that could not start one).
fn switching_router() -> Router {
    Router::new().fallback(|| async {
        let mut r = crate::service::http::json_error(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "the engine is being replaced; retry",
        );
        r.headers_mut().insert(
            axum::http::header::RETRY_AFTER,
            axum::http::HeaderValue::from_static("1"),
        );
        r
    })
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

/// Runs `f` off the async threads (it blocks: an engine stopping or starting).
async fn run_blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(f).await {
        Ok(v) => v,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// The gateway of one engine.
fn gateway(
    app: &App,
    runtime: &Runtime,
    routes: Option<&Routes>,
    (admin, http, console): (&AdminAccess, &Arc<HttpMetrics>, &Arc<Console>),
) -> Router {
    let handle = runtime.handle();
    let extra = routes.map(|f| f(handle.clone()));
    crate::service::http::router(
        app.clone(),
        handle,
        extra,
        GatewayOptions {
            admin: admin.clone(),
            http: Some(http.clone()),
            console: Some(console.clone()),
            ..GatewayOptions::default()
        },
    )
}

#[derive(Serialize)]
struct Shape {
    workers: usize,
    /// `--autoscale MIN..MAX`, when the autoscaler runs.
    autoscale: Option<AutoscaleShape>,
    rescales: Vec<Rescaled>,
}

#[derive(Serialize)]
struct AutoscaleShape {
    min: usize,
    max: usize,
}

/// `GET /admin/workers`: the number of workers and the rescales so far.
async fn workers_get(
    axum::extract::State(live): axum::extract::State<Arc<Live>>,
    req: Request,
) -> Response {
    if let Some(refused) = live.refuse(&req) {
        return refused;
    }
    axum::Json(Shape {
        workers: live.workers(),
        autoscale: live.autoscale.get().map(|r| AutoscaleShape {
            min: r.min,
            max: r.max,
        }),
        rescales: live.history(),
    })
    .into_response()
}

#[derive(serde::Deserialize)]
struct WorkersBody {
    workers: usize,
}

/// `POST /admin/workers {"workers": N}`: answers once the new shape serves.
async fn workers_post(
    axum::extract::State(live): axum::extract::State<Arc<Live>>,
    req: Request,
) -> Response {
    use axum::http::StatusCode;
    if let Some(refused) = live.refuse(&req) {
        return refused;
    }
    let body = match axum::body::to_bytes(req.into_body(), 4096).await {
        Ok(b) => b,
        Err(e) => return crate::service::http::json_error(StatusCode::BAD_REQUEST, e),
    };
    let want: WorkersBody = match serde_json::from_slice(&body) {
        Ok(w) => w,
        Err(e) => {
            return crate::service::http::json_error(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("the body is not {{\"workers\": N}}: {e}"),
            );
        }
    };
    if let Some(r) = live.autoscale.get()
        && !(r.min..=r.max).contains(&want.workers)
    {
        let e = RescaleError::OutsideAutoscale {
            workers: want.workers,
            min: r.min,
            max: r.max,
        };
        return crate::service::http::json_error(StatusCode::CONFLICT, e);
    }
    // In a task of its own: a client that goes away must not stop a switch half-way.
    let switch = {
        let live = live.clone();
        tokio::spawn(async move { live.rescale(want.workers).await })
    };
    let outcome = match switch.await {
        Ok(o) => o,
        Err(e) => Err(RescaleError::Down(format!("the rescale failed: {e}"))),
    };
    match outcome {
        Ok(done) => axum::Json(done).into_response(),
        Err(e @ RescaleError::Workers(_)) => {
            crate::service::http::json_error(StatusCode::BAD_REQUEST, e)
        }
        Err(e @ (RescaleError::InMemory | RescaleError::Cluster | RescaleError::Stopping)) => {
            crate::service::http::json_error(StatusCode::CONFLICT, e)
        }
        Err(e @ RescaleError::Busy) => {
            crate::service::http::json_error(StatusCode::SERVICE_UNAVAILABLE, e)
        }
        Err(e) => crate::service::http::json_error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

impl Live {
    /// The 401 for a request without the admin token (`None`: admitted).
    fn refuse(&self, req: &Request) -> Option<Response> {
        if self.admin.admits_request(req) {
            return None;
        }
        self.http.refused();
        Some(crate::service::http::unauthorized())
    }
}
