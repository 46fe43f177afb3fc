//! Who may use the admin side of the gateway: the console, `/debug/*`, `/state/*` and the load
//! generator. On a loopback listener they are open (only this machine reaches them); on any
//! other address they need the admin token, as `Authorization: Bearer <token>` or `?token=`,
//! compared in constant time. A missing or wrong token is a 401, counted in `/metrics`
//! (`stateful_admin_unauthorized_total`). The business API stays open.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;

use super::Gw;
use super::status::error;

/// The admin rule of one gateway.
#[derive(Clone, Debug, Default)]
pub struct AdminAccess {
    /// `None`: open.
    token: Option<Arc<str>>,
}

impl AdminAccess {
    /// Open to every caller (a loopback listener).
    pub fn open() -> Self {
        AdminAccess { token: None }
    }

    /// Only for callers with `token`.
    pub fn token(token: impl Into<Arc<str>>) -> Self {
        AdminAccess {
            token: Some(token.into()),
        }
    }

    /// The rule for a gateway listening on `addr`: open on loopback, else `given` or a fresh
    /// token (returned, to be printed).
    pub fn for_listener(addr: SocketAddr, given: Option<String>) -> (Self, Option<String>) {
        if addr.ip().is_loopback() {
            return (AdminAccess::open(), None);
        }
        match given.filter(|t| !t.is_empty()) {
            Some(t) => (AdminAccess::token(t), None),
            None => {
                let t = fresh_token();
                (AdminAccess::token(t.clone()), Some(t))
            }
        }
    }

    /// Whether a token is needed.
    pub fn is_open(&self) -> bool {
        self.token.is_none()
    }

    fn admits(&self, offered: Option<&str>) -> bool {
        match (&self.token, offered) {
            (None, _) => true,
            (Some(t), Some(o)) => constant_time_eq(t.as_bytes(), o.as_bytes()),
            (Some(_), None) => false,
        }
    }
}

/// Equal, in a time that depends on the lengths only.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// 128 random bits as hex, from the OS.
fn fresh_token() -> String {
    use std::io::Read;
    let mut bytes = [0u8; 16];
    let read = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    if read.is_err() {
        // Without /dev/urandom: std's per-process random hash keys.
        use std::hash::{BuildHasher, Hasher};
        for half in bytes.chunks_mut(8) {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u128(
                std::time::SystemTime::now()
                    .elapsed()
                    .map_or(0, |d| d.as_nanos()),
            );
            half.copy_from_slice(&h.finish().to_le_bytes());
        }
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The token a request offers: the bearer header, else the `token` query parameter.
fn offered(req: &Request) -> Option<String> {
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    bearer.or_else(|| {
        req.uri().query().and_then(|q| {
            q.split('&')
                .find_map(|kv| kv.strip_prefix("token="))
                .and_then(percent_decoded)
        })
    })
}

/// A query value with its `%xx` escapes decoded (a `+` stays a `+`); `None` when malformed.
fn percent_decoded(v: &str) -> Option<String> {
    let mut out = Vec::with_capacity(v.len());
    let mut bytes = v.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'%' => {
                let hex = [bytes.next()?, bytes.next()?];
                out.push(u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?);
            }
            b => out.push(b),
        }
    }
    String::from_utf8(out).ok()
}

impl AdminAccess {
    /// Whether `req` may use the admin side.
    pub(crate) fn admits_request(&self, req: &Request) -> bool {
        self.admits(offered(req).as_deref())
    }
}

/// The answer to a request without the admin token.
pub(crate) fn unauthorized() -> Response {
    error(
        StatusCode::UNAUTHORIZED,
        "this needs the admin token: `Authorization: Bearer <token>` or `?token=<token>` (printed at start, or --admin-token)",
    )
}

/// Middleware of the admin routes.
pub(super) async fn guard(State(gw): State<Gw>, req: Request, next: Next) -> Response {
    if gw.admin.admits_request(&req) {
        return next.run(req).await;
    }
    gw.http.refused();
    unauthorized()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_open_and_other_addresses_need_a_token() {
        let (local, t) = AdminAccess::for_listener("127.0.0.1:8000".parse().expect("addr"), None);
        assert!(local.is_open() && t.is_none());
        let (any, t) = AdminAccess::for_listener("0.0.0.0:8000".parse().expect("addr"), None);
        let t = t.expect("a fresh token");
        assert_eq!(t.len(), 32);
        assert!(!any.is_open());
        assert!(any.admits(Some(&t)));
        assert!(!any.admits(Some("wrong")));
        assert!(!any.admits(None));
        let (given, none) =
            AdminAccess::for_listener("10.0.0.1:80".parse().expect("addr"), Some("s3cret".into()));
        assert!(none.is_none() && given.admits(Some("s3cret")) && !given.admits(Some("s3cret!")));
    }

    #[test]
    fn a_query_token_is_percent_decoded() {
        assert_eq!(percent_decoded("a%2Fb%3D+c").as_deref(), Some("a/b=+c"));
        assert_eq!(percent_decoded("plain").as_deref(), Some("plain"));
        for bad in ["%", "%4", "%zz", "%ff"] {
            assert_eq!(percent_decoded(bad), None, "{bad}");
        }
        let access = AdminAccess::token("s3cr/t=");
        let req = |uri: &str| Request::builder().uri(uri).body(axum::body::Body::empty());
        let ok = req("/console?token=s3cr%2Ft%3D").expect("a request");
        let raw = req("/console?token=s3cr/t%3").expect("a request");
        assert!(access.admits_request(&ok));
        assert!(!access.admits_request(&raw));
    }

    #[test]
    fn fresh_tokens_differ() {
        assert_ne!(fresh_token(), fresh_token());
    }
}
