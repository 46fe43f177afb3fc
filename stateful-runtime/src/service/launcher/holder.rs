//! Holding a cluster's HTTP ports while its processes are replaced (a rescale, a restart):
//! `cluster up` binds them too (`SO_REUSEPORT`, as the processes do) and answers `503` with
//! `Retry-After`, so that a client never finds a port closed while the cluster is away.

use std::net::SocketAddr;
use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// The ports held, answered by a thread of their own until dropped.
pub(super) struct Holder {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Holder {
    /// Binds every address of `addrs` and answers 503 on them.
    pub(super) fn start(addrs: &[SocketAddr]) -> Result<Holder, String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the port holder: {e}"))?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (bound_tx, bound_rx) = std::sync::mpsc::channel::<Result<(), String>>();
        let addrs = addrs.to_vec();
        let thread = std::thread::Builder::new()
            .name("cluster-hold".into())
            .spawn(move || rt.block_on(serve(addrs, stopped, bound_tx)))
            .map_err(|e| format!("cannot start the port holder: {e}"))?;
        let holder = Holder {
            stop: Some(stop),
            thread: Some(thread),
        };
        match bound_rx.recv() {
            Ok(Ok(())) => Ok(holder),
            Ok(Err(e)) => Err(e),
            Err(_) => Err("the port holder stopped".into()),
        }
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn serve(
    addrs: Vec<SocketAddr>,
    stopped: tokio::sync::oneshot::Receiver<()>,
    bound: std::sync::mpsc::Sender<Result<(), String>>,
) {
    let mut listeners = Vec::new();
    for a in &addrs {
        match crate::service::http::bind(*a, true) {
            Ok(l) => listeners.push(l),
            Err(e) => {
                let _ = bound.send(Err(format!("cannot hold {a}: {e}")));
                return;
            }
        }
    }
    let _ = bound.send(Ok(()));
    let router = axum::Router::new().fallback(away);
    let mut tasks = tokio::task::JoinSet::new();
    for l in listeners {
        tasks.spawn(axum::serve(l, router.clone()).into_future());
    }
    let _ = stopped.await;
    // Answers already started finish (they are tiny); then every listener closes.
    tokio::time::sleep(Duration::from_millis(20)).await;
    tasks.abort_all();
}

async fn away() -> Response {
    let mut r = (
        StatusCode::SERVICE_UNAVAILABLE,
        axum::Json(serde_json::json!({
            "error": "the cluster is being restarted or rescaled; retry shortly"
        })),
    )
        .into_response();
    let h = r.headers_mut();
    h.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    r
}

/// Whether the process behind `addr` answers `GET /healthz` with 200 (a 503 may be this
/// holder's own answer: the kernel spreads connections over every socket on the port).
pub(super) fn serves(addr: SocketAddr) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(300)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    let ask = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if s.write_all(ask.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && head.ends_with(b" 200")
}
