//! Cluster-wide idempotency: in a cluster, a request with an `Idempotency-Key` is served by
//! the process that owns the key (its hash over the processes), which keeps its record. A
//! request that arrives elsewhere is forwarded there over HTTP (to the `http=` address of the
//! host file), so a retry at any process gets the first answer. Part of the gateway.
//!
//! Where the owner's address is not known (a host file without `http=`) the request is served
//! where it arrived, as before: a retry must then reach the same process.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;

use super::Gw;
use super::status::error;

/// Marks a forwarded request: its receiver serves it, whatever it computes as the owner.
const FORWARDED: &str = "x-stateful-forwarded";

/// How long a forwarded request may take (the owner may be rescaling or recovering).
const FORWARD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// A hash of an idempotency key: FNV-1a, then the framework's mixer (the same on every
/// process and build).
pub(super) fn key_hash(key: &[u8]) -> u64 {
    let h = key.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    });
    stateful_core::mix::finalize(h)
}

/// The process that owns idempotency key `key` among `processes`.
pub fn owner(key: &[u8], processes: usize) -> usize {
    let p = u64::try_from(processes.max(1)).unwrap_or(1);
    usize::try_from(key_hash(key) % p).unwrap_or(0)
}

/// Where `req` must go instead of here: the owner's gateway, if it is another process's and
/// known.
fn elsewhere(gw: &Gw, req: &Request) -> Option<String> {
    let cluster = gw.handle.cluster()?;
    // Reads (and `/healthz`, `/metrics`) answer for the process asked.
    if req.headers().contains_key(FORWARDED) || matches!(*req.method(), Method::GET | Method::HEAD)
    {
        return None;
    }
    let key = req.headers().get("idempotency-key")?;
    let to = owner(key.as_bytes(), cluster.processes());
    if to == cluster.process {
        return None;
    }
    cluster.http.get(to).cloned().flatten()
}

/// Middleware of the gateway: forwards what another process owns.
pub(super) async fn by_idempotency_key(State(gw): State<Gw>, req: Request, next: Next) -> Response {
    match elsewhere(&gw, &req) {
        None => next.run(req).await,
        Some(to) => match forward(&to, req).await {
            Ok(r) => r,
            Err(e) => error(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "the process that owns this Idempotency-Key ({to}) did not answer: {e}; retry"
                ),
            ),
        },
    }
}

/// Sends `req` to the gateway at `to` (one HTTP/1.1 connection) and relays its answer.
async fn forward(to: &str, req: Request) -> Result<Response, String> {
    match tokio::time::timeout(FORWARD_TIMEOUT, relay(to, req)).await {
        Ok(r) => r,
        Err(_) => Err(format!("no answer within {} s", FORWARD_TIMEOUT.as_secs())),
    }
}

async fn relay(to: &str, mut req: Request) -> Result<Response, String> {
    let stream = tokio::net::TcpStream::connect(to)
        .await
        .map_err(|e| e.to_string())?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "forwarding connection");
        }
    });
    req.headers_mut()
        .insert(FORWARDED, HeaderValue::from_static("1"));
    if let Ok(host) = HeaderValue::from_str(to) {
        req.headers_mut().insert(axum::http::header::HOST, host);
    }
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let (parts, body) = resp.into_parts();
    Ok((parts.status, parts.headers, Body::new(body)).into_response())
}

#[cfg(test)]
mod tests {
    #[test]
    fn keys_spread_over_the_processes_and_stay_put() {
        let mut seen = [0usize; 3];
        for i in 0..300 {
            let k = format!("key-{i}");
            let p = super::owner(k.as_bytes(), 3);
            assert_eq!(p, super::owner(k.as_bytes(), 3));
            seen[p] += 1;
        }
        assert!(seen.iter().all(|n| *n > 50), "{seen:?}");
        assert_eq!(super::owner(b"x", 1), 0);
    }
}
