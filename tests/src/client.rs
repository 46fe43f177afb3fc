//! The one HTTP client of the tests: blocking, one connection per request (no pool, so a
//! killed and restarted service on the same port is reached afresh), every status an answer.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

/// How long one request may take by default (a debug build on a busy 2-core machine).
const TIMEOUT: Duration = Duration::from_secs(30);

/// An answer: status, the headers the tests look at, and the body.
#[derive(Debug, Clone)]
pub struct Resp {
    /// HTTP status.
    pub status: u16,
    /// Body as text.
    pub body: String,
    /// `Content-Type`, if any.
    pub content_type: Option<String>,
    /// `Retry-After`, if any.
    pub retry_after: Option<String>,
}

impl Resp {
    /// The body as JSON; panics with the body when it is not.
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.body))
    }

    /// Asserts a 2xx answer and returns the JSON body.
    #[track_caller]
    pub fn ok(&self) -> Value {
        assert!(
            (200..300).contains(&self.status),
            "expected 2xx, got {} {}",
            self.status,
            self.body
        );
        self.json()
    }

    /// Asserts an answer of `status` with a non-empty JSON `error` message, and returns the
    /// message.
    #[track_caller]
    pub fn err(&self, status: u16) -> String {
        assert_eq!(
            self.status, status,
            "unexpected status; body: {}",
            self.body
        );
        let v = self.json();
        let msg = v["error"]
            .as_str()
            .unwrap_or_else(|| panic!("no `error` message in {v}"));
        assert!(!msg.is_empty(), "empty error message");
        msg.to_owned()
    }
}

/// A client of one service (`http://host:port`).
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    agent: ureq::Agent,
    /// The service's log, shown when a request that must answer fails.
    log: Option<PathBuf>,
    /// Sent as `Authorization: Bearer ..` with every request.
    bearer: Option<String>,
}

fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(timeout))
        .max_idle_connections(0)
        .max_idle_connections_per_host(0)
        .build()
        .into()
}

impl Client {
    /// A client of the service at `addr`.
    pub fn new(addr: SocketAddr) -> Client {
        Client::with_base(format!("http://{addr}"))
    }

    /// A client of the service at `base` (`http://host:port`).
    pub fn with_base(base: impl Into<String>) -> Client {
        Client {
            base: base.into(),
            agent: agent(TIMEOUT),
            log: None,
            bearer: None,
        }
    }

    /// The same client with another per-request deadline.
    pub fn timeout(mut self, timeout: Duration) -> Client {
        self.agent = agent(timeout);
        self
    }

    /// The same client, showing `log` when a request that must answer fails.
    pub fn log_file(mut self, log: PathBuf) -> Client {
        self.log = Some(log);
        self
    }

    /// The same client, sending `Authorization: Bearer <token>` (the admin token).
    pub fn bearer(mut self, token: &str) -> Client {
        self.bearer = Some(token.to_owned());
        self
    }

    /// `http://host:port`.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// One request; `Err` only when no answer came (refused, cut off, timed out).
    /// `idempotency_key` is raw bytes, so tests can send invalid ones.
    pub fn try_request(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
        idempotency_key: Option<&[u8]>,
    ) -> Result<Resp, ureq::Error> {
        let url = format!("{}{path}", self.base);
        let bearer = self.bearer.as_ref().map(|t| format!("Bearer {t}"));
        let r = match method {
            "GET" | "DELETE" => {
                let mut r = if method == "GET" {
                    self.agent.get(&url)
                } else {
                    self.agent.delete(&url)
                };
                if let Some(k) = idempotency_key {
                    r = r.header("idempotency-key", k);
                }
                if let Some(b) = &bearer {
                    r = r.header("authorization", b);
                }
                r.call()
            }
            "POST" => {
                let mut r = self.agent.post(&url);
                if let Some(k) = idempotency_key {
                    r = r.header("idempotency-key", k);
                }
                if let Some(b) = &bearer {
                    r = r.header("authorization", b);
                }
                match body {
                    Some(b) => r.header("content-type", "application/json").send(b),
                    None => r.send_empty(),
                }
            }
            other => panic!("the test client sends GET, POST and DELETE, not {other}"),
        };
        let mut r = r?;
        let header = |name: &str| {
            r.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let (content_type, retry_after) = (header("content-type"), header("retry-after"));
        Ok(Resp {
            status: r.status().as_u16(),
            body: r.body_mut().read_to_string()?,
            content_type,
            retry_after,
        })
    }

    /// [`Client::try_request`] that must answer: panics (with the service's log) otherwise.
    #[track_caller]
    pub fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
        idempotency_key: Option<&[u8]>,
    ) -> Resp {
        self.try_request(method, path, body, idempotency_key)
            .unwrap_or_else(|e| {
                let log = self
                    .log
                    .as_ref()
                    .and_then(|l| std::fs::read_to_string(l).ok())
                    .unwrap_or_default();
                panic!("{method} {}{path} failed: {e}; log: {log}", self.base)
            })
    }

    /// `GET path`.
    #[track_caller]
    pub fn get(&self, path: &str) -> Resp {
        self.request("GET", path, None, None)
    }

    /// `POST path` without a body.
    #[track_caller]
    pub fn post(&self, path: &str) -> Resp {
        self.request("POST", path, None, None)
    }

    /// `POST path` with a JSON body.
    #[track_caller]
    pub fn post_body(&self, path: &str, body: &str) -> Resp {
        self.request("POST", path, Some(body), None)
    }

    /// `POST path` without a body, with an `Idempotency-Key` header of raw bytes.
    #[track_caller]
    pub fn post_idem(&self, path: &str, key: &[u8]) -> Resp {
        self.request("POST", path, None, Some(key))
    }

    /// `POST path` with an `Idempotency-Key`, tolerating a dead or restarting service: the
    /// answer, or `None` when no answer came.
    pub fn try_post_idem(&self, path: &str, key: &str) -> Option<Resp> {
        self.try_request("POST", path, None, Some(key.as_bytes()))
            .ok()
    }

    /// The committed state of one instance (`GET /state/{lambda}/{key}`).
    #[track_caller]
    pub fn state(&self, lambda: &str, key: &str) -> Value {
        self.get(&format!("/state/{lambda}/{key}")).ok()
    }
}
