//! HTTP/1.1 plumbing: the target URL, kept-alive connections and one request's outcome.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::client::conn::http1;
use hyper::{Method, Request, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};

/// Where the service listens, parsed from `--url`.
#[derive(Debug, Clone)]
pub struct Target {
    /// `http://host:port` without a trailing slash.
    pub base: String,
    /// `host:port`, for connecting.
    pub addr: String,
}

impl Target {
    /// Parses an `http://host[:port]` URL; anything else is a clear error.
    pub fn parse(url: &str) -> Result<Target, String> {
        let uri: Uri = url
            .parse()
            .map_err(|e| format!("`{url}` is not a URL: {e}"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some(other) => {
                return Err(format!(
                    "`{url}`: only http:// is supported, not {other}://"
                ));
            }
            None => return Err(format!("`{url}`: expected http://host:port")),
        }
        let host = uri
            .host()
            .ok_or_else(|| format!("`{url}`: no host in the URL"))?;
        let port = uri.port_u16().unwrap_or(80);
        let path = uri.path().trim_end_matches('/');
        Ok(Target {
            base: format!("http://{host}:{port}{path}"),
            addr: format!("{host}:{port}"),
        })
    }

    fn uri(&self, path: &str) -> Result<Uri, String> {
        format!("{}{path}", self.base)
            .parse()
            .map_err(|e| format!("bad request path `{path}`: {e}"))
    }
}

/// One request to send: a method and a path under the target.
#[derive(Debug, Clone)]
pub struct Req {
    /// GET or POST.
    pub method: Method,
    /// Path with a leading slash, e.g. `/orders/checkout/17`.
    pub path: String,
}

impl Req {
    /// A GET of `path`.
    pub fn get(path: String) -> Req {
        Req {
            method: Method::GET,
            path,
        }
    }

    /// A POST of `path` with an empty body.
    pub fn post(path: String) -> Req {
        Req {
            method: Method::POST,
            path,
        }
    }
}

/// A complete answer of the service.
#[derive(Debug, Clone)]
pub struct Reply {
    /// HTTP status code.
    pub status: u16,
    /// The body.
    pub body: Bytes,
}

impl Reply {
    /// Whether the status is 2xx.
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body parsed as JSON, if it is JSON.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// A request that got no complete answer.
#[derive(Debug, Clone)]
pub struct HttpError {
    /// What went wrong.
    pub message: String,
    /// Whether the request may have reached the service (so its effect is unknown).
    pub maybe_sent: bool,
}

/// The outcome of one request.
pub type Outcome = Result<Reply, HttpError>;

fn build(target: &Target, req: &Req) -> Result<Request<Empty<Bytes>>, HttpError> {
    let uri = target.uri(&req.path).map_err(|message| HttpError {
        message,
        maybe_sent: false,
    })?;
    let host = uri.authority().map(|a| a.to_string()).unwrap_or_default();
    Request::builder()
        .method(req.method.clone())
        .uri(uri)
        .header(hyper::header::HOST, host)
        .body(Empty::new())
        .map_err(|e| HttpError {
            message: format!("cannot build the request: {e}"),
            maybe_sent: false,
        })
}

async fn read(resp: hyper::Response<hyper::body::Incoming>) -> Outcome {
    let status = resp.status().as_u16();
    match resp.into_body().collect().await {
        Ok(body) => Ok(Reply {
            status,
            body: body.to_bytes(),
        }),
        Err(e) => Err(HttpError {
            message: format!("reading the answer failed: {e}"),
            maybe_sent: true,
        }),
    }
}

/// One dedicated kept-alive connection (closed loop: one per simulated client);
/// reconnects after an error.
pub struct Conn {
    target: Arc<Target>,
    sender: Option<http1::SendRequest<Empty<Bytes>>>,
    timeout: Duration,
}

impl Conn {
    /// A connection to `target`, opened on the first request.
    pub fn new(target: Arc<Target>, timeout: Duration) -> Conn {
        Conn {
            target,
            sender: None,
            timeout,
        }
    }

    async fn connect(&self) -> Result<http1::SendRequest<Empty<Bytes>>, String> {
        let stream = tokio::net::TcpStream::connect(&self.target.addr)
            .await
            .map_err(|e| format!("cannot connect to {}: {e}", self.target.addr))?;
        let _ = stream.set_nodelay(true);
        let (sender, conn) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("HTTP handshake with {} failed: {e}", self.target.addr))?;
        tokio::spawn(async move {
            // Ends when the connection closes; errors surface on the next request.
            let _ = conn.await;
        });
        Ok(sender)
    }

    /// Sends `req` and waits for the whole answer (or the timeout).
    pub async fn send(&mut self, req: &Req) -> Outcome {
        let request = build(&self.target, req)?;
        let mut sender = match self.sender.take() {
            Some(s) if !s.is_closed() => s,
            _ => self.connect().await.map_err(|message| HttpError {
                message,
                maybe_sent: false,
            })?,
        };
        if sender.ready().await.is_err() {
            sender = self.connect().await.map_err(|message| HttpError {
                message,
                maybe_sent: false,
            })?;
        }
        let exchange = async {
            let resp = sender.send_request(request).await.map_err(|e| HttpError {
                message: format!("request failed: {e}"),
                maybe_sent: true,
            })?;
            read(resp).await
        };
        let outcome = match tokio::time::timeout(self.timeout, exchange).await {
            Ok(o) => o,
            Err(_) => Err(HttpError {
                message: format!("no answer within {:?}", self.timeout),
                maybe_sent: true,
            }),
        };
        if outcome.is_ok() {
            self.sender = Some(sender);
        }
        outcome
    }
}

/// A pool of kept-alive connections shared by many concurrent requests (open loop,
/// preparation and verification).
#[derive(Clone)]
pub struct Pool {
    target: Arc<Target>,
    client: Client<HttpConnector, Empty<Bytes>>,
    timeout: Duration,
}

impl Pool {
    /// A pool for `target`.
    pub fn new(target: Arc<Target>, timeout: Duration) -> Pool {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Pool {
            target,
            client,
            timeout,
        }
    }

    /// The target of this pool.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Sends `req` and waits for the whole answer (or the timeout).
    pub async fn send(&self, req: &Req) -> Outcome {
        let request = build(&self.target, req)?;
        let exchange = async {
            let resp = self.client.request(request).await.map_err(|e| {
                let source = std::error::Error::source(&e)
                    .map(|s| format!(": {s}"))
                    .unwrap_or_default();
                HttpError {
                    message: format!("request to {} failed: {e}{source}", self.target.addr),
                    maybe_sent: !e.is_connect(),
                }
            })?;
            read(resp).await
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(o) => o,
            Err(_) => Err(HttpError {
                message: format!("no answer within {:?}", self.timeout),
                maybe_sent: true,
            }),
        }
    }

    /// Sends `req` and wants a 2xx JSON answer; anything else is an error message.
    pub async fn json(&self, req: &Req) -> Result<serde_json::Value, String> {
        let reply = self.send(req).await.map_err(|e| e.message)?;
        if !reply.ok() {
            return Err(format!(
                "{} {} answered {}: {}",
                req.method,
                req.path,
                reply.status,
                String::from_utf8_lossy(&reply.body)
            ));
        }
        reply.json().ok_or_else(|| {
            format!(
                "{} {} answered with non-JSON: {}",
                req.method,
                req.path,
                String::from_utf8_lossy(&reply.body)
            )
        })
    }
}
