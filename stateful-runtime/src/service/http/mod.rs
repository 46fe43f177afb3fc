//! The HTTP gateway (axum on tokio) in front of a running engine.
//!
//! ```text
//! POST /invoke/{lambda}/{key}/{handler}  JSON body = arguments   ─┐
//! app routes from #[route(method, "/path/{key}/{arg}")]           ─┼─▶ Handle::submit ─▶ durable answer
//! GET /healthz  /metrics  /graph[?format=svg]  /state/{lambda}/{key}[?at=]
//! GET /debug/history/{lambda}/{key}  /debug/trace/{seq}  /debug/log[?after=&limit=]
//! ```
//!
//! Status codes ([`status`]): 200 success; 400 with `{"error": ..}` for a business rejection
//! (the handler's `Err`) or an argument that does not parse; 404 for an unknown lambda,
//! handler or route; 422 a body that is not JSON; 503 with `Retry-After` when overloaded or
//! stopping; 500 only for bugs (a handler panicked, a codec failure).

mod admin;
mod bind;
mod debug;
mod forward;
mod invoke;
mod metrics;
pub(crate) mod status;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{MethodFilter, get, on, post};

use super::app::{App, JsonClient};
use crate::engine::Handle;
pub use admin::AdminAccess;
pub(crate) use admin::unauthorized;
pub(crate) use bind::bind;
pub use metrics::HttpMetrics;

/// An error answer `{"error": msg}` with `status` (for the other gateway parts).
pub(crate) fn json_error(
    status: StatusCode,
    msg: impl std::fmt::Display,
) -> axum::response::Response {
    status::error(status, msg)
}
pub(crate) use metrics::{HttpCounts, LATENCY_BOUNDS_MS};

/// The status the gateway answers a handler's answer with.
pub(crate) fn status_of_answer(a: crate::service::json::JsonResponse) -> StatusCode {
    status::answer(a).status()
}

/// The status the gateway answers a refused request with.
pub(crate) fn status_of_refusal(e: crate::engine::InvokeError) -> StatusCode {
    status::invoke_error(e).status()
}

/// What every HTTP handler of the gateway shares.
#[derive(Clone)]
pub(crate) struct Gw {
    handle: Handle,
    app: App,
    json: JsonClient,
    http: Arc<HttpMetrics>,
    /// Fresh ids for routes without a `{key}`: a time-based prefix, then a counter.
    ids: Arc<AtomicU64>,
    /// This process's index in a cluster (`None`: alone).
    process: Option<usize>,
    /// Who may use the console, `/debug` and `/state`.
    admin: AdminAccess,
    /// Requests with an idempotency key go to the key's owner process (see `forward`).
    forwards: bool,
}

/// What a gateway is built with besides the engine.
#[derive(Default)]
pub(crate) struct GatewayOptions {
    /// Who may use the console, `/debug/*`, `/state/*` and the load generator.
    pub admin: AdminAccess,
    /// The console's load mixes (for a console of its own).
    pub mixes: Vec<crate::service::console::LoadMix>,
    /// The gateway's counters, if they outlive it (a rescaled service keeps them).
    pub http: Option<Arc<HttpMetrics>>,
    /// The console, if it outlives the gateway.
    pub console: Option<Arc<crate::service::console::Console>>,
}

fn method_filter(m: &str) -> Option<MethodFilter> {
    match m.to_ascii_uppercase().as_str() {
        "GET" => Some(MethodFilter::GET),
        "POST" => Some(MethodFilter::POST),
        "PUT" => Some(MethodFilter::PUT),
        "DELETE" => Some(MethodFilter::DELETE),
        "PATCH" => Some(MethodFilter::PATCH),
        _ => None,
    }
}

/// Adds the routes the app declares with `#[route]`.
fn app_routes(mut r: Router<Gw>, app: &App) -> Router<Gw> {
    let mut seen: HashSet<(String, String)> = HashSet::new();
    for def in app.lambdas() {
        for (i, h) in def.handlers.iter().enumerate() {
            let Some((method, path)) = h.route else {
                continue;
            };
            let Some(filter) = method_filter(method) else {
                tracing::error!(
                    method,
                    path,
                    "unsupported HTTP method in #[route]; route skipped"
                );
                continue;
            };
            if !path.starts_with('/')
                || !seen.insert((method.to_ascii_uppercase(), path.to_owned()))
            {
                tracing::error!(method, path, "invalid or duplicate route; skipped");
                continue;
            }
            let target = invoke::RouteTarget {
                lambda: def.id,
                handler: i as u16,
            };
            r = r.route(
                path,
                on(
                    filter,
                    move |State(gw): State<Gw>,
                          Path(params): Path<HashMap<String, String>>,
                          headers: HeaderMap,
                          body: Bytes| async move {
                        invoke::route(gw, target, params, headers, body).await
                    },
                ),
            );
        }
    }
    r
}

/// Whether the cluster of `handle` knows its gateways (and forwards by idempotency key).
fn handle_forwards(handle: &Handle) -> bool {
    handle
        .cluster()
        .is_some_and(|c| c.http.iter().any(Option::is_some))
}

/// Builds the gateway's router for a running engine, with `extra` routes of the app merged in
/// (open to all; the admin routes follow `options.admin`).
pub(crate) fn router(
    app: App,
    handle: Handle,
    extra: Option<Router>,
    options: GatewayOptions,
) -> Router {
    let forwards = handle_forwards(&handle);
    let gw = Gw {
        json: app.json(handle.clone()),
        process: handle.cluster().map(|c| c.process),
        handle,
        app: app.clone(),
        http: options.http.unwrap_or_default(),
        ids: Arc::new(AtomicU64::new(crate::storage::unix_ms() << 16)),
        admin: options.admin,
        forwards,
    };
    let console = options.console.unwrap_or_else(|| {
        let engine = Arc::new(tokio::sync::RwLock::new(Some(gw.json.clone())));
        crate::service::console::Console::start(&app, engine, gw.http.clone(), options.mixes)
    });
    let guard = axum::middleware::from_fn_with_state(gw.clone(), admin::guard);
    let admin: Router<Gw> = Router::new()
        .route("/state/{lambda}/{key}", get(debug::state))
        .route("/debug/history/{lambda}/{key}", get(debug::history))
        .route("/debug/trace/{seq}", get(debug::trace))
        .route("/debug/log", get(debug::log))
        .merge(crate::service::console::routes(console))
        .route_layer(guard);
    let r: Router<Gw> = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/metrics",
            get(|State(gw): State<Gw>| async move { metrics::render(&gw.handle, &gw.http) }),
        )
        .route("/graph", get(debug::graph))
        .route("/invoke/{lambda}/{key}/{handler}", post(invoke::generic))
        .merge(admin);
    // Only a cluster that knows its gateways forwards (nothing more on any other request path).
    let forwards = gw.forwards;
    let forward = axum::middleware::from_fn_with_state(gw.clone(), forward::by_idempotency_key);
    let mut router = app_routes(r, &app)
        .fallback(|State(gw): State<Gw>| async move {
            let resp = status::error(StatusCode::NOT_FOUND, "no such route");
            gw.http.observe(resp.status(), std::time::Duration::ZERO);
            resp
        })
        .with_state(gw);
    if let Some(extra) = extra {
        router = router.merge(extra);
    }
    if forwards {
        router = router.layer(forward);
    }
    router.layer(axum::middleware::map_response(status::json_errors))
}
