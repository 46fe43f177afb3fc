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

/// The most instances one batch route creates (400 beyond): a bound on the work one request
/// can start.
pub const MAX_BATCH: u64 = 10_000_000;

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
                    if money < 0 {
                        return error(
                            StatusCode::BAD_REQUEST,
                            "starting_money must not be negative",
                        );
                    }
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
                    if stock < 0 || price < 0 {
                        return error(
                            StatusCode::BAD_REQUEST,
                            "starting_stock and item_price must not be negative",
                        );
                    }
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
                    let Some(total) = price.checked_mul(2).filter(|t| *t >= 0) else {
                        return error(
                            StatusCode::BAD_REQUEST,
                            "item_price must be zero or more, and twice it must fit an i64",
                        );
                    };
                    batch(&h3, n, "Order", |h, key, i| {
                        let mut r = SplitMix::new(i);
                        let a = r.next_u64() % n_items;
                        let b = r.next_u64() % n_items;
                        let user = r.next_u64() % n_users;
                        let items = vec![(a.to_string(), 1), (b.to_string(), 1)];
                        h.call::<Order>(&key).init(user.to_string(), items, total)
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
    if n > MAX_BATCH {
        return error(
            StatusCode::BAD_REQUEST,
            format!("a batch creates at most {MAX_BATCH} instances, not {n}: split it"),
        );
    }
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
