//! The fixture service's extra HTTP route (what `Service::routes` adds to the gateway): a
//! batch that opens many accounts through the engine's typed handle.

use axum::Router;
use axum::extract::Path;
use axum::extract::rejection::PathRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::json;
use stateful_runtime::Handle;

use crate::fixture::Account;

/// `POST /batch/open/{n}/{balance}`: opens the accounts "0".."n-1" with `balance` each and
/// answers `{"n": n}` once every one is committed.
pub fn batch_routes(handle: Handle) -> Router {
    Router::new().route(
        "/batch/open/{n}/{balance}",
        post(
            move |path: Result<Path<(u64, i64)>, PathRejection>| async move {
                let Path((n, balance)) = match path {
                    Ok(p) => p,
                    Err(e) => return error(StatusCode::BAD_REQUEST, e.body_text()),
                };
                // Every call is submitted when it is made; then the answers are awaited.
                let pending: Vec<_> = (0..n)
                    .map(|i| handle.call::<Account>(&i.to_string()).open(balance))
                    .collect();
                for (i, answer) in pending.into_iter().enumerate() {
                    match answer.await {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => {
                            return error(
                                StatusCode::INTERNAL_SERVER_ERROR,
                                format!("opening {i} failed: {e}"),
                            );
                        }
                        Err(e) => {
                            return error(
                                StatusCode::SERVICE_UNAVAILABLE,
                                format!("opening {i} stopped: {e}"),
                            );
                        }
                    }
                }
                (StatusCode::OK, axum::Json(json!({ "n": n }))).into_response()
            },
        ),
    )
}

/// An error answer in the gateway's shape: `{"error": message}`.
fn error(status: StatusCode, msg: impl std::fmt::Display) -> Response {
    (status, axum::Json(json!({ "error": msg.to_string() }))).into_response()
}
