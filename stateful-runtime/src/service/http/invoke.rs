//! Invoking handlers over HTTP: `POST /invoke/{lambda}/{key}/{handler}` with a JSON body of
//! arguments (public handlers only: those with a route or `#[public]`), and the routes the
//! app declares with `#[route]` (path parameters by name, then the body's fields).

// Handlers build answers early; a `Response` as the error type is the natural shape here.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::Value;

use super::Gw;
use super::status::{answer, error, invoke_error};
use crate::engine::{InvokeError, Response as EngineResponse};

/// The `Idempotency-Key` header, if any.
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

/// The body as JSON (`null` when empty).
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

/// Submits a request (off the async threads when its idempotency key needs a store lookup).
async fn submit(
    gw: &Gw,
    lambda: u16,
    handler: u16,
    key: Vec<u8>,
    args: Vec<u8>,
    idem: Option<String>,
) -> Result<tokio::sync::oneshot::Receiver<EngineResponse>, InvokeError> {
    if idem.is_none() {
        return gw.handle.submit(lambda, key, handler, args, None);
    }
    let handle = gw.handle.clone();
    tokio::task::spawn_blocking(move || handle.submit(lambda, key, handler, args, idem))
        .await
        .map_err(|_| InvokeError::ShuttingDown)?
}

/// Runs one request and answers it.
async fn run(
    gw: &Gw,
    lambda: u16,
    handler: u16,
    key: Vec<u8>,
    args: Vec<u8>,
    idem: Option<String>,
) -> Response {
    let clustered = gw.process.is_some();
    match submit(gw, lambda, handler, key, args, idem).await {
        Err(e) => invoke_error(e),
        Ok(rx) => tokio::select! {
            r = rx => match r {
                // A worker lost with its peer drops the responders it held.
                Err(_) if clustered && crate::engine::cluster::has_failed() => {
                    invoke_error(InvokeError::ClusterFailed)
                }
                Err(_) => invoke_error(InvokeError::ShuttingDown),
                Ok(r) => answer(gw.json.to_json(lambda, handler, r)),
            },
            // In a cluster that lost a process the request cannot commit: say so, not hang.
            () = crate::engine::cluster::lost(), if clustered => {
                invoke_error(InvokeError::ClusterFailed)
            }
        },
    }
}

/// `POST /invoke/{lambda}/{key}/{handler}`, counted in the gateway's metrics.
pub(super) async fn generic(
    State(gw): State<Gw>,
    path: Path<(String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let t0 = std::time::Instant::now();
    let resp = generic_uncounted(&gw, path, headers, body).await;
    gw.http.observe(resp.status(), t0.elapsed());
    resp
}

async fn generic_uncounted(
    gw: &Gw,
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
    match gw.json.prepare(&lambda, &key, &handler, args) {
        Err(e) => invoke_error(e),
        // Internal handlers (no route, no `#[public]`) are not there from outside: a 404,
        // as for a handler that does not exist, saying why.
        Ok((l, h, ..)) if !is_public(gw, l, h) => error(
            StatusCode::NOT_FOUND,
            format!(
                "lambda `{lambda}` has no public handler `{handler}`: only handlers with a #[route] or #[public] are reachable from outside"
            ),
        ),
        Ok((l, h, key, args)) => run(gw, l, h, key, args, idem).await,
    }
}

/// Whether handler `h` of lambda `l` is callable from outside.
fn is_public(gw: &Gw, l: u16, h: u16) -> bool {
    gw.app
        .program()
        .lambda(l)
        .and_then(|d| d.handlers.get(usize::from(h)))
        .is_some_and(|m| m.public)
}

/// A route's target.
#[derive(Clone, Copy)]
pub(super) struct RouteTarget {
    pub lambda: u16,
    pub handler: u16,
}

/// The arguments of a route's handler: path parameters by name, then the JSON body's fields.
fn route_args(
    gw: &Gw,
    target: RouteTarget,
    params: &HashMap<String, String>,
    body: &Bytes,
) -> Result<Value, Response> {
    let meta = gw
        .app
        .program()
        .lambda(target.lambda)
        .and_then(|l| l.handlers.get(usize::from(target.handler)))
        .ok_or_else(|| error(StatusCode::NOT_FOUND, "no such handler"))?;
    let mut args = serde_json::Map::new();
    match parse_body(body)? {
        Value::Object(m) => args.extend(m),
        Value::Null => {}
        other if meta.params.len() == 1 => {
            args.insert(meta.params[0].0.to_owned(), other);
        }
        _ => {
            return Err(error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "the body must be a JSON object of arguments",
            ));
        }
    }
    for (name, ty) in meta.params {
        if let Some(raw) = params.get(*name) {
            args.insert((*name).to_owned(), path_value(raw, ty));
        }
    }
    Ok(if meta.params.is_empty() {
        Value::Null
    } else {
        Value::Object(args)
    })
}

/// A route declared with `#[route]`.
pub(super) async fn route(
    gw: Gw,
    target: RouteTarget,
    params: HashMap<String, String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let t0 = std::time::Instant::now();
    let resp = route_uncounted(&gw, target, params, headers, body).await;
    gw.http.observe(resp.status(), t0.elapsed());
    resp
}

async fn route_uncounted(
    gw: &Gw,
    target: RouteTarget,
    params: HashMap<String, String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let idem = match idempotency_key(&headers) {
        Ok(k) => k,
        Err(r) => return r,
    };
    let Some(codec) = gw.app.codec(target.lambda) else {
        return error(StatusCode::NOT_FOUND, "no such lambda");
    };
    let json_args = match route_args(gw, target, &params, &body) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let key_str = match params.get("key") {
        Some(k) => k.clone(),
        None => fresh_key(gw, idem.as_deref()),
    };
    let key = match codec.key_from_str(&key_str) {
        Ok(k) => k,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let args = match codec.args_from_json(target.handler, json_args) {
        Ok(a) => a,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    run(gw, target.lambda, target.handler, key, args, idem).await
}

/// The key of a `key = new` route: fresh for every request, or, for a request with an
/// idempotency key, derived from it (a retry names the same new instance, so it is the same
/// request); distinct across the processes of a cluster too.
fn fresh_key(gw: &Gw, idem: Option<&str>) -> String {
    let id = match idem {
        Some(k) => format!("i{:x}", super::forward::key_hash(k.as_bytes())),
        None => format!("{:x}", gw.ids.fetch_add(1, Ordering::Relaxed)),
    };
    // Ids are per process: the process marks them; except those made from an idempotency
    // key where the key's owner makes them (see `forward`): a retry anywhere gets the same.
    match (gw.process, idem.is_some() && gw.forwards) {
        (Some(p), false) => format!("{id}p{p}"),
        _ => id,
    }
}

/// A path segment as a JSON argument: strings stay strings, anything else parses as JSON.
fn path_value(raw: &str, ty: &str) -> Value {
    let t = ty.replace(' ', "");
    if t == "String" || t == "&str" || t.ends_with("::String") {
        return Value::String(raw.to_owned());
    }
    serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_owned()))
}
