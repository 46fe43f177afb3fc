//! The HTTP gateway (axum on tokio) in front of a running engine.
//!
//! ```text
//! POST /invoke/{lambda}/{key}/{handler}  JSON body = arguments   ─┐
//! app routes from #[route(method, "/path/{key}/{arg}")]           ─┼─▶ Handle::submit ─▶ durable response
//! GET /healthz  /metrics  /graph[?format=svg]  /state/{lambda}/{key}
//! ```
//!
//! Status codes: 200 success; 400 with `{"error": ..}` for a business rejection (the handler's
//! `Err`) or an argument that does not parse; 404 for an unknown lambda, handler or route;
//! 503 with `Retry-After` when overloaded; 500 only for bugs (a handler panicked, a codec
//! failure).

// Handlers build responses early; a `Response` as the error type is the natural shape here.
#![allow(clippy::result_large_err)]

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, get, on, post};
use serde_json::{Value, json};

use crate::engine::{Handle, InvokeError, JsonResponse};
use crate::lambda::CallError;

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
}

const LATENCY_BOUNDS_MS: [f64; 10] = [0.5, 1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 1000.0];

impl HttpMetrics {
    fn observe(&self, status: StatusCode, took: std::time::Duration) {
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
}

#[derive(Clone)]
struct Gw {
    handle: Handle,
    http: Arc<HttpMetrics>,
    ids: Arc<AtomicU64>,
    /// This process's index in a cluster (`None`: alone).
    process: Option<usize>,
}

/// Builds the gateway's router for a running engine, with `extra` routes of the app merged in.
pub fn router(handle: Handle, extra: Option<Router>) -> Router {
    let gw = Gw {
        handle: handle.clone(),
        http: Arc::new(HttpMetrics::default()),
        // Fresh ids for routes without a {key}: time-based prefix, then a counter.
        ids: Arc::new(AtomicU64::new(crate::engine::runtime::unix_ms() << 16)),
        process: handle.cluster().map(|c| c.process),
    };
    let mut r: Router<Gw> = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics))
        .route("/graph", get(graph))
        .route("/state/{lambda}/{key}", get(state))
        .route("/debug/history/{lambda}/{key}", get(history))
        .route("/debug/trace/{seq}", get(trace))
        .route("/debug/log", get(request_log))
        .route("/invoke/{lambda}/{key}/{handler}", post(invoke_generic));
    let mut seen: HashSet<(String, String)> = HashSet::new();
    for entry in &handle.app().lambdas {
        for (i, h) in entry.handlers.iter().enumerate() {
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
            let target = RouteTarget {
                lambda: entry.id,
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
                        invoke_route(gw, target, params, headers, body).await
                    },
                ),
            );
        }
    }
    let mut app = r
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such route") })
        .with_state(gw);
    if let Some(extra) = extra {
        app = app.merge(extra);
    }
    app
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

#[derive(Clone, Copy)]
struct RouteTarget {
    lambda: u16,
    handler: u16,
}

fn error(status: StatusCode, msg: impl std::fmt::Display) -> Response {
    (status, axum::Json(json!({ "error": msg.to_string() }))).into_response()
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, Response> {
    match headers.get("idempotency-key") {
        None => Ok(None),
        Some(v) => match v.to_str() {
            Ok(s) if !s.is_empty() && s.len() <= 256 => Ok(Some(s.to_owned())),
            _ => Err(error(
                StatusCode::BAD_REQUEST,
                "Idempotency-Key must be 1..=256 visible ASCII characters",
            )),
        },
    }
}

fn parse_body(body: &Bytes) -> Result<Value, Response> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    serde_json::from_slice(body).map_err(|e| {
        error(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("the body is not valid JSON: {e}"),
        )
    })
}

/// Maps an engine error to a response.
fn invoke_error(e: InvokeError) -> Response {
    match e {
        InvokeError::UnknownLambda(_) | InvokeError::UnknownHandler { .. } => {
            error(StatusCode::NOT_FOUND, e)
        }
        InvokeError::BadRequest(_) => error(StatusCode::BAD_REQUEST, e),
        InvokeError::Overloaded(_) => {
            let mut r = error(StatusCode::SERVICE_UNAVAILABLE, e);
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            r
        }
        InvokeError::ShuttingDown => {
            let mut r = error(StatusCode::SERVICE_UNAVAILABLE, e);
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            r
        }
        InvokeError::ClusterFailed => {
            let mut r = error(StatusCode::SERVICE_UNAVAILABLE, e);
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            r
        }
        InvokeError::Log(_) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

/// Maps a handler's answer to a response.
fn answer(r: JsonResponse) -> Response {
    match r {
        JsonResponse::Ok(v) => (StatusCode::OK, axum::Json(v)).into_response(),
        JsonResponse::Rejected { message, detail } => (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({ "error": message, "detail": detail })),
        )
            .into_response(),
        JsonResponse::Failed(e) => match e {
            CallError::Aborted | CallError::Deadlocked(_) => {
                let mut r = error(StatusCode::SERVICE_UNAVAILABLE, e);
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                r
            }
            CallError::NoSuchTarget(_) => error(StatusCode::NOT_FOUND, e),
            other => error(StatusCode::INTERNAL_SERVER_ERROR, other),
        },
    }
}

async fn run(
    gw: &Gw,
    lambda: u16,
    handler: u16,
    key: Vec<u8>,
    args: Vec<u8>,
    idem: Option<String>,
) -> Response {
    let t0 = std::time::Instant::now();
    let resp = match gw.handle.submit(lambda, key, handler, args, idem) {
        Err(e) => invoke_error(e),
        Ok(rx) => tokio::select! {
            r = rx => match r {
                // A worker lost with its peer drops the responders it held.
                Err(_) if gw.process.is_some() && crate::engine::cluster::has_failed() => {
                    invoke_error(InvokeError::ClusterFailed)
                }
                Err(_) => invoke_error(InvokeError::ShuttingDown),
                Ok(r) => answer(gw.handle.to_json(lambda, handler, r)),
            },
            // In a cluster that lost a process the request cannot commit: say so, not hang.
            () = crate::engine::cluster::lost(), if gw.process.is_some() => {
                invoke_error(InvokeError::ClusterFailed)
            }
        },
    };
    gw.http.observe(resp.status(), t0.elapsed());
    resp
}

async fn invoke_generic(
    State(gw): State<Gw>,
    Path((lambda, key, handler)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let idem = match idempotency_key(&headers) {
        Ok(k) => k,
        Err(r) => return r,
    };
    let args = match parse_body(&body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    match gw.handle.prepare_json(&lambda, &key, &handler, args) {
        Err(e) => invoke_error(e),
        Ok((l, h, key, args)) => run(&gw, l, h, key, args, idem).await,
    }
}

async fn invoke_route(
    gw: Gw,
    target: RouteTarget,
    params: HashMap<String, String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let idem = match idempotency_key(&headers) {
        Ok(k) => k,
        Err(r) => return r,
    };
    let Some(entry) = gw.handle.app().lambdas.get(usize::from(target.lambda)) else {
        return error(StatusCode::NOT_FOUND, "no such lambda");
    };
    let Some(meta) = entry.handlers.get(usize::from(target.handler)) else {
        return error(StatusCode::NOT_FOUND, "no such handler");
    };
    // Arguments: path parameters by name, then the JSON body's fields.
    let mut args = serde_json::Map::new();
    match parse_body(&body) {
        Err(r) => return r,
        Ok(Value::Object(m)) => args.extend(m),
        Ok(Value::Null) => {}
        Ok(other) if meta.params.len() == 1 => {
            args.insert(meta.params[0].0.to_owned(), other);
        }
        Ok(_) => {
            return error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "the body must be a JSON object of arguments",
            );
        }
    }
    for (name, ty) in meta.params {
        if let Some(raw) = params.get(*name) {
            args.insert((*name).to_owned(), path_value(raw, ty));
        }
    }
    let key_str = match params.get("key") {
        Some(k) => k.clone(),
        // Distinct across the processes of a cluster too.
        None => match gw.process {
            Some(p) => format!("{:x}p{p}", gw.ids.fetch_add(1, Ordering::Relaxed)),
            None => format!("{:x}", gw.ids.fetch_add(1, Ordering::Relaxed)),
        },
    };
    let key = match (entry.key_from_str)(&key_str) {
        Ok(k) => k,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let json_args = if meta.params.is_empty() {
        Value::Null
    } else {
        Value::Object(args)
    };
    let args = match (entry.json_args)(target.handler, json_args) {
        Ok(a) => a,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    run(&gw, target.lambda, target.handler, key, args, idem).await
}

/// A path segment as a JSON argument: strings stay strings, anything else parses as JSON.
fn path_value(raw: &str, ty: &str) -> Value {
    let t = ty.replace(' ', "");
    if t == "String" || t == "&str" || t.ends_with("::String") {
        return Value::String(raw.to_owned());
    }
    serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_owned()))
}

#[derive(serde::Deserialize)]
struct AtQuery {
    at: Option<String>,
}

async fn state(
    State(gw): State<Gw>,
    Path((lambda, key)): Path<(String, String)>,
    Query(q): Query<AtQuery>,
) -> Response {
    if let Some(at) = q.at {
        let epoch = match crate::inspect::resolve_at(gw.handle.store().as_ref(), &at) {
            Ok(e) => e,
            Err(e) => return error(StatusCode::BAD_REQUEST, e),
        };
        let r = crate::inspect::state_at(
            gw.handle.app(),
            gw.handle.store().as_ref(),
            gw.handle.key_groups(),
            &lambda,
            &key,
            epoch,
        );
        return inspected(r);
    }
    inspected(crate::inspect::committed_state(
        gw.handle.app(),
        gw.handle.store().as_ref(),
        gw.handle.key_groups(),
        &lambda,
        &key,
    ))
}

async fn history(State(gw): State<Gw>, Path((lambda, key)): Path<(String, String)>) -> Response {
    inspected(
        crate::inspect::history(
            gw.handle.app(),
            gw.handle.store().as_ref(),
            gw.handle.key_groups(),
            &lambda,
            &key,
            gw.handle.data_dir(),
        )
        .and_then(|versions| {
            let note = crate::inspect::horizon_note(gw.handle.store().as_ref())?;
            let horizon = gw.handle.store().horizon()?.epoch;
            Ok(serde_json::json!({
                "horizon": horizon,
                "horizon_note": note,
                "versions": versions,
            }))
        }),
    )
}

#[derive(serde::Deserialize)]
struct LogQuery {
    lambda: Option<String>,
    key: Option<String>,
}

async fn request_log(State(gw): State<Gw>, Query(q): Query<LogQuery>) -> Response {
    let Some(dir) = gw.handle.data_dir() else {
        return error(
            StatusCode::NOT_FOUND,
            "this service runs in memory: there is no request log",
        );
    };
    inspected(
        crate::inspect::log(
            gw.handle.app(),
            gw.handle.store().as_ref(),
            dir,
            q.lambda.as_deref(),
            q.key.as_deref(),
        )
        .and_then(|v| {
            serde_json::to_value(v).map_err(|e| crate::inspect::InspectError::Decode(e.to_string()))
        }),
    )
}

async fn trace(State(gw): State<Gw>, Path(seq): Path<String>) -> Response {
    let Ok(seq) = seq.parse::<u64>() else {
        return error(
            StatusCode::BAD_REQUEST,
            format!("`{seq}` is not a request number"),
        );
    };
    match crate::inspect::trace(
        gw.handle.app(),
        gw.handle.store().as_ref(),
        gw.handle.key_groups(),
        seq,
    ) {
        Ok(v) => (StatusCode::OK, axum::Json(v)).into_response(),
        Err(
            e @ (crate::inspect::TraceError::UnknownRequest(_)
            | crate::inspect::TraceError::NotRecorded(_)),
        ) => error(StatusCode::NOT_FOUND, e),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

fn inspected(r: Result<Value, crate::inspect::InspectError>) -> Response {
    match r {
        Ok(v) => (StatusCode::OK, axum::Json(v)).into_response(),
        Err(e @ crate::inspect::InspectError::UnknownLambda(_)) => error(StatusCode::NOT_FOUND, e),
        Err(e @ crate::inspect::InspectError::BadKey(_)) => error(StatusCode::BAD_REQUEST, e),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

#[derive(serde::Deserialize)]
struct GraphQuery {
    format: Option<String>,
}

async fn graph(State(gw): State<Gw>, Query(q): Query<GraphQuery>) -> Response {
    let dot = gw.handle.app().dot;
    match q.format.as_deref() {
        None | Some("dot") => (
            [(header::CONTENT_TYPE, "text/vnd.graphviz; charset=utf-8")],
            dot.to_owned(),
        )
            .into_response(),
        Some("svg") => match crate::inspect::render_svg(dot) {
            Ok(svg) => ([(header::CONTENT_TYPE, "image/svg+xml")], svg).into_response(),
            Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e),
        },
        Some(other) => error(
            StatusCode::BAD_REQUEST,
            format!("unknown format `{other}`: use dot or svg"),
        ),
    }
}

/// (name, kind, help, read) of one per-operator series.
type OperatorSeries = (
    &'static str,
    &'static str,
    &'static str,
    fn(&crate::engine::OperatorMetrics) -> u64,
);

async fn metrics(State(gw): State<Gw>) -> Response {
    use std::fmt::Write;
    let m = gw.handle.metrics();
    let h = &gw.http;
    let mut s = String::new();
    let _ = writeln!(s, "# TYPE stateful_http_requests_total counter");
    for (class, c) in [
        ("2xx", &h.ok),
        ("400", &h.rejected),
        ("4xx", &h.client_error),
        ("503", &h.overloaded),
        ("5xx", &h.server_error),
    ] {
        let _ = writeln!(
            s,
            "stateful_http_requests_total{{class=\"{class}\"}} {}",
            c.load(Ordering::Relaxed)
        );
    }
    let _ = writeln!(s, "# TYPE stateful_http_latency_ms histogram");
    let total: u64 = [
        &h.ok,
        &h.rejected,
        &h.client_error,
        &h.overloaded,
        &h.server_error,
    ]
    .iter()
    .map(|c| c.load(Ordering::Relaxed))
    .sum();
    for (i, b) in LATENCY_BOUNDS_MS.iter().enumerate() {
        let _ = writeln!(
            s,
            "stateful_http_latency_ms_bucket{{le=\"{b}\"}} {}",
            h.latency_buckets[i].load(Ordering::Relaxed)
        );
    }
    let _ = writeln!(s, "stateful_http_latency_ms_bucket{{le=\"+Inf\"}} {total}");
    let _ = writeln!(
        s,
        "stateful_http_latency_ms_sum {}",
        h.latency_us_sum.load(Ordering::Relaxed) as f64 / 1000.0
    );
    let _ = writeln!(s, "stateful_http_latency_ms_count {total}");
    let _ = writeln!(s, "# TYPE stateful_requests_total counter");
    let _ = writeln!(
        s,
        "stateful_requests_total {}",
        m.requests.load(Ordering::Relaxed)
    );
    let _ = writeln!(s, "# TYPE stateful_requests_in_flight gauge");
    let _ = writeln!(s, "stateful_requests_in_flight {}", gw.handle.in_flight());
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
    ] {
        let _ = writeln!(s, "# HELP {name} {help}");
        let _ = writeln!(s, "# TYPE {name} counter");
        let _ = writeln!(s, "{name} {}", v.load(Ordering::Relaxed));
    }
    // Per operator: one lambda on one worker.
    let lambdas = gw.handle.app().lambdas.len().max(1);
    let per_op: [OperatorSeries; 6] = [
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
    ];
    for (name, kind, help, get) in per_op {
        let _ = writeln!(s, "# HELP {name} {help}");
        let _ = writeln!(s, "# TYPE {name} {kind}");
        for (i, om) in m.operators.iter().enumerate() {
            let lambda = gw
                .handle
                .app()
                .lambdas
                .get(i % lambdas)
                .map_or("?", |l| l.name);
            let _ = writeln!(
                s,
                "{name}{{lambda=\"{lambda}\",worker=\"{}\"}} {}",
                i / lambdas,
                get(om)
            );
        }
    }
    let _ = writeln!(s, "# TYPE stateful_commits_total counter");
    let _ = writeln!(
        s,
        "stateful_commits_total {}",
        m.commits.load(Ordering::Relaxed)
    );
    let _ = writeln!(s, "# TYPE stateful_commit_seconds_total counter");
    let _ = writeln!(
        s,
        "stateful_commit_seconds_total {}",
        m.commit_us.load(Ordering::Relaxed) as f64 / 1e6
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], s).into_response()
}
