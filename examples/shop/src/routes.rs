//! The batch-initialisation routes of the shop's REST API. Each sets many instances at once,
//! so it is an HTTP route of its own: a bulk load ([`Handle::load`]), thousands of instances
//! per request and per commit, no handler run per instance.

use axum::Router;
use axum::extract::Path;
use axum::extract::rejection::PathRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::json;
use stateful_runtime::{Handle, Lambda};

use crate::shop::{Order, OrderState, Payment, PaymentState, ShopError, Stock, StockState};
use stateful_runtime::mix::SplitMix;

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
                    batch::<Payment>(&h1, n, |_| PaymentState::new(money)).await
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
                    batch::<Stock>(&h2, n, |_| StockState::new(stock, price)).await
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
                    batch::<Order>(&h3, n, |i| {
                        let mut r = SplitMix::new(i);
                        let a = r.next_u64() % n_items;
                        let b = r.next_u64() % n_items;
                        let user = r.next_u64() % n_users;
                        let items = vec![(a.to_string(), 1), (b.to_string(), 1)];
                        OrderState::new(user.to_string(), items, total)
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

/// Loads instances "0".."n-1" of `L` with the states `state(i)` in bulk.
///
/// The first state is checked before anything is loaded (a bad argument is a 400 and changes
/// nothing); the routes' states differ only in ways that cannot fail after it.
async fn batch<L>(
    handle: &Handle,
    n: u64,
    state: impl Fn(u64) -> Result<L::State, ShopError> + Send,
) -> Response
where
    L: Lambda<Key = String>,
{
    if n > MAX_BATCH {
        return error(
            StatusCode::BAD_REQUEST,
            format!("a batch creates at most {MAX_BATCH} instances, not {n}: split it"),
        );
    }
    if let Err(e) = state(0) {
        return error(StatusCode::BAD_REQUEST, e);
    }
    let mut failed = None;
    let instances = (0..n).map_while(|i| match state(i) {
        Ok(s) => Some((i.to_string(), s)),
        Err(e) => {
            failed = Some((i, e));
            None
        }
    });
    let loaded = handle.load::<L, _>(instances).await;
    if let Some((i, e)) = failed {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("batch init stopped at {i} of {n}: {e}"),
        );
    }
    match loaded {
        Ok(done) => (
            StatusCode::OK,
            axum::Json(json!({
                "msg": format!("Batch init for {} successful", L::NAME),
                "n": done.instances,
            })),
        )
            .into_response(),
        Err(e) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("batch init of {} stopped: {e}", L::NAME),
        ),
    }
}
