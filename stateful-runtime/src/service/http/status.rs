//! How the outcome of a request maps to an HTTP answer: statuses, `Retry-After`, and the JSON
//! error body `{"error": message}` every failure has.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::engine::InvokeError;
use crate::sdk::CallError;
use crate::service::json::JsonResponse;
use crate::service::views::ViewError;
use crate::tools::at::AtError;
use crate::tools::trace::TraceError;

/// An error answer: `status` with `{"error": msg}`.
pub(crate) fn error(status: StatusCode, msg: impl std::fmt::Display) -> Response {
    (status, axum::Json(json!({ "error": msg.to_string() }))).into_response()
}

/// Every error the gateway sends is JSON: an answer of 400 and up that is not (axum's own
/// rejections: a path segment that does not decode, a method the route does not take) is
/// rewritten to `{"error": its text}` with the same status and headers.
pub(crate) async fn json_errors(r: Response) -> Response {
    let is_json = r
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/json"));
    if r.status().as_u16() < 400 || is_json {
        return r;
    }
    let (mut parts, body) = r.into_parts();
    let text = match axum::body::to_bytes(body, 64 * 1024).await {
        Ok(b) if !b.is_empty() => String::from_utf8_lossy(&b).trim().to_owned(),
        _ if parts.status == StatusCode::METHOD_NOT_ALLOWED => {
            match parts
                .headers
                .get(header::ALLOW)
                .and_then(|v| v.to_str().ok())
            {
                Some(allow) => format!("method not allowed on this path; it takes {allow}"),
                None => "method not allowed: this path takes another HTTP method".to_owned(),
            }
        }
        _ => parts
            .status
            .canonical_reason()
            .unwrap_or("error")
            .to_lowercase(),
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let body = serde_json::to_vec(&json!({ "error": text })).unwrap_or_default();
    Response::from_parts(parts, axum::body::Body::from(body))
}

/// A 503 that says when to retry.
fn unavailable(msg: impl std::fmt::Display, retry_after: &'static str) -> Response {
    let mut r = error(StatusCode::SERVICE_UNAVAILABLE, msg);
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static(retry_after));
    r
}

/// An engine error at admission.
pub(crate) fn invoke_error(e: InvokeError) -> Response {
    match e {
        InvokeError::UnknownLambda(_) | InvokeError::UnknownHandler { .. } => {
            error(StatusCode::NOT_FOUND, e)
        }
        InvokeError::BadRequest(_) => error(StatusCode::BAD_REQUEST, e),
        InvokeError::IdempotencyKeyReused(_) => error(StatusCode::UNPROCESSABLE_ENTITY, e),
        InvokeError::Overloaded(_) => unavailable(e, "1"),
        InvokeError::Storage(_) => unavailable(e, "1"),
        InvokeError::ShuttingDown | InvokeError::ClusterFailed => unavailable(e, "5"),
    }
}

/// A handler's answer.
pub(crate) fn answer(r: JsonResponse) -> Response {
    match r {
        JsonResponse::Ok(v) => (StatusCode::OK, axum::Json(v)).into_response(),
        JsonResponse::Rejected { message, detail } => (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({ "error": message, "detail": detail })),
        )
            .into_response(),
        JsonResponse::Failed(e) => failure(e),
    }
}

/// A runtime failure of a request.
fn failure(e: CallError) -> Response {
    match e {
        CallError::Aborted | CallError::Deadlocked(_) | CallError::Storage(_) => {
            unavailable(e, "1")
        }
        CallError::Stopped => unavailable(e, "5"),
        CallError::NoSuchTarget(_) | CallError::NotFound(_) => error(StatusCode::NOT_FOUND, e),
        other => error(StatusCode::INTERNAL_SERVER_ERROR, other),
    }
}

/// A debug view that could not be made.
pub(crate) fn view_error(e: ViewError) -> Response {
    match &e {
        ViewError::UnknownLambda(_) => error(StatusCode::NOT_FOUND, e),
        ViewError::BadKey(_) | ViewError::At(AtError::Syntax(_) | AtError::BeforeEpoch(_)) => {
            error(StatusCode::BAD_REQUEST, e)
        }
        ViewError::At(AtError::UnknownRequest(_) | AtError::Compacted(_)) => {
            error(StatusCode::BAD_REQUEST, e)
        }
        ViewError::Trace(TraceError::UnknownRequest(_) | TraceError::NotRecorded(_)) => {
            error(StatusCode::NOT_FOUND, e)
        }
        _ => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn retry_after(r: &Response) -> Option<&str> {
        r.headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
    }

    #[test]
    fn a_request_the_runtime_stopped_before_answering_is_503_with_retry_after() {
        let r = answer(JsonResponse::Failed(CallError::Stopped));
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(retry_after(&r), Some("5"));
        let r = invoke_error(InvokeError::ShuttingDown);
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(retry_after(&r), Some("5"));
    }

    #[test]
    fn a_store_that_cannot_be_read_is_its_own_error_not_a_codec_one() {
        let r = answer(JsonResponse::Failed(CallError::Storage("disk".into())));
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(retry_after(&r), Some("1"));
        let r = invoke_error(InvokeError::Storage("disk".into()));
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        // A codec failure stays a bug of the app: 500.
        let r = answer(JsonResponse::Failed(CallError::Codec("x".into())));
        assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            CallError::Storage("disk".into()).to_string(),
            "the state store could not be read: disk"
        );
    }
}
