//! Cluster-wide idempotency: in a cluster, a request with an `Idempotency-Key` is served by
//! the process that owns the key (its hash over the processes), which keeps its record. A
//! request that arrives elsewhere is forwarded there over HTTP (to the `http=` address of the
//! host file), so a retry at any process gets the first answer. Part of the gateway.
//!
//! Where the owner's address is not known (a host file without `http=`) the request is served
//! where it arrived, as before: a retry must then reach the same process.
//!
//! A forwarded request carries a marker whose value is a hash of the cluster's host file, so
//! a client cannot make a process serve a key it does not own by sending the header (it is
//! not a secret from whoever can read the host file). Connections to the owners are pooled;
//! hop-by-hop headers are not passed on, either way.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::Gw;
use super::status::error;

/// Marks a forwarded request: its receiver serves it, whatever it computes as the owner.
const FORWARDED: &str = "x-stateful-forwarded";

/// How long a forwarded request may take (the owner may be rescaling or recovering).
const FORWARD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// A hash of an idempotency key (the framework's stable hash, the same on every process and
/// build).
pub(super) fn key_hash(key: &[u8]) -> u64 {
    stateful_core::keys::stable_hash(key)
}

/// The process that owns idempotency key `key` among `processes`.
pub fn owner(key: &[u8], processes: usize) -> usize {
    stateful_core::keys::idempotency_owner(key, processes)
}

/// The marker's value in this cluster: a hash of its host file's addresses.
fn marker(cluster: &crate::engine::cluster::ClusterConfig) -> String {
    let mut all = cluster.addresses.join("\n");
    for h in &cluster.http {
        all.push('\n');
        all.push_str(h.as_deref().unwrap_or("-"));
    }
    format!("{:016x}", key_hash(all.as_bytes()))
}

/// Headers that belong to one connection, not to the request or answer (RFC 9110, 7.6.1).
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Removes the hop-by-hop headers, and those the `Connection` header names.
fn strip_hop_by_hop(headers: &mut axum::http::HeaderMap) {
    let named: Vec<String> = headers
        .get_all(axum::http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|n| n.trim().to_ascii_lowercase()))
        .collect();
    // What the forwarding routes on, and the request's own content, stay whatever
    // `Connection` names.
    let kept = ["idempotency-key", "content-type", "content-length"];
    let named = named
        .iter()
        .map(String::as_str)
        .filter(|n| !kept.contains(n));
    for h in HOP_BY_HOP.iter().copied().chain(named) {
        headers.remove(h);
    }
}

/// Where `req` must go instead of here: the owner's gateway, if it is another process's and
/// known.
fn elsewhere(gw: &Gw, req: &Request) -> Option<String> {
    let cluster = gw.handle.cluster()?;
    // Reads (and `/healthz`, `/metrics`) answer for the process asked.
    if matches!(*req.method(), Method::GET | Method::HEAD) {
        return None;
    }
    // Forwarded by a process of this cluster: served here.
    if req
        .headers()
        .get(FORWARDED)
        .is_some_and(|v| v.as_bytes() == marker(cluster).as_bytes())
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
        Some(to) => match forward(&gw, &to, req).await {
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

/// Sends `req` to the gateway at `to` and relays its answer.
async fn forward(gw: &Gw, to: &str, req: Request) -> Result<Response, String> {
    match tokio::time::timeout(FORWARD_TIMEOUT, relay(gw, to, req)).await {
        Ok(r) => r,
        Err(_) => Err(format!("no answer within {} s", FORWARD_TIMEOUT.as_secs())),
    }
}

type Client =
    hyper_util::client::legacy::Client<hyper_util::client::legacy::connect::HttpConnector, Body>;

/// The pooled HTTP/1.1 client of this process's forwarding.
fn client() -> &'static Client {
    static CLIENT: std::sync::OnceLock<Client> = std::sync::OnceLock::new();
    CLIENT.get_or_init(|| {
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .pool_idle_timeout(std::time::Duration::from_secs(30))
            .build_http()
    })
}

async fn relay(gw: &Gw, to: &str, req: Request) -> Result<Response, String> {
    let marker = gw.handle.cluster().map(marker).unwrap_or_default();
    let (mut parts, body) = req.into_parts();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    parts.uri = format!("http://{to}{path}")
        .parse()
        .map_err(|e: axum::http::uri::InvalidUri| e.to_string())?;
    strip_hop_by_hop(&mut parts.headers);
    parts.headers.remove(axum::http::header::HOST);
    let marker = HeaderValue::from_str(&marker).map_err(|e| e.to_string())?;
    parts.headers.insert(FORWARDED, marker);
    let resp = client()
        .request(Request::from_parts(parts, body))
        .await
        .map_err(|e| e.to_string())?;
    let (mut parts, body) = resp.into_parts();
    strip_hop_by_hop(&mut parts.headers);
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

    #[test]
    fn hop_by_hop_headers_and_those_connection_names_are_stripped() {
        let mut h = axum::http::HeaderMap::new();
        for (k, v) in [
            ("connection", "keep-alive, x-private, idempotency-key"),
            ("keep-alive", "timeout=5"),
            ("transfer-encoding", "chunked"),
            ("x-private", "1"),
            ("idempotency-key", "k"),
            ("content-type", "application/json"),
        ] {
            h.insert(k, v.parse().expect("a header value"));
        }
        super::strip_hop_by_hop(&mut h);
        let mut left: Vec<_> = h.keys().map(|k| k.as_str().to_owned()).collect();
        left.sort();
        assert_eq!(left, ["content-type", "idempotency-key"]);
    }
}
