//! The batch-initialisation routes of the shop's REST API. Each fans out to many instances,
//! so it is an HTTP route of its own that submits one request per instance.

use axum::Router;
use axum::extract::Path;
use axum::extract::rejection::PathRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::json;
use stateful_runtime::{ExternalCall, Handle};

use crate::shop::{Order, Payment, ShopError, Stock};
use stateful_runtime::mix::SplitMix;

/// Instances submitted at once by a batch route.
const CHUNK: u64 = 5_000;

/// `POST /payment/batch_init/{n}/{starting_money}`, `POST /stock/batch_init/{n}/{starting_stock}/{item_price}`,
/// `POST /orders/batch_init/{n}/{n_items}/{n_users}/{item_price}`.
pub fn batch_routes(handle: Handle) -> Router {
    let (h1, h2, h3) = (handle.clone(), handle.clone(), handle);
    Router::new()
        .route(
            "/payment/batch_init/{n}/{starting_money}",
            post(
                move |path: Result<Path<(u64, i64)>, PathRejection>| async move {
                    let Path((n, money)) = match path {
                        Ok(p) => p,
                        Err(e) => return bad_path(e),
                    };
                    batch(&h1, n, "Payment", |h, key, _| {
                        h.call::<Payment>(&key).init(money)
                    })
                    .await
                },
            ),
        )
        .route(
            "/stock/batch_init/{n}/{starting_stock}/{item_price}",
            post(
                move |path: Result<Path<(u64, i64, i64)>, PathRejection>| async move {
                    let Path((n, stock, price)) = match path {
                        Ok(p) => p,
                        Err(e) => return bad_path(e),
                    };
                    batch(&h2, n, "Stock", |h, key, _| {
                        h.call::<Stock>(&key).init(stock, price)
                    })
                    .await
                },
            ),
        )
        .route(
            "/orders/batch_init/{n}/{n_items}/{n_users}/{item_price}",
            post(
                move |path: Result<Path<(u64, u64, u64, i64)>, PathRejection>| async move {
                    let Path((n, n_items, n_users, price)) = match path {
                        Ok(p) => p,
                        Err(e) => return bad_path(e),
                    };
                    if n_items == 0 || n_users == 0 {
                        return error(
                            StatusCode::BAD_REQUEST,
                            "n_items and n_users must be positive",
                        );
                    }
                    batch(&h3, n, "Order", |h, key, i| {
                        let mut r = SplitMix::new(i);
                        let a = r.next_u64() % n_items;
                        let b = r.next_u64() % n_items;
                        let user = r.next_u64() % n_users;
                        let items = vec![(a.to_string(), 1), (b.to_string(), 1)];
                        h.call::<Order>(&key)
                            .init(user.to_string(), items, 2 * price)
                    })
                    .await
                },
            ),
        )
}

/// An error answer in the gateway's shape: `{"error": message}`.
fn error(status: StatusCode, msg: impl std::fmt::Display) -> Response {
    (status, axum::Json(json!({ "error": msg.to_string() }))).into_response()
}

/// An unparsable path argument: 400, like the gateway's own routes.
fn bad_path(e: PathRejection) -> Response {
    error(StatusCode::BAD_REQUEST, e.body_text())
}

/// Runs `call(handle, key, i)` for the keys "0".."n-1" (the initialisation of `lambda`).
async fn batch(
    handle: &Handle,
    n: u64,
    lambda: &str,
    call: impl Fn(&Handle, String, u64) -> ExternalCall<Result<(), ShopError>>,
) -> Response {
    let mut start = 0;
    while start < n {
        let end = (start + CHUNK).min(n);
        // Every call is submitted when it is made; then the chunk's answers are awaited.
        let pending: Vec<_> = (start..end)
            .map(|i| call(handle, i.to_string(), i))
            .collect();
        for (i, answer) in (start..end).zip(pending) {
            match answer.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    return error(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        format!("batch init failed at {i}: {e}"),
                    );
                }
                Err(e) => {
                    return error(
                        StatusCode::SERVICE_UNAVAILABLE,
                        format!("batch init stopped at {i}: {e}"),
                    );
                }
            }
        }
        start = end;
    }
    (
        StatusCode::OK,
        axum::Json(json!({ "msg": format!("Batch init for {lambda} successful"), "n": n })),
    )
        .into_response()
}
