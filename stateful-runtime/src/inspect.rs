//! Reading committed state and rendering the graph, for the CLI and the gateway.

use std::io::Write;
use std::process::{Command, Stdio};

use stateful_core::keys::key_group;

use crate::app::App;
use crate::store::{StateStore, StoreError};

/// Why an inspection failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InspectError {
    /// No lambda of that name.
    #[error("unknown lambda `{0}`")]
    UnknownLambda(String),
    /// The key does not parse as the lambda's key type.
    #[error("bad key: {0}")]
    BadKey(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The stored value does not decode with this build.
    #[error("stored state does not decode: {0}")]
    Decode(String),
}

/// The committed state of one instance as JSON (`null` when it was never written).
pub fn committed_state(
    app: &App,
    store: &dyn StateStore,
    groups: u16,
    lambda: &str,
    key: &str,
) -> Result<serde_json::Value, InspectError> {
    let (entry, key) = entry_and_key(app, lambda, key)?;
    state_json(entry, store.get(entry.id, key_group(&key, groups), &key)?)
}

/// A stored state value as JSON (`null` when absent).
fn state_json(
    entry: &crate::app::LambdaEntry,
    value: Option<Vec<u8>>,
) -> Result<serde_json::Value, InspectError> {
    match value {
        None => Ok(serde_json::Value::Null),
        Some(bytes) => (entry.state_to_json)(&bytes).map_err(InspectError::Decode),
    }
}

/// One committed version of an instance.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Version {
    /// The commit epoch (milliseconds since the Unix epoch).
    pub epoch: u64,
    /// The epoch as an RFC 3339 time.
    pub time: String,
    /// The state after that commit (`null` when deleted).
    pub state: serde_json::Value,
    /// The requests that changed it in that commit (empty when unknown: before the history
    /// horizon).
    pub written_by: Vec<Writer>,
}

/// A request that wrote a version of an instance.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Writer {
    /// The request's sequence number (what `trace` takes).
    pub seq: u64,
    /// The handler it was addressed to, as `Lambda.handler(key)` (from the request log;
    /// `null` without one).
    pub target: Option<String>,
    /// Its arguments (from the request log).
    pub args: serde_json::Value,
}

/// How far back history reaches, as a sentence (`None` when nothing was compacted).
pub fn horizon_note(store: &dyn StateStore) -> Result<Option<String>, InspectError> {
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
pub(crate) fn target_name(app: &App, r: &crate::ingress::IngressRecord) -> Option<String> {
    let e = app.lambdas.get(usize::from(r.lambda))?;
    Some(format!(
        "{}.{}({})",
        e.name,
        e.handlers
            .get(usize::from(r.handler))
            .map_or("?", |h| h.name),
        (e.key_to_json)(&r.key)
    ))
}

fn target_of(app: &App, r: &crate::ingress::IngressRecord) -> (Option<String>, serde_json::Value) {
    let args = app
        .lambdas
        .get(usize::from(r.lambda))
        .and_then(|e| (e.args_json)(r.handler, &r.args).ok())
        .unwrap_or(serde_json::Value::Null);
    (target_name(app, r), args)
}

fn entry_and_key<'a>(
    app: &'a App,
    lambda: &str,
    key: &str,
) -> Result<(&'a crate::app::LambdaEntry, Vec<u8>), InspectError> {
    let entry = app
        .lambda(lambda)
        .ok_or_else(|| InspectError::UnknownLambda(lambda.to_owned()))?;
    let key = (entry.key_from_str)(key).map_err(|e| InspectError::BadKey(e.to_string()))?;
    Ok((entry, key))
}

/// Formats an epoch (unix ms) as RFC 3339.
pub fn epoch_time(epoch: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(epoch);
    humantime::format_rfc3339_millis(t).to_string()
}

/// Resolves `--at`: `seq:N` (the commit epoch of request N) or what [`parse_at`] takes.
pub fn resolve_at(store: &dyn StateStore, s: &str) -> Result<u64, String> {
    if let Some(n) = s.strip_prefix("seq:") {
        let seq: u64 = n.parse().map_err(|e| format!("`{s}`: {e}"))?;
        return match store.completion(seq) {
            Ok(Some(c)) => Ok(c.epoch),
            Ok(None) if store.horizon().is_ok_and(|h| seq < h.complete_below_seq) => Err(format!(
                "request {seq} completed before the history horizon and was compacted"
            )),
            Ok(None) => Err(format!("request {seq} is unknown or did not complete")),
            Err(e) => Err(e.to_string()),
        };
    }
    parse_at(s)
}

/// Parses `--at`: a commit epoch (a number) or an RFC 3339 time (`2026-11-26T18:00:00Z`).
pub fn parse_at(s: &str) -> Result<u64, String> {
    if let Ok(epoch) = s.parse::<u64>() {
        return Ok(epoch);
    }
    let t = humantime::parse_rfc3339_weak(s).map_err(|e| {
        format!(
            "`{s}` is neither a commit epoch nor an RFC 3339 time (like 2026-11-26T18:00:00Z): {e}"
        )
    })?;
    t.duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .map_err(|_| format!("`{s}` is before 1970"))
}

/// Every committed version of one instance still in reach, oldest first, each with the
/// requests that wrote it (their targets and arguments read from the ingress log in `dir`,
/// when given).
pub fn history(
    app: &App,
    store: &dyn StateStore,
    groups: u16,
    lambda: &str,
    key: &str,
    dir: Option<&std::path::Path>,
) -> Result<Vec<Version>, InspectError> {
    let (entry, key) = entry_and_key(app, lambda, key)?;
    let group = key_group(&key, groups);
    let mut out = Vec::new();
    let mut seqs = Vec::new();
    for (epoch, value) in store.history(entry.id, group, &key)? {
        let state = state_json(entry, value)?;
        let writers = store.writers(entry.id, group, &key, epoch)?;
        seqs.extend(writers.iter().copied());
        out.push((
            Version {
                epoch,
                time: epoch_time(epoch),
                state,
                written_by: Vec::new(),
            },
            writers,
        ));
    }
    let mut logged = std::collections::HashMap::new();
    if let Some(dir) = dir.filter(|_| !seqs.is_empty()) {
        let wanted: std::collections::HashSet<u64> = seqs.into_iter().collect();
        for r in crate::ingress::read_log(&dir.join("ingress.log"))? {
            if wanted.contains(&r.seq) {
                logged.insert(r.seq, target_of(app, &r));
            }
        }
    }
    Ok(out
        .into_iter()
        .map(|(mut v, writers)| {
            v.written_by = writers
                .into_iter()
                .map(|seq| {
                    let (target, args) = logged
                        .get(&seq)
                        .cloned()
                        .unwrap_or((None, serde_json::Value::Null));
                    Writer { seq, target, args }
                })
                .collect();
            v
        })
        .collect())
}

/// The committed state of one instance as it was at `epoch` (the latest version at or before
/// it); `null` when it had not been written yet.
pub fn state_at(
    app: &App,
    store: &dyn StateStore,
    groups: u16,
    lambda: &str,
    key: &str,
    epoch: u64,
) -> Result<serde_json::Value, InspectError> {
    let (entry, key) = entry_and_key(app, lambda, key)?;
    state_json(
        entry,
        store.get_at(entry.id, key_group(&key, groups), &key, epoch)?,
    )
}

/// Renders DOT to SVG with Graphviz's `dot` program.
pub fn render_svg(dot: &str) -> Result<String, String> {
    let mut child = Command::new("dot")
        .arg("-Tsvg")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            format!("cannot run Graphviz `dot` ({e}); install Graphviz (apt-get install graphviz) or use the DOT output")
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(dot.as_bytes())
            .map_err(|e| format!("writing to dot: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("running dot: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "dot failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    String::from_utf8(out.stdout).map_err(|e| format!("dot printed non-UTF-8: {e}"))
}

/// Why a request cannot be traced.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TraceError {
    /// No completed request has this sequence number.
    #[error(
        "request {0} is unknown or did not complete (see the `log` command for request numbers)"
    )]
    UnknownRequest(u64),
    /// The request completed, but its call tree was not recorded.
    #[error("request {0} completed, but no trace was recorded for it")]
    NotRecorded(u64),
    /// The request completed before the history horizon; its trace was compacted.
    #[error(
        "request {seq} completed before the history horizon (epoch {horizon}, {}); its trace was compacted by the retention setting",
        epoch_time(*.horizon)
    )]
    Compacted {
        /// The request.
        seq: u64,
        /// The oldest epoch still in reach.
        horizon: u64,
    },
    /// Reading failed.
    #[error(transparent)]
    Inspect(#[from] InspectError),
}

/// An encoded `Result<Outcome, CallError>` of handler `handler` of lambda `lambda` as JSON.
pub(crate) fn result_json(
    app: &App,
    lambda: u16,
    handler: u16,
    encoded: &[u8],
) -> serde_json::Value {
    let Some(entry) = app.lambdas.get(usize::from(lambda)) else {
        return serde_json::Value::Null;
    };
    match crate::lambda::decode::<Result<crate::lambda::Outcome, crate::lambda::CallError>>(encoded)
    {
        Ok(Ok(o)) => (entry.result_json)(handler, &o.bytes)
            .unwrap_or_else(|e| serde_json::json!({ "undecodable": e.to_string() })),
        Ok(Err(e)) => serde_json::json!({ "failed": e.to_string() }),
        Err(e) => serde_json::json!({ "undecodable": e }),
    }
}

fn node_json(
    app: &App,
    store: &dyn StateStore,
    groups: u16,
    epoch: u64,
    n: &crate::engine::TraceNode,
) -> Result<serde_json::Value, InspectError> {
    let entry = app
        .lambdas
        .get(usize::from(n.lambda))
        .ok_or_else(|| InspectError::UnknownLambda(n.lambda.to_string()))?;
    let group = key_group(&n.key, groups);
    let state = |at: u64| match store.get_at(entry.id, group, &n.key, at) {
        Err(crate::store::StoreError::Compacted { .. }) => {
            Ok(serde_json::json!("compacted (before the history horizon)"))
        }
        other => state_json(entry, other?),
    };
    let children = n
        .children
        .iter()
        .map(|c| node_json(app, store, groups, epoch, c))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(serde_json::json!({
        "lambda": entry.name,
        "key": (entry.key_to_json)(&n.key),
        "handler": entry.handlers.get(usize::from(n.handler)).map_or("?", |h| h.name),
        "args": (entry.args_json)(n.handler, &n.args).unwrap_or(serde_json::Value::Null),
        "result": result_json(app, n.lambda, n.handler, &n.result),
        "rolled_back_blocks": n.rollbacks,
        "micros": n.micros,
        "state_before": state(epoch.saturating_sub(1))?,
        "state_after": state(epoch)?,
        "calls": children,
    }))
}

/// The recorded call tree of request `seq`: every invocation (lambda, key, handler,
/// arguments, result), rolled-back blocks, timings, and each participant's committed state
/// before and after the commit epoch of the request (which may include other requests of the
/// same epoch).
pub fn trace(
    app: &App,
    store: &dyn StateStore,
    groups: u16,
    seq: u64,
) -> Result<serde_json::Value, TraceError> {
    let horizon = store.horizon().map_err(InspectError::from)?;
    let compacted = TraceError::Compacted {
        seq,
        horizon: horizon.epoch,
    };
    let Some(c) = store.completion(seq).map_err(InspectError::from)? else {
        return Err(if seq < horizon.complete_below_seq {
            compacted
        } else {
            TraceError::UnknownRequest(seq)
        });
    };
    if c.trace.is_empty() {
        return Err(if c.epoch < horizon.epoch {
            compacted
        } else {
            TraceError::NotRecorded(seq)
        });
    }
    let t: crate::engine::instance::RootTrace = crate::lambda::decode(&c.trace)
        .map_err(|e| InspectError::Decode(format!("trace of request {seq}: {e}")))?;
    Ok(serde_json::json!({
        "request": seq,
        "epoch": c.epoch,
        "time": epoch_time(c.epoch),
        "ok": c.ok,
        "attempts": t.attempts,
        "root": node_json(app, store, groups, c.epoch, &t.root)?,
    }))
}

/// Renders a trace (as returned by [`trace`]) as an indented text tree.
pub fn trace_text(t: &serde_json::Value) -> String {
    fn node(out: &mut String, n: &serde_json::Value, depth: usize) {
        use std::fmt::Write;
        let pad = "  ".repeat(depth);
        let _ = writeln!(
            out,
            "{pad}{}.{}({}) {} -> {}  [{} µs{}]",
            n["lambda"].as_str().unwrap_or("?"),
            n["handler"].as_str().unwrap_or("?"),
            n["key"],
            n["args"],
            n["result"],
            n["micros"],
            match n["rolled_back_blocks"].as_u64() {
                Some(0) | None => String::new(),
                Some(k) => format!(", {k} transaction block(s) rolled back"),
            }
        );
        let _ = writeln!(
            out,
            "{pad}  state: {} => {}",
            n["state_before"], n["state_after"]
        );
        if let Some(calls) = n["calls"].as_array() {
            for c in calls {
                node(out, c, depth + 1);
            }
        }
    }
    let mut out = format!(
        "request {} committed in epoch {} ({}), {}, {} attempt(s)\n",
        t["request"],
        t["epoch"],
        t["time"].as_str().unwrap_or("?"),
        if t["ok"].as_bool() == Some(true) {
            "succeeded"
        } else {
            "rejected or failed"
        },
        t["attempts"]
    );
    node(&mut out, &t["root"], 1);
    out
}

/// One logged request, for the `log` command.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LoggedRequest {
    /// Sequence number (what `trace` takes).
    pub seq: u64,
    /// When it was accepted.
    pub time: String,
    /// Lambda.
    pub lambda: String,
    /// Key.
    pub key: serde_json::Value,
    /// Handler.
    pub handler: String,
    /// Arguments.
    pub args: serde_json::Value,
    /// `ok`, `rejected`, `failed`, or `not completed`.
    pub outcome: &'static str,
}

/// The logged requests of a data dir, optionally only those addressed to one lambda/key.
pub fn log(
    app: &App,
    store: &dyn StateStore,
    dir: &std::path::Path,
    lambda: Option<&str>,
    key: Option<&str>,
) -> Result<Vec<LoggedRequest>, InspectError> {
    let want = match lambda {
        Some(l) => Some(
            app.lambda(l)
                .ok_or_else(|| InspectError::UnknownLambda(l.to_owned()))?,
        ),
        None => None,
    };
    let want_key = match (want, key) {
        (Some(e), Some(k)) => {
            Some((e.key_from_str)(k).map_err(|e| InspectError::BadKey(e.to_string()))?)
        }
        _ => None,
    };
    let mut out = Vec::new();
    for r in crate::ingress::read_log(&dir.join("ingress.log"))? {
        if want.is_some_and(|e| e.id != r.lambda) || want_key.as_ref().is_some_and(|k| *k != r.key)
        {
            continue;
        }
        let Some(entry) = app.lambdas.get(usize::from(r.lambda)) else {
            continue;
        };
        let outcome = match store.completion(r.seq)? {
            None => "not completed",
            Some(c) if c.ok => "ok",
            Some(c) => match crate::lambda::decode::<
                Result<crate::lambda::Outcome, crate::lambda::CallError>,
            >(&c.response)
            {
                Ok(Ok(_)) => "rejected",
                _ => "failed",
            },
        };
        out.push(LoggedRequest {
            seq: r.seq,
            time: epoch_time(r.timestamp_ms),
            lambda: entry.name.to_owned(),
            key: (entry.key_to_json)(&r.key),
            handler: entry
                .handlers
                .get(usize::from(r.handler))
                .map_or("?", |h| h.name)
                .to_owned(),
            args: (entry.args_json)(r.handler, &r.args).unwrap_or(serde_json::Value::Null),
            outcome,
        });
    }
    Ok(out)
}
