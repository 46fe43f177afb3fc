//! What the tools return, as the user sees it: JSON-ready views (and text) of states,
//! histories, the request log, traces and diffs, with lambdas and keys by name. The CLI and the
//! HTTP debug views both use these, so the two always agree.

use serde::Serialize;
use serde_json::Value;

use super::app::App;
use super::json::{CodecError, LambdaCodec};
use crate::storage::{ReadError, StateStore, epoch_time};
use crate::tools::at::{AtError, resolve_at};
use crate::tools::diff::DiffReport;
use crate::tools::log::LogQuery;
use crate::tools::trace::{StateAt, TraceError, TraceRecord, TraceTree};
use stateful_core::records::ingress::IngressRecord;

/// Why a view could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ViewError {
    /// No lambda of that name.
    #[error("unknown lambda `{0}`")]
    UnknownLambda(String),
    /// The key does not parse as the lambda's key type.
    #[error("bad key: {0}")]
    BadKey(String),
    /// `at` names no point in history.
    #[error(transparent)]
    At(#[from] AtError),
    /// The store could not be read.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// The request cannot be traced.
    #[error(transparent)]
    Trace(#[from] TraceError),
    /// Stored bytes do not decode with this build.
    #[error("stored state does not decode: {0}")]
    Decode(String),
}

impl From<CodecError> for ViewError {
    fn from(e: CodecError) -> Self {
        ViewError::Decode(e.to_string())
    }
}

/// The lambda named `lambda`, its codec and the encoding of `key`.
pub(crate) fn resolve<'a>(
    app: &'a App,
    lambda: &str,
    key: &str,
) -> Result<(u16, &'a LambdaCodec, Vec<u8>), ViewError> {
    let def = app
        .lambda(lambda)
        .ok_or_else(|| ViewError::UnknownLambda(lambda.to_owned()))?;
    let codec = app
        .codec(def.id)
        .ok_or_else(|| ViewError::UnknownLambda(lambda.to_owned()))?;
    let key = codec
        .key_from_str(key)
        .map_err(|e| ViewError::BadKey(e.to_string()))?;
    Ok((def.id, codec, key))
}

/// The committed state of one instance as JSON (`null`: never written), now or `at`.
pub fn state(
    app: &App,
    store: &dyn StateStore,
    groups: u16,
    lambda: &str,
    key: &str,
    at: Option<&str>,
) -> Result<Value, ViewError> {
    let (id, codec, key) = resolve(app, lambda, key)?;
    let at = at.map(|a| resolve_at(store, a)).transpose()?;
    let value = crate::tools::inspect::state(store, groups, id, &key, at)?;
    Ok(codec.maybe_state_to_json(value.as_deref())?)
}

/// How far back history reaches, as a sentence (`None` when nothing was compacted).
pub fn horizon_note(store: &dyn StateStore) -> Result<Option<String>, ReadError> {
    let h = store.horizon()?;
    Ok((h.epoch > 0).then(|| {
        format!(
            "history before epoch {} ({}) is compacted (retention setting)",
            h.epoch,
            epoch_time(h.epoch)
        )
    }))
}

/// A logged request's target as `Lambda.handler(key)` (`None`: a lambda this app lacks).
pub(crate) fn target_name(app: &App, r: &IngressRecord) -> Option<String> {
    let def = app.program().lambda(r.lambda)?;
    let key = app
        .codec(r.lambda)
        .and_then(|c| c.key_to_json(&r.key).ok())
        .unwrap_or(Value::Null);
    let handler = handler_name(def, r.handler);
    Some(format!("{}.{handler}({key})", def.name))
}

/// The name of handler `h` of `def`: `load` for a bulk load's request, `?` when unknown.
fn handler_name(def: &crate::engine::LambdaDef, h: u16) -> &'static str {
    if h == crate::engine::load::LOAD_HANDLER {
        return "load";
    }
    def.handlers.get(usize::from(h)).map_or("?", |h| h.name)
}

fn args_of(app: &App, r: &IngressRecord) -> Value {
    if r.handler == crate::engine::load::LOAD_HANDLER {
        return crate::engine::load::chunk_len(&r.args)
            .map_or(Value::Null, |n| serde_json::json!({ "instances": n }));
    }
    app.codec(r.lambda)
        .and_then(|c| c.args_to_json(r.handler, &r.args).ok())
        .unwrap_or(Value::Null)
}

/// A request that wrote a version of an instance.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WriterView {
    /// The request's sequence number (what `trace` takes).
    pub seq: u64,
    /// `Lambda.handler(key)` (`null` when this data dir does not hold the request).
    pub target: Option<String>,
    /// Its arguments.
    pub args: Value,
}

/// One committed version of an instance.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VersionView {
    /// The commit epoch (microseconds since the Unix epoch).
    pub epoch: u64,
    /// The epoch as an RFC 3339 time.
    pub time: String,
    /// The state after that commit (`null` when deleted).
    pub state: Value,
    /// The requests that changed it in that commit (empty before the history horizon).
    pub written_by: Vec<WriterView>,
}

/// The history of an instance.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryView {
    /// The oldest epoch still in reach (0: nothing compacted).
    pub horizon: u64,
    /// How far back history reaches, as a sentence.
    pub horizon_note: Option<String>,
    /// Versions, oldest first.
    pub versions: Vec<VersionView>,
}

/// Every committed version of one instance still in reach, with the requests that wrote each.
pub fn history(
    app: &App,
    store: &dyn StateStore,
    groups: u16,
    lambda: &str,
    key: &str,
    place: (usize, usize),
) -> Result<HistoryView, ViewError> {
    let (id, codec, key) = resolve(app, lambda, key)?;
    let h = crate::tools::history::history(store, groups, id, &key, place)?;
    let versions = h
        .versions
        .into_iter()
        .map(|v| {
            Ok(VersionView {
                epoch: v.epoch,
                time: epoch_time(v.epoch),
                state: codec.maybe_state_to_json(v.value.as_deref())?,
                written_by: v
                    .writers
                    .into_iter()
                    .map(|(seq, r)| WriterView {
                        seq,
                        target: r.as_ref().and_then(|r| target_name(app, r)),
                        args: r.as_ref().map_or(Value::Null, |r| args_of(app, r)),
                    })
                    .collect(),
            })
        })
        .collect::<Result<_, ViewError>>()?;
    Ok(HistoryView {
        horizon: h.horizon.epoch,
        horizon_note: horizon_note(store)?,
        versions,
    })
}

/// One logged request.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LoggedRequest {
    /// Sequence number (what `trace` takes).
    pub seq: u64,
    /// When it was accepted.
    pub time: String,
    /// Lambda.
    pub lambda: String,
    /// Key.
    pub key: Value,
    /// Handler.
    pub handler: String,
    /// Arguments.
    pub args: Value,
    /// `ok`, `rejected` or `failed`.
    pub outcome: &'static str,
}

/// A page of the request log, optionally of one lambda (and key).
pub fn log(
    app: &App,
    store: &dyn StateStore,
    lambda: Option<&str>,
    key: Option<&str>,
    after: Option<u64>,
    limit: Option<usize>,
) -> Result<Vec<LoggedRequest>, ViewError> {
    let q = LogQuery {
        after,
        limit,
        ..LogQuery::default()
    };
    log_filtered(app, store, lambda, key, q)
}

/// A page of the request log as `q` says (its outcome, order and paging), optionally of one
/// lambda (and key), named as the user writes them.
pub fn log_filtered(
    app: &App,
    store: &dyn StateStore,
    lambda: Option<&str>,
    key: Option<&str>,
    mut q: LogQuery,
) -> Result<Vec<LoggedRequest>, ViewError> {
    match (lambda, key) {
        (Some(l), Some(k)) => {
            let (id, _, key) = resolve(app, l, k)?;
            q.lambda = Some(id);
            q.key = Some(key);
        }
        (Some(l), None) => {
            q.lambda = Some(
                app.lambda(l)
                    .ok_or_else(|| ViewError::UnknownLambda(l.to_owned()))?
                    .id,
            );
        }
        _ => {}
    }
    let entries = crate::tools::log::page(store, &q)?;
    Ok(entries
        .into_iter()
        .filter_map(|e| {
            let r = e.record;
            let def = app.program().lambda(r.lambda)?;
            Some(LoggedRequest {
                seq: r.seq,
                time: epoch_time(r.timestamp_ms.saturating_mul(1000)),
                lambda: def.name.to_owned(),
                key: app
                    .codec(r.lambda)
                    .and_then(|c| c.key_to_json(&r.key).ok())
                    .unwrap_or(Value::Null),
                handler: handler_name(def, r.handler).to_owned(),
                args: args_of(app, &r),
                outcome: e.outcome.as_str(),
            })
        })
        .collect())
}

/// One invocation of a traced request.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeView {
    /// Lambda.
    pub lambda: String,
    /// Key.
    pub key: Value,
    /// Handler.
    pub handler: String,
    /// Arguments.
    pub args: Value,
    /// Its result.
    pub result: Value,
    /// `transaction!` blocks it rolled back.
    pub rolled_back_blocks: u32,
    /// Microseconds from start to answer.
    pub micros: u64,
    /// The instance's committed state before the request's commit epoch.
    pub state_before: Value,
    /// And right after it.
    pub state_after: Value,
    /// The calls it made.
    pub calls: Vec<NodeView>,
}

/// A traced request.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TraceView {
    /// Its sequence number.
    pub request: u64,
    /// The epoch it committed in.
    pub epoch: u64,
    /// The epoch as an RFC 3339 time.
    pub time: String,
    /// Whether the handler returned `Ok`.
    pub ok: bool,
    /// Attempts it took.
    pub attempts: u32,
    /// The root invocation.
    pub root: NodeView,
}

fn state_view(codec: &LambdaCodec, s: &StateAt) -> Result<Value, ViewError> {
    match s {
        StateAt::Compacted => Ok(Value::String(
            "compacted (before the history horizon)".into(),
        )),
        StateAt::Value(v) => Ok(codec.maybe_state_to_json(v.as_deref())?),
    }
}

fn node_view(app: &App, t: &TraceTree) -> Result<NodeView, ViewError> {
    let n = &t.node;
    let def = app
        .program()
        .lambda(n.lambda)
        .ok_or_else(|| ViewError::UnknownLambda(n.lambda.to_string()))?;
    let codec = app
        .codec(n.lambda)
        .ok_or_else(|| ViewError::UnknownLambda(n.lambda.to_string()))?;
    Ok(NodeView {
        lambda: def.name.to_owned(),
        key: codec.key_to_json(&n.key).unwrap_or(Value::Null),
        handler: def
            .handlers
            .get(usize::from(n.handler))
            .map_or("?", |h| h.name)
            .to_owned(),
        args: codec
            .args_to_json(n.handler, &n.args)
            .unwrap_or(Value::Null),
        result: codec.stored_response_json(n.handler, &n.result),
        rolled_back_blocks: n.rollbacks,
        micros: n.micros,
        state_before: state_view(codec, &t.state_before)?,
        state_after: state_view(codec, &t.state_after)?,
        calls: t
            .calls
            .iter()
            .map(|c| node_view(app, c))
            .collect::<Result<_, _>>()?,
    })
}

/// The call tree of request `seq`.
pub fn trace(
    app: &App,
    store: &dyn StateStore,
    groups: u16,
    seq: u64,
) -> Result<TraceView, ViewError> {
    let t: TraceRecord = crate::tools::trace::trace(store, groups, seq)?;
    Ok(TraceView {
        request: t.seq,
        epoch: t.epoch,
        time: epoch_time(t.epoch),
        ok: t.ok,
        attempts: t.attempts,
        root: node_view(app, &t.root)?,
    })
}

/// A trace as an indented text tree.
pub fn trace_text(t: &TraceView) -> String {
    use std::fmt::Write;
    fn node(out: &mut String, n: &NodeView, depth: usize) {
        let pad = "  ".repeat(depth);
        let rolled = match n.rolled_back_blocks {
            0 => String::new(),
            k => format!(", {k} transaction block(s) rolled back"),
        };
        let _ = writeln!(
            out,
            "{pad}{}.{}({}) {} -> {}  [{} µs{rolled}]",
            n.lambda, n.handler, n.key, n.args, n.result, n.micros
        );
        let _ = writeln!(out, "{pad}  state: {} => {}", n.state_before, n.state_after);
        for c in &n.calls {
            node(out, c, depth + 1);
        }
    }
    let mut out = format!(
        "request {} committed in epoch {} ({}), {}, {} attempt(s)\n",
        t.request,
        t.epoch,
        t.time,
        if t.ok {
            "succeeded"
        } else {
            "rejected or failed"
        },
        t.attempts
    );
    node(&mut out, &t.root, 1);
    out
}

/// One instance whose committed state differs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InstanceDiffView {
    /// Lambda.
    pub lambda: String,
    /// Key.
    pub key: Value,
    /// State in the old dir (`null`: absent).
    pub old: Value,
    /// State in the new dir (`null`: absent).
    pub new: Value,
}

/// One request whose response differs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResponseDiffView {
    /// Sequence number in the old dir.
    pub seq: u64,
    /// `lambda.handler(key)`.
    pub target: String,
    /// The old response.
    pub old: Value,
    /// The new response (`null`: the request was not replayed).
    pub new: Value,
}

/// What differs between two data dirs.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DiffView {
    /// Instances with different committed states.
    pub instances: Vec<InstanceDiffView>,
    /// Requests with different responses.
    pub responses: Vec<ResponseDiffView>,
}

/// A diff as the user reads it (states and responses as JSON).
pub fn diff(app: &App, d: DiffReport) -> DiffView {
    let state = |l: u16, v: Option<Vec<u8>>| {
        app.codec(l)
            .and_then(|c| c.maybe_state_to_json(v.as_deref()).ok())
            .unwrap_or(Value::Null)
    };
    let mut view = DiffView::default();
    for i in d.instances {
        let key = app
            .codec(i.lambda)
            .and_then(|c| c.key_to_json(&i.key).ok())
            .unwrap_or(Value::Null);
        view.instances.push(InstanceDiffView {
            lambda: app
                .program()
                .lambda(i.lambda)
                .map_or_else(|| i.lambda.to_string(), |l| l.name.to_owned()),
            key,
            old: state(i.lambda, i.old),
            new: state(i.lambda, i.new),
        });
    }
    for r in d.responses {
        let q = &r.request;
        let json = |bytes: &[u8]| {
            app.codec(q.lambda)
                .map_or(Value::Null, |c| c.stored_response_json(q.handler, bytes))
        };
        let (old, new) = (json(&r.old), r.new.as_deref().map_or(Value::Null, json));
        // The same answer in another encoding (a changed type that reads the same) is no
        // difference to the user.
        if old == new {
            continue;
        }
        view.responses.push(ResponseDiffView {
            seq: q.seq,
            target: target_name(app, q).unwrap_or_else(|| format!("lambda {}", q.lambda)),
            old,
            new,
        });
    }
    view
}
