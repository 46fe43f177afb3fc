//! The read-only views of a running service: `/state/{lambda}/{key}[?at=]`, the graph, and
//! time travel under `/debug` (history, trace, the paged request log). Every store read runs
//! off the async threads.

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::Gw;
use super::status::{error, view_error};
use crate::service::views::{self, ViewError};

/// Runs a view on a blocking thread and answers it as JSON.
async fn blocking<T, F>(f: F) -> Response
where
    T: Serialize + Send + 'static,
    F: FnOnce() -> Result<T, ViewError> + Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(v)) => (StatusCode::OK, axum::Json(v)).into_response(),
        Ok(Err(e)) => view_error(e),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the view failed: {e}"),
        ),
    }
}

#[derive(serde::Deserialize)]
pub(super) struct AtQuery {
    at: Option<String>,
}

/// `GET /state/{lambda}/{key}[?at=..]`.
pub(super) async fn state(
    State(gw): State<Gw>,
    Path((lambda, key)): Path<(String, String)>,
    Query(q): Query<AtQuery>,
) -> Response {
    blocking(move || {
        let store = gw.handle.store();
        views::state(
            &gw.app,
            store.as_ref(),
            gw.handle.key_groups(),
            &lambda,
            &key,
            q.at.as_deref(),
        )
    })
    .await
}

/// `GET /debug/history/{lambda}/{key}`.
pub(super) async fn history(
    State(gw): State<Gw>,
    Path((lambda, key)): Path<(String, String)>,
) -> Response {
    blocking(move || {
        let place = gw
            .handle
            .cluster()
            .map_or((0, 1), |c| (c.process, c.processes()));
        views::history(
            &gw.app,
            gw.handle.store().as_ref(),
            gw.handle.key_groups(),
            &lambda,
            &key,
            place,
        )
    })
    .await
}

/// The most entries one page of `/debug/log` holds.
const MAX_PAGE: usize = 1000;

#[derive(serde::Deserialize)]
pub(super) struct LogQuery {
    lambda: Option<String>,
    key: Option<String>,
    /// Entries with a larger sequence number (the last `seq` of the previous page).
    after: Option<u64>,
    /// Entries per page (default and most: 1000).
    limit: Option<usize>,
    /// Only `ok`, `rejected` or `failed` requests.
    outcome: Option<String>,
    /// `true`: the last page (the newest entries), not the first.
    last: Option<bool>,
}

/// `GET /debug/log[?lambda=&key=&outcome=&after=&limit=&last=true]`: one page of the request
/// log.
pub(super) async fn log(State(gw): State<Gw>, Query(q): Query<LogQuery>) -> Response {
    let limit = q.limit.unwrap_or(MAX_PAGE).clamp(1, MAX_PAGE);
    let outcome = match q.outcome.as_deref().map(str::parse).transpose() {
        Ok(o) => o,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let page = crate::tools::log::LogQuery {
        after: q.after,
        limit: Some(limit),
        outcome,
        last: q.last.unwrap_or(false),
        ..Default::default()
    };
    blocking(move || {
        views::log_filtered(
            &gw.app,
            gw.handle.store().as_ref(),
            q.lambda.as_deref(),
            q.key.as_deref(),
            page,
        )
    })
    .await
}

/// `GET /debug/trace/{seq}`.
pub(super) async fn trace(State(gw): State<Gw>, Path(seq): Path<String>) -> Response {
    let Ok(seq) = seq.parse::<u64>() else {
        return error(
            StatusCode::BAD_REQUEST,
            format!("`{seq}` is not a request number"),
        );
    };
    blocking(move || {
        views::trace(
            &gw.app,
            gw.handle.store().as_ref(),
            gw.handle.key_groups(),
            seq,
        )
    })
    .await
}

#[derive(serde::Deserialize)]
pub(super) struct GraphQuery {
    format: Option<String>,
    /// `builtin`: draw the SVG with the built-in layout even where Graphviz is installed.
    layout: Option<String>,
}

/// `GET /graph[?format=dot|svg[&layout=auto|builtin]]`.
pub(super) async fn graph(State(gw): State<Gw>, Query(q): Query<GraphQuery>) -> Response {
    let dot = gw.app.dot();
    match q.format.as_deref() {
        None | Some("dot") => (
            [(header::CONTENT_TYPE, "text/vnd.graphviz; charset=utf-8")],
            dot.to_owned(),
        )
            .into_response(),
        Some("svg") => {
            let layout = match q.layout.as_deref() {
                None | Some("auto") => crate::service::svg::Layout::Auto,
                Some("builtin") => crate::service::svg::Layout::Builtin,
                Some(other) => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        format!("unknown layout `{other}`: use auto or builtin"),
                    );
                }
            };
            let app = gw.app.clone();
            match tokio::task::spawn_blocking(move || crate::service::svg::graph_svg(&app, layout))
                .await
            {
                Ok(Ok(svg)) => ([(header::CONTENT_TYPE, "image/svg+xml")], svg).into_response(),
                Ok(Err(e)) => error(StatusCode::SERVICE_UNAVAILABLE, e),
                Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
            }
        }
        Some(other) => error(
            StatusCode::BAD_REQUEST,
            format!("unknown format `{other}`: use dot or svg"),
        ),
    }
}
